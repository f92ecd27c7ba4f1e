"""One tenant's reconcile: observe → decide → act → record.  Level-triggered and idempotent.

Everything is read from the in-memory view (plus the tenant's objects, through the
targets), decided by the pure core, applied by the actuator, and recorded as status,
Events and verdict states.  Running it twice in a row writes nothing the second time.
"""

from __future__ import annotations

import logging
import threading
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from tenant_enforcer.controller.act import Actuator
from tenant_enforcer.controller.breaker import Breaker
from tenant_enforcer.controller.store import ClusterView, PolicyEntry, Snapshot
from tenant_enforcer.core.breaker import Raise, fallback, is_raise
from tenant_enforcer.core.ladder import Decision, evaluate, is_approved
from tenant_enforcer.core.notice import NoticeContext
from tenant_enforcer.core.plan import plan
from tenant_enforcer.core.scope import precedence, resolve_scope
from tenant_enforcer.model.ladder import Mode
from tenant_enforcer.model.levels import Level
from tenant_enforcer.model.verdict import VerdictState
from tenant_enforcer.record import conditions as c
from tenant_enforcer.record.notices import NoticeSubject
from tenant_enforcer.record.recorder import Recorder, Subject, held_level
from tenant_enforcer.record.status import Outcome, Problem
from tenant_enforcer.targets.base import TenantScope
from tenant_enforcer.targets.errors import ErrorClass, TargetError

log = logging.getLogger(__name__)

# An enforced tenant is looked at again this often even without events: it catches new
# objects created in its namespaces (they carry no marker for the focused watch to see).
RESYNC = timedelta(minutes=5)


@dataclass(frozen=True)
class ReconcileResult:
    next_due: datetime | None = None
    retry: bool = False  # a transient failure: try again with backoff
    outcomes: Mapping[str, Outcome] | None = None  # by policy name


def _entry_precedence(entry: PolicyEntry) -> tuple[Any, ...]:
    return precedence(entry.policy) if entry.policy else (datetime.max.isoformat(), entry.name)


def _subject(entry: Any) -> Subject:
    return Subject(entry.name, entry.uid, entry.status)


