"""A focused watch on the objects we enforce: only those carrying our marker label.

kopf's label filters run client-side after listing every object of a kind, which would
hold every Deployment of the cluster in memory; a server-side label selector keeps this
to what we enforce.  Any change to an enforced object wakes its tenant's reconcile, which
re-asserts if the change undid ours (and backs off if it keeps happening).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from typing import Any

from kubernetes import client, watch
from urllib3.exceptions import ProtocolError

from tenant_enforcer.targets.base import ENFORCED_LABEL, Target

log = logging.getLogger(__name__)
WATCH_TIMEOUT_S = 60  # the server ends each watch after this; we resume from the last version


class EnforcedObjectsWatch:
    def __init__(self, api: Any, targets: Iterable[Target], enqueue: Callable[[str], None]) -> None:
        self._api = api
        self._enqueue = enqueue
        self._stop = threading.Event()
        specs = sorted({t.watch for t in targets if t.watch})
        self._threads = [
            threading.Thread(target=self._run, args=spec, daemon=True, name=f"watch-{spec[1]}")
            for spec in specs
        ]

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        self._stop.set()

    def _run(self, api_class: str, method_name: str) -> None:
        method = getattr(getattr(client, api_class)(self._api), method_name)
        version: str | None = None
        failures = 0
        while not self._stop.is_set():
            try:
                stream = watch.Watch().stream(  # type: ignore[no-untyped-call]
                    method,
                    label_selector=ENFORCED_LABEL,
                    timeout_seconds=WATCH_TIMEOUT_S,
                    resource_version=version,
                    allow_watch_bookmarks=True,
                )
                for event in stream:
                    if self._stop.is_set():
                        return
                    raw = event.get("raw_object") or {}
                    meta = raw.get("metadata") or {}
                    version = meta.get("resourceVersion") or version
                    tenant = (meta.get("labels") or {}).get(ENFORCED_LABEL)
                    if tenant and event.get("type") != "BOOKMARK":
                        self._enqueue(tenant)
                failures = 0
            except client.ApiException as exc:
                if exc.status == 410:  # our version expired: start over with a fresh list
                    version = None
                    continue
                failures += 1
                log.warning("watch %s failed (%s); retrying", method_name, exc.status)
            except ProtocolError:  # the server closed the stream (restart, shutdown): resume quietly
                failures += 1
                log.debug("watch %s ended early; resuming", method_name)
            except Exception:
                failures += 1
                log.warning("watch %s failed; retrying", method_name, exc_info=True)
            self._stop.wait(min(30.0, 2.0**failures) if failures else 0)
