"""Helpers for integration tests: polling, a thin API wrapper, counting writes from the audit log."""

from __future__ import annotations

import json
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
from kubernetes import client

from tenant_enforcer.devcluster.cluster import LocalCluster
from tenant_enforcer.model.duration import format_time

GROUP, VERSION = "tenant-enforcer.io", "v1alpha1"
OPERATOR_USER = "tenant-enforcer-operator"
OPERATOR_NAMESPACE = "tenant-enforcer-system"


def wait_for(what: str, check: Callable[[], Any], timeout: float = 30.0) -> Any:
    """Poll until `check()` is truthy; fail naming `what` and the last value seen."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}; last value: {last!r}")


@dataclass
class Kube:
    """Small helpers over the real API for test bodies."""

    api: client.ApiClient
    cluster: LocalCluster

    @property
    def custom(self) -> client.CustomObjectsApi:
        return client.CustomObjectsApi(self.api)

    @property
    def core(self) -> client.CoreV1Api:
        return client.CoreV1Api(self.api)

    def create(self, plural: str, body: dict[str, Any]) -> dict[str, Any]:
        result: dict[str, Any] = self.custom.create_cluster_custom_object(GROUP, VERSION, plural, body)
        return result

    def get(self, plural: str, name: str) -> dict[str, Any]:
        result: dict[str, Any] = self.custom.get_cluster_custom_object(GROUP, VERSION, plural, name)
        return result

    def status(self, plural: str, name: str) -> dict[str, Any]:
        return dict(self.get(plural, name).get("status") or {})

    def condition(self, plural: str, name: str, type_: str) -> dict[str, Any] | None:
        return next((c for c in self.status(plural, name).get("conditions", []) if c["type"] == type_), None)

    def namespace(self, name: str, labels: dict[str, str] | None = None) -> None:
        self.core.create_namespace({"metadata": {"name": name, "labels": labels or {}}})

    def ns_labels(self, name: str) -> dict[str, str]:
        return dict(self.core.read_namespace(name).metadata.labels or {})

    def ladder(self, name: str, rules: list[dict[str, Any]], **spec: Any) -> None:
        self.create(
            "enforcementladders",
            {
                "apiVersion": f"{GROUP}/{VERSION}",
                "kind": "EnforcementLadder",
                "metadata": {"name": name},
                "spec": {"rules": rules, **spec},
            },
        )

    def policy(self, name: str, tenant: str, ladder: str, namespaces: list[str], **spec: Any) -> None:
        self.create(
            "tenantpolicies",
            {
                "apiVersion": f"{GROUP}/{VERSION}",
                "kind": "TenantPolicy",
                "metadata": {"name": name},
                "spec": {"tenant": tenant, "ladder": ladder, "namespaces": {"names": namespaces}, **spec},
            },
        )

    def verdict(
        self,
        name: str,
        tenant: str,
        *,
        category: str = "spam",
        severity: str = "low",
        issued: datetime | None = None,
        **spec: Any,
    ) -> None:
        issued = issued or datetime.now(UTC) - timedelta(seconds=1)
        self.create(
            "moderationverdicts",
            {
                "apiVersion": f"{GROUP}/{VERSION}",
                "kind": "ModerationVerdict",
                "metadata": {"name": name},
                "spec": {
                    "tenant": tenant,
                    "category": category,
                    "severity": severity,
                    "issuer": "moderation-test",
                    "issuedAt": format_time(issued),
                    **spec,
                },
            },
        )

    def events_for(self, name: str) -> list[client.CoreV1Event]:
        items = self.core.list_namespaced_event("default", field_selector=f"involvedObject.name={name}").items
        return list(items)


class AuditLog:
    """Counts API writes by one user from the API server's audit log (real, black-box)."""

    def __init__(self, path: Path, user: str, evidence_dir: Path | None = None) -> None:
        self.path, self.user = path, user
        self.evidence_dir = evidence_dir  # where this operator writes evidence snapshots

    def writes(self) -> list[str]:
        entries = []
        for line in self.path.read_text().splitlines():
            event = json.loads(line)
            if event.get("stage") == "ResponseComplete" and event["user"]["username"] == self.user:
                ref = event.get("objectRef", {})
                sub = f"/{ref['subresource']}" if ref.get("subresource") else ""
                # e.g. "patch deployments/scale ns/web", "patch tenantpolicies/status /acme"
                where = f"{ref.get('namespace', '')}/{ref.get('name', '')}"
                entries.append(f"{event['verb']} {ref.get('resource')}{sub} {where}")
        return entries


@dataclass(frozen=True)
class MotoServer:
    """moto in server mode; `reset()` gives each test a clean AWS (the default VPC changes id)."""

    endpoint: str

    def reset(self) -> None:
        request = urllib.request.Request(f"{self.endpoint}/moto-api/reset", method="POST")
        urllib.request.urlopen(request).close()

    def client(self, service: str, region: str = "us-east-1") -> Any:
        return boto3.client(service, region_name=region, endpoint_url=self.endpoint)
