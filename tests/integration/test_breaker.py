"""The global breaker with the operator in-process, on a control plane of its own.

Each test runs its own operator with a small limit (two operators on one cluster is not a
supported setup), so the shared session operator and its tests never see these limits.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from kubehelpers import GROUP, VERSION, AuditLog, Kube, wait_for
from kubernetes import config

from tenant_enforcer.devcluster.cluster import running_cluster
from tenant_enforcer.model.duration import parse_time

ROOT = Path(__file__).resolve().parents[2]
LEVEL = "tenant-enforcer.io/level"
POLICIES = "tenantpolicies"
RULE = {"name": "fraud", "categories": ["fraud"], "level": "ScaleDown", "noticePeriod": "0s"}
Factory = Callable[..., AbstractContextManager[AuditLog]]


@pytest.fixture
def own_kube(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Kube]:
    """A fresh control plane per test: raises in TenantPolicy histories count for a window,
    also for the next operator started on the same cluster."""
    with running_cluster(tmp_path_factory.mktemp("breaker-cluster")) as cluster:
        cluster.install_crds(ROOT / "crds")
        yield Kube(config.new_client_from_config(config_file=str(cluster.kubeconfig)), cluster)


def _tenant(kube: Kube, name: str, ladder: str) -> str:
    kube.namespace(f"{name}-web")
    kube.policy(name, name, ladder, [f"{name}-web"])
    return name


def _seen(kube: Kube, *tenants: str) -> None:
    for name in tenants:
        wait_for(
            f"{name} initial status", lambda n=name: kube.status(POLICIES, n).get("targetLevel") == "None"
        )


def _throttled(kube: Kube, tenant: str) -> dict[str, Any] | None:
    cond = kube.condition(POLICIES, tenant, "Throttled")
    return cond if cond and cond["status"] == "True" else None


def _level(kube: Kube, tenant: str) -> str:
    return str(kube.status(POLICIES, tenant).get("level"))


def _raised_at(kube: Kube, tenant: str) -> list[str]:
    history = kube.status(POLICIES, tenant).get("history") or []
    return [h["time"] for h in history if h["to"] == "ScaleDown"]


def test_second_raise_waits_for_the_window_and_lifting_is_not_held(
    own_kube: Kube, operator_factory: Factory, unique: str, tmp_path: Path
) -> None:
    kube = own_kube
    window = 15
    kube.ladder(f"ladder-{unique}", [RULE])
    a = _tenant(kube, f"a-{unique}", f"ladder-{unique}")
    b = _tenant(kube, f"b-{unique}", f"ladder-{unique}")
    verdicts = {a: f"va-{unique}", b: f"vb-{unique}"}
    with operator_factory(kube.cluster, tmp_path, breaker_limit=1, breaker_window=timedelta(seconds=window)):
        _seen(kube, a, b)
        for tenant, verdict in verdicts.items():
            kube.verdict(verdict, tenant, category="fraud", severity="high")

        def one_raised_one_held() -> tuple[str, str] | None:
            levels = {t: _level(kube, t) for t in (a, b)}
            for raised, held in ((a, b), (b, a)):
                if levels[raised] == "ScaleDown" and levels[held] == "Notice" and _throttled(kube, held):
                    return raised, held
            return None

        raised, held = wait_for("one tenant raised, the other held by the breaker", one_raised_one_held)
        status = kube.status(POLICIES, held)
        assert status["targetLevel"] == "ScaleDown"
        assert kube.ns_labels(f"{held}-web")[LEVEL] == "Notice"
        assert kube.ns_labels(f"{raised}-web")[LEVEL] == "ScaleDown"
        cond = _throttled(kube, held)
        assert cond and cond["reason"] == "BreakerOpen", cond
        assert cond["message"].startswith(
            f"1 disruptive transitions in the last {window}s cluster-wide (limit 1): ScaleDown waits until "
        ), cond
        assert "breaker open" in status["reason"]
        assert status["nextDueAt"], status  # retried when the slot frees, without an event
        assert _throttled(kube, raised) is None
        assert "BreakerOpen" in {e.reason for e in kube.events_for(held)}
        assert "BreakerOpen" not in {e.reason for e in kube.events_for(raised)}

        # The breaker is full, and a lift goes anyway.
        kube.verdict(
            f"clear-{unique}", raised, category="fraud", outcome="cleared", supersedes=[verdicts[raised]]
        )
        wait_for("the lift of the raised tenant", lambda: _level(kube, raised) == "None")
        assert LEVEL not in kube.ns_labels(f"{raised}-web")

        # Once the window has passed since the first raise, the held tenant is raised too.
        wait_for("the held tenant raised after the window", lambda: _level(kube, held) == "ScaleDown", 90)
        assert _throttled(kube, held) is None
        assert kube.ns_labels(f"{held}-web")[LEVEL] == "ScaleDown"
        [first], [second] = _raised_at(kube, raised), _raised_at(kube, held)
        assert parse_time(second) - parse_time(first) >= timedelta(seconds=window), (first, second)


def test_restart_keeps_the_count_an_approval_passes_and_dry_run_shows_the_hold(
    own_kube: Kube, operator_factory: Factory, unique: str, tmp_path: Path
) -> None:
    kube = own_kube
    hour = {"breaker_limit": 1, "breaker_window": timedelta(hours=1)}
    kube.ladder(f"ladder-{unique}", [RULE])
    kube.ladder(f"dry-{unique}", [RULE], mode="DryRun")
    x = _tenant(kube, f"x-{unique}", f"ladder-{unique}")
    y = _tenant(kube, f"y-{unique}", f"ladder-{unique}")
    with operator_factory(kube.cluster, tmp_path / "first", **hour):
        _seen(kube, x, y)
        kube.verdict(f"vx-{unique}", x, category="fraud", severity="high")
        wait_for("x raised", lambda: _level(kube, x) == "ScaleDown")
        kube.verdict(f"vy-{unique}", y, category="fraud", severity="high")
        wait_for("y held", lambda: _throttled(kube, y) and _level(kube, y) == "Notice")

    # A new process: the raise of x is read back from x's status history.
    z = _tenant(kube, f"z-{unique}", f"ladder-{unique}")  # while no operator runs
    with operator_factory(kube.cluster, tmp_path / "second", **hour):
        _seen(kube, z)
        kube.verdict(f"vz-{unique}", z, category="fraud", severity="high")
        wait_for("z held after the restart", lambda: _throttled(kube, z) and _level(kube, z) == "Notice")
        assert _level(kube, y) == "Notice" and _throttled(kube, y)
        assert kube.ns_labels(f"{z}-web")[LEVEL] == "Notice"

        # A person approves ScaleDown for z's verdict: the raise passes the full breaker.
        kube.create(
            "enforcementapprovals",
            {
                "apiVersion": f"{GROUP}/{VERSION}",
                "kind": "EnforcementApproval",
                "metadata": {"name": f"approve-{z}"},
                "spec": {
                    "tenant": z,
                    "level": "ScaleDown",
                    "verdicts": [f"vz-{unique}"],
                    "approver": "admin",
                    "reason": "reviewed: the breaker may let this one through",
                },
            },
        )
        wait_for("z raised by approval", lambda: _level(kube, z) == "ScaleDown")
        assert _throttled(kube, z) is None
        assert _level(kube, y) == "Notice" and _throttled(kube, y)

        # Dry-run: the plan is made at the level the breaker would allow.
        w = _tenant(kube, f"w-{unique}", f"dry-{unique}")
        _seen(kube, w)
        kube.verdict(f"vw-{unique}", w, category="fraud", severity="high")
        cond = wait_for("dry-run tenant shows the hold", lambda: _throttled(kube, w))
        assert "ScaleDown waits until" in cond["message"]
        dry = kube.condition(POLICIES, w, "DryRun")
        assert dry and dry["status"] == "True", dry
        assert "enforce Notice on" in dry["message"] and "ScaleDown" not in dry["message"], dry
        assert _level(kube, w) == "None"


def test_dry_run_shows_which_raises_the_breaker_would_hold(
    own_kube: Kube, operator_factory: Factory, unique: str, tmp_path: Path
) -> None:
    """Nothing is raised in dry-run, yet the plans count: one tenant's plan is ScaleDown, the
    other's is Notice with the breaker's condition, and neither namespace changes."""
    kube = own_kube
    kube.ladder(f"dry-{unique}", [RULE], mode="DryRun")
    tenants = [_tenant(kube, f"{n}-{unique}", f"dry-{unique}") for n in ("d1", "d2")]
    with operator_factory(kube.cluster, tmp_path, breaker_limit=1, breaker_window=timedelta(hours=1)):
        _seen(kube, *tenants)
        for tenant in tenants:
            kube.verdict(f"v{tenant}", tenant, category="fraud", severity="high")

        def plans() -> dict[str, str] | None:
            found = {t: (kube.condition(POLICIES, t, "DryRun") or {}).get("message", "") for t in tenants}
            return found if all("enforce" in m for m in found.values()) else None

        found = wait_for("both dry-run plans", plans)
        [would_raise] = [t for t, m in found.items() if "enforce ScaleDown on" in m]
        [would_hold] = [t for t in tenants if t != would_raise]
        assert "enforce Notice on" in found[would_hold] and "ScaleDown" not in found[would_hold]
        cond = _throttled(kube, would_hold)
        assert cond and "ScaleDown waits until" in cond["message"], cond
        assert _throttled(kube, would_raise) is None
        for tenant in tenants:
            assert _level(kube, tenant) == "None"
            assert LEVEL not in kube.ns_labels(f"{tenant}-web")
