"""Deprovision: an evidence snapshot of every object of each tenant namespace, then deletion,
verified complete.  The namespace itself stays, and so do its PersistentVolumeClaims for the
ladder's retention period (then they are deleted, unless the ladder keeps them).

One target object per tenant namespace (kind `DeprovisionedNamespace`).  Its progress is
recorded on the namespace, where the next reconcile (or a retry after a crash) finds it:

- label `tenant-enforcer.io/deprovision`: `InProgress` from before the first deletion until
  every deleted object is verified gone, then `Done` (the operator's namespace view holds
  labels, so a namespace that was never deprovisioned costs no API call to discover);
- annotation `tenant-enforcer.io/snapshot`: the id of the current snapshot, recorded *before*
  it is taken, so a retried apply reuses it instead of taking a second one;
- annotation `tenant-enforcer.io/evidence`: `{snapshot id: location}` of the snapshots taken
  while deprovisioned (shown in the TenantPolicy's `status.snapshots`);
- annotation `tenant-enforcer.io/deprovisioned-at`: when deletion was first verified; the
  PVC retention runs from there (its end is reported as the object's due time).

Objects that appear later (the tenant creates them again) are drift: a new snapshot is taken
whenever the stored one does not already hold exactly what is about to be deleted, so nothing
is ever deleted without evidence.

Lifting the level does not re-create anything (evidence is for people): our marks come off
the namespace and the restore message names the snapshot and the command that re-applies it,
`tenant-enforcer restore` (see tenant_enforcer/restore.py).

Which kinds are snapshotted and deleted, in which order, and what is cleaned from their
manifests is data: the `KINDS` table.
"""

from __future__ import annotations

import copy
import json
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from kubernetes import client

from tenant_enforcer.model.duration import format_time, parse_time
from tenant_enforcer.model.ladder import DeprovisionSettings
from tenant_enforcer.model.levels import Level
from tenant_enforcer.model.refs import ObjectRef, Observed
from tenant_enforcer.targets.base import (
    ENFORCED_LABEL,
    LEVEL_ANNOTATION,
    EvidenceStore,
    PriorRecord,
    Target,
    TenantScope,
)
from tenant_enforcer.targets.errors import ErrorClass, TargetError
from tenant_enforcer.targets.k8s.kube import MERGE_PATCH, Kube, KubeKind
from tenant_enforcer.targets.k8s.marked import OwnedObjectTarget
from tenant_enforcer.targets.registry import TARGETS, register

# On the namespace.
STATE_LABEL = "tenant-enforcer.io/deprovision"
IN_PROGRESS, DONE = "InProgress", "Done"
SNAPSHOT_ANNOTATION = "tenant-enforcer.io/snapshot"
EVIDENCE_ANNOTATION = "tenant-enforcer.io/evidence"
DEPROVISIONED_AT_ANNOTATION = "tenant-enforcer.io/deprovisioned-at"
NAMESPACE_ANNOTATIONS = (SNAPSHOT_ANNOTATION, EVIDENCE_ANNOTATION, DEPROVISIONED_AT_ANNOTATION)

# On evidence documents only (never on live objects): what `tenant-enforcer restore` needs
# (it creates objects without any `tenant-enforcer.io/` label or annotation).
PRIOR_STATE_ANNOTATION = "tenant-enforcer.io/prior-state"  # JSON: fields as before our first change
OMITTED_DATA_ANNOTATION = "tenant-enforcer.io/omitted-data-keys"  # a Secret's keys, values not kept
SET_ASIDE_ANNOTATION = "tenant-enforcer.io/set-aside-by"  # saved by that target, not deleted by us
FINISHED_ANNOTATION = "tenant-enforcer.io/finished"  # had run to completion: not to be run again

VERIFY_TIMEOUT_S = 5.0  # how long deletions may take to finish before they are reported
VERIFY_POLL_S = 0.5

# Set by the API server or built-in controllers, never by the tenant: not evidence, and in
# the way of creating the object again.
SERVER_ANNOTATIONS = frozenset(
    {
        "deployment.kubernetes.io/revision",
        "deprecated.daemonset.template.generation",
        "pv.kubernetes.io/bind-completed",
        "pv.kubernetes.io/bound-by-controller",
        "volume.beta.kubernetes.io/storage-provisioner",
        "volume.kubernetes.io/storage-provisioner",
        "volume.kubernetes.io/selected-node",
        "kubernetes.io/service-account.uid",
    }
)
JOB_UID_LABELS = ("controller-uid", "batch.kubernetes.io/controller-uid")
DELETION_FINALIZERS = frozenset({"foregroundDeletion", "orphan"})
TOKEN_SECRET = "kubernetes.io/service-account-token"


