"""Benchmark: enforce ScaleDown on a tenant with N Deployments and lift it again.

Starts its own control plane (etcd + kube-apiserver) and the operator in-process, then
prints and writes (benchmarks/results/many_workloads.json) the wall time to converge each
way, the operator's API writes by verb/resource (from the API server's audit log) and the
process's peak RSS.  Figures, never assertions: machines are noisy.

    .venv/bin/python benchmarks/many_workloads.py [--workloads 200]
"""

from __future__ import annotations

import argparse
import json
import resource
import threading
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from common import GROUP, RESULTS, VERSION, api_writes, create_custom, wait_until
from kubernetes import client, config

from tenant_enforcer.controller.runner import OperatorConfig, run
from tenant_enforcer.devcluster.cluster import LocalCluster, running_cluster
from tenant_enforcer.model.duration import format_time

USER = "tenant-enforcer-bench"


def bench(
    cluster: LocalCluster, workloads: int, namespaces: int = 2, tenant: str = "bench", user: str = USER
) -> dict[str, Any]:
    api = config.new_client_from_config(config_file=str(cluster.kubeconfig))
    apps, core = client.AppsV1Api(api), client.CoreV1Api(api)
    names = [f"{tenant}-{i}" for i in range(namespaces)]
    for ns in names:
        core.create_namespace({"metadata": {"name": ns}})
    for i in range(workloads):
        ns = names[i % namespaces]
        apps.create_namespaced_deployment(
            ns,
            {
                "metadata": {"name": f"w{i}", "labels": {"app": f"w{i}"}},
                "spec": {
                    "replicas": 1 + i % 3,
                    "selector": {"matchLabels": {"app": f"w{i}"}},
                    "template": {
                        "metadata": {"labels": {"app": f"w{i}"}},
                        "spec": {"containers": [{"name": "c", "image": "nginx"}]},
                    },
                },
            },
        )
    create_custom(
        api,
        "enforcementladders",
        {
            "metadata": {"name": tenant},
            "spec": {
                "rules": [
                    {"name": "fraud", "categories": ["fraud"], "level": "ScaleDown", "noticePeriod": "0s"}
                ]
            },
        },
    )
    create_custom(
        api,
        "tenantpolicies",
        {
            "metadata": {"name": tenant},
            "spec": {"tenant": tenant, "ladder": tenant, "namespaces": {"names": names}},
        },
    )

    def replicas() -> list[int]:
        return [d.spec.replicas for ns in names for d in apps.list_namespaced_deployment(ns).items]

    def level() -> str | None:
        obj = client.CustomObjectsApi(api).get_cluster_custom_object(GROUP, VERSION, "tenantpolicies", tenant)
        return (obj.get("status") or {}).get("level")

    original = replicas()
    wait_until(lambda: level() == "None", 60)
    mark, _ = api_writes(cluster, 0, user)
    issued = datetime.now(timezone.utc) - timedelta(seconds=1)
    create_custom(
        api,
        "moderationverdicts",
        {
            "metadata": {"name": f"{tenant}-v1"},
            "spec": {
                "tenant": tenant,
                "category": "fraud",
                "severity": "high",
                "issuer": "bench",
                "issuedAt": format_time(issued),
            },
        },
    )
    enforce_s = wait_until(lambda: level() == "ScaleDown")
    assert all(r in (0, None) for r in replicas()), "not every workload was scaled down"
    mark2, enforce_writes = api_writes(cluster, mark, user)
    create_custom(
        api,
        "moderationverdicts",
        {
            "metadata": {"name": f"{tenant}-v2"},
            "spec": {
                "tenant": tenant,
                "category": "fraud",
                "severity": "high",
                "issuer": "bench",
                "outcome": "cleared",
                "supersedes": [f"{tenant}-v1"],
                "issuedAt": format_time(issued + timedelta(seconds=1)),
            },
        },
    )
    lift_s = wait_until(lambda: level() == "None")
    assert replicas() == original, "the lift did not restore every workload's replicas"
    _, lift_writes = api_writes(cluster, mark2, user)
    return {
        "workloads": workloads,
        "namespaces": namespaces,
        "enforce_seconds": round(enforce_s, 2),
        "lift_seconds": round(lift_s, 2),
        "enforce_writes": dict(sorted(enforce_writes.items())),
        "lift_writes": dict(sorted(lift_writes.items())),
        "enforce_writes_total": sum(enforce_writes.values()),
        "lift_writes_total": sum(lift_writes.values()),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--workloads", type=int, default=200)
    args = parser.parse_args()
    with running_cluster() as cluster:
        cluster.install_crds(Path(__file__).resolve().parent.parent / "crds")
        stop, ready = threading.Event(), threading.Event()
        conf = OperatorConfig(
            kubeconfig=cluster.kubeconfig_for(USER),
            namespace="tenant-enforcer-system",
            evidence_dir=cluster.directory / "evidence",
        )
        thread = threading.Thread(
            target=run, args=(conf,), kwargs={"stop": stop, "ready": ready}, daemon=True
        )
        thread.start()
        ready.wait(60)
        try:
            result = bench(cluster, args.workloads)
        finally:
            stop.set()
            thread.join(30)
    result["measured_at"] = format_time(datetime.now(timezone.utc))
    print(json.dumps(result, indent=2))
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "many_workloads.json").write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
