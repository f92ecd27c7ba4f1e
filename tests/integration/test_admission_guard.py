"""The chart's admission guard (templates/admission-guard.yaml) on a real API server.

The guard is rendered with the pinned helm and applied to a control plane of its own: it
applies to everyone but the operator identity, so on the shared cluster it would also refuse
other tests' admin client in their labelled namespaces.  Three identities act here: a tenant
with write rights in its namespaces only, the "operator" (the identity the guard exempts,
set with `admissionGuard.operatorUsername`) and the cluster admin (`system:masters`, which
admission policies apply to as well).  Object names and marks come from the operator's code.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubehelpers import wait_for
from kubernetes import client, config

from tenant_enforcer.devcluster.cluster import LocalCluster, running_cluster
from tenant_enforcer.devcluster.helm import helm_template
from tenant_enforcer.model.ladder import FirewallSettings
from tenant_enforcer.model.levels import Level
from tenant_enforcer.targets.base import ENFORCED_LABEL, LEVEL_ANNOTATION, LEVEL_LABEL, MANAGED_BY
from tenant_enforcer.targets.k8s.firewall import FIREWALL_NAME, firewall_spec
from tenant_enforcer.targets.k8s.marked import SET_ANNOTATION, mark_patch
from tenant_enforcer.targets.k8s.quota import QUOTA_NAME

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "tenant-enforcer"
GUARD = "templates/admission-guard.yaml"
OPERATOR = "guard-test-operator"
TENANT = "guard-test-tenant"
APPEAL = "To appeal write to abuse-appeals@example.test (no commas: helm --set)."
MERGE = "application/merge-patch+json"
RBAC = "rbac.authorization.k8s.io"
TENANT_RULES = [
    {"apiGroups": ["apps"], "resources": ["deployments", "deployments/scale", "replicasets",
                                          "replicasets/scale", "statefulsets", "statefulsets/scale"],
     "verbs": ["*"]},
    {"apiGroups": [""], "resources": ["pods", "configmaps", "resourcequotas"], "verbs": ["*"]},
    {"apiGroups": ["networking.k8s.io"], "resources": ["networkpolicies"], "verbs": ["*"]},
]  # fmt: skip


def render(**values: str) -> list[dict[str, Any]]:
    text = helm_template(CHART, "te", "te-system", {"admissionGuard.appeal": APPEAL, **values})
    return [d for d in yaml.safe_load_all(text) if d and d["kind"].startswith("ValidatingAdmissionPolicy")]


# --- offline: what the chart renders -----------------------------------------------------


def _conditions(policy: dict[str, Any]) -> dict[str, str]:
    return {c["name"]: c["expression"] for c in policy["spec"]["matchConditions"]}


def test_guard_is_on_by_default_and_exempts_the_chart_service_account() -> None:
    docs = render()
    policies = [d for d in docs if d["kind"] == "ValidatingAdmissionPolicy"]
    bindings = [d for d in docs if d["kind"] == "ValidatingAdmissionPolicyBinding"]
    assert len(policies) == 4
    assert sorted(b["spec"]["policyName"] for b in bindings) == sorted(
        p["metadata"]["name"] for p in policies
    )
    assert all(b["spec"]["validationActions"] == ["Deny"] for b in bindings)
    for policy in policies:
        assert policy["spec"]["failurePolicy"] == "Fail"
        assert _conditions(policy)["not-the-operator"] == (
            'request.userInfo.username != "system:serviceaccount:te-system:te-tenant-enforcer"'
        )
        assert all(APPEAL in v["messageExpression"] for v in policy["spec"]["validations"])
    named = render(**{"serviceAccount.name": "enforcer"})
    assert "system:serviceaccount:te-system:enforcer" in _conditions(named[0])["not-the-operator"]
    assert not render(**{"admissionGuard.enabled": "false"})


def test_break_glass_users_and_groups_are_exempt_only_when_listed() -> None:
    assert all(set(_conditions(p)) <= {"not-the-operator", "marked-by-the-operator", "namespace-held"}
               for p in render() if p["kind"] == "ValidatingAdmissionPolicy")  # fmt: skip
    docs = render(
        **{"admissionGuard.exemptUsers[0]": "oncall", "admissionGuard.exemptGroups[0]": "system:masters"}
    )
    for policy in (d for d in docs if d["kind"] == "ValidatingAdmissionPolicy"):
        conditions = _conditions(policy)
        assert conditions["not-an-exempt-user"] == '!(request.userInfo.username in ["oncall"])'
        assert '["system:masters"]' in conditions["not-in-an-exempt-group"]


# --- against the real API server ---------------------------------------------------------


@dataclass
class Guarded:
    cluster: LocalCluster
    admin: client.ApiClient
    operator: client.ApiClient
    tenant: client.ApiClient


def _client(cluster: LocalCluster, user: str, groups: tuple[str, ...]) -> client.ApiClient:
    return config.new_client_from_config(config_file=str(cluster.kubeconfig_for(user, groups)))


def _apply(cluster: LocalCluster, docs: list[dict[str, Any]]) -> None:
    done = subprocess.run(cluster.kubectl_cmd("apply", "-f", "-"), input=yaml.safe_dump_all(docs),
                          capture_output=True, text=True)  # fmt: skip
    assert done.returncode == 0, done.stderr


def _refusal(call: Callable[[], Any]) -> str | None:
    """The guard's message if the API server refused the call, None if it was allowed."""
    try:
        call()
    except client.ApiException as exc:
        assert exc.status == 403 and "ValidatingAdmissionPolicy" in str(exc.body), exc.body
        return str(exc.body)
    return None


