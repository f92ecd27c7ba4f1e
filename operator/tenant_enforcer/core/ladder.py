"""Ladder evaluation: the level a tenant's verdicts call for at `now`, and when that can change.

Pure: no I/O and no clock. The caller passes `now`, so the same inputs always give the same
Decision, and the controller schedules its next reconcile at `Decision.next_due`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from types import MappingProxyType

from tenant_enforcer.model.duration import format_time
from tenant_enforcer.model.ladder import Ladder, Rule
from tenant_enforcer.model.levels import Level
from tenant_enforcer.model.policy import Approval, Hold
from tenant_enforcer.model.verdict import Outcome, Verdict, VerdictState


@dataclass(frozen=True)
class VerdictEvaluation:
    """One verdict's effect at `now`."""

    name: str
    state: VerdictState  # never UNKNOWN_TENANT: only the controller knows which tenants exist
    level: Level  # NONE unless an ACTIVE violation matched by a rule
    rule: str | None  # the matching rule (ACTIVE violations only)
    next_change: datetime | None  # next instant (> now) this verdict's level or state changes


@dataclass(frozen=True)
class Decision:
    """What should be applied to a tenant at `now`, and why."""

    target: Level  # after notice periods, escalations, holds and approvals
    called_for: Level  # highest level the active verdicts call for, before hold and approval caps
    reason: str  # one sentence for status, Events and the audit log
    active_verdicts: tuple[str, ...]  # ACTIVE violations calling for a level > NONE, sorted
    verdicts: Mapping[str, VerdictEvaluation]  # every input verdict, by name
    next_due: datetime | None  # earliest instant (> now) at which this Decision can change
    awaiting_approval: Level | None  # the level blocked for lack of an approval
    held: bool  # an active hold capped the target


@dataclass(frozen=True)
class Step:
    """From `at` on (until the next step), a verdict calls for `level`."""

    at: datetime
    level: Level
    cause: str  # "notice", "rule" or "escalation": only used to explain a decision


def match_rule(ladder: Ladder, verdict: Verdict) -> Rule | None:
    """The matching rule with the highest level; on a tie the first in ladder order."""
    matching = [
        r
        for r in ladder.rules
        if (not r.categories or verdict.category in r.categories)
        and verdict.severity >= r.min_severity
        and verdict.confidence >= r.min_confidence
    ]
    # max() keeps the first of equal keys, which is the ladder-order tie-break.
    return max(matching, key=lambda r: r.level) if matching else None


def timeline(ladder: Ladder, rule: Rule, issued_at: datetime) -> tuple[Step, ...]:
    """The levels a verdict matched to `rule` calls for over time, ignoring its expiry."""
    notice = rule.notice_period if rule.notice_period is not None else ladder.notice_period
    steps: list[Step] = []
    at = issued_at
    if rule.level.disruptive and notice > timedelta(0):
        # Due process: the tenant is told before anything disruptive happens.
        steps.append(Step(at, Level.NOTICE, "notice"))
        at += notice
    level = rule.level
    steps.append(Step(at, level, "rule"))
    # A verdict calling for nothing has nothing to escalate. Only upward escalations are
    # followed, so the chain cannot loop; the bound is a second guard.
    for _ in ladder.escalations:
        if level is Level.NONE:
            break
        escalation = next((e for e in ladder.escalations if e.from_level == level and e.to > level), None)
        if escalation is None:
            break
        at += escalation.after
        level = escalation.to
        steps.append(Step(at, level, "escalation"))
    return tuple(steps)


def _step_at(steps: Sequence[Step], now: datetime) -> tuple[int, datetime | None]:
    """Index of the step in force at `now` (steps[0].at <= now), and the next step's instant."""
    index = max(i for i, s in enumerate(steps) if s.at <= now)
    later = [s.at for s in steps if s.at > now]
    return index, min(later, default=None)


def _superseded_at(verdict: Verdict, others: Iterable[Verdict]) -> datetime | None:
    """When `verdict` is (or will be) superseded: the earliest issuance of a verdict overturning it."""
    instants = [
        other.issued_at
        for other in others
        if other.name != verdict.name
        and (
            verdict.name in other.supersedes
            # A bare clearing overturns earlier violations of its category.
            or (
                other.outcome is Outcome.CLEARED
                and not other.supersedes
                and verdict.outcome is Outcome.VIOLATION
                and other.category == verdict.category
                and other.issued_at > verdict.issued_at
            )
        )
    ]
    return min(instants, default=None)


def _earliest_after(now: datetime, *instants: datetime | None) -> datetime | None:
    return min((t for t in instants if t is not None and t > now), default=None)


