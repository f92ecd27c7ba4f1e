"""The Helm chart grants every permission the operator needs, and nothing else.

What the operator needs comes from two places: each registered target declares its rules
(`Target.rbac`), and the controller (kopf and the reconcile) needs the rules listed below.
The chart is rendered with the pinned helm (built once from the Go module proxy, cached), so
this needs no cluster; tests/integration/test_chart.py checks the same rules against a real
API server.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml

from tenant_enforcer.devcluster.helm import helm_template
from tenant_enforcer.targets.aws.base import AwsTarget
from tenant_enforcer.targets.base import Target
from tenant_enforcer.targets.registry import load_builtin_targets

CHART = Path(__file__).resolve().parents[2] / "charts" / "tenant-enforcer"
RELEASE, NAMESPACE = "te", "te-system"
GROUP = "tenant-enforcer.io"
KINDS = ("tenantpolicies", "moderationverdicts", "enforcementladders")  # the operator writes their status
APPROVALS = "enforcementapprovals"  # read only

# The controller's own needs, apart from any target's.
CONTROLLER_RULES: tuple[Mapping[str, Any], ...] = (
    # kopf lists and watches our four kinds into the operator's view.
    {"apiGroups": [GROUP], "resources": [*KINDS, APPROVALS], "verbs": ["get", "list", "watch"]},
    # kopf's finalizer and annotations on TenantPolicies (its only deletion handler); kopf
    # writes with merge and JSON patches, never PUT, so no `update`.
    {"apiGroups": [GROUP], "resources": ["tenantpolicies"], "verbs": ["patch"]},
    # record/writer.py: status of all three, through the status subresource.
    {"apiGroups": [GROUP], "resources": [f"{kind}/status" for kind in KINDS], "verbs": ["patch"]},
    # The namespace view (handlers.namespace_event).
    {"apiGroups": [""], "resources": ["namespaces"], "verbs": ["list", "watch"]},
    # kopf watches CRDs to notice resources appearing, changing or going.
    {
        "apiGroups": ["apiextensions.k8s.io"],
        "resources": ["customresourcedefinitions"],
        "verbs": ["list", "watch"],
    },
)
# Rules in one namespace only, by namespace. Events: every object we post them about is
# cluster-scoped, and record/events.py and kopf both post those to `default`.  Prior state:
# state/prior.py keeps one ConfigMap per tenant in the operator's own namespace.
EVENTS_NAMESPACE = "default"
NAMESPACED_RULES: dict[str, tuple[Mapping[str, Any], ...]] = {
    EVENTS_NAMESPACE: ({"apiGroups": [""], "resources": ["events"], "verbs": ["create"]},),
    NAMESPACE: (
        {"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get", "create", "patch", "delete"]},
    ),
}

KNOWN_VERBS = {"get", "list", "watch", "create", "update", "patch", "delete", "deletecollection"}
# AWS targets declare IAM actions instead (checked by tests/unit/test_aws_iam.py).
TARGETS: list[type[Target]] = [t for t in load_builtin_targets() if not issubclass(t, AwsTarget)]

Grant = tuple[str, str, str]  # (apiGroup, resource, verb)


def grants(rules: Iterable[Mapping[str, Any]]) -> set[Grant]:
    """Every (apiGroup, resource, verb) the rules allow; a rule of any other shape fails."""
    out: set[Grant] = set()
    for rule in rules:
        extra = set(rule) - {"apiGroups", "resources", "verbs"}
        assert not extra, f"rule {dict(rule)} uses {sorted(extra)}: only apiGroups/resources/verbs expected"
        for field in ("apiGroups", "resources", "verbs"):
            value = rule.get(field)
            assert isinstance(value, list) and value, f"rule {dict(rule)}: {field} must be a non-empty list"
            assert "*" not in value, f"rule {dict(rule)}: no wildcards"
        out |= {(g, r, v) for g in rule["apiGroups"] for r in rule["resources"] for v in rule["verbs"]}
    return out


def _show(missing: Iterable[Grant]) -> str:
    return "\n".join(f"  apiGroup {g!r} resource {r!r} verb {v!r}" for g, r, v in sorted(missing))


@pytest.fixture(scope="module")
def rendered() -> dict[tuple[str, str], dict[str, Any]]:
    """The chart's objects by (kind, name), rendered with default values."""
    docs = [d for d in yaml.safe_load_all(helm_template(CHART, RELEASE, NAMESPACE)) if d]
    return {(d["kind"], d["metadata"]["name"]): d for d in docs}


def _one(rendered: Mapping[tuple[str, str], dict[str, Any]], kind: str) -> dict[str, Any]:
    found = [doc for (k, _), doc in rendered.items() if k == kind]
    assert len(found) == 1, f"expected one {kind} in the chart, found {len(found)}"
    return found[0]


