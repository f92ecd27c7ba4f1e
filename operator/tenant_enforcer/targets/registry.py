"""Targets register themselves by kind; nothing else imports a concrete target."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator
from typing import TypeVar

from tenant_enforcer.targets.base import Clients, Target

T = TypeVar("T", bound=type[Target])


class TargetRegistry:
    def __init__(self) -> None:
        self._classes: dict[str, type[Target]] = {}

    def register(self, cls: T) -> T:
        if cls.kind in self._classes:
            raise ValueError(f"target kind {cls.kind!r} registered twice")
        self._classes[cls.kind] = cls
        return cls

    def __iter__(self) -> Iterator[type[Target]]:
        return iter(self._classes.values())

    def build(self, clients: Clients) -> dict[str, Target]:
        """One instance per kind, in registration order (the planner's tie-break order)."""
        return {kind: cls(clients) for kind, cls in self._classes.items()}


# Filled once at import time by the target modules' decorators, never mutated afterwards.
TARGETS = TargetRegistry()
register: Callable[[T], T] = TARGETS.register


def load_builtin_targets() -> TargetRegistry:
    # Importing registers; Kubernetes first, then AWS: ties between kinds break in this order.
    for package in ("tenant_enforcer.targets.k8s", "tenant_enforcer.targets.aws"):
        importlib.import_module(package)

    return TARGETS