def evaluate_verdict(
    ladder: Ladder, verdict: Verdict, others: Iterable[Verdict], now: datetime
) -> tuple[VerdictEvaluation, tuple[Step, ...]]:
    """One verdict's state and level at `now`, with its timeline (empty unless it calls for a level)."""
    superseded = _superseded_at(verdict, others)
    expires = verdict.expires_at
    if superseded is not None and superseded <= now:
        # Final: a verdict once overturned stays overturned.
        return VerdictEvaluation(verdict.name, VerdictState.SUPERSEDED, Level.NONE, None, None), ()
    if expires is not None and expires <= now:
        # Supersession outranks expiry, so a verdict overturning it later still changes its state.
        due = _earliest_after(now, superseded)
        return VerdictEvaluation(verdict.name, VerdictState.EXPIRED, Level.NONE, None, due), ()
    if verdict.issued_at > now:
        due = _earliest_after(now, verdict.issued_at, expires, superseded)
        return VerdictEvaluation(verdict.name, VerdictState.PENDING, Level.NONE, None, due), ()
    rule = match_rule(ladder, verdict) if verdict.outcome is Outcome.VIOLATION else None
    if rule is None:
        due = _earliest_after(now, expires, superseded)
        return VerdictEvaluation(verdict.name, VerdictState.ACTIVE, Level.NONE, None, due), ()
    steps = timeline(ladder, rule, verdict.issued_at)
    index, next_step = _step_at(steps, now)
    due = _earliest_after(now, next_step, expires, superseded)
    evaluation = VerdictEvaluation(verdict.name, VerdictState.ACTIVE, steps[index].level, rule.name, due)
    return evaluation, steps


def needs_approval(ladder: Ladder, level: Level) -> bool:
    """None and Notice never wait for a person: they change nothing the tenant runs."""
    return level.disruptive and level in ladder.approval_required


def is_approved(level: Level, calling: Sequence[Verdict], approvals: Iterable[Approval]) -> bool:
    """Some approval covers `level` and every verdict calling for it, by someone who issued none."""
    if not calling:
        return True
    names = {v.name for v in calling}
    issuers = {v.issuer for v in calling}
    tenants = {v.tenant for v in calling}
    return any(
        a.level >= level and names <= a.verdicts and a.approver not in issuers and tenants == {a.tenant}
        for a in approvals
    )


def evaluate(
    ladder: Ladder,
    verdicts: Iterable[Verdict],
    now: datetime,
    hold: Hold | None = None,
    approvals: Iterable[Approval] = (),
) -> Decision:
    """The target level of one tenant at `now`, given all its verdicts (in any order)."""
    by_name: dict[str, Verdict] = {}
    for verdict in verdicts:
        if verdict.name in by_name:
            raise ValueError(f"verdict {verdict.name!r} given twice")
        by_name[verdict.name] = verdict
    all_verdicts = [by_name[n] for n in sorted(by_name)]
    approvals = tuple(approvals)

    evaluations: dict[str, VerdictEvaluation] = {}
    timelines: dict[str, tuple[Step, ...]] = {}
    for verdict in all_verdicts:
        evaluation, steps = evaluate_verdict(ladder, verdict, all_verdicts, now)
        evaluations[verdict.name], timelines[verdict.name] = evaluation, steps

    calling = [e for e in evaluations.values() if e.state is VerdictState.ACTIVE and e.level > Level.NONE]
    called_for = max((e.level for e in calling), default=Level.NONE)
    target = called_for
    due = [e.next_change for e in evaluations.values()]

    held = False
    if hold is not None and now < hold.until:
        due.append(hold.until)
        if target > hold.max_level:
            target, held = hold.max_level, True

    # Walk down from the target until a level is approved or needs no approval; Notice never
    # does, so the walk ends there at the latest.
    awaiting: Level | None = None
    while needs_approval(ladder, target):
        needing = [by_name[e.name] for e in calling if e.level >= target]
        if is_approved(target, needing, approvals):
            break
        awaiting = awaiting or target
        target = Level(target - 1)

    return Decision(
        target=target,
        called_for=called_for,
        reason=_reason(by_name, calling, timelines, now, hold if held else None, awaiting, target),
        active_verdicts=tuple(e.name for e in calling),  # already sorted by name
        verdicts=MappingProxyType(evaluations),
        next_due=min((t for t in due if t is not None and t > now), default=None),
        awaiting_approval=awaiting,
        held=held,
    )


def _reason(
    by_name: Mapping[str, Verdict],
    calling: Sequence[VerdictEvaluation],
    timelines: Mapping[str, tuple[Step, ...]],
    now: datetime,
    hold: Hold | None,
    awaiting: Level | None,
    target: Level,
) -> str:
    """One sentence naming the verdict and rule behind the decision, then any cap on it."""
    if not calling:
        return "no active verdicts"
    # The verdict calling for the highest level; ties broken by name, so order does not matter.
    top = min(calling, key=lambda e: (-e.level, e.name))
    verdict = by_name[top.name]
    steps = timelines[top.name]
    index, _ = _step_at(steps, now)
    text = (
        f"verdict {verdict.name} ({verdict.category}/{verdict.severity.api_name}) calls for "
        f"{top.level.api_name} by rule '{top.rule}'"
    )
    step = steps[index]
    if step.cause == "notice":
        then = steps[index + 1]
        text += f" until its notice period ends ({then.level.api_name} at {format_time(then.at)})"
    elif step.cause == "escalation":
        text += f" after escalation from {steps[index - 1].level.api_name}"
    if len(calling) > 1:
        others = len(calling) - 1
        text += f", plus {others} other active verdict{'s' if others > 1 else ''}"
    if hold is not None:
        text += f"; held at {hold.max_level.api_name} until {format_time(hold.until)}"
        text += f" ({hold.reason})" if hold.reason else ""
    if awaiting is not None:
        text += f"; {awaiting.api_name} awaits approval, so {target.api_name} applies"
    return text
