"""ScaleDown on a real control plane with controllers and KWOK nodes (pods really exist)."""

from __future__ import annotations

import json
import subprocess
import threading
import time
from typing import Any

import yaml
from kubehelpers import OPERATOR_NAMESPACE, AuditLog, Kube, wait_for

# Fields the API server or the built-in controllers manage: not ours to restore.
SERVER_ANNOTATIONS = {"deployment.kubernetes.io/revision", "deprecated.daemonset.template.generation"}
LEVEL_ANNOTATION = "tenant-enforcer.io/level"

WORKLOADS = """
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, labels: {app: web, team: a}, annotations: {owner: alice}}
spec:
  replicas: 3
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec: {containers: [{name: c, image: nginx}]}
---
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: db, labels: {app: db}}
spec:
  replicas: 2
  serviceName: db
  selector: {matchLabels: {app: db}}
  template:
    metadata: {labels: {app: db}}
    spec: {containers: [{name: c, image: postgres}]}
---
apiVersion: apps/v1
kind: ReplicaSet
metadata: {name: loose, labels: {app: loose}}
spec:
  replicas: 1
  selector: {matchLabels: {app: loose}}
  template:
    metadata: {labels: {app: loose}}
    spec: {containers: [{name: c, image: busybox}]}
---
apiVersion: apps/v1
kind: DaemonSet
metadata: {name: agent, labels: {app: agent}}
spec:
  selector: {matchLabels: {app: agent}}
  template:
    metadata: {labels: {app: agent}}
    spec:
      nodeSelector: {type: kwok}
      containers: [{name: c, image: fluentbit}]
---
apiVersion: batch/v1
kind: CronJob
metadata: {name: nightly, annotations: {purpose: report}}
spec:
  schedule: "0 3 * * *"
  jobTemplate:
    spec:
      template:
        spec: {restartPolicy: Never, containers: [{name: c, image: busybox}]}
---
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata: {name: web}
spec:
  scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: web}
  minReplicas: 2
  maxReplicas: 5
  metrics: [{type: Resource, resource: {name: cpu, target: {type: Utilization, averageUtilization: 80}}}]
"""
KINDS = [
    "deployment/web",
    "statefulset/db",
    "replicaset/loose",
    "daemonset/agent",
    "cronjob/nightly",
    "horizontalpodautoscaler/web",
]