def _never(obj: Mapping[str, Any]) -> bool:
    return False


def _unchanged(doc: dict[str, Any]) -> None:
    return None


def _runs_on(obj: Mapping[str, Any]) -> str | None:
    return None


def _named(name: str) -> Callable[[Mapping[str, Any]], bool]:
    return lambda obj: obj["metadata"]["name"] == name


def _default_token(obj: Mapping[str, Any]) -> bool:
    annotations = obj["metadata"].get("annotations") or {}
    return bool(
        obj.get("type") == TOKEN_SECRET and annotations.get("kubernetes.io/service-account.name") == "default"
    )


def _job_finished(obj: Mapping[str, Any]) -> str | None:
    for condition in (obj.get("status") or {}).get("conditions") or []:
        if condition.get("type") in ("Complete", "Failed") and condition.get("status") == "True":
            return str(condition["type"])
    return None


def _pod_finished(obj: Mapping[str, Any]) -> str | None:
    phase = (obj.get("status") or {}).get("phase")
    return str(phase) if phase in ("Succeeded", "Failed") else None


def _service(doc: dict[str, Any]) -> None:
    """Cluster IPs are allocated: a new one is given on creation (headless stays headless)."""
    spec = doc.get("spec") or {}
    if spec.get("clusterIP") != "None":
        spec.pop("clusterIP", None)
        spec.pop("clusterIPs", None)


def _job(doc: dict[str, Any]) -> None:
    """A Job's selector and its uid labels are generated; a Job created with them is refused."""
    spec = doc.get("spec") or {}
    if not spec.get("manualSelector"):
        spec.pop("selector", None)
        for labels in (
            doc["metadata"].get("labels"),
            ((spec.get("template") or {}).get("metadata") or {}).get("labels"),
        ):
            for key in JOB_UID_LABELS:
                (labels or {}).pop(key, None)


def _pod(doc: dict[str, Any]) -> None:
    """Where a pod ran is the scheduler's choice, not part of what the tenant asked for."""
    (doc.get("spec") or {}).pop("nodeName", None)


@dataclass(frozen=True)
class Kind:
    """One kind of namespaced object that Deprovision snapshots and deletes."""

    kind: str
    api_version: str
    resource: str  # the plural, for RBAC
    kube: KubeKind
    top_level_only: bool = False  # a controller's objects go with their owner (and its evidence)
    retained: bool = False  # kept for the ladder's retention period
    secret: bool = False  # data kept only when the ladder opts in
    system: Callable[[Mapping[str, Any]], bool] = _never  # made by Kubernetes in every namespace
    clean: Callable[[dict[str, Any]], None] = _unchanged  # kind-specific generated fields removed
    finished: Callable[[Mapping[str, Any]], str | None] = _runs_on  # ran to completion: how

    @property
    def group(self) -> str:
        return self.api_version.rpartition("/")[0]


def _kind(kind: str, api_version: str, resource: str, api: str, singular: str, **options: Any) -> Kind:
    return Kind(kind, api_version, resource, KubeKind(api, singular), **options)


