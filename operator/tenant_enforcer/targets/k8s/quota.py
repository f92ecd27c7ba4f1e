"""A `pods: 0` ResourceQuota per tenant namespace while scaled down to zero: GitOps tools or
HPAs that put `replicas` back cannot start pods.  The tenant's own quotas are left alone."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from tenant_enforcer.model.levels import Level
from tenant_enforcer.targets.base import TenantScope
from tenant_enforcer.targets.k8s.kube import KubeKind
from tenant_enforcer.targets.k8s.marked import OwnedObjectTarget
from tenant_enforcer.targets.k8s.workloads import ladder_replicas
from tenant_enforcer.targets.registry import register

QUOTA_NAME = "tenant-enforcer-freeze"


@register
class FreezeQuotaTarget(OwnedObjectTarget):
    kind = "ResourceQuota"
    acts_from = Level.SCALE_DOWN
    kube_kind = KubeKind("CoreV1Api", "resource_quota")
    object_name = QUOTA_NAME
    rbac = (
        {"apiGroups": [""], "resources": ["resourcequotas"], "verbs": ["get", "create", "patch", "delete"]},
    )

    def discover(self, scope: TenantScope) -> list[Any]:
        # Only a ladder that scales to zero freezes pod creation; at N > 0 replicas a pod
        # count would also block rollouts of the workloads we keep.
        found = super().discover(scope)
        if ladder_replicas(scope) == 0:
            return found
        return [obs for obs in found if obs.applied != Level.NONE]

    def desired(self, namespace: str, level: Level, scope: TenantScope) -> dict[str, Any]:
        return {"apiVersion": "v1", "kind": "ResourceQuota", "spec": {"hard": {"pods": "0"}}}

    def spec_of(self, obj: Mapping[str, Any]) -> Any:
        return (obj.get("spec") or {}).get("hard")
