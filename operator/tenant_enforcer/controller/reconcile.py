"""One tenant's reconcile: observe → decide → act → record.  Level-triggered and idempotent.

Everything is read from the in-memory view, decided by the pure core, applied through the
target registry, and recorded as status, Events and verdict states.  Running it twice in a
row writes nothing the second time.
"""

from __future__ import annotations

import logging
import threading
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from tenant_enforcer.controller.store import ClusterView, PolicyEntry, Snapshot, VerdictEntry
from tenant_enforcer.core.ladder import Decision, evaluate
from tenant_enforcer.core.plan import Action, plan
from tenant_enforcer.core.scope import precedence, resolve_scope
from tenant_enforcer.model.ladder import Ladder, Mode
from tenant_enforcer.model.levels import Level
from tenant_enforcer.model.refs import Observed
from tenant_enforcer.model.verdict import VerdictState
from tenant_enforcer.record import events as ev
from tenant_enforcer.record.events import EventRecorder, Involved
from tenant_enforcer.record.status import Outcome, Problem, changed, policy_status
from tenant_enforcer.record.writer import POLICIES, VERDICTS, StatusWriter
from tenant_enforcer.targets.base import Target, TenantScope
from tenant_enforcer.targets.errors import ErrorClass, TargetError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ReconcileResult:
    next_due: datetime | None = None
    retry: bool = False  # a transient failure: try again with backoff
    outcomes: Mapping[str, Outcome] | None = None  # by policy name


def _held(status: Mapping[str, Any]) -> Level:
    try:
        return Level.parse(status.get("level") or "None")
    except ValueError:
        return Level.NONE


def _entry_precedence(entry: PolicyEntry) -> tuple[Any, ...]:
    return precedence(entry.policy) if entry.policy else (datetime.max.isoformat(), entry.name)


