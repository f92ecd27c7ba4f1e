"""EnforcementApprovals on a real API server: who may approve, and what an approval unlocks.

The approval policy (crds/enforcementapprovals-policy.yaml, installed with the CRDs) binds
spec.approver to the identity creating the approval; the chart's approver ClusterRole lets
approvers create and read approvals and nothing else; the operator applies a level that
needs approval only while an approval by someone other than the verdicts' issuer covers
every verdict calling for it.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubehelpers import GROUP, VERSION, AuditLog, Kube, wait_for
from kubernetes import client, config

from tenant_enforcer.devcluster.cluster import LocalCluster
from tenant_enforcer.devcluster.helm import helm_template

CHART = Path(__file__).resolve().parents[2] / "charts" / "tenant-enforcer"
APPROVALS = "enforcementapprovals"
LEVEL = "tenant-enforcer.io/level"
REFUSED = "spec.approver must be the identity creating the approval (you are {})"


@pytest.fixture(scope="module")
def approver_role(cluster: LocalCluster, crds: None) -> Iterator[str]:
    """The chart's approver ClusterRole, as `helm template` renders it, applied to the cluster."""
    docs = [d for d in yaml.safe_load_all(helm_template(CHART, "te-approvals", "te-approvals")) if d]
    [role] = [d for d in docs if d["kind"] == "ClusterRole" and d["metadata"]["name"].endswith("-approver")]
    rbac = client.RbacAuthorizationV1Api(config.new_client_from_config(config_file=str(cluster.kubeconfig)))
    rbac.create_cluster_role(role)
    yield role["metadata"]["name"]
    rbac.delete_cluster_role(role["metadata"]["name"])


@pytest.fixture
def as_approver(cluster: LocalCluster, kube: Kube, approver_role: str) -> Iterator[Callable[[str], Kube]]:
    """`as_approver(user)`: a client authenticated as `user` (no group but system:authenticated),
    bound to the approver role only."""
    rbac = client.RbacAuthorizationV1Api(kube.api)
    bindings: list[str] = []

    def login(user: str) -> Kube:
        binding = f"approver-{user}"
        rbac.create_cluster_role_binding(
            {
                "metadata": {"name": binding},
                "roleRef": {
                    "apiGroup": "rbac.authorization.k8s.io",
                    "kind": "ClusterRole",
                    "name": approver_role,
                },
                "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": user}],
            }
        )
        bindings.append(binding)
        kubeconfig = cluster.kubeconfig_for(user, groups=())
        return Kube(config.new_client_from_config(config_file=str(kubeconfig)), cluster)

    yield login
    for binding in bindings:
        rbac.delete_cluster_role_binding(binding)


def approval(
    name: str, tenant: str, approver: str, verdicts: list[str], level: str = "ScaleDown"
) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "EnforcementApproval",
        "metadata": {"name": name},
        "spec": {
            "tenant": tenant,
            "level": level,
            "verdicts": verdicts,
            "approver": approver,
            "reason": "reviewed the evidence",
        },
    }


def refusal(call: Callable[[], Any]) -> tuple[int, str]:
    with pytest.raises(client.ApiException) as raised:
        call()
    return raised.value.status, str(json.loads(raised.value.body)["message"])


# --- the approval policy and the approver role ----------------------------------------------


def test_approval_in_someone_elses_name_is_refused(
    kube: Kube, as_approver: Callable[[str], Kube], unique: str
) -> None:
    alice = as_approver(f"alice-{unique}")
    forged = approval(f"forged-{unique}", f"t-{unique}", f"bob-{unique}", ["v-1"])
    status, message = refusal(lambda: alice.create(APPROVALS, forged))
    assert status == 403, message
    assert REFUSED.format(f"alice-{unique}") in message, message

    # Not even a cluster administrator may approve in someone else's name.
    status, message = refusal(lambda: kube.create(APPROVALS, forged))
    assert status == 403 and REFUSED.format("admin") in message, message

    own = approval(f"own-{unique}", f"t-{unique}", f"alice-{unique}", ["v-1"])
    created = alice.create(APPROVALS, own)
    try:
        assert created["spec"]["approver"] == f"alice-{unique}"
        assert alice.get(APPROVALS, f"own-{unique}")["spec"] == own["spec"]
    finally:
        kube.custom.delete_cluster_custom_object(GROUP, VERSION, APPROVALS, f"own-{unique}")


