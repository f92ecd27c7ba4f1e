"""Build a TenantPolicy's status from what one reconcile found and did. Pure.

Status holds only what observation can rebuild (plus bounded history); prior state never
lives here.  observedGeneration is claimed only when the reconcile did not fail.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from tenant_enforcer.core.ladder import Decision
from tenant_enforcer.core.plan import Action
from tenant_enforcer.model.duration import format_time
from tenant_enforcer.model.ladder import Ladder
from tenant_enforcer.model.levels import Level
from tenant_enforcer.record import conditions as c

HISTORY_LIMIT = 20


@dataclass(frozen=True)
class Problem:
    """Why a tenant cannot be brought to its target: shown as Stalled with this reason."""

    reason: str
    message: str


@dataclass(frozen=True)
class Outcome:
    """Everything one reconcile of one policy observed, decided and did."""

    level: Level  # held after this reconcile
    decision: Decision | None = None
    namespaces: tuple[str, ...] = ()
    planned: tuple[Action, ...] = ()
    failures: tuple[str, ...] = ()  # actions that failed and will be retried
    problem: Problem | None = None
    dry_run: bool = False
    conflicts: tuple[str, ...] = ()  # restores left undone because someone changed the object
    evidence: tuple[str, ...] = ()  # evidence snapshots taken for this tenant (where they are)
    object_due: tuple[datetime, ...] = ()  # targets' own due times (retention ends), for the scheduler
    extra_conditions: tuple[c.Condition, ...] = field(default_factory=tuple)
    applied: tuple[Action, ...] = ()  # of the planned actions, those done (for the audit log)

    @property
    def target(self) -> Level:
        return self.decision.target if self.decision else self.level


def _ready(outcome: Outcome) -> c.Condition:
    if outcome.problem:
        return c.Condition(c.READY, False, outcome.problem.reason, outcome.problem.message)
    if outcome.failures:
        return c.Condition(c.READY, False, "ActionsFailed", "; ".join(outcome.failures))
    if outcome.dry_run and outcome.planned:
        return c.Condition(c.READY, True, "DryRun", "dry-run: the plan is recorded, nothing is changed")
    if outcome.level == Level.NONE:
        return c.Condition(c.READY, True, "NotEnforced", "no active verdict calls for a level")
    return c.Condition(c.READY, True, "Enforced", f"{outcome.level.api_name} is applied")


def _awaiting_message(decision: Decision, awaiting: Level) -> str:
    """What a person must do: name the level and every verdict an approval has to cover."""
    calling = sorted(n for n, e in decision.verdicts.items() if e.level >= awaiting)
    return (
        f"{awaiting.api_name} waits for an approval: an EnforcementApproval with level "
        f"{awaiting.api_name} (or higher) listing verdicts {', '.join(calling)}, created by "
        "someone who issued none of them"
    )


def build_conditions(outcome: Outcome) -> list[c.Condition]:
    decision = outcome.decision
    awaiting = decision.awaiting_approval if decision else None
    plan = "; ".join(a.describe() for a in outcome.planned)
    return [
        _ready(outcome),
        c.Condition(
            c.STALLED,
            outcome.problem is not None,
            outcome.problem.reason if outcome.problem else "",
            outcome.problem.message if outcome.problem else "",
        ),
        c.Condition(c.RECONCILING, bool(outcome.failures), "Retrying", "; ".join(outcome.failures)),
        c.Condition(
            c.ENFORCED,
            outcome.level > Level.NONE,
            outcome.level.api_name if outcome.level > Level.NONE else "NotEnforced",
            f"tenant held at {outcome.level.api_name}",
        ),
        c.Condition(
            c.AWAITING_APPROVAL,
            awaiting is not None,
            "ApprovalRequired" if awaiting is not None else "NotRequired",
            _awaiting_message(decision, awaiting) if decision and awaiting is not None else "",
        ),
        c.Condition(
            c.DRY_RUN,
            outcome.dry_run,
            "DryRun" if outcome.dry_run else "Enforce",
            (f"would: {plan}" if plan else "nothing to change") if outcome.dry_run else "",
        ),
        *outcome.extra_conditions,
    ]


def policy_status(
    previous: Mapping[str, Any], outcome: Outcome, generation: int, now: datetime
) -> dict[str, Any]:
    prev_level = previous.get("level", Level.NONE.api_name)
    level = outcome.level.api_name
    decision = outcome.decision
    history = list(previous.get("history") or [])
    since = previous.get("since")
    if level != prev_level:
        since = format_time(now)
        history.append(
            {
                "time": since,
                "from": prev_level,
                "to": level,
                "reason": decision.reason
                if decision
                else (outcome.problem.message if outcome.problem else ""),
            }
        )
    status: dict[str, Any] = {
        "level": level,
        "targetLevel": outcome.target.api_name,
        "reason": outcome.problem.message if outcome.problem else (decision.reason if decision else ""),
        "since": since,
        "nextDueAt": format_time(decision.next_due) if decision and decision.next_due else None,
        "activeVerdicts": list(decision.active_verdicts) if decision else [],
        "awaitingApproval": decision.awaiting_approval.api_name
        if decision and decision.awaiting_approval
        else None,
        "namespaces": list(outcome.namespaces),
        "snapshots": list(outcome.evidence) or None,
        "history": history[-HISTORY_LIMIT:],
        "conditions": c.set_conditions(
            previous.get("conditions") or [], build_conditions(outcome), generation, now
        ),
        "observedGeneration": generation if not outcome.failures else previous.get("observedGeneration"),
    }
    return status


def changed(previous: Mapping[str, Any], status: Mapping[str, Any]) -> dict[str, Any]:
    """The merge patch that turns `previous` into `status` (None deletes a field); {} if equal."""
    return {k: v for k, v in status.items() if previous.get(k) != v}


def summarize(actions: Sequence[Action]) -> str:
    return "; ".join(a.describe() for a in actions) or "nothing to change"


def ladder_status(
    previous: Mapping[str, Any], ladder: Ladder | None, error: str | None, generation: int, now: datetime
) -> dict[str, Any]:
    """A ladder's status: which levels it can reach (a printer column) and whether it parsed."""
    ready = (
        c.Condition(c.READY, True, "Valid", "ladder accepted")
        if ladder
        else c.Condition(c.READY, False, "InvalidSpec", error or "spec could not be read")
    )
    levels = ",".join(lvl.api_name for lvl in sorted(ladder.levels)) if ladder else ""
    return {
        "observedGeneration": generation,
        "levels": levels,
        "conditions": c.set_conditions(
            previous.get("conditions") or [],
            [ready, c.Condition(c.STALLED, ladder is None, "InvalidSpec", error or "")],
            generation,
            now,
        ),
    }
