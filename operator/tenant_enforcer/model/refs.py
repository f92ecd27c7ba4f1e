"""References to the objects targets act on, free of any client library's types."""

from __future__ import annotations

from dataclasses import dataclass

from tenant_enforcer.model.levels import Level


@dataclass(frozen=True, order=True)
class ObjectRef:
    kind: str
    name: str
    namespace: str | None = None

    def __str__(self) -> str:
        where = f"{self.namespace}/" if self.namespace else ""
        return f"{self.kind} {where}{self.name}"


@dataclass(frozen=True)
class Observed:
    """One object a target found for a tenant, and the level our marker says it is held at."""

    ref: ObjectRef
    applied: Level
