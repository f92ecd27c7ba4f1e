"""Worker threads that drain the queue: the sync Kubernetes client never runs on kopf's loop."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import UTC, datetime

from tenant_enforcer.controller.queue import WorkQueue
from tenant_enforcer.controller.reconcile import ReconcileResult

log = logging.getLogger(__name__)

BACKOFF_BASE_S = 1.0
BACKOFF_MAX_S = 300.0


class Workers:
    def __init__(
        self,
        queue: WorkQueue,
        reconcile: Callable[[str, datetime], ReconcileResult],
        count: int = 4,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._queue = queue
        self._reconcile = reconcile
        self._clock = clock
        self._threads = [
            threading.Thread(target=self._loop, name=f"reconcile-{i}", daemon=True) for i in range(count)
        ]
        self._failures: dict[str, int] = {}
        self._failures_lock = threading.Lock()

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._queue.shutdown()
        for thread in self._threads:
            thread.join(timeout)

    def _loop(self) -> None:
        while (key := self._queue.get()) is not None:
            try:
                self._run_one(key)
            finally:
                self._queue.done(key)

    def _run_one(self, key: str) -> None:
        now = self._clock()
        try:
            result = self._reconcile(key, now)
        except Exception:
            # An unexpected error must not kill the worker: log it and retry with backoff.
            log.exception("reconcile of tenant %s failed", key)
            result = ReconcileResult(retry=True)
        if result.retry:
            delay = self._backoff(key)
            log.info("tenant %s: retrying in %.0f s", key, delay)
            self._queue.schedule(key, now.timestamp() + delay)
            return
        with self._failures_lock:
            self._failures.pop(key, None)
        if result.next_due is not None:
            self._queue.schedule(key, result.next_due.timestamp())
        else:
            self._queue.cancel(key)

    def _backoff(self, key: str) -> float:
        with self._failures_lock:
            attempts = self._failures[key] = self._failures.get(key, 0) + 1
        return float(min(BACKOFF_MAX_S, BACKOFF_BASE_S * 2 ** (attempts - 1)))
