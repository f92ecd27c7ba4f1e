"""kopf handlers: thin glue that feeds the view and the queue; the reconcile does the work.

Watch events from four kinds (and namespaces) all wake the same per-tenant reconcile, so
handlers only record what changed and enqueue the tenants it affects.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import kopf

from tenant_enforcer.controller.breaker import Breaker
from tenant_enforcer.controller.queue import WorkQueue
from tenant_enforcer.controller.reconcile import Reconciler
from tenant_enforcer.controller.store import (
    ClusterView,
    approval_entry,
    ladder_entry,
    policy_entry,
    verdict_entry,
)
from tenant_enforcer.model.levels import Level
from tenant_enforcer.record.status import changed, ladder_status
from tenant_enforcer.record.writer import (
    APPROVALS,
    GROUP,
    LADDERS,
    POLICIES,
    VERDICTS,
    VERSION,
    StatusWriter,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Runtime:
    """What the handlers need, passed explicitly instead of living in module globals."""

    view: ClusterView
    queue: WorkQueue
    reconciler: Reconciler
    writer: StatusWriter
    login: Callable[[], kopf.ConnectionInfo]
    breaker: Breaker | None = None  # the process's one breaker ledger (also in the reconciler)


def _deleted(event: Any) -> bool:
    return isinstance(event, dict) and event.get("type") == "DELETED"


def register_handlers(registry: kopf.OperatorRegistry, rt: Runtime) -> None:
    @kopf.on.login(registry=registry)
    def login(**_: Any) -> kopf.ConnectionInfo:
        return rt.login()

    @kopf.on.event(GROUP, VERSION, POLICIES, registry=registry)
    def policy_event(event: Any, body: kopf.Body, name: str, uid: str, **_: Any) -> None:
        if _deleted(event):
            rt.reconciler.recorder.forget(uid)
            rt.queue.add_many(rt.view.delete_policy(name))
        else:
            rt.queue.add_many(rt.view.put_policy(policy_entry(body)))

    @kopf.on.delete(GROUP, VERSION, POLICIES, registry=registry)
    def policy_deleted(body: kopf.Body, name: str, **_: Any) -> None:
        # The finalizer holds the policy until what it applied is lifted.
        entry = policy_entry(body)
        rt.view.put_policy(entry)
        result = rt.reconciler.reconcile(entry.tenant, datetime.now(UTC))
        outcome = (result.outcomes or {}).get(name)
        if outcome and outcome.level != Level.NONE and not outcome.problem:
            raise kopf.TemporaryError(f"still lifting {outcome.level.api_name}", delay=5)

    @kopf.on.event(GROUP, VERSION, VERDICTS, registry=registry)
    def verdict_event(event: Any, body: kopf.Body, name: str, uid: str, **_: Any) -> None:
        if _deleted(event):
            rt.reconciler.recorder.forget(uid)
            rt.queue.add_many(rt.view.delete_verdict(name))
        else:
            rt.queue.add_many(rt.view.put_verdict(verdict_entry(body)))

    @kopf.on.event(GROUP, VERSION, APPROVALS, registry=registry)
    def approval_event(event: Any, body: kopf.Body, name: str, **_: Any) -> None:
        # An approval (or its withdrawal) can move its tenant's target level: reconcile it.
        if _deleted(event):
            rt.queue.add_many(rt.view.delete_approval(name))
            return
        entry = approval_entry(body)
        if entry.error:
            log.warning("EnforcementApproval %s is ignored: %s", name, entry.error)
        rt.queue.add_many(rt.view.put_approval(entry))

    @kopf.on.event(GROUP, VERSION, LADDERS, registry=registry)
    def ladder_event(event: Any, body: kopf.Body, name: str, **_: Any) -> None:
        if _deleted(event):
            rt.queue.add_many(rt.view.delete_ladder(name))
            return
        entry = ladder_entry(body)
        rt.queue.add_many(rt.view.put_ladder(entry))
        status = ladder_status(entry.status, entry.ladder, entry.error, entry.generation, datetime.now(UTC))
        patch = changed(entry.status, status)
        if patch:
            rt.writer.patch(LADDERS, name, patch)

    @kopf.on.event("", "v1", "namespaces", registry=registry)
    def namespace_event(event: Any, body: kopf.Body, name: str, **_: Any) -> None:
        if _deleted(event):
            rt.queue.add_many(rt.view.delete_namespace(name))
        else:
            rt.queue.add_many(rt.view.put_namespace(name, dict(body.get("metadata", {}).get("labels") or {})))

    @kopf.on.probe(id="queue", registry=registry)
    def queue_probe(**_: Any) -> dict[str, int]:
        breaker = {"breakerRecent": rt.breaker.recent(datetime.now(UTC))} if rt.breaker else {}
        return {"ready": len(rt.queue), "scheduled": rt.queue.due_count(), **rt.view.counts(), **breaker}
