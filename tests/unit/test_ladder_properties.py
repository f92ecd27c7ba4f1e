"""Properties of the ladder evaluation that hold for any ladder, verdicts, hold, approvals and time."""

from __future__ import annotations

import random
from dataclasses import replace
from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from tenant_enforcer.core.ladder import Decision, evaluate, match_rule
from tenant_enforcer.model.ladder import Escalation, Ladder, Rule
from tenant_enforcer.model.levels import Level, Severity
from tenant_enforcer.model.policy import Approval, Hold
from tenant_enforcer.model.verdict import Outcome, Verdict, VerdictState

NOW = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
CATEGORIES = ("spam", "violence", "fraud")
NAMES = tuple(f"v-{i}" for i in range(6))
PEOPLE = ("alice", "bob", "classifier")

levels = st.sampled_from(Level)
# Whole minutes over a few days around NOW, so that instants often coincide with boundaries.
offsets = st.integers(-6000, 6000).map(lambda m: timedelta(minutes=m))
durations = st.integers(0, 3000).map(lambda m: timedelta(minutes=m))
instants = offsets.map(lambda d: NOW + d)

rules = st.builds(
    Rule,
    name=st.sampled_from(("r-a", "r-b", "r-c", "r-d")),
    level=levels,
    categories=st.frozensets(st.sampled_from(CATEGORIES)),
    min_severity=st.sampled_from(Severity),
    min_confidence=st.sampled_from((0.0, 0.5, 0.8, 1.0)),
    notice_period=st.none() | durations,
)
escalations = st.builds(Escalation, from_level=levels, after=durations, to=levels)


def ladders(with_escalations: bool = True) -> st.SearchStrategy[Ladder]:
    return st.builds(
        Ladder,
        name=st.just("ladder"),
        rules=st.lists(rules, max_size=5).map(tuple),
        notice_period=durations,
        escalations=st.lists(escalations, max_size=4).map(tuple) if with_escalations else st.just(()),
        approval_required=st.frozensets(levels),
    )


@st.composite
def verdict_lists(draw: st.DrawFn) -> list[Verdict]:
    names = draw(st.lists(st.sampled_from(NAMES), unique=True, max_size=len(NAMES)))
    return [
        Verdict(
            name=name,
            tenant="acme",
            category=draw(st.sampled_from(CATEGORIES)),
            severity=draw(st.sampled_from(Severity)),
            confidence=draw(st.sampled_from((0.3, 0.5, 0.8, 0.95, 1.0))),
            outcome=draw(st.sampled_from(Outcome)),
            issuer=draw(st.sampled_from(PEOPLE)),
            issued_at=draw(instants),
            expires_at=draw(st.none() | instants),
            supersedes=tuple(draw(st.lists(st.sampled_from(NAMES), max_size=2))),
        )
        for name in names
    ]


approval_lists = st.lists(
    st.builds(
        Approval,
        name=st.sampled_from(("a-1", "a-2")),
        tenant=st.sampled_from(("acme", "globex")),
        level=levels,
        verdicts=st.frozensets(st.sampled_from(NAMES)),
        approver=st.sampled_from(PEOPLE),
    ),
    max_size=3,
)
holds = st.none() | st.builds(Hold, until=instants, reason=st.just("appeal"), max_level=levels)

settings.register_profile("ladder", max_examples=300, deadline=None)
settings.load_profile("ladder")


@given(ladders(), verdict_lists(), holds, approval_lists)
def test_deterministic(
    ladder: Ladder, verdicts: list[Verdict], hold: Hold | None, approvals: list[Approval]
) -> None:
    assert evaluate(ladder, verdicts, NOW, hold, approvals) == evaluate(
        ladder, verdicts, NOW, hold, approvals
    )


@given(ladders(), verdict_lists(), holds, approval_lists, st.randoms(use_true_random=False))
def test_order_independent(
    ladder: Ladder, verdicts: list[Verdict], hold: Hold | None, approvals: list[Approval], rnd: random.Random
) -> None:
    shuffled_verdicts, shuffled_approvals = list(verdicts), list(approvals)
    rnd.shuffle(shuffled_verdicts)
    rnd.shuffle(shuffled_approvals)
    assert evaluate(ladder, shuffled_verdicts, NOW, hold, shuffled_approvals) == evaluate(
        ladder, verdicts, NOW, hold, approvals
    )


@given(ladders(), verdict_lists(), holds, approval_lists)
def test_target_is_bounded(
    ladder: Ladder, verdicts: list[Verdict], hold: Hold | None, approvals: list[Approval]
) -> None:
    d = evaluate(ladder, verdicts, NOW, hold, approvals)
    assert d.target <= d.called_for <= max(ladder.levels, default=Level.NONE)
    assert d.called_for == max((e.level for e in d.verdicts.values()), default=Level.NONE)
    if d.awaiting_approval is not None:
        assert d.target < d.awaiting_approval <= d.called_for
        assert d.awaiting_approval in ladder.approval_required


