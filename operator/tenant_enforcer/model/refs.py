"""References to the objects targets act on, free of any client library's types."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from tenant_enforcer.model.levels import Level


@dataclass(frozen=True, order=True)
class ObjectRef:
    kind: str
    name: str
    namespace: str | None = None

    def __str__(self) -> str:
        where = f"{self.namespace}/" if self.namespace else ""
        return f"{self.kind} {where}{self.name}"

    @property
    def key(self) -> str:
        """A stable key usable as a ConfigMap data key ([-._a-zA-Z0-9]+)."""
        return f"{self.kind}.{self.namespace or '_'}.{self.name}"

    @classmethod
    def from_key(cls, key: str) -> ObjectRef:
        kind, namespace, name = key.split(".", 2)
        return cls(kind, name, None if namespace == "_" else namespace)


@dataclass(frozen=True)
class Observed:
    """One object a target found for a tenant.

    `applied` is the level our marker says it is held at; `state` is the current value of
    exactly the fields the target would change (what gets saved as prior state before the
    first change); `drifted` is true when the marker says enforced but the fields no longer
    hold what we set (a tenant or a controller reverted them).
    """

    ref: ObjectRef
    applied: Level
    state: Mapping[str, Any] = field(default_factory=dict)
    drifted: bool = False
    evidence: str | None = None  # where an evidence snapshot of it was stored (shown in status)
    due: datetime | None = None  # when this object needs another look (e.g. a retention ends)
    pending: bool = False  # applying its level is under way (e.g. a deletion waits on finalizers)
