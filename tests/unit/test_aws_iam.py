"""The IAM policy under docs/ allows every AWS action the targets declare, and nothing else.

Each AWS target (a subclass of `AwsTarget`) lists the IAM actions it calls in `iam`;
tests/integration/test_aws_scaledown.py records the calls the code really makes and checks
them against these declarations.  The role the operator assumes per tenant needs this
policy; sts:AssumeRole belongs to the operator's own identity and is not part of it.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from tenant_enforcer.targets.aws.base import AwsTarget
from tenant_enforcer.targets.registry import load_builtin_targets

POLICY = Path(__file__).resolve().parents[2] / "docs" / "aws-iam-policy.json"
AWS_TARGETS: list[type[AwsTarget]] = [t for t in load_builtin_targets() if issubclass(t, AwsTarget)]
ACTION = re.compile(r"^[a-z0-9-]+:[A-Z][A-Za-z0-9]+$")  # service:Operation, no wildcards


def allowed(policy: dict[str, Any]) -> set[str]:
    assert policy.get("Version") == "2012-10-17"
    actions: set[str] = set()
    for statement in policy["Statement"]:
        assert statement["Effect"] == "Allow", f"{statement.get('Sid')}: only Allow statements expected"
        assert "NotAction" not in statement, f"{statement.get('Sid')}: NotAction grants too much"
        listed = statement["Action"]
        listed = [listed] if isinstance(listed, str) else listed
        for action in listed:
            assert ACTION.match(action), f"{statement.get('Sid')}: {action!r} is not one exact action"
        actions |= set(listed)
    return actions


@pytest.fixture(scope="module")
def policy_actions() -> set[str]:
    return allowed(json.loads(POLICY.read_text()))


def test_there_are_aws_targets() -> None:
    assert AWS_TARGETS, "no AwsTarget subclass is registered"


@pytest.mark.parametrize("target", AWS_TARGETS, ids=lambda t: t.__name__)
def test_every_aws_target_declares_its_iam_actions(target: type[AwsTarget]) -> None:
    assert target.iam, f"{target.__name__} declares no `iam`: list the IAM actions it calls"
    assert not target.rbac, f"{target.__name__} is an AWS target: it declares `iam`, not `rbac`"
    for action in target.iam:
        assert ACTION.match(action), f"{target.__name__}: {action!r} is not service:Operation"


@pytest.mark.parametrize("target", AWS_TARGETS, ids=lambda t: t.__name__)
def test_policy_allows_what_each_aws_target_declares(
    target: type[AwsTarget], policy_actions: set[str]
) -> None:
    missing = set(target.iam) - policy_actions
    assert not missing, f"{target.__name__} needs actions {POLICY.name} does not allow: {sorted(missing)}"


def test_policy_allows_nothing_beyond_what_the_targets_declare(policy_actions: set[str]) -> None:
    declared = {action for target in AWS_TARGETS for action in target.iam}
    assert not policy_actions - declared, (
        f"{POLICY.name} allows actions no target declares: {sorted(policy_actions - declared)}"
    )
