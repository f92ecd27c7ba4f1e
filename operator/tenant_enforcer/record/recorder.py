"""Record: a reconcile's outcome as status patches and Events, writing only what changed.

The last status we wrote is remembered by uid: the watch may lag behind our own writes,
and reading a stale status back would repeat a patch and its Events.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from tenant_enforcer.core.ladder import Decision
from tenant_enforcer.model.levels import Level
from tenant_enforcer.model.policy import Approval
from tenant_enforcer.model.verdict import Outcome as VerdictOutcome
from tenant_enforcer.model.verdict import Verdict, VerdictState
from tenant_enforcer.record import conditions as c
from tenant_enforcer.record import events as ev
from tenant_enforcer.record.audit import AuditLog, audit_payload
from tenant_enforcer.record.events import EventRecorder, Involved
from tenant_enforcer.record.notices import NoticeStep, NoticeSubject, Notifier
from tenant_enforcer.record.status import Outcome, changed, policy_status
from tenant_enforcer.record.writer import POLICIES, VERDICTS, StatusWriter


@dataclass(frozen=True)
class Subject:
    """An object we record about: enough to patch it and to post Events on it."""

    name: str
    uid: str
    status: Mapping[str, Any]


def held_level(status: Mapping[str, Any]) -> Level:
    try:
        return Level.parse(status.get("level") or "None")
    except ValueError:
        return Level.NONE


class Recorder:
    def __init__(self, writer: StatusWriter, events: EventRecorder, notifier: Notifier | None = None) -> None:
        self.writer = writer
        self.events = events
        self.notifier = notifier
        self._written: dict[str, Mapping[str, Any]] = {}
        self.audit: AuditLog | None = None  # set by the runner: the tamper-evident decision log

    def previous(self, subject: Subject) -> Mapping[str, Any]:
        return self._written.get(subject.uid, subject.status)

    def forget(self, uid: str) -> None:
        self._written.pop(uid, None)

    def policy(
        self,
        subject: Subject,
        outcome: Outcome,
        generation: int,
        now: datetime,
        verdict_uids: Mapping[str, str],
        notice: NoticeSubject | None = None,
        tenant: str | None = None,  # given for the policy that holds the tenant: its audit records
        approvals: Sequence[Approval] = (),
    ) -> datetime | None:
        """Returns when a failed notice is to be retried, if one is."""
        previous = self.previous(subject)
        if self.audit and tenant is not None:  # first: what was done stays on record if a patch fails
            entry = audit_payload(tenant, subject.name, previous, outcome, approvals, self.audit)
            if entry:
                self.audit.append(entry)
        status = policy_status(previous, outcome, generation, now)
        step = NoticeStep({k: previous.get(k) for k in ("lastNotice", "pendingNotice")})
        if notice and self.notifier:
            step = self.notifier.step(
                previous, notice, outcome.level, outcome.target, outcome.decision, outcome.dry_run, now
            )
        status.update(step.fields)
        patch = changed(previous, status)
        if patch:
            self.writer.patch(POLICIES, subject.name, patch)
            self._written[subject.uid] = status
            self._policy_events(subject, previous, outcome, verdict_uids)
        for reason, message, warning in step.events:
            self.events.emit(Involved("TenantPolicy", subject.name, subject.uid), reason, message, warning)
        # Only seen at the moment of a restore: one Event each, always.
        for note in outcome.conflicts:
            self.events.emit(
                Involved("TenantPolicy", subject.name, subject.uid), ev.NOT_RESTORED, note, warning=True
            )
        return step.due

    def _policy_events(
        self, subject: Subject, previous: Mapping[str, Any], outcome: Outcome, verdict_uids: Mapping[str, str]
    ) -> None:
        who = Involved("TenantPolicy", subject.name, subject.uid)
        before, after = held_level(previous), outcome.level
        reason = outcome.decision.reason if outcome.decision else ""
        if after != before:
            kind = ev.LEVEL_RAISED if after > before else ev.LEVEL_LIFTED
            self.events.emit(who, kind, f"{before.api_name} → {after.api_name}: {reason}")
            for name in outcome.decision.active_verdicts if outcome.decision else ():
                if name in verdict_uids:
                    self.events.emit(
                        Involved("ModerationVerdict", name, verdict_uids[name]),
                        ev.TENANT_LEVEL,
                        f"tenant held at {after.api_name}",
                    )
        if previous.get("targetLevel", "None") != outcome.target.api_name:
            self.events.emit(who, ev.TARGET_CHANGED, f"target level {outcome.target.api_name}: {reason}")
        if outcome.problem and previous.get("reason") != outcome.problem.message:
            self.events.emit(
                who, ev.STALLED, f"{outcome.problem.reason}: {outcome.problem.message}", warning=True
            )
        throttled = next((x for x in outcome.extra_conditions if x.type == c.THROTTLED and x.status), None)
        before_conditions = previous.get("conditions") or ()
        if throttled and not any(
            x.get("type") == c.THROTTLED and x.get("status") == "True" for x in before_conditions
        ):
            self.events.emit(who, ev.BREAKER_OPEN, throttled.message, warning=True)
        if outcome.failures:
            self.events.emit(who, ev.ACTIONS_FAILED, "; ".join(outcome.failures), warning=True)
        if outcome.dry_run and outcome.planned:
            self.events.emit(
                who, ev.DRY_RUN_PLAN, "would: " + "; ".join(a.describe() for a in outcome.planned)
            )

    def verdict(
        self,
        subject: Subject,
        verdict: Verdict | None,
        error: str | None,
        decision: Decision | None,
        tenant: str,
        tenant_known: bool,
    ) -> None:
        status = verdict_status(verdict, error, subject.name, decision, tenant, tenant_known)
        if status is None:
            return
        previous = self.previous(subject)
        if not changed(previous, status):
            return
        self.writer.patch(VERDICTS, subject.name, changed(previous, status))
        self._written[subject.uid] = status
        self.events.emit(
            Involved("ModerationVerdict", subject.name, subject.uid),
            ev.VERDICT_STATE,
            f"{previous.get('state', 'New')} → {status['state']}: {status['message']}",
            warning=status["state"] == VerdictState.UNKNOWN_TENANT.value,
        )


def verdict_status(
    verdict: Verdict | None,
    error: str | None,
    name: str,
    decision: Decision | None,
    tenant: str,
    tenant_known: bool,
) -> dict[str, Any] | None:
    """A verdict's status, or None when it cannot be decided now (the tenant's ladder is missing)."""
    if verdict is None:
        return {"state": None, "reason": "InvalidSpec", "message": error or "spec could not be read"}
    if not tenant_known:
        return {
            "state": VerdictState.UNKNOWN_TENANT.value,
            "reason": "UnknownTenant",
            "message": f"no TenantPolicy names tenant {tenant}; this verdict has no effect",
        }
    evaluation = decision.verdicts.get(name) if decision else None
    if evaluation is None:
        return None
    if evaluation.state is VerdictState.ACTIVE and evaluation.level > Level.NONE:
        message = f"calls for {evaluation.level.api_name} by rule {evaluation.rule}"
    elif evaluation.state is VerdictState.ACTIVE:
        message = "clears" if verdict.outcome is VerdictOutcome.CLEARED else "matches no rule of the ladder"
    else:
        message = evaluation.state.value.lower()
    return {"state": evaluation.state.value, "reason": evaluation.state.value, "message": message}
