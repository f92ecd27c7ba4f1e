"""kstatus conditions, built purely: lastTransitionTime only moves when the status flips."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from tenant_enforcer.model.duration import format_time

READY = "Ready"
RECONCILING = "Reconciling"
STALLED = "Stalled"
ENFORCED = "Enforced"
AWAITING_APPROVAL = "AwaitingApproval"
# The global breaker holds a disruptive raise back (listed only while it does).
THROTTLED = "Throttled"
DRY_RUN = "DryRun"

# kstatus reads abnormal-true conditions: Reconciling and Stalled are listed only while True.
_ABNORMAL_TRUE = frozenset({RECONCILING, STALLED})


@dataclass(frozen=True)
class Condition:
    type: str
    status: bool
    reason: str
    message: str = ""


def set_conditions(
    existing: Iterable[Mapping[str, Any]], wanted: Iterable[Condition], generation: int, now: datetime
) -> list[dict[str, Any]]:
    """Merge `wanted` into `existing`, keeping each type's lastTransitionTime unless it flipped.

    Conditions not in `wanted` are dropped, so stale ones never linger; abnormal-true
    types (Reconciling, Stalled) that are False are dropped too, as kstatus expects.
    """
    previous = {c.get("type"): c for c in existing}
    merged: list[dict[str, Any]] = []
    for cond in wanted:
        status = "True" if cond.status else "False"
        if cond.type in _ABNORMAL_TRUE and not cond.status:
            continue
        old = previous.get(cond.type)
        transition = (
            old["lastTransitionTime"]
            if old and old.get("status") == status and old.get("lastTransitionTime")
            else format_time(now)
        )
        merged.append(
            {
                "type": cond.type,
                "status": status,
                "reason": cond.reason,
                "message": cond.message[:32768],
                "lastTransitionTime": transition,
                "observedGeneration": generation,
            }
        )
    return sorted(merged, key=lambda c: str(c["type"]))