# In the order objects are created again (what others refer to first); deletion goes in
# reverse: autoscalers and workloads first, then what exposes them, then config and RBAC.
KINDS: tuple[Kind, ...] = (
    _kind(
        "ServiceAccount", "v1", "serviceaccounts", "CoreV1Api", "service_account", system=_named("default")
    ),
    _kind("Role", "rbac.authorization.k8s.io/v1", "roles", "RbacAuthorizationV1Api", "role"),
    _kind(
        "RoleBinding",
        "rbac.authorization.k8s.io/v1",
        "rolebindings",
        "RbacAuthorizationV1Api",
        "role_binding",
    ),
    _kind("ConfigMap", "v1", "configmaps", "CoreV1Api", "config_map", system=_named("kube-root-ca.crt")),
    _kind("Secret", "v1", "secrets", "CoreV1Api", "secret", secret=True, system=_default_token),
    _kind(
        "PersistentVolumeClaim",
        "v1",
        "persistentvolumeclaims",
        "CoreV1Api",
        "persistent_volume_claim",
        retained=True,
    ),
    _kind("NetworkPolicy", "networking.k8s.io/v1", "networkpolicies", "NetworkingV1Api", "network_policy"),
    _kind("Service", "v1", "services", "CoreV1Api", "service", clean=_service),
    _kind("Ingress", "networking.k8s.io/v1", "ingresses", "NetworkingV1Api", "ingress"),
    _kind("PodDisruptionBudget", "policy/v1", "poddisruptionbudgets", "PolicyV1Api", "pod_disruption_budget"),
    _kind("Deployment", "apps/v1", "deployments", "AppsV1Api", "deployment", top_level_only=True),
    _kind("StatefulSet", "apps/v1", "statefulsets", "AppsV1Api", "stateful_set", top_level_only=True),
    _kind("DaemonSet", "apps/v1", "daemonsets", "AppsV1Api", "daemon_set", top_level_only=True),
    _kind("ReplicaSet", "apps/v1", "replicasets", "AppsV1Api", "replica_set", top_level_only=True),
    _kind("CronJob", "batch/v1", "cronjobs", "BatchV1Api", "cron_job", top_level_only=True),
    _kind(
        "Job",
        "batch/v1",
        "jobs",
        "BatchV1Api",
        "job",
        top_level_only=True,
        clean=_job,
        finished=_job_finished,
    ),
    _kind("Pod", "v1", "pods", "CoreV1Api", "pod", top_level_only=True, clean=_pod, finished=_pod_finished),
    _kind(
        "HorizontalPodAutoscaler",
        "autoscaling/v2",
        "horizontalpodautoscalers",
        "AutoscalingV2Api",
        "horizontal_pod_autoscaler",
    ),
)
KIND_BY_NAME = {k.kind: k for k in KINDS}


class DeprovisionIncomplete(TargetError):
    """Deletion is not finished (finalizers, a grace period) or could not be done: the message
    names each object and what holds it."""

    def __init__(self, message: str, error_class: ErrorClass = ErrorClass.TRANSIENT) -> None:
        Exception.__init__(self, message)
        self.error_class = error_class


@dataclass(frozen=True)
class Found:
    kind: Kind
    obj: Mapping[str, Any]

    @property
    def meta(self) -> Mapping[str, Any]:
        meta: Mapping[str, Any] = self.obj["metadata"]
        return meta

    @property
    def name(self) -> str:
        return str(self.meta["name"])

    @property
    def uid(self) -> str:
        return str(self.meta.get("uid", ""))

    @property
    def terminating(self) -> bool:
        return bool(self.meta.get("deletionTimestamp"))

    def describe(self) -> str:
        return f"{self.kind.kind} {self.meta.get('namespace')}/{self.name}"


@dataclass
class Inventory:
    """A namespace's objects as Deprovision sees them, in `KINDS` order."""

    objects: list[Found] = field(default_factory=list)

    def live(self) -> list[Found]:
        return [f for f in self.objects if not f.terminating]

    def doomed(self, retention_over: bool) -> list[Found]:
        return [f for f in self.objects if retention_over or not f.kind.retained]


def settings_of(scope: TenantScope) -> DeprovisionSettings:
    return scope.ladder.deprovision if scope.ladder else DeprovisionSettings()


