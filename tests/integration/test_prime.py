"""The view is filled from paged lists before the workers start (controller/prime.py), so a
reconcile after a restart sees the tenant's verdicts, ladder and namespaces, not just its
policy.  Against the real kube-apiserver; pages of one item so the paging is exercised."""

from __future__ import annotations

import pytest
from kubehelpers import Kube, wait_for

from tenant_enforcer.controller import prime
from tenant_enforcer.controller.store import ClusterView


def test_prime_view_reads_every_kind_page_by_page(
    kube: Kube, unique: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    tenant = f"p-{unique}"
    namespaces = [f"{tenant}-web", f"{tenant}-data"]
    for ns in namespaces:
        kube.namespace(ns, {"team": "web"})
    kube.ladder(f"ladder-{unique}", [{"name": "spam", "categories": ["spam"], "level": "Notice"}])
    kube.policy(tenant, tenant, f"ladder-{unique}", namespaces)
    kube.verdict(f"v1-{unique}", tenant)
    kube.verdict(f"v2-{unique}", tenant)
    # The session operator may hold the tenant meanwhile: only what the view reads matters here.
    wait_for("the policy listed", lambda: kube.get("tenantpolicies", tenant))

    monkeypatch.setattr(prime, "PAGE", 1)  # other tests' objects fill many pages: all must be read
    view = ClusterView()
    tenants = prime.prime_view(kube.api, view)

    assert tenant in tenants, "the tenant is queued for its first reconcile"
    snap = view.snapshot(tenant)
    assert [p.name for p in snap.policies] == [tenant]
    assert sorted(v.name for v in snap.verdicts) == [f"v1-{unique}", f"v2-{unique}"]
    assert list(snap.ladders) == [f"ladder-{unique}"] and snap.ladders[f"ladder-{unique}"].ladder
    assert sorted(snap.namespaces) == sorted(namespaces)
    assert snap.namespaces[f"{tenant}-web"]["team"] == "web"
