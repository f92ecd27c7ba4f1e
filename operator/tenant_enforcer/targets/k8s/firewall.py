"""Firewall: deny all traffic to and from the tenant's pods except the ladder's allowlist.

Two targets, registered in this order so that raising puts the deny-all in place before the
tenant's policies are set aside, and lifting (reverse order) gives those back before the
deny-all goes:

`FirewallPolicyTarget`: our NetworkPolicy `tenant-enforcer-firewall` in each tenant
namespace: every pod (`podSelector: {}`) isolated for ingress and egress, except DNS to
kube-system and ingress from the allowlisted namespaces.

`TenantNetworkPolicyTarget`: NetworkPolicies only ever add allows, so a tenant's own allow
policy would defeat the deny-all.  While firewalled they are set aside: the actuator saves
each one's clean manifest (the prior state), then it is deleted; lifting creates it again
from that manifest.  A policy the tenant creates again under a saved name while firewalled is
set aside again (the first saved manifest is kept); one found under that name at restore
time is left alone and reported.

Each guards that order on its own, since the actuator goes on with the next run when one
fails: a tenant policy is deleted only once the deny-all is in place in its namespace (with
the spec we want), and the deny-all is removed only once every set-aside policy of its
namespace is back.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from tenant_enforcer.model.ladder import FirewallSettings
from tenant_enforcer.model.levels import Level
from tenant_enforcer.model.refs import ObjectRef, Observed
from tenant_enforcer.targets.base import PriorRecord, TenantScope
from tenant_enforcer.targets.errors import ErrorClass, TargetError
from tenant_enforcer.targets.k8s.kube import KubeKind
from tenant_enforcer.targets.k8s.marked import KubeTarget, OwnedObjectTarget
from tenant_enforcer.targets.registry import register

FIREWALL_NAME = "tenant-enforcer-firewall"
NETWORK_POLICY = KubeKind("NetworkingV1Api", "network_policy")
NAMESPACE_NAME_LABEL = "kubernetes.io/metadata.name"  # set on every namespace by the API server
DNS_NAMESPACE = "kube-system"
DNS_POD_LABELS = {"k8s-app": "kube-dns"}
GROUP = "networking.k8s.io"


class NotYetSafe(TargetError):
    """A step that must wait for another one (the order that keeps the tenant isolated):
    transient, so the reconcile is retried."""

    def __init__(self, what: str) -> None:
        Exception.__init__(self, what)
        self.error_class = ErrorClass.TRANSIENT


def firewall_settings(scope: TenantScope) -> FirewallSettings:
    return scope.ladder.firewall if scope.ladder else FirewallSettings()


def firewall_spec(settings: FirewallSettings) -> dict[str, Any]:
    """The deny-all with its allowlist.  Every key is explicit (None and [] included) so a
    merge patch over an object of that name replaces its whole spec."""
    egress: list[dict[str, Any]] = []
    if settings.allow_dns:
        egress.append(
            {
                "to": [
                    {
                        "namespaceSelector": {"matchLabels": {NAMESPACE_NAME_LABEL: DNS_NAMESPACE}},
                        "podSelector": {"matchLabels": dict(DNS_POD_LABELS)},
                    }
                ],
                "ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}],
            }
        )
    ingress: list[dict[str, Any]] = []
    if settings.allow_ingress_from_namespaces:
        ingress.append(
            {
                "from": [
                    {"namespaceSelector": {"matchLabels": {NAMESPACE_NAME_LABEL: name}}}
                    for name in sorted(set(settings.allow_ingress_from_namespaces))
                ]
            }
        )
    return {
        "podSelector": {"matchLabels": None, "matchExpressions": None},
        "policyTypes": ["Ingress", "Egress"],
        "ingress": ingress,
        "egress": egress,
    }


def canonical_spec(spec: Mapping[str, Any]) -> dict[str, Any]:
    """A NetworkPolicy spec as the API server returns it: absent, null and empty lists are
    the same; an empty pod selector is `{}`.  (Only the top level and the pod selector are
    folded: inside the rules `[{}]` means "allow all", not "nothing".)"""
    out = {key: value for key, value in spec.items() if value is not None and value != []}
    out["podSelector"] = {k: v for k, v in (spec.get("podSelector") or {}).items() if v}
    return out


def clean_manifest(obj: Mapping[str, Any]) -> dict[str, Any]:
    """What it takes to create the policy again exactly: no uid, resourceVersion,
    managedFields, creationTimestamp, generation or status."""
    meta = obj.get("metadata") or {}
    clean_meta: dict[str, Any] = {
        "name": meta["name"],
        "namespace": meta.get("namespace"),
        "labels": dict(meta.get("labels") or {}),
        "annotations": dict(meta.get("annotations") or {}),
    }
    if meta.get("ownerReferences"):
        clean_meta["ownerReferences"] = list(meta["ownerReferences"])
    return {
        "apiVersion": f"{GROUP}/v1",
        "kind": "NetworkPolicy",
        "metadata": clean_meta,
        "spec": dict(obj.get("spec") or {}),
    }


def _verbs(verbs: list[str]) -> dict[str, Any]:
    return {"apiGroups": [GROUP], "resources": ["networkpolicies"], "verbs": verbs}


@register
class FirewallPolicyTarget(OwnedObjectTarget):
    kind = "NetworkPolicy"
    acts_from = Level.FIREWALL
    kube_kind = NETWORK_POLICY
    object_name = FIREWALL_NAME
    # The focused watch sees a tenant delete or edit our deny-all (it carries our label).
    watch = ("NetworkingV1Api", "list_network_policy_for_all_namespaces")
    rbac = (_verbs(["get", "list", "watch", "create", "patch", "delete"]),)

    def desired(self, namespace: str, level: Level, scope: TenantScope) -> dict[str, Any]:
        return {
            "apiVersion": f"{GROUP}/v1",
            "kind": "NetworkPolicy",
            "spec": firewall_spec(firewall_settings(scope)),
        }

    def spec_of(self, obj: Mapping[str, Any]) -> Any:
        return canonical_spec(obj.get("spec") or {})

    def restore(self, ref: ObjectRef, prior: PriorRecord | None, scope: TenantScope) -> list[str]:
        assert ref.namespace is not None
        waiting = _set_aside_in(self, ref.namespace, scope)
        if waiting:
            raise NotYetSafe(
                f"keep {ref} until the tenant's policies set aside in {ref.namespace} are back: "
                + ", ".join(waiting)
            )
        return super().restore(ref, prior, scope)


@register
class TenantNetworkPolicyTarget(KubeTarget):
    """The tenant's own NetworkPolicies, set aside (saved, then deleted) while firewalled."""

    kind = "TenantNetworkPolicy"  # "NetworkPolicy" names our deny-all in the registry
    acts_from = Level.FIREWALL
    kube_kind = NETWORK_POLICY
    rbac = (_verbs(["get", "list", "create", "delete"]),)

    def discover(self, scope: TenantScope) -> list[Observed]:
        saved = scope.saved_of_kind(self.kind)
        found: list[Observed] = []
        for namespace in sorted(scope.namespaces):
            for obj in self.kube.list(self.kube_kind, namespace):
                # Only the name tells ours apart: labels are the tenant's to write, and a
                # policy labelled like ours must not escape being set aside.
                if obj["metadata"]["name"] == FIREWALL_NAME:
                    continue
                ref = self.ref(obj)
                if ref in saved:
                    # Set aside, and created again since: held at Firewall but drifted, so it
                    # is set aside again (the first saved manifest stays: the actuator never
                    # overwrites a record), or reported at restore if the level was lifted.
                    found.append(Observed(ref, Level.FIREWALL, clean_manifest(obj), drifted=True))
                else:
                    found.append(Observed(ref, Level.NONE, clean_manifest(obj)))
        present = {obs.ref for obs in found}
        for ref in sorted(saved):
            if ref not in present and ref.namespace in scope.namespaces:
                found.append(Observed(ref, Level.FIREWALL))
        return found

    def apply(self, ref: ObjectRef, level: Level, scope: TenantScope) -> None:
        assert ref.namespace is not None
        firewall = self.kube.read(self.kube_kind, ref.namespace, FIREWALL_NAME)
        wanted = canonical_spec(firewall_spec(firewall_settings(scope)))
        if firewall is None or canonical_spec(firewall.get("spec") or {}) != wanted:
            raise NotYetSafe(f"set {ref} aside once {FIREWALL_NAME} is in place in {ref.namespace}")
        self.kube.delete(self.kube_kind, ref.namespace, ref.name)

    def restore(self, ref: ObjectRef, prior: PriorRecord | None, scope: TenantScope) -> list[str]:
        assert ref.namespace is not None
        if prior is None:
            return []  # nothing saved: nothing of ours to give back
        try:
            if self.kube.create(self.kube_kind, ref.namespace, prior.state):
                return []
        except TargetError as exc:
            if exc.error_class is ErrorClass.GONE:
                return [f"{ref}: namespace {ref.namespace} no longer exists; not restored"]
            raise
        current = self.kube.read(self.kube_kind, ref.namespace, ref.name)
        if current is None:
            raise NotYetSafe(f"restore {ref}: it existed a moment ago and is gone; trying again")
        differs = _differences(prior.state, clean_manifest(current))
        if not differs:
            return []  # created again exactly as it was: nothing to report
        return [
            f"{ref}: a NetworkPolicy of that name was created while it was set aside "
            f"({', '.join(differs)} differ from the saved one); left as it is, not restored"
        ]


def _differences(saved: Mapping[str, Any], current: Mapping[str, Any]) -> list[str]:
    def parts(manifest: Mapping[str, Any]) -> dict[str, Any]:
        meta = manifest.get("metadata") or {}
        return {
            "spec": manifest.get("spec") or {},
            "labels": meta.get("labels") or {},
            "annotations": meta.get("annotations") or {},
        }

    before, after = parts(saved), parts(current)
    return [name for name in before if before[name] != after[name]]


def _set_aside_in(target: KubeTarget, namespace: str, scope: TenantScope) -> list[str]:
    """Names of the tenant policies of `namespace` that are saved but not back yet."""
    saved = [
        ref.name for ref in scope.saved_of_kind(TenantNetworkPolicyTarget.kind) if ref.namespace == namespace
    ]
    if not saved:
        return []
    present = {obj["metadata"]["name"] for obj in target.kube.list(NETWORK_POLICY, namespace)}
    return sorted(name for name in saved if name not in present)