def clean_manifest(
    kind: Kind, obj: Mapping[str, Any], doomed_uids: Iterable[str] = (), keep_secret_data: bool = False
) -> dict[str, Any]:
    """The object as a manifest that can be created again: no uid, resourceVersion,
    managedFields, creationTimestamp, generation, status or server-set annotations; owner
    references only to owners that outlive the deletion; a Secret's values only on opt-in
    (its keys are listed in an annotation instead); a Job or Pod that had run to completion
    says so in an annotation (its status is not kept, and creating it again would run it)."""
    doomed = set(doomed_uids)
    meta = obj["metadata"]
    out_meta: dict[str, Any] = {"name": meta["name"], "namespace": meta.get("namespace")}
    labels = dict(meta.get("labels") or {})
    annotations = {k: v for k, v in (meta.get("annotations") or {}).items() if k not in SERVER_ANNOTATIONS}
    owners = [ref for ref in meta.get("ownerReferences") or [] if ref.get("uid") not in doomed]
    finalizers = [f for f in meta.get("finalizers") or [] if f not in DELETION_FINALIZERS]
    doc: dict[str, Any] = {
        "apiVersion": kind.api_version,
        "kind": kind.kind,
        "metadata": out_meta,
        **{
            k: copy.deepcopy(v)
            for k, v in obj.items()
            if k not in ("apiVersion", "kind", "metadata", "status")
        },
    }
    finished = kind.finished(obj)
    if finished:
        annotations[FINISHED_ANNOTATION] = finished
    if kind.secret and (not keep_secret_data or obj.get("type") == TOKEN_SECRET):
        keys = sorted({*(doc.pop("data", None) or {}), *(doc.pop("stringData", None) or {})})
        if keys:
            annotations[OMITTED_DATA_ANNOTATION] = ",".join(keys)
    if labels:
        out_meta["labels"] = labels
    if annotations:
        out_meta["annotations"] = annotations
    if owners:
        out_meta["ownerReferences"] = copy.deepcopy(owners)
    if finalizers:
        out_meta["finalizers"] = finalizers
    kind.clean(doc)
    return doc


def snapshot_id_for(namespace: str, when: datetime) -> str:
    return f"{namespace}-{when.astimezone(UTC).strftime('%Y%m%dT%H%M%SZ')}"


def _evidence_map(annotations: Mapping[str, str]) -> dict[str, str]:
    try:
        value = json.loads(annotations.get(EVIDENCE_ANNOTATION) or "{}")
    except ValueError:
        return {}
    return {str(k): str(v) for k, v in value.items()} if isinstance(value, dict) else {}


def _time(annotations: Mapping[str, str], key: str) -> datetime | None:
    try:
        return parse_time(annotations[key]) if annotations.get(key) else None
    except ValueError:
        return None


def _rules() -> tuple[dict[str, Any], ...]:
    rules = [{"apiGroups": [""], "resources": ["namespaces"], "verbs": ["get", "patch"]}]
    for k in KINDS:
        # PVCs are patched to drop owner references to what is deleted (they are retained).
        verbs = ["list", "delete", "patch"] if k.retained else ["list", "delete"]
        rules.append({"apiGroups": [k.group], "resources": [k.resource], "verbs": verbs})
    return tuple(rules)


