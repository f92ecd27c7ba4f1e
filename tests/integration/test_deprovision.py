"""Deprovision on a real control plane with controllers and KWOK nodes: evidence first, then
deletion verified, PVCs retained, and `tenant-enforcer restore` giving the objects back."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from kubehelpers import AuditLog, Kube, wait_for
from kubernetes import client

from tenant_enforcer.model.duration import parse_time
from tenant_enforcer.restore import restore_snapshot
from tenant_enforcer.state.evidence import DirectoryEvidenceStore

STATE_LABEL = "tenant-enforcer.io/deprovision"
SNAPSHOT = "tenant-enforcer.io/snapshot"
EVIDENCE = "tenant-enforcer.io/evidence"
DEPROVISIONED_AT = "tenant-enforcer.io/deprovisioned-at"
OMITTED = "tenant-enforcer.io/omitted-data-keys"
PRIOR_STATE = "tenant-enforcer.io/prior-state"
SET_ASIDE = "tenant-enforcer.io/set-aside-by"
HOLD = "example.com/hold"
# Set by the API server or built-in controllers: not the tenant's, not ours to restore.
SERVER_ANNOTATIONS = {"deployment.kubernetes.io/revision", "deprecated.daemonset.template.generation"}

WEB = """
apiVersion: v1
kind: ServiceAccount
metadata: {name: app, labels: {team: a}}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: reader}
rules: [{apiGroups: [""], resources: [configmaps], verbs: [get, list]}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: reader}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: reader}
subjects: [{kind: ServiceAccount, name: app}]
---
apiVersion: v1
kind: ConfigMap
metadata: {name: settings, annotations: {owner: alice}}
data: {mode: production, "on": "yes"}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: held, finalizers: [example.com/hold]}
data: {a: b}
---
apiVersion: v1
kind: Secret
metadata: {name: creds}
type: Opaque
stringData: {user: admin, password: hunter2}
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: allow-all}
spec:
  podSelector: {}
  policyTypes: [Ingress, Egress]
  ingress: [{}]
  egress: [{}]
---
apiVersion: v1
kind: Service
metadata: {name: web}
spec: {selector: {app: web}, ports: [{port: 80, targetPort: 8080}]}
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: web}
spec:
  rules:
  - host: web.example.com
    http:
      paths: [{path: /, pathType: Prefix, backend: {service: {name: web, port: {number: 80}}}}]
---
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata: {name: web}
spec: {minAvailable: 1, selector: {matchLabels: {app: web}}}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, labels: {app: web}, annotations: {owner: alice}}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec: {serviceAccountName: app, containers: [{name: c, image: nginx}]}
---
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata: {name: web}
spec:
  scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: web}
  minReplicas: 2
  maxReplicas: 5
  metrics: [{type: Resource, resource: {name: cpu, target: {type: Utilization, averageUtilization: 80}}}]
---
apiVersion: batch/v1
kind: CronJob
metadata: {name: nightly}
spec:
  schedule: "0 3 * * *"
  jobTemplate:
    spec:
      template:
        spec: {restartPolicy: Never, containers: [{name: c, image: busybox}]}
---
apiVersion: batch/v1
kind: Job
metadata: {name: once}
spec:
  template:
    spec: {restartPolicy: Never, containers: [{name: c, image: busybox}]}
---
apiVersion: v1
kind: Pod
metadata: {name: loose, labels: {app: loose}}
spec: {containers: [{name: c, image: busybox}]}
"""

DATA = """
apiVersion: v1
kind: ConfigMap
metadata: {name: db-config}
data: {max_connections: "100"}
---
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: scratch, labels: {keep: me}}
spec: {accessModes: [ReadWriteOnce], resources: {requests: {storage: 1Gi}}}
---
apiVersion: v1
kind: Service
metadata: {name: db}
spec: {clusterIP: None, selector: {app: db}, ports: [{port: 5432}]}
---
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: db}
spec:
  replicas: 1
  serviceName: db
  # Its claims would be garbage-collected with it: Deprovision must still retain them.
  persistentVolumeClaimRetentionPolicy: {whenDeleted: Delete, whenScaled: Retain}
  selector: {matchLabels: {app: db}}
  template:
    metadata: {labels: {app: db}}
    spec: {containers: [{name: c, image: postgres}]}
  volumeClaimTemplates:
  - metadata: {name: data}
    spec: {accessModes: [ReadWriteOnce], resources: {requests: {storage: 1Gi}}}
