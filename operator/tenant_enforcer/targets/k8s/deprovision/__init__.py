"""Deprovision: an evidence snapshot of every object of each tenant namespace, then deletion,
verified complete.  The namespace itself stays, and so do its PersistentVolumeClaims for the
ladder's retention period (then they are deleted, unless the ladder keeps them).

Which kinds are snapshotted and deleted, in which order, and what is cleaned from their
manifests is data: the `KINDS` table.

- `kinds`: the `KINDS` table and what is special about each kind;
- `inventory`: what is found in a namespace, and what of it is the tenant's;
- `manifests`: the evidence documents (clean manifests, restore annotations) and snapshot ids;
- `target`: the registered `DeprovisionTarget` (discover, apply, restore) and the namespace marks
  that record its progress.

Importing this package registers the target (once, like any module import).
"""

from tenant_enforcer.targets.k8s.deprovision.kinds import KIND_BY_NAME, KINDS, Kind
from tenant_enforcer.targets.k8s.deprovision.manifests import (
    FINISHED_ANNOTATION,
    OMITTED_DATA_ANNOTATION,
    PRIOR_STATE_ANNOTATION,
    SET_ASIDE_ANNOTATION,
    clean_manifest,
    marked,
    snapshot_id_for,
)
from tenant_enforcer.targets.k8s.deprovision.target import STATE_LABEL, DeprovisionTarget

__all__ = [
    "FINISHED_ANNOTATION",
    "KINDS",
    "KIND_BY_NAME",
    "OMITTED_DATA_ANNOTATION",
    "PRIOR_STATE_ANNOTATION",
    "SET_ASIDE_ANNOTATION",
    "STATE_LABEL",
    "DeprovisionTarget",
    "Kind",
    "clean_manifest",
    "marked",
    "snapshot_id_for",
]
