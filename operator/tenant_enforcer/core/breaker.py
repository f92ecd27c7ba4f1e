"""The global breaker: at most `limit` disruptive raises per sliding `window`, cluster-wide. Pure.

A bug upstream (a moderation pipeline filing thousands of verdicts) must not scale down the
whole platform at once.  Given the recent raises (tenant, level, time), this decides whether
one more transition may go *now*, and if not, when the next slot frees.

What counts as a raise: a tenant going UP to a disruptive level (ScaleDown, Firewall,
Deprovision).  Never limited: lifting (going down), Notice (not disruptive), and a tenant
re-asserting the level it already holds.  A raise at `at` occupies its slot while
`now - window < at`, i.e. it frees exactly at `at + window`.  A raise stamped later than
`now` counts too: concurrent workers read the clock before they queue for the ledger, so
one may ask with a `now` older than a raise another has just taken.

Time is passed in; the caller keeps the ledger (controller/breaker.py).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from tenant_enforcer.model.duration import format_duration, format_time, parse_time
from tenant_enforcer.model.levels import Level


@dataclass(frozen=True)
class Raise:
    """One disruptive transition that happened (or was admitted) at `at`."""

    tenant: str
    level: Level
    at: datetime


@dataclass(frozen=True)
class Limit:
    """`limit` raises per `window`; limit 0 turns the breaker off."""

    limit: int
    window: timedelta

    @property
    def off(self) -> bool:
        return self.limit <= 0 or self.window <= timedelta(0)


@dataclass(frozen=True)
class Gate:
    """The breaker's answer for one transition."""

    allowed: bool
    counts: bool  # an allowed transition that takes a slot (a new disruptive raise)
    in_window: int  # raises in the window at `now`
    next_slot: datetime | None  # refused: when a slot frees (the tenant's next due time)
    message: str  # refused: why, for the status and the Event; "" otherwise


def is_raise(held: Level, target: Level) -> bool:
    """A new disruptive transition: up, to a level above Notice."""
    return target.disruptive and target > held


def in_window(raises: Iterable[Raise], now: datetime, window: timedelta) -> list[Raise]:
    """The raises occupying a slot at `now` (later ones included), oldest first."""
    return sorted((r for r in raises if now - window < r.at), key=lambda r: r.at)


def check(
    raises: Iterable[Raise],
    now: datetime,
    limit: Limit,
    held: Level,
    target: Level,
    approved: bool = False,
) -> Gate:
    """May a tenant held at `held` go to `target` now?

    `approved`: a person approved this level for the tenant's verdicts (an
    EnforcementApproval), which lets it pass a full breaker; it still takes a slot.
    """
    if not is_raise(held, target):
        return Gate(True, False, 0, None, "")
    if limit.off:
        return Gate(True, False, 0, None, "")
    recent = in_window(raises, now, limit.window)
    if len(recent) < limit.limit or approved:
        return Gate(True, True, len(recent), None, "")
    # The slot frees when enough of the oldest raises leave the window.
    slot = recent[len(recent) - limit.limit].at + limit.window
    return Gate(False, False, len(recent), slot, message(len(recent), limit, target, slot))


def message(count: int, limit: Limit, target: Level, slot: datetime) -> str:
    return (
        f"{count} disruptive transitions in the last {format_duration(limit.window)} cluster-wide "
        f"(limit {limit.limit}): {target.api_name} waits until {format_time(slot)}"
    )


def fallback(held: Level, target: Level) -> Level:
    """The level a refused tenant gets: Notice is never limited, the rest waits."""
    return max(held, min(target, Level.NOTICE))


def prune(raises: Sequence[Raise], now: datetime, window: timedelta) -> list[Raise]:
    """Drop raises that can no longer occupy a slot (keeps those in the future of `now` too)."""
    return [r for r in raises if r.at > now - window]


def raises_from_history(tenant: str, history: Iterable[Mapping[str, Any]]) -> list[Raise]:
    """The raises recorded in a TenantPolicy's `status.history` (entries time/from/to).

    Entries that cannot be read are skipped: they can only make the breaker more lenient
    for one window after a restart, never hold a tenant forever.
    """
    found = []
    for entry in history:
        try:
            before = Level.parse(str(entry.get("from") or "None"))
            after = Level.parse(str(entry.get("to") or "None"))
            at = parse_time(str(entry["time"]))
        except (KeyError, ValueError, TypeError):
            continue
        if is_raise(before, after):
            found.append(Raise(tenant, after, at))
    return found
