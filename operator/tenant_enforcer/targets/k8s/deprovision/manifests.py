"""The documents of an evidence snapshot: each object as a manifest that can be created again,
annotated with what `tenant-enforcer restore` needs, and the ids snapshots are stored under.

Evidence is for people and for `tenant-enforcer restore` (see tenant_enforcer/restore.py),
which reads the annotations below and creates objects without any `tenant-enforcer.io/` label
or annotation."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from tenant_enforcer.model.refs import ObjectRef
from tenant_enforcer.targets.base import ENFORCED_LABEL, LEVEL_ANNOTATION, TenantScope
from tenant_enforcer.targets.k8s.deprovision.kinds import TOKEN_SECRET, Kind

# On evidence documents only, never on live objects.
PRIOR_STATE_ANNOTATION = "tenant-enforcer.io/prior-state"  # JSON: fields as before our first change
OMITTED_DATA_ANNOTATION = "tenant-enforcer.io/omitted-data-keys"  # a Secret's keys, values not kept
SET_ASIDE_ANNOTATION = "tenant-enforcer.io/set-aside-by"  # saved by that target, not deleted by us
FINISHED_ANNOTATION = "tenant-enforcer.io/finished"  # had run to completion: not to be run again

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
DELETION_FINALIZERS = frozenset({"foregroundDeletion", "orphan"})


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


def annotate_prior_state(doc: dict[str, Any], scope: TenantScope) -> None:
    """What another target saved before changing this object (replicas before ScaleDown):
    `tenant-enforcer restore` gives it back through that target."""
    meta = doc["metadata"]
    record = scope.saved.get(ObjectRef(doc["kind"], meta["name"], meta.get("namespace")))
    if record is not None and record.state:
        meta.setdefault("annotations", {})[PRIOR_STATE_ANNOTATION] = json.dumps(
            dict(record.state), sort_keys=True
        )


def set_aside_documents(
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


def snapshot_id_for(namespace: str, when: datetime) -> str:
    return f"{namespace}-{when.astimezone(UTC).strftime('%Y%m%dT%H%M%SZ')}"


def marked(doc: Mapping[str, Any]) -> bool:
    """Whether an object carries a target's enforcement marks."""
    meta = doc.get("metadata") or {}
    return ENFORCED_LABEL in (meta.get("labels") or {}) or LEVEL_ANNOTATION in (meta.get("annotations") or {})
