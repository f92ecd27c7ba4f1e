"""Enforcement levels and verdict severities: ordered enums shared by every layer."""

from __future__ import annotations

from enum import IntEnum


class Level(IntEnum):
    """Ordered and cumulative: each level includes everything below it."""

    NONE = 0
    NOTICE = 1
    SCALE_DOWN = 2
    FIREWALL = 3
    DEPROVISION = 4

    @property
    def api_name(self) -> str:
        return _LEVEL_NAMES[self]

    @classmethod
    def parse(cls, name: str) -> Level:
        try:
            return _LEVELS_BY_NAME[name]
        except KeyError:
            raise ValueError(f"unknown level {name!r}; expected one of {list(_LEVELS_BY_NAME)}") from None

    @property
    def disruptive(self) -> bool:
        """Levels above Notice change what the tenant's service does."""
        return self > Level.NOTICE


_LEVEL_NAMES = {
    Level.NONE: "None",
    Level.NOTICE: "Notice",
    Level.SCALE_DOWN: "ScaleDown",
    Level.FIREWALL: "Firewall",
    Level.DEPROVISION: "Deprovision",
}
_LEVELS_BY_NAME = {v: k for k, v in _LEVEL_NAMES.items()}


class Severity(IntEnum):
    LOW = 1
    MEDIUM = 2
    HIGH = 3
    CRITICAL = 4

    @property
    def api_name(self) -> str:
        return self.name.lower()

    @classmethod
    def parse(cls, name: str) -> Severity:
        try:
            return cls[name.upper()]
        except KeyError:
            raise ValueError(f"unknown severity {name!r}") from None