"""

WEB_OBJECTS = {
    ("ServiceAccount", "app"),
    ("Role", "reader"),
    ("RoleBinding", "reader"),
    ("ConfigMap", "settings"),
    ("ConfigMap", "held"),
    ("Secret", "creds"),
    ("NetworkPolicy", "allow-all"),
    ("Service", "web"),
    ("Ingress", "web"),
    ("PodDisruptionBudget", "web"),
    ("Deployment", "web"),
    ("HorizontalPodAutoscaler", "web"),
    ("CronJob", "nightly"),
    ("Job", "once"),
    ("Pod", "loose"),
}
DATA_OBJECTS = {
    ("ConfigMap", "db-config"),
    ("PersistentVolumeClaim", "scratch"),
    ("PersistentVolumeClaim", "data-db-0"),
    ("Service", "db"),
    ("StatefulSet", "db"),
}
RETAINED = {"PersistentVolumeClaim"}


def kubectl(kube: Kube, *args: str, stdin: str | None = None, check: bool = True) -> str:
    out = subprocess.run(kube.cluster.kubectl_cmd(*args), input=stdin, capture_output=True, text=True)
    assert out.returncode == 0 or not check, out.stderr
    return out.stdout


def get(kube: Kube, namespace: str, kind: str, name: str) -> dict[str, Any] | None:
    out = subprocess.run(
        kube.cluster.kubectl_cmd("get", "-n", namespace, f"{kind.lower()}/{name}", "-o", "json"),
        capture_output=True,
        text=True,
    )
    if out.returncode != 0:
        assert "NotFound" in out.stderr, out.stderr
        return None
    result: dict[str, Any] = json.loads(out.stdout)
    return result


def comparable(obj: dict[str, Any]) -> dict[str, Any]:
    """What we promise to give back: everything but status and what the server generates."""
    meta = obj["metadata"]
    body = {k: v for k, v in obj.items() if k not in ("apiVersion", "kind", "metadata", "status")}
    spec = dict(body.get("spec") or {})
    if obj["kind"] == "Service" and spec.get("clusterIP") != "None":
        spec.pop("clusterIP", None), spec.pop("clusterIPs", None)  # allocated anew
    if obj["kind"] == "Pod":
        spec.pop("nodeName", None)  # the scheduler's choice
    if obj["kind"] == "Job":  # its selector and uid labels are generated per Job
        spec.pop("selector", None)
        template = json.loads(json.dumps(spec["template"]))
        for key in ("controller-uid", "batch.kubernetes.io/controller-uid"):
            template["metadata"]["labels"].pop(key, None)
        spec["template"] = template
    if spec:
        body["spec"] = spec
    labels = dict(meta.get("labels") or {})
    if obj["kind"] == "Job":
        labels = {k: v for k, v in labels.items() if "controller-uid" not in k}
    annotations = {k: v for k, v in (meta.get("annotations") or {}).items() if k not in SERVER_ANNOTATIONS}
    return {"body": body, "labels": labels, "annotations": annotations, "finalizers": meta.get("finalizers")}


def level(kube: Kube, tenant: str) -> str | None:
    return kube.status("tenantpolicies", tenant).get("level")


def ns_meta(kube: Kube, name: str) -> Any:
    return kube.core.read_namespace(name).metadata


def poke(kube: Kube, tenant: str) -> None:
    """Wake the tenant's reconcile now (the enforced-tenant resync is 5 minutes)."""
    kube.custom.patch_cluster_custom_object(
        "tenant-enforcer.io",
        "v1alpha1",
        "tenantpolicies",
        tenant,
        {"metadata": {"annotations": {"test/poke": str(time.monotonic())}}},
    )


