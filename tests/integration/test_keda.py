"""KEDA ScaledObjects are paused at ScaleDown and given back their exact annotation."""

from __future__ import annotations

import subprocess

import yaml
from kubehelpers import AuditLog, Kube, wait_for

PAUSED = "autoscaling.keda.sh/paused-replicas"

# Enough of KEDA's CRD for the API server to serve the kind (KEDA's controller is not
# needed: we only test what the operator writes).
SCALED_OBJECT_CRD = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": "scaledobjects.keda.sh"},
    "spec": {
        "group": "keda.sh",
        "scope": "Namespaced",
        "names": {"kind": "ScaledObject", "plural": "scaledobjects", "singular": "scaledobject"},
        "versions": [
            {
                "name": "v1alpha1",
                "served": True,
                "storage": True,
                "schema": {
                    "openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
                },
            }
        ],
    },
}


def _scaled_object(name: str, annotations: dict[str, str]) -> dict[str, object]:
    return {
        "apiVersion": "keda.sh/v1alpha1",
        "kind": "ScaledObject",
        "metadata": {"name": name, "annotations": annotations},
        "spec": {"scaleTargetRef": {"name": "web"}, "minReplicaCount": 1, "triggers": [{"type": "cpu"}]},
    }


def test_scaled_objects_are_paused_and_restored(kube: Kube, operator: AuditLog, unique: str) -> None:
    subprocess.run(
        kube.cluster.kubectl_cmd("apply", "-f", "-"),
        input=yaml.safe_dump(SCALED_OBJECT_CRD),
        text=True,
        check=True,
        capture_output=True,
    )
    wait_for(
        "ScaledObjects served",
        lambda: (
            subprocess.run(
                kube.cluster.kubectl_cmd("get", "scaledobjects.keda.sh", "-A"), capture_output=True
            ).returncode
            == 0
        ),
    )
    tenant, ns = f"k-{unique}", f"k-{unique}-app"
    kube.namespace(ns)
    for name, initial in (("plain", {}), ("already", {PAUSED: "2", "team": "a"})):
        kube.custom.create_namespaced_custom_object(
            "keda.sh", "v1alpha1", ns, "scaledobjects", _scaled_object(name, initial)
        )
    kube.ladder(
        f"l-{unique}",
        [{"name": "fraud", "categories": ["fraud"], "level": "ScaleDown", "noticePeriod": "0s"}],
    )
    kube.policy(tenant, tenant, f"l-{unique}", [ns])

    def annotations(name: str) -> dict[str, str]:
        obj = kube.custom.get_namespaced_custom_object("keda.sh", "v1alpha1", ns, "scaledobjects", name)
        return dict(obj["metadata"].get("annotations") or {})

    kube.verdict(f"v-{unique}", tenant, category="fraud", severity="high")
    wait_for("level ScaleDown", lambda: kube.status("tenantpolicies", tenant).get("level") == "ScaleDown")
    assert annotations("plain")[PAUSED] == "0"
    assert annotations("already")[PAUSED] == "0"
    assert annotations("already")["team"] == "a"

    kube.verdict(f"c-{unique}", tenant, category="fraud", outcome="cleared", supersedes=[f"v-{unique}"])
    wait_for("level None", lambda: kube.status("tenantpolicies", tenant).get("level") == "None")
    assert annotations("plain") == {}
    assert annotations("already") == {PAUSED: "2", "team": "a"}