class Reconciler:
    def __init__(
        self,
        view: ClusterView,
        actuator: Actuator,
        recorder: Recorder,
        operator_namespace: str,
        dry_run: bool = False,
        breaker: Breaker | None = None,
    ) -> None:
        self.view = view
        self.actuator = actuator
        self.recorder = recorder
        self.traits = {kind: target.traits() for kind, target in actuator.targets.items()}
        self.highest = max((t.acts_from for t in self.traits.values()), default=Level.NONE)
        self.operator_namespace = operator_namespace
        self.dry_run = dry_run
        self.breaker = breaker
        self._guard = threading.Lock()
        self._locks: dict[str, threading.Lock] = defaultdict(threading.Lock)

    def _lock(self, tenant: str) -> threading.Lock:
        with self._guard:
            return self._locks[tenant]

    def reconcile(self, tenant: str, now: datetime) -> ReconcileResult:
        with self._lock(tenant):
            snap = self.view.snapshot(tenant)
            if not snap.policies:
                for v in snap.verdicts:
                    self.recorder.verdict(_subject(v), v.verdict, v.error, None, tenant, tenant_known=False)
                return ReconcileResult()
            winner, *losers = sorted(snap.policies, key=_entry_precedence)
            outcomes = {}
            verdict_uids = {v.name: v.uid for v in snap.verdicts}
            for loser in losers:
                outcomes[loser.name] = Outcome(
                    level=held_level(self.recorder.previous(_subject(loser))),
                    problem=Problem(
                        "DuplicateTenant", f"tenant {tenant} already has TenantPolicy {winner.name}"
                    ),
                )
                self.recorder.policy(
                    _subject(loser), outcomes[loser.name], _generation(loser), now, verdict_uids
                )
            outcome, retry = self._reconcile_policy(winner, snap, now)
            outcomes[winner.name] = outcome
            notice_due = self.recorder.policy(
                _subject(winner), outcome, _generation(winner), now, verdict_uids,
                tenant=tenant, approvals=[a.approval for a in snap.approvals if a.approval],
                notice=_notice_subject(winner, snap),
            )  # fmt: skip
            if outcome.decision:
                for v in snap.verdicts:
                    self.recorder.verdict(_subject(v), v.verdict, v.error, outcome.decision, tenant, True)
            next_due = outcome.decision.next_due if outcome.decision else None
            if outcome.level > Level.NONE:
                next_due = min(filter(None, (next_due, now + RESYNC, *outcome.object_due)))
            next_due = min(filter(None, (next_due, notice_due)), default=None)  # a notice to retry
            return ReconcileResult(next_due, retry, outcomes)

    def _reconcile_policy(self, entry: PolicyEntry, snap: Snapshot, now: datetime) -> tuple[Outcome, bool]:
        held = held_level(self.recorder.previous(_subject(entry)))
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
            e.name: frozenset(self.recorder.previous(_subject(e)).get("namespaces") or ())
            for entries in snap.claimants.values()
            for e in entries
        }
        scope = resolve_scope(policy, snap.namespaces, claimants, self.operator_namespace, holders)
        if scope.problem_reason:
            return Outcome(held, problem=Problem(scope.problem_reason, scope.problem or "")), False

        decision = evaluate(
            ladder,
            [v.verdict for v in snap.verdicts if v.verdict],
            now,
            policy.hold,
            [a.approval for a in snap.approvals if a.approval],
        )
        if entry.deleting:
            decision = replace(
                decision, target=Level.NONE, reason="the TenantPolicy is being deleted: lifting"
            )
        effective = min(decision.target, self.highest)
        problem = None
        if decision.target > self.highest:
            problem = Problem(
                "LevelNotImplemented",
                f"{decision.target.api_name} is called for; this version implements levels up to "
                f"{self.highest.api_name}, so {effective.api_name} is applied",
            )

        try:  # observe the tenant's objects; never act on a partial view
            saved = self.actuator.prior.load(policy.tenant)
            tenant_scope = TenantScope(
                policy.tenant, {ns: snap.namespaces[ns] for ns in scope.namespaces}, ladder, saved, policy.aws
            )
            inventory = [obs for t in self.actuator.targets.values() for obs in t.discover(tenant_scope)]
        except TargetError as exc:
            if exc.error_class is ErrorClass.FATAL:
                return Outcome(
                    held, decision, scope.namespaces, problem=Problem("ObserveFailed", str(exc))
                ), False
            return Outcome(held, decision, scope.namespaces, failures=(str(exc),)), True

        dry_run = self.dry_run or ladder.mode is Mode.DRY_RUN
        effective, decision, throttled, taken = self._breaker(
            policy.tenant, held, effective, decision, snap, now, dry_run
        )
        actions = plan(effective, inventory, self.traits)
        if dry_run:
            observed = max((o.applied for o in inventory), default=Level.NONE)
            return Outcome(
                observed,
                decision,
                scope.namespaces,
                tuple(actions),
                problem=problem,
                dry_run=True,
                extra_conditions=throttled,
            ), False

        result = self.actuator.run(actions, inventory, tenant_scope)
        if taken is not None and result.failed and self.breaker is not None:
            self.breaker.release(taken)  # the raise did not happen: its slot is free again
        if result.fatal:
            problem = Problem("ActionFailed", "; ".join(result.fatal))
        elif result.reverted:
            problem = Problem(
                "ExternallyReverted",
                "kept being changed back by someone else, so re-asserting "
                "stopped for now: " + ", ".join(result.reverted),
            )
        level = held if result.failed else effective
        evidence = tuple(sorted({o.evidence for o in inventory if o.evidence}))
        due = tuple(o.due for o in inventory if o.due and o.due > now)
        return Outcome(
            level,
            decision,
            scope.namespaces,
            tuple(actions),
            tuple(result.transient),
            problem,
            conflicts=tuple(result.conflicts),
            evidence=evidence,
            object_due=due,
            applied=tuple(result.done),
            extra_conditions=throttled,
        ), bool(result.transient)

    def _breaker(
        self,
        tenant: str,
        held: Level,
        effective: Level,
        decision: Decision,
        snap: Snapshot,
        now: datetime,
        dry_run: bool,
    ) -> tuple[Level, Decision, tuple[c.Condition, ...], Raise | None]:
        """Consult the global breaker before a raise to a disruptive level is acted on.

        Refused: the tenant keeps its level (or gets Notice, never limited), says why in a
        Throttled condition, and is due again when the next slot frees.  An approval of this
        level for the tenant's verdicts (as the ladder's approval gates read it) lets the raise
        pass.  Dry-run rehearses on the breaker's dry-run ledger: a plan takes no real slot.
        """
        if self.breaker is None or not (dry_run or is_raise(held, effective)):
            return effective, decision, (), None
        calling = [
            v.verdict
            for v in snap.verdicts
            if v.verdict
            and (e := decision.verdicts.get(v.name)) is not None
            and e.state is VerdictState.ACTIVE
            and e.level >= effective
        ]
        approvals = [a.approval for a in snap.approvals if a.approval]
        approved = bool(calling) and is_approved(effective, calling, approvals)
        if dry_run:  # what a real run would do, taking no real slot
            (gate, would), taken = self.breaker.rehearse(tenant, held, effective, now, approved), None
        else:
            gate, taken = self.breaker.admit(tenant, held, effective, now, approved)
            would = effective if gate.allowed else fallback(held, effective)
        if gate.allowed:
            return effective, decision, (), taken
        due = min(t for t in (decision.next_due, gate.next_slot) if t is not None)
        decision = replace(decision, reason=f"{decision.reason}; breaker open: {gate.message}", next_due=due)
        condition = c.Condition(c.THROTTLED, True, "BreakerOpen", gate.message)
        return would, decision, (condition,), None


def _notice_subject(entry: PolicyEntry, snap: Snapshot) -> NoticeSubject | None:
    """Who to tell about this tenant, and the verdicts a notice names (record/notices.py)."""
    if entry.policy is None:
        return None
    verdicts = {v.name: v.verdict for v in snap.verdicts if v.verdict}
    ladder = snap.ladders.get(entry.policy.ladder)
    context = NoticeContext(
        entry.policy.tenant,
        entry.name,
        entry.uid,
        verdicts,
        ladder=ladder.ladder if ladder else None,
        hold=entry.policy.hold,
        approvals=tuple(a.approval for a in snap.approvals if a.approval),
    )
    return NoticeSubject(context, entry.policy.contacts, entry.policy.aws)


def _generation(entry: PolicyEntry) -> int:
    return entry.policy.generation if entry.policy else 0