def running(kube: Kube, namespace: str) -> list[str]:
    pods = kube.core.list_namespaced_pod(namespace).items
    return [
        p.metadata.name for p in pods if p.status.phase == "Running" and not p.metadata.deletion_timestamp
    ]


def tenant_pods(kube: Kube, namespace: str) -> list[str]:
    return [p.metadata.name for p in kube.core.list_namespaced_pod(namespace).items]


def ladder(kube: Kube, unique: str, **deprovision: Any) -> str:
    name = f"deprov-{unique}"
    kube.ladder(
        name,
        [
            {"name": "spam", "categories": ["spam"], "level": "ScaleDown", "noticePeriod": "0s"},
            {"name": "abuse", "categories": ["abuse"], "level": "Deprovision", "noticePeriod": "0s"},
        ],
        approvalRequired=[],
        levelSettings={"deprovision": deprovision} if deprovision else {},
    )
    return name


def test_escalation_to_deprovision_snapshots_deletes_retains_pvcs_and_restore_gives_back(
    kube_full: Kube, operator_full: AuditLog, unique: str
) -> None:
    kube = kube_full
    assert operator_full.evidence_dir is not None
    tenant = f"dp-{unique}"
    web, data = f"{tenant}-web", f"{tenant}-data"
    for ns in (web, data):
        kube.namespace(ns)
    kubectl(kube, "create", "-n", web, "-f", "-", stdin=WEB)
    kubectl(kube, "create", "-n", data, "-f", "-", stdin=DATA)
    # A bystander tenant with objects of its own and a policy on the same ladder.
    other, other_ns = f"o-{unique}", f"o-{unique}-app"
    kube.namespace(other_ns)
    kubectl(
        kube, "create", "-n", other_ns, "-f", "-", stdin=WEB.replace(", finalizers: [example.com/hold]", "")
    )
    name = ladder(kube, unique)
    kube.policy(tenant, tenant, name, [web, data])
    kube.policy(other, other, name, [other_ns])

    for ns in (web, other_ns):
        wait_for(f"pods running in {ns}", lambda n=ns: len(running(kube, n)) >= 2 + 1, timeout=60)
    wait_for("the StatefulSet's claim", lambda: get(kube, data, "PersistentVolumeClaim", "data-db-0"), 60)
    originals = {
        (ns, kind, name): comparable(obj)
        for ns, objects in ((web, WEB_OBJECTS), (data, DATA_OBJECTS))
        for kind, name in objects
        if (obj := get(kube, ns, kind, name))
    }
    assert len(originals) == len(WEB_OBJECTS) + len(DATA_OBJECTS)
    bystander_kinds = (
        "serviceaccounts,roles,rolebindings,configmaps,secrets,networkpolicies,services,ingresses"
    )
    bystander_versions = kubectl(
        kube, "get", "-n", other_ns, bystander_kinds, "-o", "jsonpath={.items[*].metadata.resourceVersion}"
    )

    # ScaleDown first: the workloads' prior replicas are saved and they go to 0.
    kube.verdict(f"spam-{unique}", tenant, category="spam")
    wait_for("level ScaleDown", lambda: level(kube, tenant) == "ScaleDown", timeout=60)
    assert get(kube, web, "Deployment", "web")["spec"]["replicas"] == 0  # type: ignore[index]

    # Deprovision: one object is held by a finalizer, so deletion cannot be verified yet.
    kube.verdict(f"abuse-{unique}", tenant, category="abuse", severity="critical")
    blocked = wait_for(
        "the finalizer reported",
        lambda: (c := kube.condition("tenantpolicies", tenant, "Reconciling")) and HOLD in c["message"] and c,
        timeout=90,
    )
    assert f"ConfigMap {web}/held is held by finalizer {HOLD}" in blocked["message"]
    assert level(kube, tenant) != "Deprovision"
    assert kube.ns_labels(web)[STATE_LABEL] == "InProgress"
    assert get(kube, web, "Deployment", "web") is None  # everything else went already
    kube.core.patch_namespaced_config_map("held", web, {"metadata": {"finalizers": None}})
    poke(kube, tenant)
    wait_for("level Deprovision", lambda: level(kube, tenant) == "Deprovision", timeout=90)

    # The evidence: one snapshot per namespace, recorded on it and listed in status.
    store = DirectoryEvidenceStore(operator_full.evidence_dir)
    snapshot_ids, locations = {}, {}
    for ns in (web, data):
        meta = ns_meta(kube, ns)
        assert meta.labels[STATE_LABEL] == "Done"
        snapshot_ids[ns] = meta.annotations[SNAPSHOT]
        assert snapshot_ids[ns].startswith(f"{ns}-")
        locations[ns] = json.loads(meta.annotations[EVIDENCE])[snapshot_ids[ns]]
        assert locations[ns] == str(operator_full.evidence_dir / tenant / snapshot_ids[ns])
        assert parse_time(meta.annotations[DEPROVISIONED_AT]) <= datetime.now(UTC)
    wait_for(
        "status.snapshots",
        lambda: kube.status("tenantpolicies", tenant).get("snapshots") == sorted(locations.values()),
    )
    assert store.snapshots(tenant) == sorted(snapshot_ids.values())  # exactly one each: no retry duplicates
    # Converged: a reconcile now reads (the namespaces, what is in them) and writes nothing.
    time.sleep(2)
    before = len(operator_full.writes())
    poke(kube, tenant)
    time.sleep(3)
    assert [w for w in operator_full.writes()[before:] if unique in w] == []
    docs = {ns: store.get(tenant, snapshot_ids[ns]) for ns in (web, data)}
    assert {(d["kind"], d["metadata"]["name"]) for d in docs[web]} == WEB_OBJECTS
    assert {(d["kind"], d["metadata"]["name"]) for d in docs[data]} == DATA_OBJECTS
    for doc in docs[web] + docs[data]:
        assert set(doc) - {"apiVersion", "kind", "metadata"} <= {
            "spec",
            "data",
            "type",
            "rules",
            "roleRef",
            "subjects",
        }
        assert not {"uid", "resourceVersion", "managedFields", "creationTimestamp", "generation"} & set(
            doc["metadata"]
        )
        assert "status" not in doc
    by_name = {(d["kind"], d["metadata"]["name"]): d for d in docs[web] + docs[data]}
    secret = by_name[("Secret", "creds")]
    assert "data" not in secret and "stringData" not in secret and secret["type"] == "Opaque"
    assert secret["metadata"]["annotations"][OMITTED] == "password,user"
    stored_secret = (Path(locations[web]) / f"Secret.{web}.creds.yaml").read_text()
    assert "hunter2" not in stored_secret and "aHVudGVyMg==" not in stored_secret
    deployment = by_name[("Deployment", "web")]
    assert deployment["spec"]["replicas"] == 0  # as it was when deleted (scaled down) ...
    assert json.loads(deployment["metadata"]["annotations"][PRIOR_STATE]) == {"replicas": 2}  # ... and before
    assert by_name[("PersistentVolumeClaim", "data-db-0")]["metadata"].get("ownerReferences") is None
    job = by_name[("Job", "once")]
    assert job["metadata"]["annotations"] == {"tenant-enforcer.io/finished": "Complete"}
    # Its clean manifest could be created again (generated selector and uid labels are gone).
    del job["metadata"]["annotations"]
    client.BatchV1Api(kube.api).create_namespaced_job(web, job, dry_run="All")

    # Deleted and verified gone; PVCs retained; the namespaces stay.
    for ns, objects in ((web, WEB_OBJECTS), (data, DATA_OBJECTS)):
        for kind, obj_name in objects:
            live = get(kube, ns, kind, obj_name)
            if kind in RETAINED:
                assert live is not None and not live["metadata"].get("deletionTimestamp"), (kind, obj_name)
                assert not live["metadata"].get("ownerReferences"), "retained claims must not be collected"
            else:
                assert live is None, f"{kind} {ns}/{obj_name} was not deleted"
    wait_for("tenant pods gone", lambda: not tenant_pods(kube, web) and not tenant_pods(kube, data), 60)
    assert kube.core.read_namespace(web).status.phase == "Active"

    # Nothing of the bystander was touched.
    assert (
        kubectl(
            kube,
            "get",
            "-n",
            other_ns,
            bystander_kinds,
            "-o",
            "jsonpath={.items[*].metadata.resourceVersion}",
        )
        == bystander_versions
    )
    assert not [w for w in operator_full.writes() if other_ns in w]
    assert get(kube, other_ns, "Deployment", "web")["spec"]["replicas"] == 2  # type: ignore[index]

    # Cleared: the level is lifted, nothing is re-created automatically, the Event says how.
    kube.verdict(
        f"clear-{unique}",
        tenant,
        category="abuse",
        outcome="cleared",
        supersedes=[f"spam-{unique}", f"abuse-{unique}"],
    )
    wait_for("level None", lambda: level(kube, tenant) == "None", timeout=90)
    for ns in (web, data):
        meta = ns_meta(kube, ns)
        assert STATE_LABEL not in (meta.labels or {})
        assert not {SNAPSHOT, EVIDENCE, DEPROVISIONED_AT} & set(meta.annotations or {})
    assert get(kube, web, "Deployment", "web") is None
    messages = [e.message for e in kube.events_for(tenant) if e.reason == "NotRestored"]
    print("\n".join(messages))
    for ns in (web, data):
        command = f"tenant-enforcer restore --tenant {tenant} --snapshot {snapshot_ids[ns]}"
        assert any(command in m and locations[ns] in m for m in messages), messages

    # `tenant-enforcer restore --dry-run` (the CLI, as a person runs it) creates nothing.
    cli = [
        str(Path(sys.executable).parent / "tenant-enforcer"),
        "restore",
        "--tenant",
        tenant,
        "--snapshot",
        snapshot_ids[web],
        "--kubeconfig",
        str(kube.cluster.kubeconfig),
        "--evidence-dir",
        str(operator_full.evidence_dir),
        "--dry-run",
    ]
    dry = subprocess.run(cli, capture_output=True, text=True)
    assert dry.returncode == 0, dry.stdout + dry.stderr
    assert f"would be created: Deployment {web}/web" in dry.stdout
    assert f"not restored: Secret {web}/creds" in dry.stdout
    assert get(kube, web, "Deployment", "web") is None
    unknown = subprocess.run([*cli[:5], f"{web}-19990101T000000Z", *cli[6:]], capture_output=True, text=True)
    assert unknown.returncode == 2 and snapshot_ids[web] in unknown.stderr, unknown.stderr

    # The real restore gives back every object as it was before enforcement.
    writes_before_restore = len(operator_full.writes())
    reports = {ns: restore_snapshot(kube.api, store, tenant, snapshot_ids[ns]) for ns in (web, data)}
    for report in reports.values():
        print("\n".join(report.lines()))
        assert report.ok, report.lines()
    # With the Firewall level in place the tenant's NetworkPolicy had been set aside before
    # Deprovision: the firewall target gave it back at the lift, so restore leaves it alone.
    set_aside = (by_name[("NetworkPolicy", "allow-all")]["metadata"].get("annotations") or {}).get(SET_ASIDE)
    assert sorted(reports[web].skipped) == [
        f"Job {web}/once: it had run to completion (Complete) before it was deleted; creating it again "
        "would run it again",
        *(
            [
                f"NetworkPolicy {web}/allow-all: set aside by {set_aside}, which gives it back itself "
                "when its level is lifted"
            ]
            if set_aside
            else []
        ),
        f"Secret {web}/creds: its values were not kept in the snapshot (keys: password,user); create it "
        "from the tenant's own source",
    ]
    assert sorted(reports[data].existing) == [
        f"PersistentVolumeClaim {data}/data-db-0",
        f"PersistentVolumeClaim {data}/scratch",
    ]
    # Given back through the targets that had enforced them (replicas, suspend, the HPA's bounds).
    assert {r.split(":")[0] for r in reports[web].given_back + reports[data].given_back} >= {
        f"Deployment {web}/web",
        f"HorizontalPodAutoscaler {web}/web",
        f"CronJob {web}/nightly",
        f"StatefulSet {data}/db",
    }
    for (ns, kind, obj_name), original in originals.items():
        if (kind, obj_name) in (("Secret", "creds"), ("Job", "once")):
            assert get(kube, ns, kind, obj_name) is None
            continue
        restored = wait_for(
            f"{kind} {ns}/{obj_name} back", lambda n=ns, k=kind, o=obj_name: get(kube, n, k, o)
        )
        assert comparable(restored) == original, f"{kind} {ns}/{obj_name} not restored exactly"
    wait_for("web pods back", lambda: len(running(kube, web)) >= 2 + 1, timeout=60)
    # Restored objects carry none of our marks: the operator (tenant at None) leaves them alone.
    assert [
        w for w in operator_full.writes()[writes_before_restore:] if f" {web}/" in w or f" {data}/" in w
    ] == []

    # A second restore finds everything there and changes nothing.
    again = restore_snapshot(kube.api, store, tenant, snapshot_ids[data])
    assert again.ok and again.created == [] and len(again.existing) == len(DATA_OBJECTS)


