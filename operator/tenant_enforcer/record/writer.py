"""Status patches for our custom resources (merge patches on the status subresource)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from kubernetes import client

GROUP = "tenant-enforcer.io"
VERSION = "v1alpha1"
POLICIES = "tenantpolicies"
VERDICTS = "moderationverdicts"
LADDERS = "enforcementladders"
APPROVALS = "enforcementapprovals"  # read only: the operator never writes approvals


class StatusWriter:
    def __init__(self, api: Any, field_manager: str = "tenant-enforcer") -> None:
        self._custom = client.CustomObjectsApi(api)
        self._field_manager = field_manager

    def patch(self, plural: str, name: str, status: Mapping[str, Any]) -> None:
        """Raises ApiException; a 404 means the object is gone and is left to the caller."""
        self._custom.patch_cluster_custom_object_status(
            GROUP, VERSION, plural, name, {"status": dict(status)}, field_manager=self._field_manager
        )
