"""Targets register themselves by kind; nothing else imports a concrete target."""

from __future__ import annotations

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
    import tenant_enforcer.targets.k8s  # noqa: F401  (registers on import)

    return TARGETS
