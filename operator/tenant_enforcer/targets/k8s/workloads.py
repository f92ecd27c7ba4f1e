"""ScaleDown on the tenant's workloads: each kind is a few lines of data on a shared shape.

Deployments, StatefulSets and standalone ReplicaSets go to the ladder's replicas through
the scale subresource; CronJobs and Jobs are suspended; DaemonSets get a node selector no
node has; HPAs are pinned so they cannot scale a target back up.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from tenant_enforcer.model.levels import Level
from tenant_enforcer.model.refs import ObjectRef
from tenant_enforcer.targets.base import TenantScope
from tenant_enforcer.targets.k8s.kube import KubeKind
from tenant_enforcer.targets.k8s.marked import FieldTarget
from tenant_enforcer.targets.registry import register

UNSCHEDULABLE = {"tenant-enforcer.io/unschedulable": "true"}


def _verbs(group: str, resources: list[str], verbs: list[str]) -> dict[str, Any]:
    return {"apiGroups": [group], "resources": resources, "verbs": verbs}


def ladder_replicas(scope: TenantScope) -> int:
    return scope.ladder.scale_down.replicas if scope.ladder else 0


class ScalableWorkload(FieldTarget):
    """Replicas through the scale subresource (our field manager; GitOps tools see it)."""

    acts_from = Level.SCALE_DOWN
    resource: ClassVar[str]

    def fields(self, obj: Mapping[str, Any]) -> dict[str, Any]:
        return {"replicas": (obj.get("spec") or {}).get("replicas", 1)}

    def enforced(self, level: Level, scope: TenantScope, current: Mapping[str, Any]) -> dict[str, Any]:
        return {"replicas": ladder_replicas(scope)}

    def write(self, ref: ObjectRef, values: Mapping[str, Any], current: Mapping[str, Any]) -> None:
        assert ref.namespace is not None
        self.kube.patch(
            self.kube_kind,
            ref.namespace,
            ref.name,
            {"spec": {"replicas": values["replicas"]}},
            suffix="_scale",
        )


@register
class DeploymentTarget(ScalableWorkload):
    kind = "Deployment"
    kube_kind = KubeKind("AppsV1Api", "deployment")
    watch = ("AppsV1Api", "list_deployment_for_all_namespaces")
    rbac = (
        _verbs("apps", ["deployments"], ["get", "list", "watch", "patch"]),
        _verbs("apps", ["deployments/scale"], ["get", "patch"]),
    )


@register
class StatefulSetTarget(ScalableWorkload):
    kind = "StatefulSet"
    kube_kind = KubeKind("AppsV1Api", "stateful_set")
    watch = ("AppsV1Api", "list_stateful_set_for_all_namespaces")
    rbac = (
        _verbs("apps", ["statefulsets"], ["get", "list", "watch", "patch"]),
        _verbs("apps", ["statefulsets/scale"], ["get", "patch"]),
    )


@register
class ReplicaSetTarget(ScalableWorkload):
    """Standalone ReplicaSets only: a Deployment's are reached through the Deployment."""

    kind = "ReplicaSet"
    kube_kind = KubeKind("AppsV1Api", "replica_set")
    watch = ("AppsV1Api", "list_replica_set_for_all_namespaces")
    rbac = (
        _verbs("apps", ["replicasets"], ["get", "list", "watch", "patch"]),
        _verbs("apps", ["replicasets/scale"], ["get", "patch"]),
    )


