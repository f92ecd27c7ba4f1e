"""The operator in-process against a real kube-apiserver: verdicts drive tenants' levels."""

from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone

from kubehelpers import AuditLog, Kube, wait_for

from tenant_enforcer.model.duration import format_time

LEVEL = "tenant-enforcer.io/level"
NOTICE_RULE = [{"name": "spam", "categories": ["spam"], "level": "Notice"}]


def _setup(
    kube: Kube, unique: str, rules: list[dict[str, object]] | None = None, **ladder: object
) -> tuple[str, list[str]]:
    tenant = f"t-{unique}"
    namespaces = [f"{tenant}-web", f"{tenant}-data"]
    for ns in namespaces:
        kube.namespace(ns)
    kube.ladder(f"ladder-{unique}", rules or NOTICE_RULE, **ladder)
    kube.policy(tenant, tenant, f"ladder-{unique}", namespaces)
    wait_for("initial status", lambda: kube.status("tenantpolicies", tenant).get("targetLevel") == "None")
    return tenant, namespaces


def test_verdict_raises_tenant_to_notice_and_clearing_lifts_it(
    kube: Kube, operator: AuditLog, unique: str
) -> None:
    tenant, namespaces = _setup(kube, unique)
    kube.verdict(f"v-{unique}", tenant)

    status = wait_for(
        "level Notice", lambda: (s := kube.status("tenantpolicies", tenant)).get("level") == "Notice" and s
    )
    assert status["targetLevel"] == "Notice"
    assert status["activeVerdicts"] == [f"v-{unique}"]
    assert status["namespaces"] == sorted(namespaces)
    assert status["observedGeneration"] == 1
    conditions = {c["type"]: c for c in status["conditions"]}
    assert conditions["Ready"]["status"] == "True" and conditions["Ready"]["reason"] == "Enforced"
    assert conditions["Enforced"]["status"] == "True"
    assert "Stalled" not in conditions
    assert [h["to"] for h in status["history"]] == ["Notice"]
    for ns in namespaces:
        assert kube.ns_labels(ns)[LEVEL] == "Notice"
    assert kube.status("moderationverdicts", f"v-{unique}")["state"] == "Active"
    reasons = {e.reason for e in kube.events_for(tenant)}
    assert {"LevelRaised", "TargetChanged"} <= reasons

    kube.verdict(f"clear-{unique}", tenant, outcome="cleared", supersedes=[f"v-{unique}"])
    wait_for("level None", lambda: kube.status("tenantpolicies", tenant).get("level") == "None")
    for ns in namespaces:
        assert LEVEL not in kube.ns_labels(ns)
    wait_for(
        "verdict Superseded",
        lambda: kube.status("moderationverdicts", f"v-{unique}")["state"] == "Superseded",
    )
    assert "LevelLifted" in {e.reason for e in kube.events_for(tenant)}
    assert [h["to"] for h in kube.status("tenantpolicies", tenant)["history"]] == ["Notice", "None"]


def test_verdict_for_unknown_tenant_is_marked_and_touches_nothing(
    kube: Kube, operator: AuditLog, unique: str
) -> None:
    before = operator.writes()
    kube.verdict(f"orphan-{unique}", f"nobody-{unique}")
    status = wait_for(
        "UnknownTenant",
        lambda: (
            (s := kube.status("moderationverdicts", f"orphan-{unique}")).get("state") == "UnknownTenant" and s
        ),
    )
    assert f"nobody-{unique}" in status["message"]
    time.sleep(1)
    new = [w for w in operator.writes() if w not in before]
    # Only the verdict's own status and an Event about it: no namespace, no policy.
    assert all(w.startswith(("patch moderationverdicts/status ", "create events ")) for w in new), new
    assert any(w == f"patch moderationverdicts/status /orphan-{unique}" for w in new), new


def test_second_policy_claiming_a_namespace_is_stalled_and_applies_nothing(
    kube: Kube, operator: AuditLog, unique: str
) -> None:
    tenant, namespaces = _setup(kube, unique)
    rival = f"r-{unique}"
    kube.policy(rival, rival, f"ladder-{unique}", [namespaces[0]])
    kube.verdict(f"rv-{unique}", rival)
    stalled = wait_for("rival Stalled", lambda: kube.condition("tenantpolicies", rival, "Stalled"))
    assert stalled["reason"] == "NamespaceConflict"
    assert namespaces[0] in stalled["message"] and tenant in stalled["message"]
    ready = kube.condition("tenantpolicies", rival, "Ready")
    assert ready and ready["status"] == "False"
    time.sleep(1)
    assert LEVEL not in kube.ns_labels(namespaces[0])
    assert kube.status("tenantpolicies", rival).get("level", "None") == "None"
    # The first policy is unaffected.
    assert kube.condition("tenantpolicies", tenant, "Stalled") is None


def test_policy_naming_a_protected_namespace_is_stalled(kube: Kube, operator: AuditLog, unique: str) -> None:
    tenant = f"p-{unique}"
    kube.namespace(f"{tenant}-ops", labels={"tenant-enforcer.io/protected": "true"})
    kube.namespace(f"{tenant}-web")
    kube.ladder(f"ladder-{unique}", NOTICE_RULE)
    kube.policy(tenant, tenant, f"ladder-{unique}", [f"{tenant}-web", f"{tenant}-ops"])
    kube.verdict(f"v-{unique}", tenant)
    stalled = wait_for("Stalled", lambda: kube.condition("tenantpolicies", tenant, "Stalled"))
    assert stalled["reason"] == "ProtectedNamespace" and f"{tenant}-ops" in stalled["message"]
    time.sleep(1)
    assert LEVEL not in kube.ns_labels(f"{tenant}-web")


