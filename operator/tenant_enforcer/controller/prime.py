"""Fill the view from paged lists before any reconcile runs.

kopf starts one watch per kind and delivers their events as they come: a tenant's policy can
be seen before its verdicts, ladder, approvals or namespaces.  A reconcile on that partial
view would decide from part of the facts (after a restart: no verdicts yet, so lift
everything, then raise it again when they arrive, with Events, notices and audit records for
both).  So the runner lists every kind once, page by page, keeping only what the view needs,
and starts the workers after that; kopf's watches then deliver the same objects again
(idempotent puts) and everything that changed since.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

from kubernetes import client

from tenant_enforcer.controller.store import (
    ClusterView,
    approval_entry,
    ladder_entry,
    policy_entry,
    verdict_entry,
)
from tenant_enforcer.record.writer import APPROVALS, GROUP, LADDERS, POLICIES, VERDICTS, VERSION

PAGE = 500


def _pages(list_page: Callable[..., Any]) -> Iterator[dict[str, Any]]:
    """Every item of a paged list (raw JSON: no client models built for what we drop)."""
    token = None
    while True:
        kwargs: dict[str, Any] = {"limit": PAGE, "_preload_content": False}
        if token:
            kwargs["_continue"] = token
        page = json.loads(list_page(**kwargs).data)
        yield from page.get("items") or []
        token = (page.get("metadata") or {}).get("continue")
        if not token:
            return


def prime_view(api: Any, view: ClusterView) -> set[str]:
    """Put every ladder, verdict, approval, policy and namespace into `view`; returns the
    tenants to reconcile.  Ladders, verdicts, approvals and namespaces go in before the
    policies, though nothing runs until the end."""
    custom = client.CustomObjectsApi(api)
    tenants: set[str] = set()

    def custom_pages(plural: str) -> Iterator[dict[str, Any]]:
        return _pages(lambda **kw: custom.list_cluster_custom_object(GROUP, VERSION, plural, **kw))

    for body in custom_pages(LADDERS):
        tenants |= view.put_ladder(ladder_entry(body))
    for body in custom_pages(VERDICTS):
        tenants |= view.put_verdict(verdict_entry(body))
    for body in custom_pages(APPROVALS):
        tenants |= view.put_approval(approval_entry(body))
    for ns in _pages(client.CoreV1Api(api).list_namespace):
        meta = ns.get("metadata") or {}
        tenants |= view.put_namespace(meta.get("name", ""), dict(meta.get("labels") or {}))
    for body in custom_pages(POLICIES):
        tenants |= view.put_policy(policy_entry(body))
    return tenants
