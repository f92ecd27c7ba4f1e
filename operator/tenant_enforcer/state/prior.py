"""Prior state, one ConfigMap per tenant in the operator's own namespace.

Tenants cannot write there, and status stays reconstructible by observation.  A record is
written once, before the first change to its object, and never overwritten; it is dropped
only after its object was restored.  All of a reconcile's new records go in one write.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from datetime import datetime, timezone
from typing import Any

from kubernetes import client

from tenant_enforcer.model.duration import format_time
from tenant_enforcer.model.refs import ObjectRef
from tenant_enforcer.targets.base import MANAGED_BY, PriorRecord
from tenant_enforcer.targets.errors import ErrorClass, TargetError
from tenant_enforcer.targets.k8s.kube import MERGE_PATCH

TENANT_LABEL = "tenant-enforcer.io/prior-state-of"
MAX_BYTES = 900 * 1024  # a ConfigMap holds at most 1 MiB


class PriorStateStore:
    def __init__(self, api: Any, namespace: str, field_manager: str = "tenant-enforcer") -> None:
        self._core = client.CoreV1Api(api)
        self.namespace = namespace
        self._field_manager = field_manager

    @staticmethod
    def name_for(tenant: str) -> str:
        return f"prior-state-{tenant}"

    def load(self, tenant: str) -> dict[ObjectRef, PriorRecord]:
        try:
            cm = self._core.read_namespaced_config_map(
                self.name_for(tenant), self.namespace, _preload_content=False
            )
        except client.ApiException as exc:
            error = TargetError(f"read prior state of {tenant}", exc)
            if error.error_class is ErrorClass.GONE:
                return {}
            raise error from exc
        data = json.loads(cm.data).get("data") or {}  # type: ignore[arg-type]  # raw response bytes
        records = {}
        for key, raw in data.items():
            ref = ObjectRef.from_key(key)
            value = json.loads(raw)
            records[ref] = PriorRecord(ref, value.get("state") or {}, value.get("capturedAt", ""))
        return records

    def save_missing(
        self, tenant: str, existing: Mapping[ObjectRef, PriorRecord], records: Iterable[PriorRecord]
    ) -> None:
        """Add records for objects that have none yet; existing ones are never overwritten."""
        now = format_time(datetime.now(timezone.utc))
        new = {
            r.ref.key: json.dumps(
                {"state": dict(r.state), "capturedAt": r.captured_at or now}, sort_keys=True
            )
            for r in records
            if r.ref not in existing
        }
        if not new:
            return
        size = sum(len(v) for v in new.values()) + sum(
            len(json.dumps(dict(r.state))) for r in existing.values()
        )
        if size > MAX_BYTES:
            raise TargetError(
                f"prior state of {tenant} would exceed {MAX_BYTES} bytes", ValueError("prior state too large")
            )
        name = self.name_for(tenant)
        body: Any = {
            "metadata": {
                "name": name,
                "namespace": self.namespace,
                "labels": {**MANAGED_BY, TENANT_LABEL: tenant},
            },
            "data": new,
        }
        try:
            if existing:
                self._add(name, new)
            else:
                self._core.create_namespaced_config_map(
                    self.namespace, body, field_manager=self._field_manager
                )
        except client.ApiException as exc:
            if exc.status == 409 and not existing:  # created meanwhile: add to it
                self._add(name, new)
                return
            raise TargetError(f"save prior state of {tenant}", exc) from exc

    def _add(self, name: str, data: Mapping[str, str]) -> None:
        """Merge-patch keys into the ConfigMap (keys already there are never in `data`)."""
        self._core.patch_namespaced_config_map(
            name,
            self.namespace,
            {"data": dict(data)},
            field_manager=self._field_manager,
            _content_type=MERGE_PATCH,
        )

    def drop(self, tenant: str, refs: Iterable[ObjectRef], remaining: int) -> None:
        """Forget records whose objects were restored; the ConfigMap goes with the last one."""
        keys = [r.key for r in refs]
        if not keys:
            return
        try:
            if remaining <= 0:
                self._core.delete_namespaced_config_map(self.name_for(tenant), self.namespace)
            else:
                self._core.patch_namespaced_config_map(
                    self.name_for(tenant),
                    self.namespace,
                    {"data": dict.fromkeys(keys)},
                    field_manager=self._field_manager,
                    _content_type=MERGE_PATCH,
                )
        except client.ApiException as exc:
            if exc.status != 404:
                raise TargetError(f"drop prior state of {tenant}", exc) from exc