def test_approver_role_creates_and_reads_approvals_and_nothing_else(
    kube: Kube, as_approver: Callable[[str], Kube], unique: str
) -> None:
    user = f"carol-{unique}"
    carol = as_approver(user)
    carol.create(APPROVALS, approval(f"carol-{unique}", f"t-{unique}", user, ["v-1"]))
    try:
        listed = carol.custom.list_cluster_custom_object(GROUP, VERSION, APPROVALS)
        assert f"carol-{unique}" in {item["metadata"]["name"] for item in listed["items"]}
        denied: list[tuple[str, Callable[[], Any]]] = [
            ("delete an approval", lambda: carol.custom.delete_cluster_custom_object(
                GROUP, VERSION, APPROVALS, f"carol-{unique}")),
            ("label an approval", lambda: carol.custom.patch_cluster_custom_object(
                GROUP, VERSION, APPROVALS, f"carol-{unique}", {"metadata": {"labels": {"a": "b"}}})),
            ("list TenantPolicies", lambda: carol.custom.list_cluster_custom_object(
                GROUP, VERSION, "tenantpolicies")),
            ("create a TenantPolicy", lambda: carol.policy(
                f"carol-{unique}", f"t-{unique}", "default", ["x"])),
            ("create a verdict", lambda: carol.verdict(f"carol-{unique}", f"t-{unique}")),
        ]  # fmt: skip
        for what, call in denied:
            status, message = refusal(call)
            assert status == 403, f"{what}: {message}"
    finally:
        kube.custom.delete_cluster_custom_object(GROUP, VERSION, APPROVALS, f"carol-{unique}")


# --- the operator ------------------------------------------------------------------------------


def test_approval_by_someone_other_than_the_issuer_unlocks_the_level(
    kube: Kube, operator: AuditLog, as_approver: Callable[[str], Kube], unique: str
) -> None:
    tenant, ns = f"ap-{unique}", f"ap-{unique}-web"
    issuer, approver = f"classifier-{unique}", f"alice-{unique}"
    kube.namespace(ns)
    rule = {"name": "fraud", "categories": ["fraud"], "level": "ScaleDown", "noticePeriod": "0s"}
    kube.ladder(f"ladder-{unique}", [rule], approvalRequired=["ScaleDown"])
    kube.policy(tenant, tenant, f"ladder-{unique}", [ns])
    v1, v2 = f"v1-{unique}", f"v2-{unique}"
    kube.verdict(v1, tenant, category="fraud", severity="high", issuer=issuer)

    def status() -> dict[str, Any]:
        return kube.status("tenantpolicies", tenant)

    def awaiting(*verdicts: str) -> dict[str, Any]:
        s = status()
        if not (s.get("level") == "Notice" and s.get("awaitingApproval") == "ScaleDown"):
            return {}
        return s if set(s.get("activeVerdicts") or ()) == set(verdicts) else {}

    def scaled_down() -> bool:
        s = status()
        return s.get("level") == "ScaleDown" and not s.get("awaitingApproval")

    held = wait_for("Notice, awaiting approval of ScaleDown", lambda: awaiting(v1))
    assert held["targetLevel"] == "Notice"
    condition = kube.condition("tenantpolicies", tenant, "AwaitingApproval")
    assert condition and condition["status"] == "True" and condition["reason"] == "ApprovalRequired"
    assert (
        f"an EnforcementApproval with level ScaleDown (or higher) listing verdicts {v1}"
        in condition["message"]
    )
    # The namespace may reach the operator's view after the policy: its label follows then.
    wait_for("namespace labelled Notice", lambda: kube.ns_labels(ns).get(LEVEL) == "Notice")

    # The verdict's own issuer approves: the API server accepts it (it is who it says), the
    # operator does not count it.
    as_approver(issuer).create(APPROVALS, approval(f"by-issuer-{unique}", tenant, issuer, [v1]))
    time.sleep(1)
    assert awaiting(v1), status()

    # Someone else approves: ScaleDown applies.
    alice = as_approver(approver)
    alice.create(APPROVALS, approval(f"a1-{unique}", tenant, approver, [v1]))
    wait_for("ScaleDown once approved", scaled_down)
    assert kube.ns_labels(ns)[LEVEL] == "ScaleDown"
    condition = kube.condition("tenantpolicies", tenant, "AwaitingApproval")
    assert condition and condition["status"] == "False" and condition["reason"] == "NotRequired"

    # Withdrawn: back to Notice, although the issuer's approval of the same verdict remains.
    kube.custom.delete_cluster_custom_object(GROUP, VERSION, APPROVALS, f"a1-{unique}")
    wait_for("Notice again once the approval is deleted", lambda: awaiting(v1))
    assert kube.ns_labels(ns)[LEVEL] == "Notice"

    # Approved again, then a new verdict that no approval covers: Notice until it is approved too.
    alice.create(APPROVALS, approval(f"a2-{unique}", tenant, approver, [v1]))
    wait_for("ScaleDown approved again", scaled_down)
    kube.verdict(v2, tenant, category="fraud", severity="high", issuer=issuer)
    wait_for("Notice: the new verdict is not approved", lambda: awaiting(v1, v2))
    condition = kube.condition("tenantpolicies", tenant, "AwaitingApproval")
    assert condition and f"listing verdicts {v1}, {v2}" in condition["message"]
    alice.create(APPROVALS, approval(f"a3-{unique}", tenant, approver, [v1, v2]))
    wait_for("ScaleDown with both verdicts approved", scaled_down)
    assert kube.ns_labels(ns)[LEVEL] == "ScaleDown"