def kubectl(kube: Kube, *args: str, stdin: str | None = None) -> str:
    out = subprocess.run(kube.cluster.kubectl_cmd(*args), input=stdin, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    return out.stdout


def clean(obj: dict[str, Any]) -> dict[str, Any]:
    """What we promise to restore: spec, labels and annotations (minus server-managed ones)."""
    meta = obj["metadata"]
    annotations = {k: v for k, v in (meta.get("annotations") or {}).items() if k not in SERVER_ANNOTATIONS}
    return {"spec": obj["spec"], "labels": meta.get("labels") or {}, "annotations": annotations}


def snapshot(kube: Kube, namespace: str) -> dict[str, dict[str, Any]]:
    return {k: clean(json.loads(kubectl(kube, "get", "-n", namespace, k, "-o", "json"))) for k in KINDS}


def running_pods(kube: Kube, namespace: str) -> int:
    pods = kube.core.list_namespaced_pod(namespace).items
    return sum(
        1 for p in pods if p.status.phase in ("Running", "Pending") and not p.metadata.deletion_timestamp
    )


def scale_ladder(kube: Kube, unique: str, **spec: Any) -> str:
    name = f"scale-{unique}"
    kube.ladder(
        name, [{"name": "fraud", "categories": ["fraud"], "level": "ScaleDown", "noticePeriod": "0s"}], **spec
    )
    return name


def tenant_with_workloads(kube: Kube, unique: str, ladder: str) -> tuple[str, str]:
    tenant = f"s-{unique}"
    ns = f"{tenant}-app"
    kube.namespace(ns)
    kubectl(kube, "apply", "-n", ns, "-f", "-", stdin=WORKLOADS)
    kube.policy(tenant, tenant, ladder, [ns])
    wait_for("pods running", lambda: running_pods(kube, ns) >= 3 + 2 + 1 + 2, timeout=60)
    return tenant, ns


def level(kube: Kube, tenant: str) -> str | None:
    return kube.status("tenantpolicies", tenant).get("level")


def test_scale_down_holds_every_kind_and_the_lift_restores_them_exactly(
    kube_full: Kube, operator_full: AuditLog, unique: str
) -> None:
    kube = kube_full
    tenant, ns = tenant_with_workloads(kube, unique, scale_ladder(kube, unique))
    # A bystander tenant's namespace, and a protected one: nothing there may change.
    bystander = f"b-{unique}"
    kube.namespace(bystander)
    kubectl(kube, "apply", "-n", bystander, "-f", "-", stdin=WORKLOADS)
    before = snapshot(kube, ns)
    bystander_versions = kubectl(
        kube, "get", "-n", bystander, *KINDS, "-o", "jsonpath={.items[*].metadata.resourceVersion}"
    )
    system_versions = kubectl(
        kube, "get", "-n", "kube-system", "all", "-o", "jsonpath={.items[*].metadata.resourceVersion}"
    )

    kube.verdict(f"v-{unique}", tenant, category="fraud", severity="high")
    wait_for("level ScaleDown", lambda: level(kube, tenant) == "ScaleDown", timeout=60)
    held = snapshot(kube, ns)
    assert held["deployment/web"]["spec"]["replicas"] == 0
    assert held["statefulset/db"]["spec"]["replicas"] == 0
    assert held["replicaset/loose"]["spec"]["replicas"] == 0
    assert held["cronjob/nightly"]["spec"]["suspend"] is True
    assert held["daemonset/agent"]["spec"]["template"]["spec"]["nodeSelector"] == {
        "tenant-enforcer.io/unschedulable": "true"
    }
    assert (
        held["horizontalpodautoscaler/web"]["spec"]["minReplicas"],
        held["horizontalpodautoscaler/web"]["spec"]["maxReplicas"],
    ) == (1, 1)
    assert all(h["annotations"].get(LEVEL_ANNOTATION) == "ScaleDown" for h in held.values())
    quota = kube.core.read_namespaced_resource_quota("tenant-enforcer-freeze", ns)
    assert quota.spec.hard == {"pods": "0"}
    wait_for("all tenant pods gone", lambda: running_pods(kube, ns) == 0, timeout=60)
    prior = kube.core.read_namespaced_config_map(f"prior-state-{tenant}", OPERATOR_NAMESPACE).data
    assert json.loads(prior[f"Deployment.{ns}.web"])["state"] == {"replicas": 3}
    assert json.loads(prior[f"HorizontalPodAutoscaler.{ns}.web"])["state"] == {
        "minReplicas": 2,
        "maxReplicas": 5,
    }

    kube.verdict(f"clear-{unique}", tenant, category="fraud", outcome="cleared", supersedes=[f"v-{unique}"])
    wait_for("level None", lambda: level(kube, tenant) == "None", timeout=60)
    after = snapshot(kube, ns)
    for key in KINDS:
        assert after[key] == before[key], f"{key} not restored exactly"
    assert not kube.core.list_namespaced_resource_quota(ns).items
    assert not [
        c
        for c in kube.core.list_namespaced_config_map(OPERATOR_NAMESPACE).items
        if c.metadata.name == f"prior-state-{tenant}"
    ]
    wait_for("pods back", lambda: running_pods(kube, ns) >= 3 + 2 + 1 + 2, timeout=90)
    assert (
        kubectl(
            kube,
            "get",
            "-n",
            bystander,
            *KINDS,
            "-o",
            "jsonpath={.items[*].metadata.resourceVersion}",
        )
        == bystander_versions
    )
    assert (
        kubectl(
            kube, "get", "-n", "kube-system", "all", "-o", "jsonpath={.items[*].metadata.resourceVersion}"
        )
        == system_versions
    )


def test_pods_stay_at_zero_while_a_gitops_tool_keeps_reverting_replicas(
    kube_full: Kube, operator_full: AuditLog, unique: str
) -> None:
    kube = kube_full
    tenant, ns = tenant_with_workloads(kube, unique, scale_ladder(kube, unique))
    kube.verdict(f"v-{unique}", tenant, category="fraud", severity="high")
    wait_for("level ScaleDown", lambda: level(kube, tenant) == "ScaleDown", timeout=60)
    wait_for("all tenant pods gone", lambda: running_pods(kube, ns) == 0, timeout=60)

    stop = threading.Event()
    reverts = 0

    def gitops() -> None:
        nonlocal reverts
        while not stop.wait(1.0):
            kube.custom  # noqa: B018  (keep the client warm)
            subprocess.run(
                kube.cluster.kubectl_cmd("scale", "-n", ns, "deployment/web", "--replicas=3"),
                capture_output=True,
            )
            reverts += 1

    before = len(operator.writes()) if (operator := operator_full) else 0
    reverter = threading.Thread(target=gitops, daemon=True)
    reverter.start()
    seen_pods = 0
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        seen_pods = max(seen_pods, running_pods(kube, ns))
        time.sleep(0.5)
    stop.set()
    reverter.join(5)
    writes = [w for w in operator_full.writes()[before:] if f" {ns}/" in w or w.endswith(f" /{ns}")]
    scale_writes = [w for w in writes if "deployments/scale" in w]
    print(
        f"\nreverts by the GitOps stand-in: {reverts}; operator writes to {ns}: {len(writes)} "
        f"(scale: {len(scale_writes)}); tenant pods seen: {seen_pods}"
    )
    assert reverts >= 20
    assert seen_pods == 0, "the quota must keep pods from starting whatever replicas says"
    # Re-asserting stops after a few attempts within the window: bounded, not one per revert.
    assert 1 <= len(scale_writes) <= 3, scale_writes
    stalled = wait_for(
        "Stalled ExternallyReverted", lambda: kube.condition("tenantpolicies", tenant, "Stalled"), timeout=30
    )
    assert stalled["reason"] == "ExternallyReverted" and "web" in stalled["message"]


def test_converged_scale_down_reconciles_without_writes(kube: Kube, operator: AuditLog, unique: str) -> None:
    tenant, ns = f"i-{unique}", f"i-{unique}-app"
    kube.namespace(ns)
    deployments = [
        yaml.safe_load(WORKLOADS.split("---")[0].replace("name: web", f"name: web{i}")) for i in range(3)
    ]
    kubectl(kube, "apply", "-n", ns, "-f", "-", stdin=yaml.safe_dump_all(deployments))
    kube.policy(tenant, tenant, scale_ladder(kube, unique), [ns])
    kube.verdict(f"v-{unique}", tenant, category="fraud", severity="high")
    wait_for("level ScaleDown", lambda: level(kube, tenant) == "ScaleDown", timeout=60)
    time.sleep(2)
    before = operator.writes()
    kube.custom.patch_cluster_custom_object(
        "tenant-enforcer.io",
        "v1alpha1",
        "tenantpolicies",
        tenant,
        {"metadata": {"annotations": {"test/poke": "1"}}},
    )
    time.sleep(3)
    new = [w for w in operator.writes()[len(before) :] if unique in w]
    assert new == [], f"a converged reconcile wrote: {new}"


def test_dry_run_scale_down_writes_nothing_to_tenant_objects(
    kube: Kube, operator: AuditLog, unique: str
) -> None:
    tenant, ns = f"d-{unique}", f"d-{unique}-app"
    kube.namespace(ns)
    kubectl(kube, "apply", "-n", ns, "-f", "-", stdin=WORKLOADS.split("---")[0])
    kube.policy(tenant, tenant, scale_ladder(kube, unique, mode="DryRun"), [ns])
    before = len(operator.writes())
    kube.verdict(f"v-{unique}", tenant, category="fraud", severity="high")
    dry = wait_for(
        "DryRun plan",
        lambda: (
            (c := kube.condition("tenantpolicies", tenant, "DryRun")) and "Deployment" in c["message"] and c
        ),
    )
    assert f"enforce ScaleDown on Deployment {ns}/web" in dry["message"]
    assert f"enforce ScaleDown on ResourceQuota {ns}/tenant-enforcer-freeze" in dry["message"]
    time.sleep(2)
    writes = operator.writes()[before:]
    assert not [w for w in writes if f" {ns}/" in w or "configmaps" in w], writes
    assert kube.status("tenantpolicies", tenant)["level"] == "None"
    assert json.loads(kubectl(kube, "get", "-n", ns, "deployment/web", "-o", "json"))["spec"]["replicas"] == 3