def _operator_role(rendered: Mapping[tuple[str, str], dict[str, Any]]) -> dict[str, Any]:
    return rendered[("ClusterRole", f"{RELEASE}-tenant-enforcer")]


def test_cluster_roles_are_the_operators_and_the_approvers(
    rendered: dict[tuple[str, str], dict[str, Any]],
) -> None:
    roles = {name for kind, name in rendered if kind == "ClusterRole"}
    assert roles == {f"{RELEASE}-tenant-enforcer", f"{RELEASE}-tenant-enforcer-approver"}


def test_approver_role_creates_and_reads_approvals_only(
    rendered: dict[tuple[str, str], dict[str, Any]],
) -> None:
    role = rendered[("ClusterRole", f"{RELEASE}-tenant-enforcer-approver")]
    assert grants(role["rules"]) == {(GROUP, APPROVALS, v) for v in ("create", "get", "list", "watch")}
    # The chart binds it to nobody: who approves is the installer's decision.
    bound = {d["roleRef"]["name"] for (k, _), d in rendered.items() if k == "ClusterRoleBinding"}
    assert role["metadata"]["name"] not in bound


def test_there_are_targets() -> None:
    assert TARGETS, "load_builtin_targets() registered no target"


@pytest.mark.parametrize("target", TARGETS, ids=lambda t: t.__name__)
def test_every_target_declares_its_rbac(target: type[Target]) -> None:
    assert target.rbac, f"{target.__name__} declares no `rbac`: list the permissions it needs"
    for verb in {v for _, _, v in grants(target.rbac)}:
        assert verb in KNOWN_VERBS, f"{target.__name__}: unknown verb {verb!r}"


@pytest.mark.parametrize("target", TARGETS, ids=lambda t: t.__name__)
def test_cluster_role_grants_what_each_target_declares(
    target: type[Target], rendered: dict[tuple[str, str], dict[str, Any]]
) -> None:
    granted = grants(_operator_role(rendered)["rules"])
    missing = grants(target.rbac) - granted
    assert not missing, (
        f"{target.__name__} needs permissions charts/tenant-enforcer/templates/clusterrole.yaml "
        f"does not grant:\n{_show(missing)}"
    )


def test_cluster_role_grants_nothing_beyond_what_is_needed(
    rendered: dict[tuple[str, str], dict[str, Any]],
) -> None:
    needed = grants(CONTROLLER_RULES)
    for target in TARGETS:
        needed |= grants(target.rbac)
    granted = grants(_operator_role(rendered)["rules"])
    assert not needed - granted, f"the ClusterRole lacks:\n{_show(needed - granted)}"
    assert not granted - needed, (
        f"the ClusterRole grants what neither the controller nor any target needs:\n{_show(granted - needed)}"
    )


def test_roles_grant_exactly_the_namespaced_needs(rendered: dict[tuple[str, str], dict[str, Any]]) -> None:
    roles = {doc["metadata"]["namespace"]: doc for (kind, _), doc in rendered.items() if kind == "Role"}
    assert set(roles) == set(NAMESPACED_RULES)
    for namespace, rules in NAMESPACED_RULES.items():
        assert grants(roles[namespace]["rules"]) == grants(rules), f"the Role in {namespace}"
    bindings = {
        doc["metadata"]["namespace"]: doc for (kind, _), doc in rendered.items() if kind == "RoleBinding"
    }
    assert set(bindings) == set(NAMESPACED_RULES)
    for namespace, role in roles.items():
        assert bindings[namespace]["roleRef"] == {
            "apiGroup": "rbac.authorization.k8s.io",
            "kind": "Role",
            "name": role["metadata"]["name"],
        }


def test_bindings_name_the_chart_service_account(rendered: dict[tuple[str, str], dict[str, Any]]) -> None:
    account = _one(rendered, "ServiceAccount")
    assert account["metadata"]["namespace"] == NAMESPACE
    subject = {"kind": "ServiceAccount", "name": account["metadata"]["name"], "namespace": NAMESPACE}
    cluster_binding = _one(rendered, "ClusterRoleBinding")
    assert cluster_binding["roleRef"]["name"] == _operator_role(rendered)["metadata"]["name"]
    bindings = [doc for (kind, _), doc in rendered.items() if kind in ("ClusterRoleBinding", "RoleBinding")]
    assert cluster_binding in bindings
    for binding in bindings:
        assert binding["subjects"] == [subject], binding["metadata"]["name"]
    pod = _one(rendered, "Deployment")["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == account["metadata"]["name"]
