"""Two shapes shared by most Kubernetes targets.

`FieldTarget`: changes a few fields of the tenant's own objects (replicas, suspend, a node
selector).  The fields' values before our first change are the prior state; what we set is
recorded in an annotation, so a later reconcile can tell drift (someone reverted it) and a
restore can tell whether it is safe (nobody changed it since).

`OwnedObjectTarget`: creates one object of ours per tenant namespace (a ResourceQuota, a
deny-all NetworkPolicy) and deletes it on restore.
"""

from __future__ import annotations

import json
from abc import abstractmethod
from collections.abc import Mapping
from typing import Any, ClassVar

from tenant_enforcer.model.levels import Level
from tenant_enforcer.model.refs import ObjectRef, Observed
from tenant_enforcer.targets.base import (
    ENFORCED_LABEL,
    LEVEL_ANNOTATION,
    MANAGED_BY,
    Clients,
    PriorRecord,
    Target,
    TenantScope,
)
from tenant_enforcer.targets.k8s.kube import CustomKind, Kube, KubeKind, controlled_by_other, marks

SET_ANNOTATION = "tenant-enforcer.io/set"  # JSON of the field values we set


def held_level(obj: Mapping[str, Any]) -> Level:
    value = marks(obj)[1].get(LEVEL_ANNOTATION)
    try:
        return Level.parse(value) if value else Level.NONE
    except ValueError:
        return Level.NONE


def mark_patch(tenant: str, level: Level, extra: Mapping[str, str] | None = None) -> dict[str, Any]:
    return {
        "metadata": {
            "labels": {ENFORCED_LABEL: tenant},
            "annotations": {LEVEL_ANNOTATION: level.api_name, **(extra or {})},
        }
    }


UNMARK_PATCH = {
    "metadata": {
        "labels": {ENFORCED_LABEL: None},
        "annotations": {LEVEL_ANNOTATION: None, SET_ANNOTATION: None},
    }
}


class KubeTarget(Target):
    kube_kind: ClassVar[KubeKind | CustomKind]

    def __init__(self, clients: Clients) -> None:
        super().__init__(clients)
        self.kube = Kube(clients.kube, clients.field_manager)

    def ref(self, obj: Mapping[str, Any]) -> ObjectRef:
        meta = obj["metadata"]
        return ObjectRef(self.kind, meta["name"], meta.get("namespace"))


class FieldTarget(KubeTarget):
    """Subclasses say which fields they own, what to set them to, and how to write them."""

    @abstractmethod
    def fields(self, obj: Mapping[str, Any]) -> dict[str, Any]:
        """Current values of the fields this target changes."""

    @abstractmethod
    def enforced(self, level: Level, scope: TenantScope, current: Mapping[str, Any]) -> dict[str, Any]:
        """The values to set at `level`."""

    @abstractmethod
    def write(self, ref: ObjectRef, values: Mapping[str, Any], current: Mapping[str, Any]) -> None:
        """Write `values` (replacing `current`) with as few requests as possible."""

    def selected(self, obj: Mapping[str, Any]) -> bool:
        return not controlled_by_other(obj)

    def discover(self, scope: TenantScope) -> list[Observed]:
        found = []
        for namespace in sorted(scope.namespaces):
            for obj in self.kube.list(self.kube_kind, namespace):
                if not self.selected(obj):
                    continue
                applied = held_level(obj)
                current = self.fields(obj)
                drifted = applied != Level.NONE and current != _recorded(obj)
                found.append(Observed(self.ref(obj), applied, current, drifted))
        return found

    def apply(self, ref: ObjectRef, level: Level, scope: TenantScope) -> None:
        assert ref.namespace is not None
        obj = self.kube.read(self.kube_kind, ref.namespace, ref.name)
        if obj is None:
            return  # gone since discovery: nothing to hold
        current = self.fields(obj)
        values = self.enforced(level, scope, current)
        # Mark first: after a crash between the two writes the marker still says ours, so the
        # next reconcile re-asserts (prior state was saved before we got here).
        self.kube.patch(
            self.kube_kind,
            ref.namespace,
            ref.name,
            mark_patch(scope.tenant, level, {SET_ANNOTATION: json.dumps(values, sort_keys=True)}),
        )
        if current != values:
            self.write(ref, values, current)

    def restore(self, ref: ObjectRef, prior: PriorRecord | None, scope: TenantScope) -> list[str]:
        assert ref.namespace is not None
        obj = self.kube.read(self.kube_kind, ref.namespace, ref.name)
        if obj is None:
            return []
        current, recorded = self.fields(obj), _recorded(obj)
        conflicts = []
        if prior is not None:
            target = dict(current)
            for field, value in prior.state.items():
                if recorded is None or current.get(field) == recorded.get(field):
                    target[field] = value
                else:
                    conflicts.append(
                        f"{ref}: {field} was changed to {current.get(field)!r} while enforced "
                        f"(we set {recorded.get(field)!r}, it was {value!r}); left as it is"
                    )
            if target != current:
                self.write(ref, target, current)
        self.kube.patch(self.kube_kind, ref.namespace, ref.name, UNMARK_PATCH)
        return conflicts


def _recorded(obj: Mapping[str, Any]) -> dict[str, Any] | None:
    raw = marks(obj)[1].get(SET_ANNOTATION)
    try:
        value = json.loads(raw) if raw else None
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


class OwnedObjectTarget(KubeTarget):
    """One object of ours per tenant namespace, named `object_name`."""

    object_name: ClassVar[str]

    @abstractmethod
    def desired(self, namespace: str, level: Level, scope: TenantScope) -> dict[str, Any]:
        """The full object to create (metadata.name/namespace and marks are added)."""

    @abstractmethod
    def spec_of(self, obj: Mapping[str, Any]) -> Any:
        """The part compared to detect drift."""

    def discover(self, scope: TenantScope) -> list[Observed]:
        found = []
        for namespace in sorted(scope.namespaces):
            obj = self.kube.read(self.kube_kind, namespace, self.object_name)
            ref = ObjectRef(self.kind, self.object_name, namespace)
            if obj is None:
                found.append(Observed(ref, Level.NONE))
                continue
            applied = held_level(obj)
            drifted = applied != Level.NONE and self.spec_of(obj) != self.spec_of(
                self.desired(namespace, applied, scope)
            )
            found.append(Observed(ref, applied, {}, drifted))
        return found

    def apply(self, ref: ObjectRef, level: Level, scope: TenantScope) -> None:
        assert ref.namespace is not None
        body = self.desired(ref.namespace, level, scope)
        body.setdefault("metadata", {}).update({"name": self.object_name, "namespace": ref.namespace})
        meta = body["metadata"]
        meta.setdefault("labels", {}).update({**MANAGED_BY, ENFORCED_LABEL: scope.tenant})
        meta.setdefault("annotations", {})[LEVEL_ANNOTATION] = level.api_name
        if not self.kube.create(self.kube_kind, ref.namespace, body):
            self.kube.patch(self.kube_kind, ref.namespace, self.object_name, body)

    def restore(self, ref: ObjectRef, prior: PriorRecord | None, scope: TenantScope) -> list[str]:
        assert ref.namespace is not None
        self.kube.delete(self.kube_kind, ref.namespace, self.object_name)
        return []
