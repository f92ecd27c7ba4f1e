"""The Deprovision target: one object per tenant namespace (kind `DeprovisionedNamespace`).
Its progress is recorded on the namespace, where the next reconcile (or a retry after a crash)
finds it:

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
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from kubernetes import client

from tenant_enforcer.model.duration import format_time, parse_time
from tenant_enforcer.model.ladder import DeprovisionSettings
from tenant_enforcer.model.levels import Level
from tenant_enforcer.model.refs import ObjectRef, Observed
from tenant_enforcer.targets.base import EvidenceStore, PriorRecord, Target, TenantScope
from tenant_enforcer.targets.errors import ErrorClass, TargetError
from tenant_enforcer.targets.k8s.deprovision.inventory import Found, Inventory, take_inventory
from tenant_enforcer.targets.k8s.deprovision.kinds import KIND_BY_NAME, KINDS
from tenant_enforcer.targets.k8s.deprovision.manifests import (
    annotate_prior_state,
    clean_manifest,
    set_aside_documents,
    snapshot_id_for,
)
from tenant_enforcer.targets.k8s.kube import MERGE_PATCH, Kube
from tenant_enforcer.targets.registry import register

# On the namespace.
STATE_LABEL = "tenant-enforcer.io/deprovision"
IN_PROGRESS, DONE = "InProgress", "Done"
SNAPSHOT_ANNOTATION = "tenant-enforcer.io/snapshot"
EVIDENCE_ANNOTATION = "tenant-enforcer.io/evidence"
DEPROVISIONED_AT_ANNOTATION = "tenant-enforcer.io/deprovisioned-at"
NAMESPACE_ANNOTATIONS = (SNAPSHOT_ANNOTATION, EVIDENCE_ANNOTATION, DEPROVISIONED_AT_ANNOTATION)

VERIFY_TIMEOUT_S = 5.0  # how long deletions may take to finish before they are reported
VERIFY_POLL_S = 0.5


class DeprovisionIncomplete(TargetError):
    """Deletion is not finished (finalizers, a grace period) or could not be done: the message
    names each object and what holds it."""

    def __init__(self, message: str, error_class: ErrorClass = ErrorClass.TRANSIENT) -> None:
        Exception.__init__(self, message)
        self.error_class = error_class


def settings_of(scope: TenantScope) -> DeprovisionSettings:
    return scope.ladder.deprovision if scope.ladder else DeprovisionSettings()


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
        live = take_inventory(self.kube, namespace).live()
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
        inventory = take_inventory(self.kube, namespace)
        retention_end = self._retention_end(annotations, settings)
        doomed = inventory.doomed(retention_over=retention_end is not None and now >= retention_end)
        doomed_uids = {f.uid for f in doomed}
        documents = [
            clean_manifest(f.kind, f.obj, doomed_uids, settings.snapshot_secret_data)
            for f in inventory.objects
        ]
        for doc in documents:
            annotate_prior_state(doc, scope)
        wanted = [doc for doc, f in zip(documents, inventory.objects, strict=True) if f.uid in doomed_uids]
        documents += set_aside_documents(namespace, scope, documents)

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
                    f"deletion in {namespace} is not finished: " + "; ".join(f.what_holds_it() for f in left)
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
        claims = take_inventory(self.kube, namespace, kinds=[KIND_BY_NAME["PersistentVolumeClaim"]])
        retained = [f.name for f in claims.live()]
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
