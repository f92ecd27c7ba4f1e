"""What the benchmark scripts share: waiting for convergence, counting a user's API writes
from the audit log, creating our custom objects.  Imported by the scripts in this folder
(run as `python benchmarks/<script>.py`, which puts this folder on the import path)."""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from kubernetes import client

from tenant_enforcer.devcluster.cluster import LocalCluster

GROUP, VERSION = "tenant-enforcer.io", "v1alpha1"
RESULTS = Path(__file__).parent / "results"
KINDS = {
    "enforcementladders": "EnforcementLadder",
    "tenantpolicies": "TenantPolicy",
    "moderationverdicts": "ModerationVerdict",
}


def wait_until(check: Callable[[], bool], timeout: float = 600) -> float:
    """Seconds until `check()` holds (polled every 0.1 s)."""
    start = time.monotonic()
    while not check():
        if time.monotonic() - start > timeout:
            raise TimeoutError("did not converge")
        time.sleep(0.1)
    return time.monotonic() - start


def api_writes(cluster: LocalCluster, since: int, user: str) -> tuple[int, Counter[str]]:
    """(audit log lines so far, `user`'s completed writes after line `since` by verb and resource)."""
    lines = cluster.audit_log.read_text().splitlines()
    counts: Counter[str] = Counter()
    for line in lines[since:]:
        event = json.loads(line)
        if event.get("stage") == "ResponseComplete" and event["user"]["username"] == user:
            ref = event.get("objectRef", {})
            sub = f"/{ref['subresource']}" if ref.get("subresource") else ""
            counts[f"{event['verb']} {ref.get('resource')}{sub}"] += 1
    return len(lines), counts


def create_custom(api: Any, plural: str, body: dict[str, Any]) -> None:
    body = {"apiVersion": f"{GROUP}/{VERSION}", "kind": KINDS[plural], **body}
    client.CustomObjectsApi(api).create_cluster_custom_object(GROUP, VERSION, plural, body)
