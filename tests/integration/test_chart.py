"""The Helm chart: it lints, its CRDs are the repository's, it applies to a real API server,
and its RBAC lets the operator do its job and nothing more.

helm is the pinned version built from the Go module proxy (`ensure_helm`, cached).
"""

from __future__ import annotations

import json
import logging
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubehelpers import OPERATOR_USER, Kube, wait_for
from kubernetes import client, config

from tenant_enforcer.controller.runner import OperatorConfig, run
from tenant_enforcer.devcluster.cluster import LocalCluster, running_cluster
from tenant_enforcer.devcluster.helm import ensure_helm, helm_template
from tenant_enforcer.targets.registry import load_builtin_targets

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "tenant-enforcer"
RBAC_KINDS = ("ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding")
GUARD_KINDS = ("ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding")
LEVEL = "tenant-enforcer.io/level"


def render(release: str, namespace: str, **values: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(helm_template(CHART, release, namespace, values)) if d]


def of_kind(docs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [d for d in docs if d["kind"] == kind]


def kubectl(cluster: LocalCluster, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cluster.kubectl_cmd(*args), input=stdin, capture_output=True, text=True)


def apply(cluster: LocalCluster, docs: list[dict[str, Any]], *flags: str) -> None:
    done = kubectl(cluster, "apply", *flags, "-f", "-", stdin=yaml.safe_dump_all(docs))
    assert done.returncode == 0, done.stderr


# --- offline: the chart itself -----------------------------------------------------------


def test_chart_crds_are_the_repository_crds_byte_for_byte() -> None:
    source = {p.name: p.read_bytes() for p in (ROOT / "crds").glob("*.yaml")}
    copies = {p.name: p.read_bytes() for p in (CHART / "crds").glob("*.yaml")}
    assert sorted(copies) == sorted(source), "charts/tenant-enforcer/crds/ must hold exactly crds/*.yaml"
    stale = [name for name in source if copies[name] != source[name]]
    assert not stale, f"stale CRDs in the chart; run `cp crds/*.yaml charts/tenant-enforcer/crds/`: {stale}"


def test_helm_lint_passes() -> None:
    done = subprocess.run(
        [str(ensure_helm()), "lint", "--strict", str(CHART)], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_default_ladder_is_the_example_ladder() -> None:
    example = yaml.safe_load((ROOT / "examples" / "ladder.yaml").read_text())
    [ladder] = of_kind(render("te", "te-system"), "EnforcementLadder")
    assert ladder["metadata"]["name"] == example["metadata"]["name"]
    assert ladder["spec"] == example["spec"]
    assert not of_kind(render("te", "te-system", **{"defaultLadder.enabled": "false"}), "EnforcementLadder")


def test_values_shape_the_operator_command() -> None:
    [default] = of_kind(render("te", "te-system"), "Deployment")
    assert default["spec"]["replicas"] == 1
    assert default["spec"]["strategy"] == {"type": "Recreate"}
    [container] = default["spec"]["template"]["spec"]["containers"]
    assert container["command"] == [
        "tenant-enforcer", "run", "--namespace", "te-system",
        "--liveness", "http://0.0.0.0:8080/healthz", "--workers", "4",
        "--breaker-limit", "50", "--breaker-window", "10m",
    ]  # fmt: skip
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "health"}
    assert container["ports"][0]["containerPort"] == 8080
    assert container["image"] == "tenant-enforcer:0.1.0"
    pod = default["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True

    tuned_values = {"dryRun": "true", "workers": "8", "port": "9090"}
    tuned_values |= {"breaker.limit": "0", "breaker.window": "1h"}
    [tuned] = of_kind(render("te", "ops", **tuned_values), "Deployment")
    [container] = tuned["spec"]["template"]["spec"]["containers"]
    assert container["command"][2:] == [
        "--namespace", "ops", "--liveness", "http://0.0.0.0:9090/healthz", "--workers", "8",
        "--breaker-limit", "0", "--breaker-window", "1h", "--dry-run",
    ]  # fmt: skip


def test_evidence_volume_is_where_the_operator_writes_evidence() -> None:
    docs = render("te", "te-system")
    pod = of_kind(docs, "Deployment")[0]["spec"]["template"]["spec"]
    [mount] = [m for m in pod["containers"][0]["volumeMounts"] if m["name"] == "evidence"]
    assert Path(mount["mountPath"]) == OperatorConfig().evidence_dir
    [volume] = [v for v in pod["volumes"] if v["name"] == "evidence"]
    [claim] = of_kind(docs, "PersistentVolumeClaim")
    assert volume["persistentVolumeClaim"]["claimName"] == claim["metadata"]["name"]
    assert claim["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
    trial = render("te", "te-system", **{"evidence.persistence.enabled": "false"})
    assert not of_kind(trial, "PersistentVolumeClaim")


def test_chart_refuses_a_second_replica() -> None:
    with pytest.raises(subprocess.CalledProcessError) as refused:
        render("te", "te-system", replicas="2")
    assert "replicas must be 0 or 1" in refused.value.stderr


# --- against the real API server ---------------------------------------------------------


@pytest.fixture
def release(cluster: LocalCluster, crds: None, unique: str) -> Iterator[tuple[str, str]]:
    """A release name and its (new) namespace; cluster-scoped RBAC objects are removed after."""
    name, namespace = f"te-{unique}", f"te-system-{unique}"
    created = kubectl(cluster, "create", "namespace", namespace)
    assert created.returncode == 0, created.stderr
    yield name, namespace
    for kind in ("clusterrolebinding", "clusterrole"):
        kubectl(cluster, "delete", kind, f"{name}-tenant-enforcer", "--ignore-not-found")
    kubectl(cluster, "delete", "clusterrole", f"{name}-tenant-enforcer-approver", "--ignore-not-found")
    kubectl(cluster, "delete", "-n", "default", "rolebinding,role", f"{name}-tenant-enforcer-events",
            "--ignore-not-found")  # fmt: skip


def test_rendered_chart_applies_with_server_side_dry_run(
    cluster: LocalCluster, release: tuple[str, str]
) -> None:
    name, namespace = release
    docs = render(name, namespace, dryRun="true")
    assert {d["kind"] for d in docs} >= {
        *RBAC_KINDS,
        "Deployment",
        "EnforcementLadder",
        "PersistentVolumeClaim",
        *GUARD_KINDS,
    }
    done = kubectl(cluster, "apply", "--dry-run=server", "-f", "-", stdin=yaml.safe_dump_all(docs))
    assert done.returncode == 0, done.stderr
    assert "(server dry run)" in done.stdout


def can_i(cluster: LocalCluster, who: str, verb: str, resource: str, namespace: str | None = None) -> bool:
    """Ask the API server directly (a SubjectAccessReview): unlike `kubectl auth can-i` it
    needs no discovery, so it also answers for kinds whose CRD is not installed (KEDA)."""
    resource, _, subresource = resource.partition("/")
    plural, _, group = resource.partition(".")
    review = {
        "apiVersion": "authorization.k8s.io/v1",
        "kind": "SubjectAccessReview",
        "spec": {
            "user": who,
            "groups": ["system:serviceaccounts", "system:authenticated"],
            "resourceAttributes": {
                "verb": verb,
                "group": group,
                "resource": plural,
                "subresource": subresource,
                "namespace": namespace or "",
            },
        },
    }
    done = subprocess.run(
        cluster.kubectl_cmd("create", "-o", "json", "-f", "-"),
        input=json.dumps(review),
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    return bool(json.loads(done.stdout)["status"].get("allowed"))


def _declared() -> set[tuple[str, str, str]]:
    return {
        (group, resource, verb)
        for target in load_builtin_targets()
        for rule in target.rbac
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    }


def _qualified(group: str, resource: str) -> str:
    name, _, sub = resource.partition("/")
    return (f"{name}.{group}" if group else name) + (f"/{sub}" if sub else "")


def test_service_account_may_do_what_the_operator_needs_and_nothing_more(
    cluster: LocalCluster, release: tuple[str, str]
) -> None:
    name, namespace = release
    docs = render(name, namespace)
    apply(cluster, [d for d in docs if d["kind"] in RBAC_KINDS])
    [account] = of_kind(docs, "ServiceAccount")
    who = f"system:serviceaccount:{namespace}:{account['metadata']['name']}"

    allowed = [
        ("list", "tenantpolicies.tenant-enforcer.io", None),
        ("watch", "moderationverdicts.tenant-enforcer.io", None),
        ("get", "enforcementladders.tenant-enforcer.io", None),
        ("watch", "enforcementapprovals.tenant-enforcer.io", None),
        ("patch", "tenantpolicies.tenant-enforcer.io", None),
        ("patch", "tenantpolicies.tenant-enforcer.io/status", None),
        ("patch", "moderationverdicts.tenant-enforcer.io/status", None),
        ("patch", "enforcementladders.tenant-enforcer.io/status", None),
        ("watch", "namespaces", None),
        ("list", "customresourcedefinitions.apiextensions.k8s.io", None),
        ("create", "events", "default"),
        ("create", "configmaps", namespace),
        ("delete", "configmaps", namespace),
    ]
    allowed += [(verb, _qualified(group, resource), None) for group, resource, verb in sorted(_declared())]
    refused = [(v, r, ns) for v, r, ns in allowed if not can_i(cluster, who, v, r, ns)]
    assert not refused, f"{who} lacks: {refused}"

    denied = [
        ("delete", "namespaces", None),
        ("create", "namespaces", None),
        ("create", "clusterrolebindings.rbac.authorization.k8s.io", None),
        ("escalate", "clusterroles.rbac.authorization.k8s.io", None),
        ("impersonate", "serviceaccounts", None),
        ("get", "secrets", None),
        ("list", "secrets", namespace),
        ("create", "pods", None),
        ("create", "tenantpolicies.tenant-enforcer.io", None),
        ("delete", "tenantpolicies.tenant-enforcer.io", None),
        ("update", "tenantpolicies.tenant-enforcer.io", None),
        ("patch", "moderationverdicts.tenant-enforcer.io", None),
        ("create", "moderationverdicts.tenant-enforcer.io", None),
        ("patch", "enforcementladders.tenant-enforcer.io", None),
        ("create", "enforcementapprovals.tenant-enforcer.io", None),  # the operator never approves
        ("delete", "enforcementapprovals.tenant-enforcer.io", None),
        ("update", "customresourcedefinitions.apiextensions.k8s.io", None),
        ("create", "events", "kube-system"),
        ("get", "configmaps", "kube-system"),
        ("list", "configmaps", None),
        ("delete", "deployments.apps", None),
        ("*", "*", None),
    ]
    declared = {(verb, _qualified(group, resource)) for group, resource, verb in _declared()}
    denied = [(v, r, ns) for v, r, ns in denied if (v, r) not in declared]
    granted = [(v, r, ns) for v, r, ns in denied if can_i(cluster, who, v, r, ns)]
    assert not granted, f"{who} may: {granted}"


def _token_kubeconfig(cluster: LocalCluster, namespace: str, account: str, path: Path) -> Path:
    token = kubectl(cluster, "create", "token", account, "-n", namespace, "--duration=1h")
    assert token.returncode == 0, token.stderr
    admin = yaml.safe_load(cluster.kubeconfig.read_text())
    admin["users"] = [{"name": account, "user": {"token": token.stdout.strip()}}]
    admin["contexts"] = [
        {"name": "sa", "context": {"cluster": admin["clusters"][0]["name"], "user": account}}
    ]
    admin["current-context"] = "sa"
    path.write_text(yaml.safe_dump(admin))
    path.chmod(0o600)
    return path


def _audited(cluster: LocalCluster, user: str) -> list[dict[str, Any]]:
    events = [json.loads(line) for line in cluster.audit_log.read_text().splitlines()]
    return [e for e in events if e.get("stage") == "ResponseComplete" and e["user"]["username"] == user]


def _refused(cluster: LocalCluster, user: str) -> list[str]:
    """The user's writes the API server answered 403 (the audit log records writes only)."""
    return [
        f"{e['verb']} {e['objectRef'].get('resource')}/{e['objectRef'].get('subresource', '')}"
        f"{e['objectRef'].get('namespace', '')}/{e['objectRef'].get('name', '')}"
        for e in _audited(cluster, user)
        if e.get("responseStatus", {}).get("code") == 403
    ]


@pytest.fixture
def own_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    """A control plane of its own: the shared one may already run the test operator, and two
    operators on one cluster is not a supported setup (nor a meaningful test)."""
    with running_cluster(tmp_path_factory.mktemp("chart-cluster")) as running:
        running.install_crds(ROOT / "crds")
        yield running


def test_operator_works_as_the_chart_service_account(
    own_cluster: LocalCluster,
    unique: str,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The operator itself, with the chart's RBAC only: it scales a tenant down (prior state
    in its own namespace, a freeze quota, the scale subresource), gives everything back
    through the finalizer, and the API server never refuses it, with the chart's admission
    guard in force (which exempts the chart's ServiceAccount, and no one else)."""
    cluster = own_cluster
    api = config.new_client_from_config(config_file=str(cluster.kubeconfig))
    name, namespace = f"te-{unique}", f"te-system-{unique}"
    assert kubectl(cluster, "create", "namespace", namespace).returncode == 0
    docs = render(name, namespace)
    apply(cluster, [d for d in docs if d["kind"] in RBAC_KINDS + GUARD_KINDS])
    account = of_kind(docs, "ServiceAccount")[0]["metadata"]["name"]
    kubeconfig = _token_kubeconfig(cluster, namespace, account, tmp_path / "sa.kubeconfig")
    user = f"system:serviceaccount:{namespace}:{account}"

    kube = Kube(api, cluster)
    apps = client.AppsV1Api(api)
    tenant, ns = f"chart-{unique}", f"chart-{unique}-web"
    kube.namespace(ns)
    apps.create_namespaced_deployment(ns, _deployment("web", replicas=2))
    rule = {"name": "spam", "categories": ["spam"], "level": "ScaleDown", "noticePeriod": "0s"}
    kube.ladder(f"chart-{unique}", [rule])
    kube.policy(tenant, tenant, f"chart-{unique}", [ns])

    def replicas() -> int:
        return int(apps.read_namespaced_deployment("web", ns).spec.replicas)

    def exists(read: Any, *args: str) -> bool:
        try:
            read(*args)
        except client.ApiException as exc:
            if exc.status == 404:
                return False
            raise
        return True

    stop, ready = threading.Event(), threading.Event()
    crashed: list[BaseException] = []

    def operate() -> None:
        try:
            # its audit log in tmp_path: the default (on the chart's volume) is /var/lib/… on this host
            conf = OperatorConfig(
                kubeconfig=kubeconfig, namespace=namespace, workers=2, evidence_dir=tmp_path
            )
            run(conf, stop=stop, ready=ready)
        except BaseException as exc:
            crashed.append(exc)

    thread = threading.Thread(target=operate, daemon=True, name=f"operator-{unique}")
    caplog.set_level(logging.WARNING)
    thread.start()
    try:
        wait_for("operator ready (or stopped)", lambda: ready.is_set() or not thread.is_alive(), timeout=60)
        assert ready.is_set(), (
            f"the operator stopped while starting: {[getattr(e, 'body', None) or e for e in crashed]}"
        )
        kube.verdict(f"v-{unique}", tenant)
        wait_for(
            "policy at ScaleDown", lambda: kube.status("tenantpolicies", tenant).get("level") == "ScaleDown"
        )
        assert replicas() == 0
        assert kube.ns_labels(ns).get(LEVEL) == "ScaleDown"
        assert exists(kube.core.read_namespaced_resource_quota, "tenant-enforcer-freeze", ns)
        assert exists(kube.core.read_namespaced_config_map, f"prior-state-{tenant}", namespace)
        assert kube.status("moderationverdicts", f"v-{unique}").get("state") == "Active"
        # The guard holds the scale-down against everyone else, the cluster admin included.
        wait_for("the admission guard refuses a scale-up", lambda: _scale_up_refused(apps, ns))

        kube.custom.delete_cluster_custom_object("tenant-enforcer.io", "v1alpha1", "tenantpolicies", tenant)
        wait_for(
            "policy deleted through the finalizer",
            lambda: not exists(kube.custom.get_cluster_custom_object, "tenant-enforcer.io", "v1alpha1",
                               "tenantpolicies", tenant),
        )  # fmt: skip
        assert replicas() == 2
        assert LEVEL not in kube.ns_labels(ns)
        assert not exists(kube.core.read_namespaced_resource_quota, "tenant-enforcer-freeze", ns)
        assert not exists(kube.core.read_namespaced_config_map, f"prior-state-{tenant}", namespace)
    except AssertionError as exc:
        raise AssertionError(f"{exc}\nrefused by the API server: {_refused(cluster, user)}") from exc
    finally:
        stop.set()
        thread.join(30)
    assert not thread.is_alive(), "operator did not stop within 30 s"
    for plural, obj in (("moderationverdicts", f"v-{unique}"), ("enforcementladders", f"chart-{unique}")):
        kube.custom.delete_cluster_custom_object("tenant-enforcer.io", "v1alpha1", plural, obj)

    assert not _refused(cluster, user), f"the API server refused the operator: {_refused(cluster, user)}"
    complaints = [
        r.getMessage() for r in caplog.records
        if any(word in r.getMessage().lower() for word in ("forbidden", "permission", "403"))
    ]  # fmt: skip
    assert not complaints, complaints
    # When the in-process operator of test_operator.py runs too, either may do the writes.
    others = {e["objectRef"].get("name") for e in _audited(cluster, OPERATOR_USER)}
    if tenant not in others:
        writes = _audited(cluster, user)
        done = {f"{e['verb']} {e['objectRef'].get('resource')}/{e['objectRef'].get('subresource', '')}"
                for e in writes if e.get("responseStatus", {}).get("code", 500) < 300}  # fmt: skip
        expected = {
            "patch namespaces/",
            "patch tenantpolicies/status",
            "create events/",
            "create configmaps/",
            "create resourcequotas/",
            "patch deployments/scale",
        }
        assert expected <= done, done


def _scale_up_refused(apps: client.AppsV1Api, namespace: str) -> bool:
    try:
        apps.patch_namespaced_deployment_scale(
            "web", namespace, {"spec": {"replicas": 2}}, dry_run="All",
            _content_type="application/merge-patch+json",
        )  # fmt: skip
    except client.ApiException as exc:
        return exc.status == 403 and "ValidatingAdmissionPolicy" in str(exc.body)
    return False


def _deployment(name: str, replicas: int) -> dict[str, Any]:
    labels = {"app": name}
    return {
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {"containers": [{"name": name, "image": "registry.example/web:1"}]},
            },
        },
    }