@pytest.fixture(scope="module")
def guarded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Guarded]:
    with running_cluster(tmp_path_factory.mktemp("guard-cluster")) as cluster:
        admin = config.new_client_from_config(config_file=str(cluster.kubeconfig))
        rbac = client.RbacAuthorizationV1Api(admin)
        rbac.create_cluster_role({"metadata": {"name": "guard-tenant"}, "rules": TENANT_RULES})
        rbac.create_cluster_role_binding({
            "metadata": {"name": "guard-operator"},
            "roleRef": {"apiGroup": RBAC, "kind": "ClusterRole", "name": "cluster-admin"},
            "subjects": [{"kind": "User", "name": OPERATOR, "apiGroup": RBAC}],
        })  # fmt: skip
        _apply(cluster, render(**{"admissionGuard.operatorUsername": OPERATOR}))
        guarded = Guarded(cluster, admin, _client(cluster, OPERATOR, ()), _client(cluster, TENANT, ()))
        # Policies are enforced shortly after they are created: wait until a probe is refused.
        probe = _namespace(guarded, "guard-probe", "ScaleDown")
        _deployment(guarded, probe, "probe", replicas=0)

        def scale_up() -> Any:
            return client.AppsV1Api(guarded.tenant).patch_namespaced_deployment_scale(
                "probe", probe, {"spec": {"replicas": 1}}, dry_run="All", _content_type=MERGE
            )

        wait_for("the admission guard in force", lambda: _refusal(scale_up), timeout=60)
        yield guarded


def _namespace(g: Guarded, name: str, level: str | None) -> str:
    labels = {LEVEL_LABEL: level} if level else {}
    client.CoreV1Api(g.admin).create_namespace({"metadata": {"name": name, "labels": labels}})
    client.RbacAuthorizationV1Api(g.admin).create_namespaced_role_binding(name, {
        "metadata": {"name": "tenant"},
        "roleRef": {"apiGroup": RBAC, "kind": "ClusterRole", "name": "guard-tenant"},
        "subjects": [{"kind": "User", "name": TENANT, "apiGroup": RBAC}],
    })  # fmt: skip
    # RBAC takes a moment to see a new binding: wait until the tenant may write there.
    attributes = {
        "namespace": name,
        "verb": "create",
        "group": "networking.k8s.io",
        "resource": "networkpolicies",
    }
    review = {"spec": {"user": TENANT, "resourceAttributes": attributes}}
    authz = client.AuthorizationV1Api(g.admin)
    wait_for(f"tenant rights in {name}", lambda: authz.create_subject_access_review(review).status.allowed)
    return name


def _deployment(g: Guarded, namespace: str, name: str, replicas: int, held: Level | None = None) -> None:
    labels = {"app": name}
    client.AppsV1Api(g.admin).create_namespaced_deployment(namespace, {
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": labels},
            "template": {"metadata": {"labels": labels},
                         "spec": {"containers": [{"name": name, "image": "registry.example/web:1"}]}},
        },
    })  # fmt: skip
    if held is not None:  # marked the way the operator marks what it holds
        mark = mark_patch("acme", held, {SET_ANNOTATION: f'{{"replicas": {replicas}}}'})
        client.AppsV1Api(g.operator).patch_namespaced_deployment(name, namespace, mark, _content_type=MERGE)