@given(ladders(with_escalations=False), verdict_lists(), holds, approval_lists)
def test_without_escalations_target_is_at_most_a_matched_rule_level(
    ladder: Ladder, verdicts: list[Verdict], hold: Hold | None, approvals: list[Approval]
) -> None:
    d = evaluate(ladder, verdicts, NOW, hold, approvals)
    rule_levels = [
        rule.level
        for v in verdicts
        if d.verdicts[v.name].state is VerdictState.ACTIVE and v.outcome is Outcome.VIOLATION
        for rule in [match_rule(ladder, v)]
        if rule is not None
    ]
    assert d.called_for <= max(rule_levels, default=Level.NONE)
    assert d.target <= d.called_for


@given(ladders(), verdict_lists(), holds, approval_lists)
def test_nothing_active_means_none(
    ladder: Ladder, verdicts: list[Verdict], hold: Hold | None, approvals: list[Approval]
) -> None:
    assert evaluate(ladder, [], NOW, hold, approvals).target is Level.NONE
    cleared = [replace(v, outcome=Outcome.CLEARED) for v in verdicts]
    assert evaluate(ladder, cleared, NOW, hold, approvals).target is Level.NONE
    future = [replace(v, issued_at=NOW + timedelta(minutes=1), supersedes=()) for v in verdicts]
    assert evaluate(ladder, future, NOW, hold, approvals).target is Level.NONE
    d = evaluate(ladder, verdicts, NOW, hold, approvals)
    if not d.active_verdicts:
        assert d.target is Level.NONE
    # Superseded violations go too: removing what superseded them would bring them back.
    gone = {VerdictState.ACTIVE, VerdictState.SUPERSEDED}
    rest = [v for v in verdicts if v.outcome is Outcome.CLEARED or d.verdicts[v.name].state not in gone]
    assert evaluate(ladder, rest, NOW, hold, approvals).target is Level.NONE


@given(ladders(), verdict_lists(), holds, approval_lists)
def test_verdict_evaluations_are_consistent(
    ladder: Ladder, verdicts: list[Verdict], hold: Hold | None, approvals: list[Approval]
) -> None:
    d = evaluate(ladder, verdicts, NOW, hold, approvals)
    assert set(d.verdicts) == {v.name for v in verdicts}
    assert list(d.active_verdicts) == sorted(d.active_verdicts)
    for name, e in d.verdicts.items():
        assert e.name == name
        assert e.state is not VerdictState.UNKNOWN_TENANT
        assert e.next_change is None or e.next_change > NOW
        if e.state is not VerdictState.ACTIVE:
            assert (e.level, e.rule) == (Level.NONE, None)
        assert (name in d.active_verdicts) == (e.state is VerdictState.ACTIVE and e.level > Level.NONE)
    assert d.next_due is None or d.next_due > NOW


@given(ladders(), verdict_lists(), holds, approval_lists, st.integers(0, 10**6))
def test_nothing_changes_before_next_due(
    ladder: Ladder, verdicts: list[Verdict], hold: Hold | None, approvals: list[Approval], seconds: int
) -> None:
    """The controller may sleep until next_due: the decision is the same at any earlier instant."""
    d = evaluate(ladder, verdicts, NOW, hold, approvals)
    later = NOW + timedelta(seconds=seconds)
    if d.next_due is not None and later >= d.next_due:
        later = d.next_due - timedelta(microseconds=1)
    assert evaluate(ladder, verdicts, later, hold, approvals) == d


@given(
    ladders(),
    verdict_lists(),
    st.builds(Hold, until=instants, reason=st.just(""), max_level=levels),
    approval_lists,
)
def test_hold_caps_target(
    ladder: Ladder, verdicts: list[Verdict], hold: Hold, approvals: list[Approval]
) -> None:
    held = evaluate(ladder, verdicts, NOW, hold, approvals)
    free = evaluate(ladder, verdicts, NOW, None, approvals)
    assert held.target <= free.target
    assert held.called_for == free.called_for
    if hold.until > NOW:
        assert held.target <= hold.max_level
        assert held.held == (free.called_for > hold.max_level)
        assert held.next_due is not None and held.next_due <= hold.until
    else:
        assert held == free


def _same_except_approvals(a: Decision, b: Decision) -> bool:
    return (a.called_for, a.verdicts, a.held) == (b.called_for, b.verdicts, b.held)


@given(ladders(), verdict_lists(), holds, approval_lists)
def test_approvals_only_lower_the_block(
    ladder: Ladder, verdicts: list[Verdict], hold: Hold | None, approvals: list[Approval]
) -> None:
    with_approvals = evaluate(ladder, verdicts, NOW, hold, approvals)
    without = evaluate(ladder, verdicts, NOW, hold, ())
    assert _same_except_approvals(with_approvals, without)
    assert without.target <= with_approvals.target
    # Without any approval, the target never needs one.
    assert without.target not in ladder.approval_required or not without.target.disruptive