def test_notice_period_delays_the_level_until_its_due_time(
    kube: Kube, operator: AuditLog, unique: str
) -> None:
    rules = [{"name": "fraud", "categories": ["fraud"], "level": "ScaleDown", "noticePeriod": "4s"}]
    tenant, _ = _setup(kube, unique, rules)
    issued = datetime.now(timezone.utc).replace(microsecond=0)
    kube.verdict(f"v-{unique}", tenant, category="fraud", severity="medium", issued=issued)
    status = wait_for(
        "target Notice",
        lambda: (s := kube.status("tenantpolicies", tenant)).get("targetLevel") == "Notice" and s,
    )
    assert status["nextDueAt"] == format_time(issued + timedelta(seconds=4))
    assert datetime.now(timezone.utc) < issued + timedelta(seconds=4), (
        "the test machine was too slow to observe the notice"
    )
    # Nothing writes to the tenant after this: only the due-time scheduler can move it on.
    status = wait_for(
        "target ScaleDown",
        lambda: (s := kube.status("tenantpolicies", tenant)).get("targetLevel") == "ScaleDown" and s,
        timeout=20,
    )
    assert datetime.now(timezone.utc) >= issued + timedelta(seconds=4)
    assert status["level"] == "ScaleDown"


def test_expiry_lifts_the_level_at_its_due_time(kube: Kube, operator: AuditLog, unique: str) -> None:
    tenant, namespaces = _setup(kube, unique)
    expires = datetime.now(timezone.utc).replace(microsecond=0) + timedelta(seconds=4)
    kube.verdict(f"v-{unique}", tenant, expiresAt=format_time(expires))
    wait_for("level Notice", lambda: kube.status("tenantpolicies", tenant).get("level") == "Notice")
    wait_for(
        "level None after expiry",
        lambda: kube.status("tenantpolicies", tenant).get("level") == "None",
        timeout=20,
    )
    assert datetime.now(timezone.utc) >= expires
    wait_for(
        "verdict Expired", lambda: kube.status("moderationverdicts", f"v-{unique}")["state"] == "Expired"
    )
    assert LEVEL not in kube.ns_labels(namespaces[0])


def test_converged_tenant_reconciles_without_writes(kube: Kube, operator: AuditLog, unique: str) -> None:
    tenant, namespaces = _setup(kube, unique)
    kube.verdict(f"v-{unique}", tenant)
    wait_for("level Notice", lambda: kube.status("tenantpolicies", tenant).get("level") == "Notice")
    time.sleep(2)  # let the watch deliver our own writes back
    before = operator.writes()
    # Wake the reconcile three ways without changing what it decides.
    kube.custom.patch_cluster_custom_object(
        "tenant-enforcer.io",
        "v1alpha1",
        "tenantpolicies",
        tenant,
        {"metadata": {"annotations": {"test/poke": "1"}}},
    )
    kube.core.patch_namespace(namespaces[0], {"metadata": {"annotations": {"test/poke": "1"}}})
    kube.custom.patch_cluster_custom_object(
        "tenant-enforcer.io",
        "v1alpha1",
        "moderationverdicts",
        f"v-{unique}",
        {"metadata": {"labels": {"test/poke": "1"}}},
    )
    time.sleep(3)
    mine = [w for w in operator.writes() if w not in before and (tenant in w or unique in w)]
    assert mine == [], f"a converged reconcile wrote: {mine}"


def test_deleting_the_policy_lifts_its_level_first(kube: Kube, operator: AuditLog, unique: str) -> None:
    tenant, namespaces = _setup(kube, unique)
    kube.verdict(f"v-{unique}", tenant)
    wait_for("level Notice", lambda: kube.ns_labels(namespaces[0]).get(LEVEL) == "Notice")
    kube.custom.delete_cluster_custom_object("tenant-enforcer.io", "v1alpha1", "tenantpolicies", tenant)

    def gone() -> bool:
        try:
            kube.get("tenantpolicies", tenant)
            return False
        except Exception:
            return True

    wait_for("policy deleted", gone)
    for ns in namespaces:
        assert LEVEL not in kube.ns_labels(ns)
    wait_for(
        "verdict UnknownTenant",
        lambda: kube.status("moderationverdicts", f"v-{unique}").get("state") == "UnknownTenant",
    )


def test_dry_run_ladder_records_the_plan_and_changes_nothing(
    kube: Kube, operator: AuditLog, unique: str
) -> None:
    tenant, namespaces = _setup(kube, unique, mode="DryRun")
    before = operator.writes()
    kube.verdict(f"v-{unique}", tenant)
    dry = wait_for(
        "DryRun condition with a plan",
        lambda: (c := kube.condition("tenantpolicies", tenant, "DryRun")) and "would" in c["message"] and c,
    )
    assert dry["status"] == "True"
    assert all(f"Namespace {ns}" in dry["message"] for ns in namespaces)
    status = kube.status("tenantpolicies", tenant)
    assert status["targetLevel"] == "Notice" and status["level"] == "None"
    assert "DryRunPlan" in {e.reason for e in kube.events_for(tenant)}
    time.sleep(1)
    writes = [w for w in operator.writes() if w not in before]
    assert not [w for w in writes if w.startswith("patch namespaces")], writes
    for ns in namespaces:
        assert LEVEL not in kube.ns_labels(ns)