def _owned(namespace: str, name: str, level: Level) -> dict[str, Any]:
    """Metadata of an object of the operator's own, as OwnedObjectTarget writes it."""
    return {
        "name": name,
        "namespace": namespace,
        "labels": {**MANAGED_BY, ENFORCED_LABEL: "acme"},
        "annotations": {LEVEL_ANNOTATION: level.api_name},
    }


def _deny_all(namespace: str) -> dict[str, Any]:
    return {"metadata": _owned(namespace, FIREWALL_NAME, Level.FIREWALL),
            "spec": firewall_spec(FirewallSettings())}  # fmt: skip


def _allow_all(name: str) -> dict[str, Any]:
    return {"metadata": {"name": name}, "spec": {"podSelector": {}, "ingress": [{}], "egress": [{}],
                                                 "policyTypes": ["Ingress", "Egress"]}}  # fmt: skip


def _scale(api: client.ApiClient, namespace: str, name: str, replicas: int) -> Callable[[], Any]:
    return lambda: client.AppsV1Api(api).patch_namespaced_deployment_scale(
        name, namespace, {"spec": {"replicas": replicas}}, _content_type=MERGE
    )


def _pod(owner: dict[str, Any] | None = None) -> dict[str, Any]:
    meta: dict[str, Any] = {"generateName": "bare-"}
    if owner:
        meta["ownerReferences"] = [owner]
    return {"metadata": meta, "spec": {"containers": [{"name": "c", "image": "registry.example/web:1"}]}}


def test_no_scale_up_at_scale_down(guarded: Guarded, unique: str) -> None:
    ns = _namespace(guarded, f"sd-{unique}", "ScaleDown")
    _deployment(guarded, ns, "web", replicas=0, held=Level.SCALE_DOWN)
    apps = client.AppsV1Api(guarded.tenant)

    refused = _refusal(_scale(guarded.tenant, ns, "web", 3))
    assert refused is not None
    assert f"namespace {ns} is held at level ScaleDown" in refused
    assert "0 to 3 refused" in refused and APPEAL in refused
    # Through the Deployment itself too, and for the cluster admin (not exempt by default).
    patch = {"spec": {"replicas": 2}}
    assert _refusal(lambda: apps.patch_namespaced_deployment("web", ns, patch, _content_type=MERGE))
    assert _refusal(_scale(guarded.admin, ns, "web", 1))
    assert client.AppsV1Api(guarded.admin).read_namespaced_deployment("web", ns).spec.replicas == 0

    # Other changes and scaling down are the tenant's to make.
    image = {"spec": {"template": {"metadata": {"annotations": {"restarted": unique}}}}}
    assert _refusal(lambda: apps.patch_namespaced_deployment("web", ns, image, _content_type=MERGE)) is None
    # The operator restores.
    assert _refusal(_scale(guarded.operator, ns, "web", 3)) is None
    assert _refusal(_scale(guarded.tenant, ns, "web", 1)) is None
    assert apps.read_namespaced_deployment("web", ns).spec.replicas == 1


def test_scale_down_refuses_bare_pods_but_not_controlled_ones(guarded: Guarded, unique: str) -> None:
    ns = _namespace(guarded, f"pods-{unique}", "Firewall")
    core, apps = client.CoreV1Api(guarded.tenant), client.AppsV1Api(guarded.tenant)
    refused = _refusal(lambda: core.create_namespaced_pod(ns, _pod()))
    assert refused is not None and "pods without a controller cannot be created" in refused
    assert "held at level Firewall" in refused

    # A Deployment's ReplicaSet is held through its Deployment (rollouts go on), and the
    # pods its controller creates carry a controller reference.
    _deployment(guarded, ns, "web", replicas=0)
    owner = apps.read_namespaced_deployment("web", ns)
    ref = {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web", "uid": owner.metadata.uid,
           "controller": True}  # fmt: skip
    replica_set = {
        "metadata": {"name": "web-1", "ownerReferences": [ref]},
        "spec": {"replicas": 0, "selector": {"matchLabels": {"app": "web"}},
                 "template": {"metadata": {"labels": {"app": "web"}}, "spec": _pod()["spec"]}},
    }  # fmt: skip
    apps.create_namespaced_replica_set(ns, replica_set)
    more = {"spec": {"replicas": 2}}
    assert _refusal(lambda: apps.patch_namespaced_replica_set("web-1", ns, more, _content_type=MERGE)) is None
    pod_ref = {**ref, "kind": "ReplicaSet", "name": "web-1",
               "uid": apps.read_namespaced_replica_set("web-1", ns).metadata.uid}  # fmt: skip
    assert _refusal(lambda: core.create_namespaced_pod(ns, _pod(pod_ref))) is None
    assert _refusal(lambda: client.CoreV1Api(guarded.operator).create_namespaced_pod(ns, _pod())) is None


