"""Firewall on a real API server: a deny-all with the ladder's allowlist in every tenant
namespace, the tenant's own NetworkPolicies set aside and given back exactly, and what the
policies mean checked with network-config-analyzer (our clusters have no data plane)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from connectivity import ALL, Connection, analyze
from kubehelpers import OPERATOR_NAMESPACE, AuditLog, Kube, wait_for
from kubernetes import client

from tenant_enforcer.model.levels import Level
from tenant_enforcer.model.refs import ObjectRef
from tenant_enforcer.targets.base import Clients, PriorRecord, TenantScope
from tenant_enforcer.targets.errors import ErrorClass, TargetError
from tenant_enforcer.targets.k8s.firewall import FirewallPolicyTarget, TenantNetworkPolicyTarget

FIREWALL = "tenant-enforcer-firewall"
FIREWALL_RULE = [{"name": "malware", "categories": ["malware"], "level": "Firewall", "noticePeriod": "0s"}]
DNS_53 = "{protocols:TCP, UDP,dst_ports:53}"  # how nca writes "TCP and UDP to port 53"
NS_NAME = "kubernetes.io/metadata.name"

ALLOW_ALL = {
    "metadata": {
        "name": "allow-all",
        "labels": {"team": "web", "app.kubernetes.io/part-of": "shop"},
        "annotations": {"owner": "web-team", "note": "everything may talk to us"},
    },
    "spec": {"podSelector": {}, "policyTypes": ["Ingress", "Egress"], "ingress": [{}], "egress": [{}]},
}


def db_from_api(web_ns: str) -> dict[str, Any]:
    """The data namespace's own rule: only the api pods of the web namespace reach the db."""
    return {
        "metadata": {
            "name": "db-from-api",
            "labels": {"team": "data"},
            "annotations": {"owner": "data-team", "ticket": "DB-42"},
        },
        "spec": {
            "podSelector": {"matchLabels": {"app": "db"}},
            "policyTypes": ["Ingress"],
            "ingress": [
                {
                    "from": [
                        {
                            "namespaceSelector": {"matchLabels": {NS_NAME: web_ns}},
                            "podSelector": {"matchLabels": {"app": "api"}},
                        }
                    ],
                    "ports": [{"protocol": "TCP", "port": 5432}],
                }
            ],
        },
    }


def expected_firewall_spec(monitoring: str) -> dict[str, Any]:
    """Our deny-all as the API server returns it, written out independently of the code."""
    return {
        "podSelector": {},
        "policyTypes": ["Ingress", "Egress"],
        "ingress": [{"from": [{"namespaceSelector": {"matchLabels": {NS_NAME: monitoring}}}]}],
        "egress": [
            {
                "to": [
                    {
                        "namespaceSelector": {"matchLabels": {NS_NAME: "kube-system"}},
                        "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}},
                    }
                ],
                "ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}],
            }
        ],
    }


# --- helpers over the real API ----------------------------------------------------------------


def net(kube: Kube) -> client.NetworkingV1Api:
    return client.NetworkingV1Api(kube.api)


def policies(kube: Kube, namespace: str) -> dict[str, dict[str, Any]]:
    """The NetworkPolicies of a namespace as raw JSON, by name."""
    raw = net(kube).list_namespaced_network_policy(namespace, _preload_content=False)
    return {p["metadata"]["name"]: p for p in json.loads(raw.data)["items"]}


def manifest(obj: dict[str, Any]) -> dict[str, Any]:
    """What a restore must give back: name, namespace, labels, annotations and spec."""
    meta = obj["metadata"]
    return {
        "name": meta["name"],
        "namespace": meta["namespace"],
        "labels": meta.get("labels") or {},
        "annotations": meta.get("annotations") or {},
        "spec": obj["spec"],
    }


