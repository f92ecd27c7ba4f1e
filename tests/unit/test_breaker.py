"""The global breaker's decision (core/breaker.py): a table with a pinned clock, and properties."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tenant_enforcer.core.breaker import (
    Limit,
    Raise,
    check,
    fallback,
    in_window,
    prune,
    raises_from_history,
)
from tenant_enforcer.model.levels import Level

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
WINDOW = timedelta(minutes=10)
N, S, SD, FW = Level.NONE, Level.NOTICE, Level.SCALE_DOWN, Level.FIREWALL


def ago(minutes: float) -> datetime:
    return NOW - timedelta(minutes=minutes)


def recent(*minutes_ago: float) -> list[Raise]:
    return [Raise(f"t{i}", SD, ago(m)) for i, m in enumerate(minutes_ago)]


# (case, raises, limit, held, target, approved) -> (allowed, counts, next slot or None)
CASES = [
    ("empty ledger: the first raise goes", [], 2, N, SD, False, True, True, None),
    ("below the limit", recent(1), 2, S, SD, False, True, True, None),
    ("at the limit: waits for the oldest to leave", recent(1, 4), 2, S, SD, False, False, False, ago(-6)),
    ("over the limit (approved raises): waits for enough to leave", recent(1, 2, 3), 2, S, SD, False,
     False, False, ago(-8)),
    ("a raise exactly one window old no longer counts", recent(10, 1), 2, S, SD, False, True, True, None),
    ("a raise just inside the window still counts", recent(9.99, 1), 2, S, SD, False, False, False,
     ago(9.99) + WINDOW),
    ("a raise stamped after now (another worker's clock) counts", recent(-0.01), 1, S, SD, False,
     False, False, ago(-10.01)),
    ("lifting is never limited", recent(1, 2), 2, SD, N, False, True, False, None),
    ("lifting part way is never limited", recent(1, 2), 2, FW, S, False, True, False, None),
    ("Notice is not disruptive", recent(1, 2), 2, N, S, False, True, False, None),
    ("re-asserting the held level is no transition", recent(1, 2), 2, SD, SD, False, True, False, None),
    ("ScaleDown to Firewall is a new raise", recent(1, 2), 2, SD, FW, False, False, False, ago(-8)),
    ("an approval passes a full breaker and takes a slot", recent(1, 2), 2, S, SD, True, True, True, None),
    ("limit 0 is off", recent(1, 2, 3), 0, N, FW, False, True, False, None),
]  # fmt: skip


@pytest.mark.parametrize(
    "raises, limit, held, target, approved, allowed, counts, slot",
    [c[1:] for c in CASES],
    ids=[c[0] for c in CASES],
)
def test_check(
    raises: list[Raise],
    limit: int,
    held: Level,
    target: Level,
    approved: bool,
    allowed: bool,
    counts: bool,
    slot: datetime | None,
) -> None:
    gate = check(raises, NOW, Limit(limit, WINDOW), held, target, approved)
    assert (gate.allowed, gate.counts, gate.next_slot) == (allowed, counts, slot)
    assert bool(gate.message) == (not allowed)


def test_refusal_message_names_count_window_limit_level_and_time() -> None:
    gate = check(recent(1, 4), NOW, Limit(2, WINDOW), S, SD)
    assert gate.message == (
        "2 disruptive transitions in the last 10m cluster-wide (limit 2): "
        "ScaleDown waits until 2026-11-27T12:06:00Z"
    )


@pytest.mark.parametrize(
    "held, target, expected",
    [(N, SD, S), (S, SD, S), (SD, FW, SD), (N, FW, S), (S, FW, S)],
)
def test_a_refused_tenant_keeps_its_level_or_gets_notice(held: Level, target: Level, expected: Level) -> None:
    assert fallback(held, target) == expected


def test_history_gives_the_raises_to_disruptive_levels_only() -> None:
    history = [
        {"time": "2026-11-27T11:50:00Z", "from": "None", "to": "Notice", "reason": "r"},
        {"time": "2026-11-27T11:55:00Z", "from": "Notice", "to": "ScaleDown", "reason": "r"},
        {"time": "2026-11-27T11:56:00Z", "from": "ScaleDown", "to": "Notice", "reason": "r"},
        {"time": "2026-11-27T11:57:00Z", "from": "None", "to": "Firewall", "reason": "r"},
        {"time": "garbage", "from": "None", "to": "Firewall"},
        {"from": "None", "to": "Firewall"},
        {"time": "2026-11-27T11:58:00Z", "from": "None", "to": "Bogus"},
    ]
    assert raises_from_history("acme", history) == [
        Raise("acme", SD, ago(5)),
        Raise("acme", FW, ago(3)),
    ]


def test_prune_and_window_keep_only_what_can_occupy_a_slot() -> None:
    raises = recent(30, 10, 5, 1)
    assert [r.at for r in prune(raises, NOW, WINDOW)] == [ago(5), ago(1)]
    assert [r.at for r in in_window(list(reversed(raises)), NOW, WINDOW)] == [ago(5), ago(1)]


# --- properties ----------------------------------------------------------------------------

attempts = st.lists(
    st.tuples(
        st.integers(-5, 120),  # seconds after the previous attempt (< 0: workers' clocks interleave)
        st.sampled_from([f"t{i}" for i in range(6)]),
        st.sampled_from(Level),
    ),
    max_size=60,
)


@settings(max_examples=300, deadline=None)
@given(attempts, st.integers(1, 5), st.integers(1, 600).map(lambda s: timedelta(seconds=s)))
def test_never_more_than_limit_raises_in_any_window(
    steps: list[tuple[int, str, Level]], limit: int, window: timedelta
) -> None:
    """Tenants moving anywhere over time, each move gated like the controller does: the
    admitted raises never exceed the limit in any window, and a refused raise is told a
    slot that is in the future and does free (if nothing else is admitted meanwhile)."""
    lim = Limit(limit, window)
    held: dict[str, Level] = {}
    ledger: list[Raise] = []
    now = NOW
    for gap, tenant, target in steps:
        now += timedelta(seconds=gap)
        before = held.get(tenant, Level.NONE)
        gate = check(ledger, now, lim, before, target)
        if gate.counts:
            ledger.append(Raise(tenant, target, now))
        if gate.allowed:
            held[tenant] = target
        else:
            assert gate.next_slot is not None and gate.next_slot > now
            assert check(ledger, gate.next_slot, lim, before, target).allowed
            assert not check(ledger, gate.next_slot - timedelta(microseconds=1), lim, before, target).allowed
            held[tenant] = fallback(before, target)
    # Every window (end - window, end] holding raises has as many as one ending at a raise.
    for end in (r.at for r in ledger):
        assert sum(end - window < r.at <= end for r in ledger) <= limit, (end, ledger)