@register
class DeprovisionTarget(Target):
    kind = "DeprovisionedNamespace"
    acts_from = Level.DEPROVISION
    rbac = _rules()

    def __init__(self, clients: Any) -> None:
        super().__init__(clients)
        self.kube = Kube(clients.kube, clients.field_manager)
        self._core = client.CoreV1Api(clients.kube)

    # --- discover --------------------------------------------------------------------------

    def discover(self, scope: TenantScope) -> list[Observed]:
        settings = settings_of(scope)
        found = []
        for namespace, view_labels in sorted(scope.namespaces.items()):
            ref = ObjectRef(self.kind, namespace)
            if STATE_LABEL not in view_labels:  # never deprovisioned: no API call
                found.append(Observed(ref, Level.NONE))
                continue
            meta = self._read_namespace(namespace)
            if meta is None:
                continue
            state = (meta.get("labels") or {}).get(STATE_LABEL)
            annotations = meta.get("annotations") or {}
            evidence = _evidence_map(annotations)
            latest = evidence.get(annotations.get(SNAPSHOT_ANNOTATION, ""))
            if state is None:
                found.append(Observed(ref, Level.NONE))
            elif state != DONE:
                # Deletion started but not verified: finish it (a retry, not a re-assert).
                found.append(Observed(ref, Level.DEPROVISION, evidence=latest, pending=True))
            else:
                drifted, due = self._drift(namespace, annotations, settings)
                found.append(Observed(ref, Level.DEPROVISION, drifted=drifted, evidence=latest, due=due))
        return found

    def _drift(
        self, namespace: str, annotations: Mapping[str, str], settings: DeprovisionSettings
    ) -> tuple[bool, datetime | None]:
        """Objects that appeared since (or PVCs past their retention), and when retention ends."""
        live = self._inventory(namespace).live()
        kept = [f for f in live if f.kind.retained]
        retention_end = self._retention_end(annotations, settings)
        now = datetime.now(UTC)
        over = retention_end is not None and now >= retention_end
        drifted = any(not f.kind.retained for f in live) or (over and bool(kept))
        due = retention_end if retention_end is not None and kept and not over else None
        return drifted, due

    @staticmethod
    def _retention_end(annotations: Mapping[str, str], settings: DeprovisionSettings) -> datetime | None:
        since = _time(annotations, DEPROVISIONED_AT_ANNOTATION)
        if since is None or not settings.delete_pvcs_after_retention:
            return None
        return since + settings.pvc_retention

    # --- apply -----------------------------------------------------------------------------

    def apply(self, ref: ObjectRef, level: Level, scope: TenantScope) -> None:
        namespace = ref.name
        store = self.clients.evidence
        if store is None:
            raise DeprovisionIncomplete(
                f"deprovision {namespace}: no evidence store is configured; nothing is deleted without "
                "a snapshot",
                ErrorClass.FATAL,
            )
        meta = self._read_namespace(namespace)
        if meta is None:
            return
        labels, annotations = dict(meta.get("labels") or {}), dict(meta.get("annotations") or {})
        settings = settings_of(scope)
        now = datetime.now(UTC)
        inventory = self._inventory(namespace)
        retention_end = self._retention_end(annotations, settings)
        doomed = inventory.doomed(retention_over=retention_end is not None and now >= retention_end)
        doomed_uids = {f.uid for f in doomed}
        documents = [
            clean_manifest(f.kind, f.obj, doomed_uids, settings.snapshot_secret_data)
            for f in inventory.objects
        ]
        for doc in documents:
            self._annotate_prior_state(doc, scope)
        wanted = [doc for doc, f in zip(documents, inventory.objects, strict=True) if f.uid in doomed_uids]
        documents += self._set_aside(namespace, scope, documents)

        # 1. Evidence first: reuse the recorded snapshot if it holds exactly what goes now.
        snapshot_id = annotations.get(SNAPSHOT_ANNOTATION)
        stored = self._stored(store, scope.tenant, snapshot_id) if snapshot_id else None
        if snapshot_id is None or (stored is not None and any(doc not in stored for doc in wanted)):
            snapshot_id = self._new_snapshot_id(store, scope.tenant, namespace, now)
            stored = None
        was = labels.get(STATE_LABEL)
        progress: dict[str, Any] = {}
        if doomed and was != IN_PROGRESS:
            progress["labels"] = {STATE_LABEL: IN_PROGRESS}
        if annotations.get(SNAPSHOT_ANNOTATION) != snapshot_id:
            progress["annotations"] = {SNAPSHOT_ANNOTATION: snapshot_id}
        self._patch_namespace(namespace, progress)  # the snapshot id is on record before it is taken
        evidence = _evidence_map(annotations)
        location = evidence.get(snapshot_id) if stored is not None else None
        if location is None:
            location = self._put(store, scope.tenant, snapshot_id, documents)
        if evidence.get(snapshot_id) != location:
            evidence[snapshot_id] = location
            self._patch_namespace(
                namespace, {"annotations": {EVIDENCE_ANNOTATION: json.dumps(evidence, sort_keys=True)}}
            )

        # 2. Then deletion, verified.
        self._release_retained(namespace, inventory, doomed_uids)
        self._delete(namespace, doomed)
        self._verify(namespace, doomed)

        # 3. Done: the retention runs from the first time deletion was complete.
        done: dict[str, Any] = {}
        if was != DONE or "labels" in progress:
            done["labels"] = {STATE_LABEL: DONE}
        if _time(annotations, DEPROVISIONED_AT_ANNOTATION) is None:
            done["annotations"] = {DEPROVISIONED_AT_ANNOTATION: format_time(datetime.now(UTC))}
        self._patch_namespace(namespace, done)

    @staticmethod
    def _annotate_prior_state(doc: dict[str, Any], scope: TenantScope) -> None:
        """What another target saved before changing this object (replicas before ScaleDown):
        `tenant-enforcer restore` gives it back through that target."""
        meta = doc["metadata"]
        record = scope.saved.get(ObjectRef(doc["kind"], meta["name"], meta.get("namespace")))
        if record is not None and record.state:
            meta.setdefault("annotations", {})[PRIOR_STATE_ANNOTATION] = json.dumps(
                dict(record.state), sort_keys=True
            )

    @staticmethod
    def _set_aside(
        namespace: str, scope: TenantScope, documents: list[dict[str, Any]]
    ) -> list[dict[str, Any]]:
        """Tenant objects another target saved whole and removed (NetworkPolicies while
        firewalled): not in the namespace now, but the tenant's all the same."""
        present = {(d["kind"], d["metadata"]["name"]) for d in documents}
        extra = []
        for ref, record in sorted(scope.saved.items()):
            state = record.state
            meta = state.get("metadata")
            if not (isinstance(meta, Mapping) and state.get("kind") and state.get("apiVersion")):
                continue
            if meta.get("namespace") != namespace or (state["kind"], meta.get("name")) in present:
                continue
            doc = copy.deepcopy(dict(state))
            doc["metadata"].setdefault("annotations", {})[SET_ASIDE_ANNOTATION] = ref.kind
            extra.append(doc)
        return extra

    def _new_snapshot_id(self, store: EvidenceStore, tenant: str, namespace: str, now: datetime) -> str:
        base = snapshot_id_for(namespace, now)
        candidate, n = base, 1
        while self._stored(store, tenant, candidate) is not None:  # never reuse a stored id
            candidate, n = f"{base}-{n}", n + 1
        return candidate

    @staticmethod
    def _stored(store: EvidenceStore, tenant: str, snapshot_id: str) -> list[dict[str, Any]] | None:
        try:
            return store.get(tenant, snapshot_id)
        except KeyError:
            return None
        except (OSError, ValueError) as exc:  # unreadable: retried; corrupted: reported, nothing deleted
            raise TargetError(f"read evidence snapshot {snapshot_id}: {exc}", exc) from exc

    @staticmethod
    def _put(store: EvidenceStore, tenant: str, snapshot_id: str, documents: list[dict[str, Any]]) -> str:
        try:
            return store.put(tenant, snapshot_id, list[Mapping[str, Any]](documents))
        except (OSError, ValueError) as exc:  # disk full: retried; refused: reported, nothing deleted
            raise TargetError(f"store evidence snapshot {snapshot_id}: {exc}", exc) from exc

    def _release_retained(self, namespace: str, inventory: Inventory, doomed_uids: set[str]) -> None:
        """A retained object owned by one that goes (a StatefulSet's claims with
        `whenDeleted: Delete`) would be garbage-collected with it: drop those owner references."""
        for found in inventory.objects:
            if found.uid in doomed_uids:
                continue
            owners = found.meta.get("ownerReferences") or []
            kept = [o for o in owners if o.get("uid") not in doomed_uids]
            if len(kept) != len(owners):
                self.kube.patch(
                    found.kind.kube, namespace, found.name, {"metadata": {"ownerReferences": kept or None}}
                )

    def _delete(self, namespace: str, doomed: list[Found]) -> None:
        errors: list[TargetError] = []
        for found in sorted(doomed, key=lambda f: -KINDS.index(f.kind)):
            if found.terminating:
                continue  # already on its way: verified below
            try:
                self.kube.delete(found.kind.kube, namespace, found.name)
            except TargetError as exc:
                errors.append(exc)
        if errors:
            fatal = any(e.error_class is ErrorClass.FATAL for e in errors)
            raise DeprovisionIncomplete(
                "; ".join(str(e) for e in errors), ErrorClass.FATAL if fatal else ErrorClass.TRANSIENT
            )

    def _verify(self, namespace: str, doomed: list[Found]) -> None:
        """Every deleted object is gone; what is left is named with what holds it."""
        pending = {f.uid for f in doomed}
        kinds = [k for k in KINDS if any(f.kind is k for f in doomed)]
        deadline = time.monotonic() + VERIFY_TIMEOUT_S
        while pending:
            left = [
                Found(k, obj)
                for k in kinds
                for obj in self.kube.list(k.kube, namespace)
                if obj["metadata"].get("uid") in pending
            ]
            pending = {f.uid for f in left}
            if not left:
                return
            if time.monotonic() >= deadline:
                raise DeprovisionIncomplete(
                    f"deletion in {namespace} is not finished: " + "; ".join(_holding(f) for f in left)
                )
            kinds = [k for k in kinds if any(f.kind is k for f in left)]
            time.sleep(VERIFY_POLL_S)

    # --- restore ---------------------------------------------------------------------------

    def restore(self, ref: ObjectRef, prior: PriorRecord | None, scope: TenantScope) -> list[str]:
        namespace = ref.name
        meta = self._read_namespace(namespace)
        if meta is None:
            return []
        labels, annotations = meta.get("labels") or {}, meta.get("annotations") or {}
        if STATE_LABEL not in labels and not any(k in annotations for k in NAMESPACE_ANNOTATIONS):
            return []
        evidence = _evidence_map(annotations)
        retained = [
            f.name for f in self._inventory(namespace, kinds=[KIND_BY_NAME["PersistentVolumeClaim"]]).live()
        ]
        self._patch_namespace(
            namespace, {"labels": {STATE_LABEL: None}, "annotations": dict.fromkeys(NAMESPACE_ANNOTATIONS)}
        )
        if not evidence:
            return [f"{namespace}: deprovisioning was lifted before any evidence snapshot was stored"]
        command = f"tenant-enforcer restore --tenant {scope.tenant} --snapshot"
        snapshots = "; ".join(f"`{command} {sid}` ({location})" for sid, location in sorted(evidence.items()))
        kept = f"; PersistentVolumeClaims retained: {', '.join(sorted(retained))}" if retained else ""
        return [
            f"{namespace}: deleted objects are not re-created automatically; re-apply with {snapshots}{kept}"
        ]

    # --- API access ------------------------------------------------------------------------

    def _inventory(self, namespace: str, kinds: Iterable[Kind] = KINDS) -> Inventory:
        ours = _our_objects()
        inventory = Inventory()
        for kind in kinds:
            for obj in sorted(self.kube.list(kind.kube, namespace), key=lambda o: str(o["metadata"]["name"])):
                if kind.top_level_only and _controlled_by_a_listed_kind(obj):
                    continue
                if kind.system(obj) or (kind.kube, obj["metadata"]["name"]) in ours:
                    continue
                inventory.objects.append(Found(kind, obj))
        return inventory

    def _read_namespace(self, name: str) -> dict[str, Any] | None:
        try:
            response: Any = self._core.read_namespace(name, _preload_content=False)  # raw: bytes in .data
        except client.ApiException as exc:
            error = TargetError(f"read namespace {name}", exc)
            if error.error_class is ErrorClass.GONE:
                return None
            raise error from exc
        except OSError as exc:
            raise TargetError(f"read namespace {name}", exc) from exc
        meta: dict[str, Any] = json.loads(response.data).get("metadata") or {}
        return meta

    def _patch_namespace(self, name: str, metadata: Mapping[str, Any]) -> None:
        """A merge patch of the namespace's labels and annotations; nothing to do, no request."""
        if not metadata:
            return
        try:
            self._core.patch_namespace(
                name,
                {"metadata": dict(metadata)},
                field_manager=self.clients.field_manager,
                _content_type=MERGE_PATCH,
                _preload_content=False,
            )
        except (client.ApiException, OSError) as exc:
            raise TargetError(f"mark namespace {name}", exc) from exc