def test_objects_created_again_are_snapshotted_before_deletion_and_pvcs_go_after_retention(
    kube_full: Kube, operator_full: AuditLog, unique: str
) -> None:
    kube = kube_full
    assert operator_full.evidence_dir is not None
    tenant = f"dr-{unique}"
    ns = f"{tenant}-data"
    kube.namespace(ns)
    kubectl(kube, "create", "-n", ns, "-f", "-", stdin=DATA.split("---")[0] + "---" + DATA.split("---")[1])
    kube.policy(tenant, tenant, ladder(kube, unique, pvcRetention="12s", deletePVCsAfterRetention=True), [ns])
    kube.verdict(f"abuse-{unique}", tenant, category="abuse", severity="critical")
    wait_for("level Deprovision", lambda: level(kube, tenant) == "Deprovision", timeout=60)
    wait_for("Done", lambda: kube.ns_labels(ns).get(STATE_LABEL) == "Done")
    meta = ns_meta(kube, ns)
    since = parse_time(meta.annotations[DEPROVISIONED_AT])
    first = meta.annotations[SNAPSHOT]
    assert get(kube, ns, "ConfigMap", "db-config") is None
    assert get(kube, ns, "PersistentVolumeClaim", "scratch") is not None
    assert (datetime.now(UTC) - since).total_seconds() < 12, "the test machine was too slow to see retention"

    # The tenant creates something again: a new snapshot holds it before it is deleted.
    kube.core.create_namespaced_config_map(ns, {"metadata": {"name": "late"}, "data": {"k": "v"}})
    poke(kube, tenant)
    wait_for("late deleted", lambda: get(kube, ns, "ConfigMap", "late") is None, timeout=60)
    meta = ns_meta(kube, ns)
    second = meta.annotations[SNAPSHOT]
    assert second != first
    assert sorted(json.loads(meta.annotations[EVIDENCE])) == sorted([first, second])
    store = DirectoryEvidenceStore(operator_full.evidence_dir)
    assert {(d["kind"], d["metadata"]["name"]) for d in store.get(tenant, second)} == {
        ("ConfigMap", "late"),
        ("PersistentVolumeClaim", "scratch"),
    }
    assert parse_time(meta.annotations[DEPROVISIONED_AT]) == since  # retention still runs from the first

    # Retention over: the claim goes at its due time, with no event to wake the reconcile.
    wait_for(
        "PVC deleted after retention", lambda: get(kube, ns, "PersistentVolumeClaim", "scratch") is None, 60
    )
    assert datetime.now(UTC) >= since + timedelta(seconds=12)
    assert ns_meta(kube, ns).annotations[SNAPSHOT] == second  # the claim was in that snapshot already
    assert store.snapshots(tenant) == sorted([first, second])
    assert kube.core.read_namespace(ns).status.phase == "Active"
