"""Table-driven tests of the ladder evaluation, on a fixed injected `now`."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from tenant_enforcer.core.ladder import Decision, VerdictEvaluation, evaluate, match_rule, timeline
from tenant_enforcer.model.ladder import Escalation, Ladder, Rule
from tenant_enforcer.model.levels import Level, Severity
from tenant_enforcer.model.policy import Approval, Hold
from tenant_enforcer.model.verdict import Outcome, Verdict, VerdictState

NOW = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
H = timedelta(hours=1)
D = timedelta(days=1)
MIN = timedelta(minutes=1)
ACTIVE, PENDING = VerdictState.ACTIVE, VerdictState.PENDING
EXPIRED, SUPERSEDED = VerdictState.EXPIRED, VerdictState.SUPERSEDED

LADDER = Ladder(
    name="default",
    rules=(
        Rule("spam", Level.NOTICE, frozenset({"spam"})),
        Rule("violence", Level.FIREWALL, frozenset({"violence"}), Severity.HIGH, 0.8),
        Rule("violence-low", Level.SCALE_DOWN, frozenset({"violence"}), Severity.MEDIUM),
        Rule("csam", Level.DEPROVISION, frozenset({"csam"}), notice_period=timedelta(0)),
        Rule("any-critical", Level.SCALE_DOWN, min_severity=Severity.CRITICAL),
        Rule("phishing", Level.FIREWALL, frozenset({"phishing"}), notice_period=2 * H),
    ),
    notice_period=D,
)

# Notice -> ScaleDown after 7d -> Firewall after 3d -> Deprovision after 30d. The downward
# escalation and the second one from Notice must be ignored (loop guard, first in ladder order).
ESCALATING = Ladder(
    name="escalating",
    rules=(
        Rule("spam", Level.NOTICE, frozenset({"spam"})),
        Rule("violence", Level.SCALE_DOWN, frozenset({"violence"})),
    ),
    notice_period=D,
    escalations=(
        Escalation(Level.FIREWALL, H, Level.SCALE_DOWN),
        Escalation(Level.NOTICE, 7 * D, Level.SCALE_DOWN),
        Escalation(Level.NOTICE, H, Level.DEPROVISION),
        Escalation(Level.SCALE_DOWN, 3 * D, Level.FIREWALL),
        Escalation(Level.FIREWALL, 30 * D, Level.DEPROVISION),
    ),
    approval_required=frozenset(),
)


def verdict(
    name: str = "v-1",
    category: str = "violence",
    severity: Severity = Severity.HIGH,
    confidence: float = 0.9,
    *,
    outcome: Outcome = Outcome.VIOLATION,
    issued_at: datetime = NOW - 2 * D,
    expires_at: datetime | None = None,
    supersedes: tuple[str, ...] = (),
    issuer: str = "classifier@trust",
    tenant: str = "acme",
) -> Verdict:
    return Verdict(
        name=name,
        tenant=tenant,
        category=category,
        severity=severity,
        confidence=confidence,
        outcome=outcome,
        issuer=issuer,
        issued_at=issued_at,
        expires_at=expires_at,
        supersedes=supersedes,
    )


def cleared(
    name: str,
    category: str = "violence",
    *,
    issued_at: datetime = NOW - 2 * D,
    expires_at: datetime | None = None,
    supersedes: tuple[str, ...] = (),
) -> Verdict:
    return verdict(
        name,
        category,
        Severity.LOW,
        1.0,
        outcome=Outcome.CLEARED,
        issued_at=issued_at,
        expires_at=expires_at,
        supersedes=supersedes,
        issuer="reviewer@trust",
    )


def approval(
    level: Level = Level.DEPROVISION,
    verdicts: frozenset[str] = frozenset({"v-9"}),
    approver: str = "alice@trust",
    tenant: str = "acme",
) -> Approval:
    return Approval("ap-1", tenant, level, verdicts, approver)


def ev(
    name: str, state: VerdictState, level: Level, rule: str | None, nxt: datetime | None
) -> VerdictEvaluation:
    return VerdictEvaluation(name, state, level, rule, nxt)


# --- matching ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("category", "severity", "confidence", "level", "rule"),
    [
        ("violence", Severity.HIGH, 0.9, Level.FIREWALL, "violence"),
        ("violence", Severity.HIGH, 0.8, Level.FIREWALL, "violence"),  # thresholds are inclusive
        ("violence", Severity.HIGH, 0.79, Level.SCALE_DOWN, "violence-low"),  # confidence too low
        ("violence", Severity.MEDIUM, 0.9, Level.SCALE_DOWN, "violence-low"),  # severity too low
        ("violence", Severity.LOW, 0.9, Level.NONE, None),  # no rule matches
        ("violence", Severity.CRITICAL, 0.9, Level.FIREWALL, "violence"),  # highest of three matches
        ("spam", Severity.LOW, 0.1, Level.NOTICE, "spam"),
        ("fraud", Severity.CRITICAL, 0.5, Level.SCALE_DOWN, "any-critical"),  # empty categories: any
        ("fraud", Severity.HIGH, 1.0, Level.NONE, None),
        ("csam", Severity.LOW, 0.2, Level.DEPROVISION, "csam"),
    ],
)
def test_matching(
    category: str, severity: Severity, confidence: float, level: Level, rule: str | None
) -> None:
    d = evaluate(LADDER, [verdict("v-1", category, severity, confidence)], NOW)
    assert d.verdicts["v-1"] == ev("v-1", ACTIVE, level, rule, None)
    assert d.called_for == level


def test_matching_tie_takes_first_rule_in_ladder_order() -> None:
    ladder = Ladder("tie", (Rule("b", Level.FIREWALL), Rule("a", Level.FIREWALL, frozenset({"violence"}))))
    matched = match_rule(ladder, verdict())
    assert matched is not None
    assert matched.name == "b"


# --- notice period -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("rule_category", "age", "level", "next_change"),
    [
        ("violence", timedelta(0), Level.NOTICE, NOW + D),  # issued exactly now
        ("violence", 23 * H, Level.NOTICE, NOW + H),
        ("violence", D - timedelta(seconds=1), Level.NOTICE, NOW + timedelta(seconds=1)),
        ("violence", D, Level.FIREWALL, None),  # boundary: the disruptive level applies at the end
        ("violence", 25 * H, Level.FIREWALL, None),
        ("phishing", H, Level.NOTICE, NOW + H),  # per-rule notice period of 2h
        ("phishing", 2 * H, Level.FIREWALL, None),
        ("csam", timedelta(0), Level.DEPROVISION, None),  # per-rule notice period 0
        ("spam", timedelta(0), Level.NOTICE, None),  # Notice itself needs no notice
    ],
)
def test_notice_period(
    rule_category: str, age: timedelta, level: Level, next_change: datetime | None
) -> None:
    v = verdict("v-1", rule_category, Severity.HIGH, 0.9, issued_at=NOW - age)
    d = evaluate(replace(LADDER, approval_required=frozenset()), [v], NOW)
    assert d.verdicts["v-1"].level == level
    assert d.verdicts["v-1"].next_change == next_change
    assert d.target == level
    assert d.next_due == next_change


def test_ladder_notice_period_zero_applies_at_once() -> None:
    d = evaluate(replace(LADDER, notice_period=timedelta(0)), [verdict(issued_at=NOW)], NOW)
    assert (d.target, d.next_due) == (Level.FIREWALL, None)


# --- escalation ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("category", "age", "level", "next_due"),
    [
        ("spam", timedelta(0), Level.NOTICE, NOW + 7 * D),
        ("spam", 7 * D - timedelta(seconds=1), Level.NOTICE, NOW + timedelta(seconds=1)),
        ("spam", 7 * D, Level.SCALE_DOWN, NOW + 3 * D),
        ("spam", 10 * D - H, Level.SCALE_DOWN, NOW + H),
        ("spam", 10 * D, Level.FIREWALL, NOW + 30 * D),
        ("spam", 40 * D, Level.DEPROVISION, None),  # top of the chain; the downward step is ignored
        # Disruptive rule level: escalation counts from the end of the notice period.
        ("violence", 12 * H, Level.NOTICE, NOW + 12 * H),
        ("violence", 2 * D, Level.SCALE_DOWN, NOW + 2 * D),
        ("violence", 4 * D, Level.FIREWALL, NOW + 30 * D),
    ],
)
def test_escalation_chain(category: str, age: timedelta, level: Level, next_due: datetime | None) -> None:
    v = verdict("s-1", category, Severity.LOW, issued_at=NOW - age)
    d = evaluate(ESCALATING, [v], NOW)
    assert d.verdicts["s-1"] == ev("s-1", ACTIVE, level, category, next_due)
    assert (d.target, d.called_for, d.next_due) == (level, level, next_due)


def test_timeline_steps() -> None:
    rule = ESCALATING.rules[1]
    assert [(s.at, s.level, s.cause) for s in timeline(ESCALATING, rule, NOW)] == [
        (NOW, Level.NOTICE, "notice"),
        (NOW + D, Level.SCALE_DOWN, "rule"),
        (NOW + 4 * D, Level.FIREWALL, "escalation"),
        (NOW + 34 * D, Level.DEPROVISION, "escalation"),
    ]


def test_no_escalation_from_a_rule_calling_for_none() -> None:
    ladder = Ladder(
        "x", (Rule("ignore", Level.NONE),), escalations=(Escalation(Level.NONE, H, Level.FIREWALL),)
    )
    d = evaluate(ladder, [verdict()], NOW)
    assert d.verdicts["v-1"] == ev("v-1", ACTIVE, Level.NONE, "ignore", None)
    assert (d.target, d.next_due) == (Level.NONE, None)


# --- expiry and pending --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("issued_at", "expires_at", "expected"),
    [
        (NOW - 2 * D, NOW, ev("v-1", EXPIRED, Level.NONE, None, None)),  # expires_at <= now
        (NOW - 2 * D, NOW - H, ev("v-1", EXPIRED, Level.NONE, None, None)),
        (NOW - 2 * D, NOW + H, ev("v-1", ACTIVE, Level.FIREWALL, "violence", NOW + H)),
        (NOW - 23 * H, NOW + 30 * H, ev("v-1", ACTIVE, Level.NOTICE, "violence", NOW + H)),  # notice first
        # Expiry before the end of the notice period.
        (NOW - 23 * H, NOW + 30 * MIN, ev("v-1", ACTIVE, Level.NOTICE, "violence", NOW + 30 * MIN)),
        (NOW + 2 * H, None, ev("v-1", PENDING, Level.NONE, None, NOW + 2 * H)),
        (NOW + 2 * H, NOW + H, ev("v-1", PENDING, Level.NONE, None, NOW + H)),
        (NOW + 2 * H, NOW - H, ev("v-1", EXPIRED, Level.NONE, None, None)),  # expired beats pending
    ],
)
def test_expiry_and_pending(
    issued_at: datetime, expires_at: datetime | None, expected: VerdictEvaluation
) -> None:
    d = evaluate(LADDER, [verdict(issued_at=issued_at, expires_at=expires_at)], NOW)
    assert d.verdicts["v-1"] == expected
    assert d.target == expected.level
    assert d.next_due == expected.next_change


def test_pending_verdict_decision() -> None:
    d = evaluate(LADDER, [verdict(issued_at=NOW + 2 * H)], NOW)
    assert d == Decision(
        target=Level.NONE,
        called_for=Level.NONE,
        reason="no active verdicts",
        active_verdicts=(),
        verdicts={"v-1": ev("v-1", PENDING, Level.NONE, None, NOW + 2 * H)},
        next_due=NOW + 2 * H,
        awaiting_approval=None,
        held=False,
    )


def test_no_verdicts() -> None:
    d = evaluate(LADDER, [], NOW)
    assert (d.target, d.called_for, d.next_due, d.verdicts) == (Level.NONE, Level.NONE, None, {})
    assert d.reason == "no active verdicts"


# --- supersede and clearing ----------------------------------------------------------------------

V1 = verdict("v-1")  # violence/high, Firewall


@pytest.mark.parametrize(
    ("others", "states", "target"),
    [
        (
            [cleared("c-1", supersedes=("v-1",), issued_at=NOW - H)],
            {"v-1": SUPERSEDED, "c-1": ACTIVE},
            Level.NONE,
        ),
        # Superseded by a milder violation: the newer verdict applies instead.
        (
            [verdict("v-2", severity=Severity.MEDIUM, supersedes=("v-1",), issued_at=NOW - D)],
            {"v-1": SUPERSEDED, "v-2": ACTIVE},
            Level.SCALE_DOWN,
        ),
        # Regardless of the superseding verdict's expiry.
        (
            [cleared("c-1", supersedes=("v-1",), issued_at=NOW - D, expires_at=NOW - H)],
            {"v-1": SUPERSEDED, "c-1": EXPIRED},
            Level.NONE,
        ),
        # Not yet issued: no effect yet.
        (
            [cleared("c-1", supersedes=("v-1",), issued_at=NOW + H)],
            {"v-1": ACTIVE, "c-1": PENDING},
            Level.FIREWALL,
        ),
        # Bare clearing of the same category, issued later.
        ([cleared("c-1", issued_at=NOW - H)], {"v-1": SUPERSEDED, "c-1": ACTIVE}, Level.NONE),
        # ...but not of another category,
        ([cleared("c-1", "spam", issued_at=NOW - H)], {"v-1": ACTIVE, "c-1": ACTIVE}, Level.FIREWALL),
        # ...nor of a verdict issued at the same instant or later,
        ([cleared("c-1", issued_at=NOW - 2 * D)], {"v-1": ACTIVE, "c-1": ACTIVE}, Level.FIREWALL),
        ([cleared("c-1", issued_at=NOW - 3 * D)], {"v-1": ACTIVE, "c-1": ACTIVE}, Level.FIREWALL),
        # ...nor when the clearing names what it supersedes.
        (
            [cleared("c-1", supersedes=("v-other",), issued_at=NOW - H)],
            {"v-1": ACTIVE, "c-1": ACTIVE},
            Level.FIREWALL,
        ),
    ],
)
def test_supersede_and_clear(others: list[Verdict], states: dict[str, VerdictState], target: Level) -> None:
    d = evaluate(LADDER, [V1, *others], NOW)
    assert {n: e.state for n, e in d.verdicts.items()} == states
    assert d.verdicts["v-1"].level == (Level.FIREWALL if states["v-1"] is ACTIVE else Level.NONE)
    assert d.target == target


def test_superseded_verdict_stops_at_once_and_newer_one_applies() -> None:
    v2 = verdict("v-2", severity=Severity.MEDIUM, supersedes=("v-1",), issued_at=NOW - D)
    d = evaluate(LADDER, [v2, V1], NOW)
    assert d.verdicts["v-1"] == ev("v-1", SUPERSEDED, Level.NONE, None, None)
    assert d.verdicts["v-2"] == ev("v-2", ACTIVE, Level.SCALE_DOWN, "violence-low", None)
    assert (d.target, d.active_verdicts) == (Level.SCALE_DOWN, ("v-2",))


def test_pending_supersede_is_a_due_time() -> None:
    d = evaluate(LADDER, [V1, cleared("c-1", supersedes=("v-1",), issued_at=NOW + H)], NOW)
    assert d.verdicts["v-1"] == ev("v-1", ACTIVE, Level.FIREWALL, "violence", NOW + H)
    assert (d.target, d.next_due) == (Level.FIREWALL, NOW + H)


def test_cleared_verdict_calls_for_none() -> None:
    d = evaluate(LADDER, [cleared("c-1", issued_at=NOW - H, expires_at=NOW + D)], NOW)
    assert d.verdicts["c-1"] == ev("c-1", ACTIVE, Level.NONE, None, NOW + D)
    assert (d.target, d.active_verdicts, d.reason) == (Level.NONE, (), "no active verdicts")


# --- hold ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("hold", "target", "held", "next_due", "reason_suffix"),
    [
        (
            Hold(NOW + 2 * H, "appeal #42", Level.NOTICE),
            Level.NOTICE,
            True,
            NOW + 2 * H,
            "; held at Notice until 2024-05-01T14:00:00Z (appeal #42)",
        ),
        (
            Hold(NOW + 2 * H, "", Level.SCALE_DOWN),
            Level.SCALE_DOWN,
            True,
            NOW + 2 * H,
            "; held at ScaleDown until 2024-05-01T14:00:00Z",
        ),
        # Caps nothing: not held, but its end is still a due time.
        (Hold(NOW + 2 * H, "appeal", Level.DEPROVISION), Level.FIREWALL, False, NOW + 2 * H, ""),
        (Hold(NOW, "appeal", Level.NOTICE), Level.FIREWALL, False, None, ""),  # until reached: over
        (Hold(NOW - H, "appeal", Level.NOTICE), Level.FIREWALL, False, None, ""),
    ],
)
def test_hold(hold: Hold, target: Level, held: bool, next_due: datetime | None, reason_suffix: str) -> None:
    d = evaluate(LADDER, [V1], NOW, hold=hold)
    assert (d.target, d.called_for, d.held, d.next_due) == (target, Level.FIREWALL, held, next_due)
    assert d.reason == "verdict v-1 (violence/high) calls for Firewall by rule 'violence'" + reason_suffix


def test_hold_without_verdicts() -> None:
    d = evaluate(LADDER, [], NOW, hold=Hold(NOW + H, "appeal"))
    assert (d.target, d.held, d.next_due) == (Level.NONE, False, NOW + H)


# --- approvals -----------------------------------------------------------------------------------

V9 = verdict("v-9", "csam", Severity.CRITICAL, 0.99, issued_at=NOW - H)  # Deprovision, no notice
BLOCKED = (Level.FIREWALL, Level.DEPROVISION)
APPROVED = (Level.DEPROVISION, None)


@pytest.mark.parametrize(
    ("verdicts", "approvals", "expected"),
    [
        ([V9], [], BLOCKED),
        ([V9], [approval()], APPROVED),
        ([V9], [approval(verdicts=frozenset({"v-9", "v-unrelated"}))], APPROVED),
        ([V9], [approval(level=Level.FIREWALL)], BLOCKED),  # approves a lower level
        ([V9], [approval(tenant="globex")], BLOCKED),  # another tenant
        ([V9], [approval(verdicts=frozenset({"v-8"}))], BLOCKED),  # another verdict
        ([V9], [approval(approver="classifier@trust")], BLOCKED),  # the issuer approving itself
        ([V9], [approval(approver="classifier@trust"), approval(approver="bob@trust")], APPROVED),
        # Every verdict calling for the level must be covered...
        ([V9, replace(V9, name="v-10")], [approval()], BLOCKED),
        ([V9, replace(V9, name="v-10")], [approval(verdicts=frozenset({"v-9", "v-10"}))], APPROVED),
        # ...and no issuer of any of them may approve.
        (
            [V9, replace(V9, name="v-10", issuer="alice@trust")],
            [approval(verdicts=frozenset({"v-9", "v-10"}))],
            BLOCKED,
        ),
        # Verdicts calling for lower levels need no approval.
        ([V9, V1], [approval()], APPROVED),
    ],
)
def test_approval(
    verdicts: list[Verdict], approvals: list[Approval], expected: tuple[Level, Level | None]
) -> None:
    d = evaluate(LADDER, verdicts, NOW, approvals=approvals)
    assert d.called_for == Level.DEPROVISION
    assert (d.target, d.awaiting_approval) == expected


def test_approval_blocked_reason() -> None:
    d = evaluate(LADDER, [V9], NOW)
    assert d.reason == (
        "verdict v-9 (csam/critical) calls for Deprovision by rule 'csam'; "
        "Deprovision awaits approval, so Firewall applies"
    )


@pytest.mark.parametrize(
    ("approvals", "expected"),
    [
        ([], (Level.SCALE_DOWN, Level.DEPROVISION)),  # walks past every level needing approval
        ([approval(level=Level.FIREWALL)], (Level.FIREWALL, Level.DEPROVISION)),  # stops at an approved one
        ([approval(level=Level.DEPROVISION)], (Level.DEPROVISION, None)),
    ],
)
def test_approval_walks_down(approvals: list[Approval], expected: tuple[Level, Level | None]) -> None:
    ladder = replace(LADDER, approval_required=frozenset({Level.FIREWALL, Level.DEPROVISION}))
    d = evaluate(ladder, [V9], NOW, approvals=approvals)
    assert (d.target, d.awaiting_approval) == expected


def test_notice_never_needs_approval() -> None:
    ladder = replace(LADDER, approval_required=frozenset(Level))
    d = evaluate(ladder, [verdict(issued_at=NOW)], NOW)  # in its notice period
    assert (d.target, d.awaiting_approval) == (Level.NOTICE, None)


def test_hold_then_approval() -> None:
    ladder = replace(LADDER, approval_required=frozenset({Level.SCALE_DOWN}))
    d = evaluate(ladder, [V1], NOW, hold=Hold(NOW + H, "appeal", Level.SCALE_DOWN))
    assert (d.target, d.held, d.awaiting_approval) == (Level.NOTICE, True, Level.SCALE_DOWN)
    assert d.reason == (
        "verdict v-1 (violence/high) calls for Firewall by rule 'violence'; "
        "held at ScaleDown until 2024-05-01T13:00:00Z (appeal); ScaleDown awaits approval, so Notice applies"
    )


# --- reasons and the decision as a whole ---------------------------------------------------------


@pytest.mark.parametrize(
    ("ladder", "verdicts", "reason"),
    [
        (LADDER, [V1], "verdict v-1 (violence/high) calls for Firewall by rule 'violence'"),
        (
            LADDER,
            [verdict(issued_at=NOW - H)],
            "verdict v-1 (violence/high) calls for Notice by rule 'violence' "
            "until its notice period ends (Firewall at 2024-05-02T11:00:00Z)",
        ),
        (
            ESCALATING,
            [verdict("s-1", "spam", Severity.LOW, issued_at=NOW - 8 * D)],
            "verdict s-1 (spam/low) calls for ScaleDown by rule 'spam' after escalation from Notice",
        ),
        (
            LADDER,
            [verdict("v-2", "spam", Severity.LOW), V1],
            "verdict v-1 (violence/high) calls for Firewall by rule 'violence', plus 1 other active verdict",
        ),
        (
            LADDER,
            [verdict("v-3", "spam", Severity.LOW), replace(V1, name="v-2"), V1],
            "verdict v-1 (violence/high) calls for Firewall by rule 'violence', plus 2 other active verdicts",
        ),
        (LADDER, [verdict(severity=Severity.LOW)], "no active verdicts"),
    ],
)
def test_reason(ladder: Ladder, verdicts: list[Verdict], reason: str) -> None:
    assert evaluate(ladder, verdicts, NOW).reason == reason


def test_full_decision() -> None:
    spam = verdict("v-2", "spam", Severity.LOW, issued_at=NOW - H, expires_at=NOW + D)
    pending = verdict("v-3", issued_at=NOW + 3 * H)
    d = evaluate(LADDER, [pending, spam, V1], NOW)
    assert d == Decision(
        target=Level.FIREWALL,
        called_for=Level.FIREWALL,
        reason=(
            "verdict v-1 (violence/high) calls for Firewall by rule 'violence', plus 1 other active verdict"
        ),
        active_verdicts=("v-1", "v-2"),
        verdicts={
            "v-1": ev("v-1", ACTIVE, Level.FIREWALL, "violence", None),
            "v-2": ev("v-2", ACTIVE, Level.NOTICE, "spam", NOW + D),
            "v-3": ev("v-3", PENDING, Level.NONE, None, NOW + 3 * H),
        },
        next_due=NOW + 3 * H,
        awaiting_approval=None,
        held=False,
    )


def test_duplicate_verdict_names_are_refused() -> None:
    with pytest.raises(ValueError, match="v-1"):
        evaluate(LADDER, [V1, V1], NOW)


def test_expired_verdict_superseded_later_changes_state_then() -> None:
    v1 = verdict(expires_at=NOW - H)
    d = evaluate(LADDER, [v1, cleared("c-1", supersedes=("v-1",), issued_at=NOW + H)], NOW)
    assert d.verdicts["v-1"] == ev("v-1", EXPIRED, Level.NONE, None, NOW + H)
    assert d.next_due == NOW + H
