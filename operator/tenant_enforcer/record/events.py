"""Kubernetes Events: auxiliary, so a failure to post one is logged and never fails a reconcile."""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from kubernetes import client

log = logging.getLogger(__name__)

# Reasons are constants so alerts and tests can match on them.
LEVEL_RAISED = "LevelRaised"
LEVEL_LIFTED = "LevelLifted"
TARGET_CHANGED = "TargetChanged"
STALLED = "Stalled"
ACTIONS_FAILED = "ActionsFailed"
DRY_RUN_PLAN = "DryRunPlan"
VERDICT_STATE = "VerdictStateChanged"
TENANT_LEVEL = "TenantLevelChanged"
NOT_RESTORED = "NotRestored"
BREAKER_OPEN = "BreakerOpen"

_MESSAGE_LIMIT = 1024  # the API server rejects very long messages; kopf truncates likewise
GROUP_VERSION = "tenant-enforcer.io/v1alpha1"


@dataclass(frozen=True)
class Involved:
    kind: str
    name: str
    uid: str
    api_version: str = GROUP_VERSION


class EventRecorder:
    """Posts core/v1 Events; cluster-scoped objects' Events go to `namespace`."""

    def __init__(self, api: Any, namespace: str = "default", component: str = "tenant-enforcer") -> None:
        self._core = client.CoreV1Api(api)
        self._namespace = namespace
        self._component = component

    def emit(self, involved: Involved, reason: str, message: str, warning: bool = False) -> None:
        now = datetime.now(UTC)
        body: Any = {
            "metadata": {"name": f"{involved.name}.{uuid.uuid4().hex[:12]}", "namespace": self._namespace},
            "involvedObject": {
                "apiVersion": involved.api_version,
                "kind": involved.kind,
                "name": involved.name,
                "uid": involved.uid,
            },
            "reason": reason,
            "message": message[:_MESSAGE_LIMIT],
            "type": "Warning" if warning else "Normal",
            "source": {"component": self._component},
            "reportingComponent": self._component,
            "reportingInstance": self._component,
            "firstTimestamp": now.isoformat(),
            "lastTimestamp": now.isoformat(),
            "count": 1,
        }
        try:
            self._core.create_namespaced_event(self._namespace, body)
        except Exception:  # auxiliary: never fail the reconcile for an Event
            log.warning(
                "could not post Event %s for %s %s", reason, involved.kind, involved.name, exc_info=True
            )