def tenant_manifests(kube: Kube, namespaces: list[str]) -> dict[tuple[str, str], dict[str, Any]]:
    return {
        (ns, name): manifest(obj)
        for ns in namespaces
        for name, obj in policies(kube, ns).items()
        if name != FIREWALL
    }


def create_policy(kube: Kube, namespace: str, body: dict[str, Any]) -> None:
    net(kube).create_namespaced_network_policy(
        namespace, {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy", **body}
    )


def create_pod(kube: Kube, namespace: str, name: str, labels: dict[str, str]) -> None:
    """A bare Pod: it never runs on the light control plane, but it exists for nca to see."""
    kube.core.create_namespaced_pod(
        namespace,
        {
            "metadata": {"name": name, "labels": labels},
            "spec": {"containers": [{"name": "c", "image": "registry.invalid/app:1"}]},
        },
    )


def prior_state(kube: Kube, tenant: str) -> dict[str, Any] | None:
    try:
        cm = kube.core.read_namespaced_config_map(f"prior-state-{tenant}", OPERATOR_NAMESPACE)
    except client.ApiException as exc:
        if exc.status == 404:
            return None
        raise
    return {key: json.loads(value)["state"] for key, value in (cm.data or {}).items()}


def level(kube: Kube, tenant: str) -> str | None:
    value: str | None = kube.status("tenantpolicies", tenant).get("level")
    return value


def versions(kube: Kube, namespace: str) -> dict[str, str]:
    """resourceVersion of the namespace and of every Pod and NetworkPolicy in it."""
    out = {f"Namespace/{namespace}": kube.core.read_namespace(namespace).metadata.resource_version}
    out |= {
        f"Pod/{p.metadata.name}": p.metadata.resource_version
        for p in kube.core.list_namespaced_pod(namespace).items
    }
    out |= {
        f"NetworkPolicy/{n}": p["metadata"]["resourceVersion"] for n, p in policies(kube, namespace).items()
    }
    return out


def poke(kube: Kube, namespace: str, value: str) -> None:
    """Wake the tenant's reconcile (a namespace event) without changing what it decides."""
    kube.core.patch_namespace(namespace, {"metadata": {"annotations": {"test/poke": value}}})


# --- the world each test starts from ----------------------------------------------------------


@dataclass(frozen=True)
class World:
    unique: str
    tenant: str
    web: str
    data: str
    monitoring: str  # the ladder's allowlisted ingress namespace
    other_tenant: str
    other: str  # the other tenant's namespace
    originals: dict[tuple[str, str], dict[str, Any]]  # the tenant's policies by (namespace, name)

    @property
    def namespaces(self) -> list[str]:
        return [self.web, self.data]


def setup_world(kube: Kube, unique: str) -> World:
    tenant, other_tenant = f"t-{unique}", f"o-{unique}"
    web, data, monitoring, other = f"{tenant}-web", f"{tenant}-data", f"mon-{unique}", f"{other_tenant}-apps"
    for ns in (web, data, monitoring, other):
        kube.namespace(ns)
    kube.ladder(
        f"fw-{unique}",
        FIREWALL_RULE,
        levelSettings={"firewall": {"allowIngressFromNamespaces": [monitoring]}},
    )
    kube.policy(tenant, tenant, f"fw-{unique}", [web, data])
    kube.policy(other_tenant, other_tenant, f"fw-{unique}", [other])
    create_policy(kube, web, ALLOW_ALL)
    create_policy(kube, data, db_from_api(web))
    # The other tenant only takes ingress from its own namespace; its egress is open.
    create_policy(
        kube,
        other,
        {
            "metadata": {"name": "local-only", "labels": {"team": "other"}},
            "spec": {
                "podSelector": {},
                "policyTypes": ["Ingress"],
                "ingress": [{"from": [{"podSelector": {}}]}],
            },
        },
    )
    create_pod(kube, web, "web", {"app": "web"})
    create_pod(kube, web, "api", {"app": "api"})
    create_pod(kube, data, "db", {"app": "db"})
    create_pod(kube, monitoring, "prom", {"app": "prometheus"})
    create_pod(kube, other, "client", {"app": "client"})
    for name in (tenant, other_tenant):
        wait_for(
            f"{name} observed at None",
            lambda name=name: kube.status("tenantpolicies", name).get("targetLevel") == "None",
        )
    originals = tenant_manifests(kube, [web, data])
    assert set(originals) == {(web, "allow-all"), (data, "db-from-api")}
    return World(unique, tenant, web, data, monitoring, other_tenant, other, originals)


def firewall(kube: Kube, world: World) -> dict[str, Any]:
    kube.verdict(f"v-{world.unique}", world.tenant, category="malware", severity="high")
    status: dict[str, Any] = wait_for(
        "level Firewall",
        lambda: (s := kube.status("tenantpolicies", world.tenant)).get("level") == "Firewall" and s,
        timeout=60,
    )
    return status


def lift(kube: Kube, world: World) -> None:
    kube.verdict(
        f"clear-{world.unique}",
        world.tenant,
        category="malware",
        outcome="cleared",
        supersedes=[f"v-{world.unique}"],
    )
    wait_for("level None", lambda: level(kube, world.tenant) == "None", timeout=60)


def policy_writes(operator: AuditLog, since: int, namespaces: list[str]) -> list[str]:
    """The operator's NetworkPolicy writes in `namespaces` after the first `since` writes,
    in the order the API server completed them ("create networkpolicies ns/name")."""
    prefixes = tuple(f"networkpolicies {ns}/" for ns in namespaces)
    return [w for w in operator.writes()[since:] if w.split(" ", 1)[-1].startswith(prefixes)]


def record_key(namespace: str, name: str) -> str:
    return f"TenantNetworkPolicy.{namespace}.{name}"


# --- the tests ---------------------------------------------------------------------------------


def test_firewall_denies_all_but_the_allowlist_and_the_lift_gives_the_tenant_policies_back(
    kube: Kube, operator: AuditLog, unique: str
) -> None:
    world = setup_world(kube, unique)
    other_before = versions(kube, world.other)
    assert "NetworkPolicy/local-only" in other_before and "Pod/client" in other_before

    start = len(operator.writes())
    status = firewall(kube, world)
    assert status["targetLevel"] == "Firewall"
    # The deny-all is in place in every namespace before any tenant policy is set aside.
    deny_alls = {f"create networkpolicies {ns}/{FIREWALL}" for ns in world.namespaces}
    set_aside = {f"delete networkpolicies {ns}/{name}" for ns, name in world.originals}
    raised = policy_writes(operator, start, world.namespaces)
    assert set(raised[:2]) == deny_alls and set(raised[2:]) == set_aside and len(raised) == 4, raised
    conditions = {c["type"]: c for c in status["conditions"]}
    assert "Stalled" not in conditions, conditions.get("Stalled")
    for ns in world.namespaces:
        found = policies(kube, ns)
        assert set(found) == {FIREWALL}, f"{ns}: the tenant's policies should be set aside: {sorted(found)}"
        ours = found[FIREWALL]
        assert ours["metadata"]["labels"] == {
            "app.kubernetes.io/managed-by": "tenant-enforcer",
            "tenant-enforcer.io/enforced-for": world.tenant,
        }
        assert ours["metadata"]["annotations"] == {"tenant-enforcer.io/level": "Firewall"}
        assert ours["spec"] == expected_firewall_spec(world.monitoring)

    saved = prior_state(kube, world.tenant)
    assert saved is not None, "no prior-state ConfigMap while firewalled"
    assert set(saved) == {record_key(ns, name) for ns, name in world.originals}
    for (ns, name), original in world.originals.items():
        state = saved[record_key(ns, name)]
        assert state["apiVersion"] == "networking.k8s.io/v1" and state["kind"] == "NetworkPolicy"
        assert set(state["metadata"]) == {"name", "namespace", "labels", "annotations"}, state["metadata"]
        assert manifest(state) == original

    start = len(operator.writes())
    lift(kube, world)
    # The tenant's policies are back before the deny-all goes.
    given_back = {f"create networkpolicies {ns}/{name}" for ns, name in world.originals}
    removed = {f"delete networkpolicies {ns}/{FIREWALL}" for ns in world.namespaces}
    lifted = policy_writes(operator, start, world.namespaces)
    assert set(lifted[:2]) == given_back and set(lifted[2:]) == removed and len(lifted) == 4, lifted
    for ns in world.namespaces:
        assert FIREWALL not in policies(kube, ns)
    assert tenant_manifests(kube, world.namespaces) == world.originals
    assert prior_state(kube, world.tenant) is None, "the prior-state ConfigMap outlived the lift"
    assert versions(kube, world.other) == other_before, "the other tenant's objects were touched"


def test_policy_recreated_while_firewalled_is_set_aside_again_and_the_first_one_comes_back(
    kube: Kube, operator: AuditLog, unique: str
) -> None:
    world = setup_world(kube, unique)
    firewall(kube, world)
    saved = prior_state(kube, world.tenant)
    assert saved is not None

    # Converged: a reconcile woken by a namespace event writes nothing.
    time.sleep(2)  # let the watch deliver our own writes back
    before = len(operator.writes())
    poke(kube, world.web, "1")
    time.sleep(3)
    new = [w for w in operator.writes()[before:] if unique in w]
    assert new == [], f"a converged Firewall reconcile wrote: {new}"

    # The tenant deletes our deny-all: the focused watch sees it and it is put back.
    net(kube).delete_namespaced_network_policy(FIREWALL, world.data)
    wait_for("the deny-all back", lambda: FIREWALL in policies(kube, world.data))
    assert policies(kube, world.data)[FIREWALL]["spec"] == expected_firewall_spec(world.monitoring)
    # ...or loosens it: narrowed to some pods and opened to all ingress; it is set right again.
    net(kube).patch_namespaced_network_policy(
        FIREWALL, world.web, {"spec": {"podSelector": {"matchLabels": {"app": "web"}}, "ingress": [{}]}}
    )
    wait_for(
        "the deny-all re-asserted",
        lambda: policies(kube, world.web)[FIREWALL]["spec"] == expected_firewall_spec(world.monitoring),
    )

    # The tenant puts a looser `db-from-api` back under the saved name, and adds a new policy.
    loose = {
        "metadata": {"name": "db-from-api", "labels": {"team": "mallory"}},
        "spec": {"podSelector": {}, "policyTypes": ["Ingress"], "ingress": [{}]},
    }
    sneaky = {
        "metadata": {"name": "sneaky", "annotations": {"why": "get out"}},
        "spec": {"podSelector": {}, "policyTypes": ["Egress"], "egress": [{}]},
    }
    create_policy(kube, world.data, loose)
    create_policy(kube, world.web, sneaky)
    sneaky_original = manifest(policies(kube, world.web)["sneaky"])
    poke(kube, world.web, "2")
    wait_for(
        "both set aside",
        lambda: (
            set(policies(kube, world.data)) == {FIREWALL} and set(policies(kube, world.web)) == {FIREWALL}
        ),
    )
    now_saved = prior_state(kube, world.tenant)
    assert now_saved is not None
    # The record of db-from-api is the first one, never overwritten; sneaky got its own.
    assert now_saved[record_key(world.data, "db-from-api")] == saved[record_key(world.data, "db-from-api")]
    assert set(now_saved) == set(saved) | {record_key(world.web, "sneaky")}
    assert manifest(now_saved[record_key(world.web, "sneaky")]) == sneaky_original
    assert level(kube, world.tenant) == "Firewall"
    assert kube.condition("tenantpolicies", world.tenant, "Stalled") is None

    lift(kube, world)
    expected = {**world.originals, (world.web, "sneaky"): sneaky_original}
    assert tenant_manifests(kube, world.namespaces) == expected
    assert prior_state(kube, world.tenant) is None


@pytest.fixture
def dns_pod(kube: Kube, unique: str) -> Iterator[str]:
    """A kube-system pod labelled like cluster DNS, for the connectivity analysis."""
    name = f"kube-dns-{unique}"
    create_pod(kube, "kube-system", name, {"k8s-app": "kube-dns"})
    yield name
    kube.core.delete_namespaced_pod(name, "kube-system")


def test_connectivity_while_firewalled_is_only_the_allowlist_and_the_lift_restores_it(
    kube: Kube, operator: AuditLog, unique: str, dns_pod: str
) -> None:
    world = setup_world(kube, unique)
    scope = [*world.namespaces, world.monitoring, world.other, "kube-system"]
    web, api, db = f"{world.web}/web", f"{world.web}/api", f"{world.data}/db"
    prom, outsider, dns = f"{world.monitoring}/prom", f"{world.other}/client", f"kube-system/{dns_pod}"
    tenant_pods = (web, api, db)

    before = analyze(kube.api, scope)
    assert before.exported == {"namespaces": 5, "pods": 6, "policies": 3}, before.exported
    tenant_before = before.touching(world.namespaces)
    # The tenant's allow-all opens its web namespace to anyone, and its pods to anywhere...
    assert Connection(outsider, web, ALL) in tenant_before
    assert Connection(outsider, api, ALL) in tenant_before
    assert Connection(web, prom, ALL) in tenant_before
    assert Connection(web, "0.0.0.0-255.255.255.255", ALL) in tenant_before
    # (the other tenant's own policy keeps everyone else out of its namespace)
    assert not {c for c in before.connections if c.dst == outsider and not c.src.startswith(world.other)}
    assert Connection("0.0.0.0-255.255.255.255", web, ALL) in tenant_before
    # ...while the data namespace's own rule lets only the api pods reach the db, on 5432.
    assert Connection(api, db, "{protocols:TCP,dst_ports:5432}") in tenant_before
    assert not {c for c in tenant_before if c.dst == db and c.src != api}, tenant_before

    firewall(kube, world)
    during = analyze(kube.api, scope)
    assert during.exported == {"namespaces": 5, "pods": 6, "policies": 3}, during.exported  # 2 ours + 1 other
    allowlisted = {Connection(pod, dns, DNS_53) for pod in tenant_pods} | {
        Connection(prom, pod, ALL) for pod in tenant_pods
    }
    assert during.touching(world.namespaces) == allowlisted, "\n".join(
        map(str, sorted(during.touching(world.namespaces) ^ allowlisted))
    )
    # Nothing else in the cluster changed meaning.
    assert during.not_touching(world.namespaces) == before.not_touching(world.namespaces)

    lift(kube, world)
    after = analyze(kube.api, scope)
    assert after.connections == before.connections
    print(
        f"\nnca: {len(before.connections)} connections before ({len(tenant_before)} touching the tenant), "
        f"{len(during.touching(world.namespaces))} touching it while firewalled, "
        f"{len(after.connections)} after the lift"
    )


def test_restore_does_not_overwrite_a_policy_created_under_the_saved_name(kube: Kube, unique: str) -> None:
    """The targets alone, against the real API server (no operator: the conflict needs a
    precise moment that a running operator would close first)."""
    ns = f"c-{unique}"
    kube.namespace(ns)
    create_policy(kube, ns, ALLOW_ALL)
    clients = Clients(kube.api)
    deny_all, tenant_policies = FirewallPolicyTarget(clients), TenantNetworkPolicyTarget(clients)
    scope = TenantScope(f"c-{unique}", {ns: {}})
    ref, fw_ref = ObjectRef("TenantNetworkPolicy", "allow-all", ns), ObjectRef("NetworkPolicy", FIREWALL, ns)

    [observed] = tenant_policies.discover(scope)
    assert (observed.ref, observed.applied, observed.drifted) == (ref, Level.NONE, False)
    original = manifest(policies(kube, ns)["allow-all"])
    assert manifest(dict(observed.state)) == original

    # Never set aside before the deny-all is in place.
    with pytest.raises(TargetError) as refused:
        tenant_policies.apply(ref, Level.FIREWALL, scope)
    assert refused.value.error_class is ErrorClass.TRANSIENT
    assert "allow-all" in policies(kube, ns)
    # Nor while an object under our name is not our deny-all (here: the tenant's own, loose).
    create_policy(
        kube,
        ns,
        {
            "metadata": {"name": FIREWALL, "labels": {"app.kubernetes.io/managed-by": "tenant-enforcer"}},
            "spec": {
                "podSelector": {"matchLabels": {"app": "x"}},
                "policyTypes": ["Ingress"],
                "ingress": [{}],
            },
        },
    )
    with pytest.raises(TargetError) as refused:
        tenant_policies.apply(ref, Level.FIREWALL, scope)
    assert refused.value.error_class is ErrorClass.TRANSIENT
    assert "allow-all" in policies(kube, ns)

    # The name is ours: applying takes that object over, whole spec included.
    deny_all.apply(fw_ref, Level.FIREWALL, scope)
    assert policies(kube, ns)[FIREWALL]["spec"] == expected_firewall_spec("monitoring")
    record = PriorRecord(ref, observed.state)
    scope = TenantScope(scope.tenant, scope.namespaces, None, {ref: record})
    tenant_policies.apply(ref, Level.FIREWALL, scope)
    assert set(policies(kube, ns)) == {FIREWALL}
    assert [(o.ref, o.applied) for o in tenant_policies.discover(scope)] == [(ref, Level.FIREWALL)]

    # The deny-all is not removed while a set-aside policy is not back.
    with pytest.raises(TargetError) as kept:
        deny_all.restore(fw_ref, None, scope)
    assert kept.value.error_class is ErrorClass.TRANSIENT
    assert FIREWALL in policies(kube, ns)

    # Someone creates a different policy under the saved name.
    newer = {
        "metadata": {"name": "allow-all", "labels": {"team": "web"}},
        "spec": {"podSelector": {"matchLabels": {"app": "web"}}, "policyTypes": ["Ingress"]},
    }
    create_policy(kube, ns, newer)
    newer_version = policies(kube, ns)["allow-all"]["metadata"]["resourceVersion"]
    [seen] = tenant_policies.discover(scope)
    assert (seen.ref, seen.applied, seen.drifted) == (ref, Level.FIREWALL, True)

    conflicts = tenant_policies.restore(ref, record, scope)
    assert len(conflicts) == 1, conflicts
    assert str(ref) in conflicts[0] and "spec, labels, annotations differ" in conflicts[0], conflicts[0]
    current = policies(kube, ns)["allow-all"]
    assert current["metadata"]["resourceVersion"] == newer_version, "restore overwrote the newer policy"
    assert current["spec"] == newer["spec"]

    # With the name taken again, the deny-all may go.
    assert deny_all.restore(fw_ref, None, scope) == []
    assert set(policies(kube, ns)) == {"allow-all"}

    # A policy created again exactly as saved is simply back: nothing to report.
    net(kube).delete_namespaced_network_policy("allow-all", ns)
    create_policy(
        kube,
        ns,
        {"metadata": {k: original[k] for k in ("name", "labels", "annotations")}, "spec": original["spec"]},
    )
    assert tenant_policies.restore(ref, record, scope) == []
    # And a plain restore gives back the saved manifest exactly.
    net(kube).delete_namespaced_network_policy("allow-all", ns)
    assert tenant_policies.restore(ref, record, scope) == []
    assert manifest(policies(kube, ns)["allow-all"]) == original