def test_no_network_policies_at_firewall(guarded: Guarded, unique: str) -> None:
    ns = _namespace(guarded, f"fw-{unique}", "Firewall")
    tenant, operator = client.NetworkingV1Api(guarded.tenant), client.NetworkingV1Api(guarded.operator)
    refused = _refusal(lambda: tenant.create_namespaced_network_policy(ns, _allow_all("allow-all")))
    assert refused is not None
    assert f"namespace {ns} is held at level Firewall" in refused and APPEAL in refused
    assert "NetworkPolicies cannot be created or changed" in refused

    # The operator may (it creates its deny-all, and gives set-aside policies back).
    assert _refusal(lambda: operator.create_namespaced_network_policy(ns, _allow_all("given-back"))) is None
    label = {"metadata": {"labels": {"team": "web"}}}
    assert _refusal(
        lambda: tenant.patch_namespaced_network_policy("given-back", ns, label, _content_type=MERGE)
    )
    # Deleting one only takes allows away.
    assert _refusal(lambda: tenant.delete_namespaced_network_policy("given-back", ns)) is None

    # Below Firewall, NetworkPolicies are the tenant's.
    below = _namespace(guarded, f"fw-sd-{unique}", "ScaleDown")
    assert _refusal(lambda: tenant.create_namespaced_network_policy(below, _allow_all("allow-all"))) is None


def test_marks_on_held_objects_stay(guarded: Guarded, unique: str) -> None:
    ns = _namespace(guarded, f"marks-{unique}", "Notice")
    _deployment(guarded, ns, "web", replicas=0, held=Level.SCALE_DOWN)
    apps = client.AppsV1Api(guarded.tenant)

    def patch(body: dict[str, Any]) -> Callable[[], Any]:
        return lambda: apps.patch_namespaced_deployment("web", ns, body, _content_type=MERGE)

    refused = _refusal(patch({"metadata": {"labels": {ENFORCED_LABEL: None}}}))
    assert refused is not None
    assert f"deployments web in namespace {ns} (held at level Notice) is held by tenant-enforcer" in refused
    assert APPEAL in refused
    assert _refusal(patch({"metadata": {"labels": {ENFORCED_LABEL: "someone-else"}}}))
    assert _refusal(patch({"metadata": {"annotations": {LEVEL_ANNOTATION: None}}}))
    assert _refusal(patch({"metadata": {"annotations": {SET_ANNOTATION: '{"replicas": 5}'}}}))
    # A full replace without the marks (a GitOps tool re-applying its manifest) too.
    current = apps.read_namespaced_deployment("web", ns)
    current.metadata.labels = {"app": "web"}
    assert _refusal(lambda: apps.replace_namespaced_deployment("web", ns, current))

    # Anything else, and deleting a held object of the tenant's own, stays allowed.
    assert _refusal(patch({"metadata": {"labels": {"team": "web"}}})) is None
    # The operator unmarks on restore.
    unmark = {"metadata": {"labels": {ENFORCED_LABEL: None}, "annotations": {LEVEL_ANNOTATION: None}}}
    operator = client.AppsV1Api(guarded.operator)
    assert (
        _refusal(lambda: operator.patch_namespaced_deployment("web", ns, unmark, _content_type=MERGE)) is None
    )
    _deployment(guarded, ns, "api", replicas=0, held=Level.SCALE_DOWN)
    assert _refusal(lambda: apps.delete_namespaced_deployment("api", ns)) is None


