"""EnforcementApprovals read at the edge, and the AwaitingApproval condition that asks for one."""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tenant_enforcer.core.ladder import evaluate
from tenant_enforcer.model.ladder import Ladder
from tenant_enforcer.model.levels import Level
from tenant_enforcer.model.policy import Approval
from tenant_enforcer.model.verdict import Verdict
from tenant_enforcer.record.status import Outcome, build_conditions

NOW = datetime(2026, 11, 27, tzinfo=UTC)
BODY: dict[str, Any] = {
    "apiVersion": "tenant-enforcer.io/v1alpha1",
    "kind": "EnforcementApproval",
    "metadata": {"name": "acme-deprovision"},
    "spec": {
        "tenant": "acme",
        "level": "Deprovision",
        "verdicts": ["acme-terror-critical", "acme-csam"],
        "approver": "alice@hoster.example",
        "reason": "legal reviewed the evidence",
    },
}


def test_approval_from_resource() -> None:
    assert Approval.from_resource(BODY) == Approval(
        "acme-deprovision",
        "acme",
        Level.DEPROVISION,
        frozenset({"acme-terror-critical", "acme-csam"}),
        "alice@hoster.example",
        "legal reviewed the evidence",
    )


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("level", "Notice"),  # never needs an approval
        ("level", "Suspend"),
        ("verdicts", []),
        ("verdicts", "acme-csam"),  # a string is not a list of names
        ("verdicts", ["acme-csam", 3]),
        ("approver", ""),
        ("approver", ["alice"]),
        ("tenant", None),
        ("reason", ""),
    ],
)
def test_approval_rejects(field: str, value: Any) -> None:
    body = copy.deepcopy(BODY)
    body["spec"][field] = value
    with pytest.raises((ValueError, TypeError)):
        Approval.from_resource(body)


def test_approval_missing_field_is_refused() -> None:
    body = copy.deepcopy(BODY)
    del body["spec"]["approver"]
    with pytest.raises(KeyError):
        Approval.from_resource(body)


def _ladder() -> Ladder:
    return Ladder.from_resource(
        {
            "metadata": {"name": "l"},
            "spec": {
                "noticePeriod": "0s",
                "rules": [{"name": "fraud", "categories": ["fraud"], "level": "ScaleDown"}],
                "approvalRequired": ["ScaleDown"],
            },
        }
    )


def _verdict(name: str, category: str = "fraud") -> Verdict:
    return Verdict.from_resource(
        {
            "metadata": {"name": name},
            "spec": {
                "tenant": "acme",
                "category": category,
                "severity": "high",
                "issuer": "classifier",
                "issuedAt": (NOW - timedelta(hours=1)).isoformat(),
            },
        }
    )


def test_awaiting_approval_condition_names_the_level_and_every_verdict_to_approve() -> None:
    decision = evaluate(_ladder(), [_verdict("v-b"), _verdict("v-a"), _verdict("v-spam", "spam")], NOW)
    assert decision.awaiting_approval is Level.SCALE_DOWN
    [awaiting] = [
        c for c in build_conditions(Outcome(Level.NOTICE, decision)) if c.type == "AwaitingApproval"
    ]
    assert awaiting.status and awaiting.reason == "ApprovalRequired"
    assert awaiting.message == (
        "ScaleDown waits for an approval: an EnforcementApproval with level ScaleDown (or higher) "
        "listing verdicts v-a, v-b, created by someone who issued none of them"
    )


def test_no_awaiting_message_once_approved() -> None:
    approval = Approval("ap", "acme", Level.SCALE_DOWN, frozenset({"v-a"}), "alice", "ok")
    decision = evaluate(_ladder(), [_verdict("v-a")], NOW, approvals=[approval])
    assert decision.target is Level.SCALE_DOWN and decision.awaiting_approval is None
    [awaiting] = [
        c for c in build_conditions(Outcome(Level.SCALE_DOWN, decision)) if c.type == "AwaitingApproval"
    ]
    assert not awaiting.status and awaiting.message == ""
