"""The process's one breaker ledger: recent disruptive raises, shared by every reconcile worker.

The decision is core/breaker.py's; this keeps the ledger and makes check-and-take atomic,
so two workers raising two tenants at once cannot both take the last slot.

Surviving a restart: the ledger is rebuilt at startup from every TenantPolicy's
`status.history`, which already records each transition with its time (record/status.py),
before the first reconcile runs.  No extra object to keep consistent: the history is
written in the same status patch that records the new level, so a raise that happened is a
raise the next process sees.  Its limits: history keeps a tenant's last 20 transitions and
times to the second, and a deleted TenantPolicy takes its raises with it (it was lifted,
so it no longer disrupts anything).  A slot taken for a raise that then failed is given
back (`release`), so a failing tenant does not starve the others.

Dry-run (`rehearse`) uses a second ledger of would-be raises and would-be levels, checked
together with the real raises, so a dry-run shows which tenants the breaker would hold
without taking a slot from a real raise.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from kubernetes import client

from tenant_enforcer.core import breaker as core
from tenant_enforcer.core.breaker import Gate, Limit, Raise
from tenant_enforcer.model.levels import Level

log = logging.getLogger(__name__)


class Breaker:
    """Thread-safe ledger around the pure decision; `Limit(0, …)` is off."""

    def __init__(self, limit: Limit, raises: Iterable[Raise] = ()) -> None:
        self.limit = limit
        self._lock = threading.Lock()
        self._raises: list[Raise] = list(raises)
        self._rehearsed: list[Raise] = []  # dry-run: raises that would have happened
        self._would: dict[str, Level] = {}  # dry-run: the level each tenant would hold

    def admit(
        self, tenant: str, held: Level, target: Level, now: datetime, approved: bool = False
    ) -> tuple[Gate, Raise | None]:
        """Check and, if allowed and counted, take the slot at once. The Raise is the token
        to `release` if the transition does not happen after all."""
        with self._lock:
            self._raises = core.prune(self._raises, now, self.limit.window)
            gate = core.check(self._raises, now, self.limit, held, target, approved)
            if not gate.counts:
                return gate, None
            taken = Raise(tenant, target, now)
            self._raises.append(taken)
            return gate, taken

    def rehearse(
        self, tenant: str, held: Level, target: Level, now: datetime, approved: bool = False
    ) -> tuple[Gate, Level]:
        """Dry-run: the answer for a tenant whose real level is `held`, as if earlier dry-run
        answers had been acted on; returns the level it would now hold. Takes no real slot."""
        with self._lock:
            self._rehearsed = core.prune(self._rehearsed, now, self.limit.window)
            would = self._would.get(tenant, held)
            ledger = self._raises + self._rehearsed
            gate = core.check(ledger, now, self.limit, would, target, approved)
            if gate.counts:
                self._rehearsed.append(Raise(tenant, target, now))
            self._would[tenant] = target if gate.allowed else core.fallback(would, target)
            return gate, self._would[tenant]

    def release(self, taken: Raise) -> None:
        with self._lock:
            if taken in self._raises:
                self._raises.remove(taken)

    def recent(self, now: datetime) -> int:
        with self._lock:
            return len(core.in_window(self._raises, now, self.limit.window))


def load_breaker(api: Any, limit: Limit, group: str, version: str, plural: str) -> Breaker:
    """A breaker holding the raises every TenantPolicy's status history records."""
    if limit.off:
        return Breaker(limit)
    listed: Any = client.CustomObjectsApi(api).list_cluster_custom_object(group, version, plural)
    items: list[dict[str, Any]] = listed["items"]
    raises: list[Raise] = []
    for item in items:
        tenant = str((item.get("spec") or {}).get("tenant") or item["metadata"]["name"])
        raises += core.raises_from_history(tenant, (item.get("status") or {}).get("history") or [])
    log.info("breaker: %d raises recorded in TenantPolicy histories", len(raises))
    return Breaker(limit, raises)