@register
class DaemonSetTarget(FieldTarget):
    """DaemonSets cannot scale: a node selector that no node matches removes their pods."""

    kind = "DaemonSet"
    acts_from = Level.SCALE_DOWN
    kube_kind = KubeKind("AppsV1Api", "daemon_set")
    watch = ("AppsV1Api", "list_daemon_set_for_all_namespaces")
    rbac = (_verbs("apps", ["daemonsets"], ["get", "list", "watch", "patch"]),)

    def fields(self, obj: Mapping[str, Any]) -> dict[str, Any]:
        pod_spec = ((obj.get("spec") or {}).get("template") or {}).get("spec") or {}
        return {"nodeSelector": dict(pod_spec.get("nodeSelector") or {})}

    def enforced(self, level: Level, scope: TenantScope, current: Mapping[str, Any]) -> dict[str, Any]:
        return {"nodeSelector": dict(UNSCHEDULABLE)}

    def write(self, ref: ObjectRef, values: Mapping[str, Any], current: Mapping[str, Any]) -> None:
        assert ref.namespace is not None
        # A merge patch merges maps: remove the keys that must go, explicitly.
        wanted = dict(values["nodeSelector"] or {})
        selector: dict[str, Any] = {k: None for k in current.get("nodeSelector") or {} if k not in wanted}
        selector.update(wanted)
        self.kube.patch(
            self.kube_kind,
            ref.namespace,
            ref.name,
            {"spec": {"template": {"spec": {"nodeSelector": selector or None}}}},
        )


class SuspendableWorkload(FieldTarget):
    acts_from = Level.SCALE_DOWN

    def fields(self, obj: Mapping[str, Any]) -> dict[str, Any]:
        return {"suspend": bool((obj.get("spec") or {}).get("suspend", False))}

    def enforced(self, level: Level, scope: TenantScope, current: Mapping[str, Any]) -> dict[str, Any]:
        return {"suspend": True}

    def write(self, ref: ObjectRef, values: Mapping[str, Any], current: Mapping[str, Any]) -> None:
        assert ref.namespace is not None
        self.kube.patch(self.kube_kind, ref.namespace, ref.name, {"spec": {"suspend": values["suspend"]}})


@register
class CronJobTarget(SuspendableWorkload):
    kind = "CronJob"
    kube_kind = KubeKind("BatchV1Api", "cron_job")
    watch = ("BatchV1Api", "list_cron_job_for_all_namespaces")
    rbac = (_verbs("batch", ["cronjobs"], ["get", "list", "watch", "patch"]),)


@register
class JobTarget(SuspendableWorkload):
    """Standalone Jobs only: a CronJob's Jobs are reached through the CronJob."""

    kind = "Job"
    kube_kind = KubeKind("BatchV1Api", "job")
    watch = ("BatchV1Api", "list_job_for_all_namespaces")
    rbac = (_verbs("batch", ["jobs"], ["get", "list", "watch", "patch"]),)

    def selected(self, obj: Mapping[str, Any]) -> bool:
        status = obj.get("status") or {}
        finished = any(
            c.get("type") in ("Complete", "Failed") and c.get("status") == "True"
            for c in status.get("conditions") or []
        )
        return super().selected(obj) and not finished


@register
class HorizontalPodAutoscalerTarget(FieldTarget):
    """Pinned to the ladder's replicas (at least 1: an HPA cannot have minReplicas 0; at 0
    replicas its target is scaled to zero and the HPA stops acting)."""

    kind = "HorizontalPodAutoscaler"
    acts_from = Level.SCALE_DOWN
    kube_kind = KubeKind("AutoscalingV2Api", "horizontal_pod_autoscaler")
    watch = ("AutoscalingV2Api", "list_horizontal_pod_autoscaler_for_all_namespaces")
    rbac = (_verbs("autoscaling", ["horizontalpodautoscalers"], ["get", "list", "watch", "patch"]),)

    def fields(self, obj: Mapping[str, Any]) -> dict[str, Any]:
        spec = obj.get("spec") or {}
        return {"minReplicas": spec.get("minReplicas", 1), "maxReplicas": spec.get("maxReplicas")}

    def enforced(self, level: Level, scope: TenantScope, current: Mapping[str, Any]) -> dict[str, Any]:
        pinned = max(1, ladder_replicas(scope))
        return {"minReplicas": pinned, "maxReplicas": pinned}

    def write(self, ref: ObjectRef, values: Mapping[str, Any], current: Mapping[str, Any]) -> None:
        assert ref.namespace is not None
        self.kube.patch(self.kube_kind, ref.namespace, ref.name, {"spec": dict(values)})