class Reconciler:
    def __init__(
        self,
        view: ClusterView,
        targets: Mapping[str, Target],
        writer: StatusWriter,
        events: EventRecorder,
        operator_namespace: str,
        dry_run: bool = False,
    ) -> None:
        self.view = view
        self.targets = dict(targets)
        self.thresholds = {kind: t.acts_from for kind, t in self.targets.items()}
        self.highest = max(self.thresholds.values(), default=Level.NONE)
        self.writer = writer
        self.events = events
        self.operator_namespace = operator_namespace
        self.dry_run = dry_run
        self._guard = threading.Lock()
        self._locks: dict[str, threading.Lock] = defaultdict(threading.Lock)
        # What we last wrote, by uid: the watch may lag behind our own writes, and reading a
        # stale status back would repeat a patch and its Events.
        self._written: dict[str, Mapping[str, Any]] = {}

    def _lock(self, tenant: str) -> threading.Lock:
        with self._guard:
            return self._locks[tenant]

    def reconcile(self, tenant: str, now: datetime) -> ReconcileResult:
        with self._lock(tenant):
            snap = self.view.snapshot(tenant)
            if not snap.policies:
                self._record_verdicts(snap.verdicts, None, tenant, known_tenant=False)
                return ReconcileResult()
            winner, *losers = sorted(snap.policies, key=_entry_precedence)
            outcomes = {}
            for loser in losers:
                outcomes[loser.name] = Outcome(
                    level=_held(self._previous(loser)),
                    problem=Problem(
                        "DuplicateTenant", f"tenant {tenant} already has TenantPolicy {winner.name}"
                    ),
                )
                self._record_policy(loser, outcomes[loser.name], now, snap.verdicts)
            outcome, retry = self._reconcile_policy(winner, snap, now)
            outcomes[winner.name] = outcome
            self._record_policy(winner, outcome, now, snap.verdicts)
            if outcome.decision:
                self._record_verdicts(snap.verdicts, outcome.decision, tenant)
            next_due = outcome.decision.next_due if outcome.decision else None
            return ReconcileResult(next_due, retry, outcomes)

    # --- decide and act -----------------------------------------------------------------

    def _reconcile_policy(self, entry: PolicyEntry, snap: Snapshot, now: datetime) -> tuple[Outcome, bool]:
        held = _held(self._previous(entry))
        policy = entry.policy
        if policy is None:
            return Outcome(
                held, problem=Problem("InvalidSpec", entry.error or "spec could not be read")
            ), False
        ladder_entry = snap.ladders.get(policy.ladder)
        if ladder_entry is None:
            return Outcome(
                held, problem=Problem("LadderNotFound", f"EnforcementLadder {policy.ladder} not found")
            ), False
        ladder = ladder_entry.ladder
        if ladder is None:
            return Outcome(
                held,
                problem=Problem("LadderInvalid", f"EnforcementLadder {policy.ladder}: {ladder_entry.error}"),
            ), False
        claimants = {ns: [e.policy for e in entries if e.policy] for ns, entries in snap.claimants.items()}
        holders = {
            e.name: frozenset(self._previous(e).get("namespaces") or ())
            for entries in snap.claimants.values()
            for e in entries
        }
        scope = resolve_scope(policy, snap.namespaces, claimants, self.operator_namespace, holders)
        if scope.problem_reason:
            return Outcome(held, problem=Problem(scope.problem_reason, scope.problem or "")), False
        decision = evaluate(ladder, [v.verdict for v in snap.verdicts if v.verdict], now, policy.hold)
        if entry.deleting:
            decision = replace(
                decision, target=Level.NONE, reason="the TenantPolicy is being deleted: lifting"
            )
        effective = min(decision.target, self.highest)
        tenant_scope = TenantScope(policy.tenant, {ns: snap.namespaces[ns] for ns in scope.namespaces})
        inventory = [obs for target in self.targets.values() for obs in target.discover(tenant_scope)]
        actions = plan(effective, inventory, self.thresholds)
        problem = None
        if decision.target > self.highest:
            problem = Problem(
                "LevelNotImplemented",
                f"{decision.target.api_name} is called for; this version implements levels up to "
                f"{self.highest.api_name}, so {effective.api_name} is applied",
            )
        if self.dry_run or ladder.mode is Mode.DRY_RUN:
            observed = max((o.applied for o in inventory), default=Level.NONE)
            return Outcome(
                observed, decision, scope.namespaces, tuple(actions), problem=problem, dry_run=True
            ), False
        failures, fatal = self._execute(actions, ladder, tenant_scope)
        if fatal:
            problem = Problem("ActionFailed", "; ".join(fatal))
        level = effective if not failures and not fatal else _partial_level(held, inventory)
        return Outcome(level, decision, scope.namespaces, tuple(actions), tuple(failures), problem), bool(
            failures
        )

    def _execute(
        self, actions: list[Action], ladder: Ladder, scope: TenantScope
    ) -> tuple[list[str], list[str]]:
        """Run every action, collecting failures instead of stopping at the first one."""
        transient: list[str] = []
        fatal: list[str] = []
        for action in actions:
            target = self.targets[action.ref.kind]
            try:
                if action.is_restore:
                    target.restore(action.ref, scope)
                else:
                    target.apply(action.ref, action.level, ladder, scope)
            except TargetError as exc:
                (fatal if exc.error_class is ErrorClass.FATAL else transient).append(str(exc))
        return transient, fatal

    # --- record -------------------------------------------------------------------------

    def _previous(self, entry: PolicyEntry) -> Mapping[str, Any]:
        return self._written.get(entry.uid, entry.status)

    def _record_policy(
        self, entry: PolicyEntry, outcome: Outcome, now: datetime, verdicts: list[VerdictEntry]
    ) -> None:
        previous = self._previous(entry)
        generation = entry.policy.generation if entry.policy else 0
        status = policy_status(previous, outcome, generation, now)
        patch = changed(previous, status)
        if not patch:
            return
        self.writer.patch(POLICIES, entry.name, patch)
        self._written[entry.uid] = status
        self._policy_events(entry, previous, outcome, {v.name: v.uid for v in verdicts})

    def _policy_events(
        self,
        entry: PolicyEntry,
        previous: Mapping[str, Any],
        outcome: Outcome,
        verdict_uids: Mapping[str, str],
    ) -> None:
        who = Involved("TenantPolicy", entry.name, entry.uid)
        before, after = _held(previous), outcome.level
        reason = outcome.decision.reason if outcome.decision else ""
        if after != before:
            kind = ev.LEVEL_RAISED if after > before else ev.LEVEL_LIFTED
            self.events.emit(who, kind, f"{before.api_name} → {after.api_name}: {reason}")
        if previous.get("targetLevel", "None") != outcome.target.api_name:
            self.events.emit(who, ev.TARGET_CHANGED, f"target level {outcome.target.api_name}: {reason}")
        if outcome.problem and previous.get("reason") != outcome.problem.message:
            self.events.emit(
                who, ev.STALLED, f"{outcome.problem.reason}: {outcome.problem.message}", warning=True
            )
        if outcome.failures:
            self.events.emit(who, ev.ACTIONS_FAILED, "; ".join(outcome.failures), warning=True)
        if outcome.dry_run and outcome.planned:
            self.events.emit(
                who, ev.DRY_RUN_PLAN, "would: " + "; ".join(a.describe() for a in outcome.planned)
            )
        if after != before and outcome.decision:
            for name in outcome.decision.active_verdicts:
                if name in verdict_uids:
                    self.events.emit(
                        Involved("ModerationVerdict", name, verdict_uids[name]),
                        ev.TENANT_LEVEL,
                        f"tenant held at {after.api_name}",
                    )

    def _record_verdicts(
        self, verdicts: list[VerdictEntry], decision: Decision | None, tenant: str, known_tenant: bool = True
    ) -> None:
        for entry in verdicts:
            status = _verdict_status(entry, decision if known_tenant else None, tenant)
            if status is None:
                continue
            previous = self._written.get(entry.uid, entry.status)
            patch = changed(previous, status)
            if not patch:
                continue
            self.writer.patch(VERDICTS, entry.name, patch)
            self._written[entry.uid] = status
            self.events.emit(
                Involved("ModerationVerdict", entry.name, entry.uid),
                ev.VERDICT_STATE,
                f"{previous.get('state', 'New')} → {status['state']}: {status['message']}",
                warning=status["state"] == VerdictState.UNKNOWN_TENANT.value,
            )

    def forget(self, uid: str) -> None:
        self._written.pop(uid, None)


def _partial_level(held: Level, inventory: list[Observed]) -> Level:
    """After a failure, claim no more than what every object already had before it."""
    return min((o.applied for o in inventory), default=held)


def _verdict_status(entry: VerdictEntry, decision: Decision | None, tenant: str) -> dict[str, Any] | None:
    if entry.verdict is None:
        return {"state": None, "reason": "InvalidSpec", "message": entry.error or "spec could not be read"}
    if decision is None:
        return {
            "state": VerdictState.UNKNOWN_TENANT.value,
            "reason": "UnknownTenant",
            "message": f"no TenantPolicy names tenant {tenant}; this verdict has no effect",
        }
    evaluation = decision.verdicts.get(entry.name)
    if evaluation is None:
        return None
    if evaluation.state is VerdictState.ACTIVE and evaluation.level > Level.NONE:
        message = f"calls for {evaluation.level.api_name} by rule {evaluation.rule}"
    elif evaluation.state is VerdictState.ACTIVE:
        message = "matches no rule of the ladder" if entry.verdict.outcome.value == "violation" else "clears"
    else:
        message = evaluation.state.value.lower()
    return {"state": evaluation.state.value, "reason": evaluation.state.value, "message": message}
