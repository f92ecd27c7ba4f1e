"""KEDA ScaledObjects are paused while scaled down, or KEDA would scale the workload back up.

`autoscaling.keda.sh/paused-replicas` holds the target at the ladder's replicas; its previous
value (or its absence) is the prior state.  Only where the ScaledObject CRD is served.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from tenant_enforcer.model.levels import Level
from tenant_enforcer.model.refs import ObjectRef, Observed
from tenant_enforcer.targets.base import TenantScope
from tenant_enforcer.targets.k8s.kube import CustomKind
from tenant_enforcer.targets.k8s.marked import FieldTarget
from tenant_enforcer.targets.k8s.workloads import ladder_replicas
from tenant_enforcer.targets.registry import register

PAUSED = "autoscaling.keda.sh/paused-replicas"
SCALED_OBJECTS = CustomKind("keda.sh", "v1alpha1", "scaledobjects")


@register
class ScaledObjectTarget(FieldTarget):
    kind = "ScaledObject"
    acts_from = Level.SCALE_DOWN
    kube_kind = SCALED_OBJECTS
    rbac = ({"apiGroups": ["keda.sh"], "resources": ["scaledobjects"], "verbs": ["get", "list", "patch"]},)

    def discover(self, scope: TenantScope) -> list[Observed]:
        if not scope.namespaces or not SCALED_OBJECTS.served(self.clients.kube):
            return []
        return super().discover(scope)

    def fields(self, obj: Mapping[str, Any]) -> dict[str, Any]:
        return {"pausedReplicas": ((obj.get("metadata") or {}).get("annotations") or {}).get(PAUSED)}

    def enforced(self, level: Level, scope: TenantScope, current: Mapping[str, Any]) -> dict[str, Any]:
        return {"pausedReplicas": str(ladder_replicas(scope))}

    def write(self, ref: ObjectRef, values: Mapping[str, Any], current: Mapping[str, Any]) -> None:
        assert ref.namespace is not None
        self.kube.patch(
            self.kube_kind,
            ref.namespace,
            ref.name,
            {"metadata": {"annotations": {PAUSED: values["pausedReplicas"]}}},
        )
