"""What the four firewall targets share: their level, the transient error for a step that
must wait for another, and chunking of long value lists for APIs that cap them (tolerant
calls that treat "already so" as success come from `AwsTarget`).
"""

from __future__ import annotations

from collections.abc import Iterator

from tenant_enforcer.model.levels import Level
from tenant_enforcer.targets.aws.base import AwsTarget
from tenant_enforcer.targets.errors import ErrorClass, TargetError


class NotYetSafe(TargetError):
    """A step that must wait for another one: transient, so the reconcile is retried."""

    def __init__(self, what: str) -> None:
        Exception.__init__(self, what)
        self.error_class = ErrorClass.TRANSIENT


def chunks(items: list[str], size: int) -> Iterator[list[str]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


class FirewallTarget(AwsTarget):
    acts_from = Level.FIREWALL
