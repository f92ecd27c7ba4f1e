"""Plan: (level to enforce, what each target observed) → the actions that close the gap. Pure."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from tenant_enforcer.model.levels import Level
from tenant_enforcer.model.refs import ObjectRef, Observed


@dataclass(frozen=True)
class TargetTraits:
    """What the planner needs to know about a kind of target: data, not branches.

    `acts_from`: the lowest level at which the target changes anything.  `graded`: the
    target records the tenant's exact level (a label showing it); otherwise its effect is
    on or off and it is held at `acts_from` whenever the level reaches it.
    """

    acts_from: Level
    graded: bool = False

    def wanted(self, level: Level) -> Level:
        if level < self.acts_from:
            return Level.NONE
        return level if self.graded else self.acts_from


@dataclass(frozen=True)
class Action:
    """Bring `ref` to `level`; Level.NONE means restore what it was before we touched it."""

    ref: ObjectRef
    current: Level
    level: Level
    reassert: bool = False  # the object drifted from what we set: set it again

    @property
    def is_restore(self) -> bool:
        return self.level == Level.NONE

    def describe(self) -> str:
        if self.is_restore:
            return f"restore {self.ref} (was enforced at {self.current.api_name})"
        if self.reassert:
            return f"re-assert {self.level.api_name} on {self.ref} (changed by someone else)"
        return f"enforce {self.level.api_name} on {self.ref}"


def plan(level: Level, inventory: Iterable[Observed], traits: Mapping[str, TargetTraits]) -> list[Action]:
    """Actions for every observed object whose applied level differs from what `level` asks,
    and re-asserts for enforced objects that drifted.

    Raising goes from the least to the most disruptive kind (registration order breaks
    ties); lifting undoes in exactly the reverse order, so what was put in place last comes
    off first.
    """
    order = {kind: i for i, kind in enumerate(traits)}
    actions: list[Action] = []
    for obs in inventory:
        want = traits[obs.ref.kind].wanted(level)
        if want != obs.applied:
            actions.append(Action(obs.ref, obs.applied, want))
        elif obs.pending and want != Level.NONE:
            actions.append(Action(obs.ref, obs.applied, want))  # finish it: not a re-assert
        elif obs.drifted and want != Level.NONE:
            actions.append(Action(obs.ref, obs.applied, want, reassert=True))

    def rank(action: Action) -> tuple[Level, int]:
        return traits[action.ref.kind].acts_from, order[action.ref.kind]

    raises = sorted((a for a in actions if not a.is_restore), key=lambda a: (*rank(a), str(a.ref)))
    lifts = sorted((a for a in actions if a.is_restore), key=lambda a: rank(a), reverse=True)
    return lifts + raises


def batches(actions: list[Action]) -> list[list[Action]]:
    """Split the ordered plan into runs of one kind and direction: each run may go in parallel."""
    runs: list[list[Action]] = []
    for action in actions:
        if runs and runs[-1][0].ref.kind == action.ref.kind and runs[-1][0].is_restore == action.is_restore:
            runs[-1].append(action)
        else:
            runs.append([action])
    return runs
