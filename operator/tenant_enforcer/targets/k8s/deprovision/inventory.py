"""What Deprovision finds in a tenant namespace: the objects of each listed kind that are the
tenant's to lose, in `KINDS` order."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from tenant_enforcer.targets.k8s.deprovision.kinds import KIND_BY_NAME, KINDS, Kind
from tenant_enforcer.targets.k8s.kube import Kube
from tenant_enforcer.targets.k8s.marked import OwnedObjectTarget
from tenant_enforcer.targets.registry import TARGETS


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

    def what_holds_it(self) -> str:
        """Why an object that was deleted is still there, for the incomplete-deletion message."""
        finalizers = self.meta.get("finalizers") or []
        if finalizers:
            return f"{self.describe()} is held by finalizer {', '.join(finalizers)}"
        if self.terminating:
            return f"{self.describe()} is still terminating"
        return f"{self.describe()} still exists"


@dataclass
class Inventory:
    """A namespace's objects as Deprovision sees them, in `KINDS` order."""

    objects: list[Found] = field(default_factory=list)

    def live(self) -> list[Found]:
        return [f for f in self.objects if not f.terminating]

    def doomed(self, retention_over: bool) -> list[Found]:
        return [f for f in self.objects if retention_over or not f.kind.retained]


def take_inventory(kube: Kube, namespace: str, kinds: Iterable[Kind] = KINDS) -> Inventory:
    """The tenant's objects in the namespace, kind by kind and by name within a kind: what a
    listed kind controls, what Kubernetes makes in every namespace and what our own targets
    create are left out."""
    ours = _our_objects()
    inventory = Inventory()
    for kind in kinds:
        for obj in sorted(kube.list(kind.kube, namespace), key=lambda o: str(o["metadata"]["name"])):
            if kind.top_level_only and _controlled_by_a_listed_kind(obj):
                continue
            if kind.system(obj) or (kind.kube, obj["metadata"]["name"]) in ours:
                continue
            inventory.objects.append(Found(kind, obj))
    return inventory


def _controlled_by_a_listed_kind(obj: Mapping[str, Any]) -> bool:
    """A Deployment's ReplicaSets, a ReplicaSet's or a Job's pods, a CronJob's Jobs: they go
    with their owner (garbage collection) and are described by its manifest.  What a kind we
    do not list controls (a tenant operator's custom resource) is snapshotted and deleted."""
    for ref in (obj.get("metadata") or {}).get("ownerReferences") or []:
        kind = KIND_BY_NAME.get(ref.get("kind", ""))
        if ref.get("controller") and kind is not None and kind.api_version == ref.get("apiVersion"):
            return True
    return False


def _our_objects() -> set[tuple[object, str]]:
    """What our own targets create in tenant namespaces (the freeze quota, the deny-all), by
    kind and name: a label would not do, tenants can put any label on their objects.  The kind
    is only compared with a `KINDS` entry's, so whatever a target's `kube_kind` is will do."""
    return {
        (cls.kube_kind, cls.object_name)
        for cls in TARGETS
        if issubclass(cls, OwnedObjectTarget) and getattr(cls, "object_name", None)
    }
