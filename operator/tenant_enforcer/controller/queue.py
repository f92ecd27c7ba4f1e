"""A work queue of tenant keys with due times: one scheduler for every tenant.

kopf timers cost one asyncio task per object; at 10,000 tenants one heap of due times is
cheaper.  Semantics follow client-go's workqueue: a key is never handed to two workers at
once, and a key added while it is being processed is handed out again afterwards.
"""

from __future__ import annotations

import heapq
import threading
import time
from collections import deque
from collections.abc import Callable


class WorkQueue:
    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._cond = threading.Condition()
        self._ready: deque[str] = deque()
        self._queued: set[str] = set()
        self._processing: set[str] = set()
        self._dirty: set[str] = set()
        self._due: dict[str, float] = {}
        self._heap: list[tuple[float, str]] = []
        self._closed = False

    def add(self, key: str) -> None:
        with self._cond:
            self._add_locked(key)

    def add_many(self, keys: set[str]) -> None:
        with self._cond:
            for key in keys:
                self._add_locked(key)

    def schedule(self, key: str, at: float) -> None:
        """Hand `key` out again at wall-clock time `at` (seconds); the latest call wins."""
        with self._cond:
            self._due[key] = at
            heapq.heappush(self._heap, (at, key))
            self._cond.notify()

    def cancel(self, key: str) -> None:
        with self._cond:
            self._due.pop(key, None)

    def get(self, timeout: float | None = None) -> str | None:
        """The next ready key, or None on timeout/shutdown.  Call `done(key)` afterwards."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while not self._closed:
                self._promote_due_locked()
                if self._ready:
                    key = self._ready.popleft()
                    self._queued.discard(key)
                    self._processing.add(key)
                    return key
                wait = self._next_due_in_locked()
                if deadline is not None:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        return None
                    wait = remaining if wait is None else min(wait, remaining)
                self._cond.wait(wait)
            return None

    def done(self, key: str) -> None:
        with self._cond:
            self._processing.discard(key)
            if key in self._dirty:
                self._dirty.discard(key)
                self._add_locked(key)

    def shutdown(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def __len__(self) -> int:
        with self._cond:
            return len(self._ready)

    def due_count(self) -> int:
        with self._cond:
            return len(self._due)

    def _add_locked(self, key: str) -> None:
        if key in self._processing:
            self._dirty.add(key)
        elif key not in self._queued:
            self._queued.add(key)
            self._ready.append(key)
            self._cond.notify()

    def _promote_due_locked(self) -> None:
        now = self._clock()
        while self._heap and self._heap[0][0] <= now:
            at, key = heapq.heappop(self._heap)
            if self._due.get(key) == at:  # stale heap entries were superseded by a later schedule
                del self._due[key]
                self._add_locked(key)

    def _next_due_in_locked(self) -> float | None:
        while self._heap and self._due.get(self._heap[0][1]) != self._heap[0][0]:
            heapq.heappop(self._heap)
        return max(0.0, self._heap[0][0] - self._clock()) if self._heap else None
