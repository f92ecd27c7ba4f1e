"""The kinds Deprovision snapshots and deletes, as data: the `KINDS` table says which kinds, in
which order, and what is special about each (system objects skipped, generated fields cleaned
from manifests, how a run-to-completion object says it finished)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from tenant_enforcer.targets.k8s.kube import KubeKind

JOB_UID_LABELS = ("controller-uid", "batch.kubernetes.io/controller-uid")
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