def test_operator_objects_stay(guarded: Guarded, unique: str) -> None:
    ns = _namespace(guarded, f"own-{unique}", "Firewall")
    net_op, core_op = client.NetworkingV1Api(guarded.operator), client.CoreV1Api(guarded.operator)
    net_op.create_namespaced_network_policy(ns, _deny_all(ns))
    core_op.create_namespaced_resource_quota(
        ns, {"metadata": _owned(ns, QUOTA_NAME, Level.SCALE_DOWN), "spec": {"hard": {"pods": "0"}}}
    )
    net, core = client.NetworkingV1Api(guarded.tenant), client.CoreV1Api(guarded.tenant)

    refused = _refusal(lambda: net.delete_namespaced_network_policy(FIREWALL_NAME, ns))
    assert refused is not None
    assert f"networkpolicies {FIREWALL_NAME} in namespace {ns}" in refused
    assert "belongs to tenant-enforcer and cannot be deleted" in refused and APPEAL in refused
    assert _refusal(
        lambda: client.NetworkingV1Api(guarded.admin).delete_namespaced_network_policy(FIREWALL_NAME, ns)
    )
    open_up = {"spec": {"ingress": [{}]}}
    assert _refusal(
        lambda: net.patch_namespaced_network_policy(FIREWALL_NAME, ns, open_up, _content_type=MERGE)
    )
    refused = _refusal(lambda: core.delete_namespaced_resource_quota(QUOTA_NAME, ns))
    assert refused is not None and "cannot be deleted" in refused
    lift = {"spec": {"hard": {"pods": "10"}}}
    refused = _refusal(
        lambda: core.patch_namespaced_resource_quota(QUOTA_NAME, ns, lift, _content_type=MERGE)
    )
    assert refused is not None and "cannot be changed" in refused
    assert core.read_namespaced_resource_quota(QUOTA_NAME, ns).spec.hard == {"pods": "0"}

    # The operator removes its own objects when it lifts the level.
    assert _refusal(lambda: core_op.delete_namespaced_resource_quota(QUOTA_NAME, ns)) is None
    assert _refusal(lambda: net_op.delete_namespaced_network_policy(FIREWALL_NAME, ns)) is None


def test_a_namespace_being_deleted_can_be_emptied(guarded: Guarded, unique: str) -> None:
    """The namespace controller deletes everything in a deleted namespace, ours included
    (this control plane runs no controllers: the namespace stays Terminating)."""
    ns = _namespace(guarded, f"gone-{unique}", "ScaleDown")
    core_op = client.CoreV1Api(guarded.operator)
    core_op.create_namespaced_resource_quota(
        ns, {"metadata": _owned(ns, QUOTA_NAME, Level.SCALE_DOWN), "spec": {"hard": {"pods": "0"}}}
    )
    core = client.CoreV1Api(guarded.tenant)
    assert _refusal(lambda: core.delete_namespaced_resource_quota(QUOTA_NAME, ns))
    client.CoreV1Api(guarded.admin).delete_namespace(ns)
    assert _refusal(lambda: core.delete_namespaced_resource_quota(QUOTA_NAME, ns)) is None


def test_namespace_level_label_stays(guarded: Guarded, unique: str) -> None:
    ns = _namespace(guarded, f"label-{unique}", "Firewall")
    admin, operator = client.CoreV1Api(guarded.admin), client.CoreV1Api(guarded.operator)

    def label(api: client.CoreV1Api, value: str | None) -> Callable[[], Any]:
        body = {"metadata": {"labels": {LEVEL_LABEL: value}}}
        return lambda: api.patch_namespace(ns, body, _content_type=MERGE)

    refused = _refusal(label(admin, None))
    assert refused is not None
    assert f"namespace {ns} is held at level Firewall" in refused and APPEAL in refused
    assert _refusal(label(admin, "Notice"))
    other = {"metadata": {"labels": {"team": "web"}}}
    assert _refusal(lambda: admin.patch_namespace(ns, other, _content_type=MERGE)) is None
    assert _refusal(label(operator, "ScaleDown")) is None
    assert _refusal(label(operator, None)) is None
    # Once the operator has lifted the level, the namespace is no longer guarded.
    assert _refusal(label(admin, "Notice")) is None


def test_unlabelled_namespace_is_left_alone(guarded: Guarded, unique: str) -> None:
    ns = _namespace(guarded, f"free-{unique}", None)
    _deployment(guarded, ns, "web", replicas=0, held=Level.SCALE_DOWN)
    apps, net = client.AppsV1Api(guarded.tenant), client.NetworkingV1Api(guarded.tenant)
    core = client.CoreV1Api(guarded.tenant)
    client.NetworkingV1Api(guarded.operator).create_namespaced_network_policy(ns, _deny_all(ns))

    assert _refusal(_scale(guarded.tenant, ns, "web", 3)) is None
    unmark = {"metadata": {"labels": {ENFORCED_LABEL: None}}}
    assert _refusal(lambda: apps.patch_namespaced_deployment("web", ns, unmark, _content_type=MERGE)) is None
    assert _refusal(lambda: net.create_namespaced_network_policy(ns, _allow_all("allow-all"))) is None
    assert _refusal(lambda: net.delete_namespaced_network_policy(FIREWALL_NAME, ns)) is None
    assert _refusal(lambda: core.create_namespaced_pod(ns, _pod())) is None
