"""Act: save prior state, run the plan through the targets, forget what was restored.

Prior state is saved in one write before any change; if that fails nothing is changed.
Each run of same-kind actions goes in parallel (bounded); failures are collected, never
stop the others, and are classified once (transient → retry, fatal → Stalled).
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict, deque
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime

from tenant_enforcer.core.plan import Action, batches
from tenant_enforcer.model.duration import format_time
from tenant_enforcer.model.refs import ObjectRef, Observed
from tenant_enforcer.state.prior import PriorStateStore
from tenant_enforcer.targets.base import PriorRecord, Target, TenantScope
from tenant_enforcer.targets.errors import ErrorClass, TargetError

log = logging.getLogger(__name__)

REVERT_WINDOW_S = 600.0
REVERT_LIMIT = 3  # re-asserts of one object within the window before we stop and report


@dataclass
class ApplyResult:
    done: list[Action] = field(default_factory=list)
    transient: list[str] = field(default_factory=list)
    fatal: list[str] = field(default_factory=list)
    conflicts: list[str] = field(default_factory=list)
    reverted: list[str] = field(default_factory=list)  # objects we stopped re-asserting

    @property
    def failed(self) -> bool:
        return bool(self.transient or self.fatal)


class RevertTracker:
    """Counts re-asserts per object in a sliding window, so a fight with another writer
    (a GitOps tool, a tenant's script) ends in a report instead of a hot loop."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._times: dict[ObjectRef, deque[float]] = defaultdict(deque)

    def allow(self, ref: ObjectRef) -> bool:
        now = self._clock()
        times = self._times[ref]
        while times and times[0] < now - REVERT_WINDOW_S:
            times.popleft()
        if len(times) >= REVERT_LIMIT:
            return False
        times.append(now)
        return True


class Actuator:
    def __init__(self, targets: Mapping[str, Target], prior: PriorStateStore, parallelism: int = 8) -> None:
        self.targets = dict(targets)
        self.prior = prior
        self._pool = ThreadPoolExecutor(max_workers=parallelism, thread_name_prefix="act")
        self.reverts = RevertTracker()

    def close(self) -> None:
        self._pool.shutdown(wait=True)

    def run(self, actions: list[Action], inventory: list[Observed], scope: TenantScope) -> ApplyResult:
        result = ApplyResult()
        actions = self._drop_repeated_reverts(actions, result)
        states = {obs.ref: obs.state for obs in inventory if obs.state}
        now = format_time(datetime.now(UTC))  # in memory too: a target may time from it (retention)
        first_changes = [
            PriorRecord(a.ref, states[a.ref], now)
            for a in actions
            if not a.is_restore and a.ref in states and a.ref not in scope.saved
        ]
        try:
            self.prior.save_missing(scope.tenant, scope.saved, first_changes)
        except TargetError as exc:
            (result.fatal if exc.error_class is ErrorClass.FATAL else result.transient).append(str(exc))
            return result  # without a saved prior state we change nothing
        saved = {**scope.saved, **{r.ref: r for r in first_changes}}
        scope = replace(scope, saved=saved)
        for run in batches(actions):
            for action, error, conflicts in self._pool.map(lambda a: self._one(a, scope), run):
                if error is None:
                    result.done.append(action)
                    result.conflicts += conflicts
                else:
                    (result.fatal if error.error_class is ErrorClass.FATAL else result.transient).append(
                        str(error)
                    )
        restored = [a.ref for a in result.done if a.is_restore and a.ref in saved]
        # Records of objects that are gone (deleted by Deprovision or by the tenant) would be
        # restored stale onto a re-created object later; namespaces that left the tenant's
        # scope keep theirs (their objects may still be held).
        observed = {o.ref for o in inventory}
        orphans = [
            ref
            for ref in saved
            if ref not in observed and ref.namespace in scope.namespaces and ref not in restored
        ]
        try:
            gone = restored + orphans
            self.prior.drop(scope.tenant, gone, remaining=len(saved) - len(gone))
        except TargetError as exc:
            result.transient.append(str(exc))
        return result

    def _one(self, action: Action, scope: TenantScope) -> tuple[Action, TargetError | None, list[str]]:
        target = self.targets[action.ref.kind]
        try:
            if action.is_restore:
                return action, None, target.restore(action.ref, scope.saved.get(action.ref), scope)
            target.apply(action.ref, action.level, scope)
            return action, None, []
        except TargetError as exc:
            return action, exc, []

    def _drop_repeated_reverts(self, actions: list[Action], result: ApplyResult) -> list[Action]:
        kept = []
        for action in actions:
            if action.reassert and not self.reverts.allow(action.ref):
                result.reverted.append(str(action.ref))
            else:
                kept.append(action)
        return kept
