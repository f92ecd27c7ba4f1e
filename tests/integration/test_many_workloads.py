"""A tenant with 200 workloads is enforced and lifted correctly (figures printed, not asserted)."""

from __future__ import annotations

import sys
from pathlib import Path

from kubehelpers import OPERATOR_USER, AuditLog, Kube

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
from many_workloads import bench


def test_two_hundred_workloads_scale_down_and_back(kube: Kube, operator: AuditLog, unique: str) -> None:
    result = bench(kube.cluster, workloads=200, tenant=f"m-{unique}", user=OPERATOR_USER)
    print(f"\n200 workloads: {result}")
    # bench() itself asserts every workload reached 0 and got its exact replicas back;
    # here: no more than a mark and a scale per workload each way (batched prior state).
    assert result["enforce_writes"]["patch deployments/scale"] == 200
    assert result["enforce_writes"]["create configmaps"] == 1
    assert result["enforce_writes_total"] <= 2 * 200 + 20
    assert result["lift_writes_total"] <= 2 * 200 + 20
