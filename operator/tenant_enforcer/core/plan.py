"""Plan: (level to enforce, what each target observed) → the actions that close the gap. Pure."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from tenant_enforcer.model.levels import Level
from tenant_enforcer.model.refs import ObjectRef, Observed


@dataclass(frozen=True)
class Action:
    """Bring `ref` to `level`; Level.NONE means restore what it was before we touched it."""

    ref: ObjectRef
    current: Level
    level: Level

    @property
    def is_restore(self) -> bool:
        return self.level == Level.NONE

    def describe(self) -> str:
        if self.is_restore:
            return f"restore {self.ref} (was enforced at {self.current.api_name})"
        return f"enforce {self.level.api_name} on {self.ref}"


def desired_level(level: Level, acts_from: Level) -> Level:
    """A target below its threshold is left (or put back) as it was."""
    return level if level >= acts_from else Level.NONE


def plan(level: Level, inventory: Iterable[Observed], thresholds: Mapping[str, Level]) -> list[Action]:
    """Actions for every observed object whose applied level differs from what `level` asks.

    Raising goes from the least to the most disruptive kind; lifting undoes in reverse, so a
    firewall comes down only after what it protected is back (the order of `thresholds`
    breaks ties, so targets registered first act first).
    """
    order = {kind: i for i, kind in enumerate(thresholds)}
    actions = [
        Action(obs.ref, obs.applied, want)
        for obs in inventory
        if (want := desired_level(level, thresholds[obs.ref.kind])) != obs.applied
    ]
    raises = sorted(
        (a for a in actions if a.level > a.current),
        key=lambda a: (thresholds[a.ref.kind], order[a.ref.kind], str(a.ref)),
    )
    lifts = sorted(
        (a for a in actions if a.level < a.current),
        key=lambda a: (-thresholds[a.ref.kind], -order[a.ref.kind], str(a.ref)),
    )
    return lifts + raises