def _holding(found: Found) -> str:
    finalizers = found.meta.get("finalizers") or []
    if finalizers:
        return f"{found.describe()} is held by finalizer {', '.join(finalizers)}"
    if found.terminating:
        return f"{found.describe()} is still terminating"
    return f"{found.describe()} still exists"


def _controlled_by_a_listed_kind(obj: Mapping[str, Any]) -> bool:
    """A Deployment's ReplicaSets, a ReplicaSet's or a Job's pods, a CronJob's Jobs: they go
    with their owner (garbage collection) and are described by its manifest.  What a kind we
    do not list controls (a tenant operator's custom resource) is snapshotted and deleted."""
    for ref in (obj.get("metadata") or {}).get("ownerReferences") or []:
        kind = KIND_BY_NAME.get(ref.get("kind", ""))
        if ref.get("controller") and kind is not None and kind.api_version == ref.get("apiVersion"):
            return True
    return False


def _our_objects() -> set[tuple[KubeKind, str]]:
    """What our own targets create in tenant namespaces (the freeze quota, the deny-all), by
    kind and name: a label would not do, tenants can put any label on their objects."""
    return {
        (cls.kube_kind, cls.object_name)
        for cls in TARGETS
        if issubclass(cls, OwnedObjectTarget) and getattr(cls, "object_name", None)
    }


def marked(doc: Mapping[str, Any]) -> bool:
    """Whether an object carries a target's enforcement marks."""
    meta = doc.get("metadata") or {}
    return ENFORCED_LABEL in (meta.get("labels") or {}) or LEVEL_ANNOTATION in (meta.get("annotations") or {})
