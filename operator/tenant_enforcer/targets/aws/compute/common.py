"""What the compute targets share: the scaling processes, the instance states that count,
the marker tag, and `ComputeTarget` (discovery by the service's own tag filter, plus the
objects we hold that lost the tenant tag or are gone)."""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Iterator, Mapping
from typing import Any, ClassVar

from tenant_enforcer.model.levels import Level
from tenant_enforcer.model.policy import AwsScope
from tenant_enforcer.model.refs import ObjectRef, Observed
from tenant_enforcer.targets.aws.base import ENFORCED_TAG, AwsTarget
from tenant_enforcer.targets.base import TenantScope
from tenant_enforcer.targets.errors import AwsTargetError, ErrorClass, TargetError

ASG_NAME_TAG = "aws:autoscaling:groupName"  # set by Auto Scaling on the instances it launches

# Every Auto Scaling process.  While held, all are suspended, Terminate too: the group keeps
# its instances (in Standby, stopped) and neither launches nor terminates any.
PROCESSES = (
    "Launch",
    "Terminate",
    "AddToLoadBalancer",
    "AlarmNotification",
    "AZRebalance",
    "HealthCheck",
    "InstanceRefresh",
    "ReplaceUnhealthy",
    "ScheduledActions",
)
HELD_SUSPENDED = frozenset(PROCESSES)
SIZES = ("MinSize", "MaxSize", "DesiredCapacity")

LIVE_STATES = ("pending", "running", "stopping", "stopped")  # not shutting-down / terminated
RUNNING, STOPPED = "running", "stopped"


class NotYet(TargetError):
    """A step that must wait for AWS to finish another (an instance still starting or
    stopping): transient, so the reconcile is retried and picks up where it stopped."""

    def __init__(self, what: str) -> None:
        Exception.__init__(self, what)
        self.error_class = ErrorClass.TRANSIENT


def held_level(tags: list[dict[str, Any]] | None) -> Level:
    value = next((t.get("Value") for t in tags or [] if t.get("Key") == ENFORCED_TAG), None)
    try:
        return Level.parse(value) if value else Level.NONE
    except ValueError:
        return Level.NONE


def tag_value(tags: list[dict[str, Any]] | None, key: str) -> str | None:
    return next((t.get("Value") for t in tags or [] if t.get("Key") == key), None)


def gone(exc: AwsTargetError) -> bool:
    return exc.error_class is ErrorClass.GONE


def chunks(items: list[str], size: int) -> Iterator[list[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


class ComputeTarget(AwsTarget):
    acts_from = Level.SCALE_DOWN

    id_key: ClassVar[str]  # the item field that names it
    chunk: ClassVar[int]  # how many names one read may ask for

    def region_clients(self, scope: TenantScope) -> Iterator[tuple[AwsScope, str, Any]]:
        """(AWS scope, region, client) for each of the tenant's regions; building a client
        may assume the tenant's role, so a failure there is reported like a failed read."""
        if scope.aws is None:
            return
        for region in self.regions(scope):
            yield scope.aws, region, self.call("sts.AssumeRole", self.client, scope=scope.aws, region=region)

    @abstractmethod
    def tagged(self, client: Any, aws: AwsScope) -> Iterator[dict[str, Any]]:
        """The tenant's items of this kind, read with the service's own tag filter."""

    @abstractmethod
    def named(self, client: Any, names: list[str]) -> Iterator[dict[str, Any]]:
        """The live items among `names` (missing ones are simply not returned)."""

    @abstractmethod
    def observe(self, ref: ObjectRef, item: Mapping[str, Any], scope: TenantScope) -> Observed: ...

    def discover(self, scope: TenantScope) -> list[Observed]:
        """The tenant's tagged items, plus those we hold that no longer carry its tag (so a
        lift still gives them back) and those that are gone (so their records are dropped)."""
        found = []
        for aws, region, client in self.region_clients(scope):
            seen = set()
            for item in self.tagged(client, aws):
                ref = ObjectRef(self.kind, item[self.id_key], region)
                seen.add(ref)
                found.append(self.observe(ref, item, scope))
            missing = sorted(r.name for r in self.saved_in(scope, region) if r not in seen)
            for part in chunks(missing, self.chunk):
                for item in self.named(client, part):
                    ref = ObjectRef(self.kind, item[self.id_key], region)
                    seen.add(ref)
                    observed = self.observe(ref, item, scope)
                    # No longer the tenant's and not marked (never changed by us): not to be
                    # enforced; its restore finds nothing to undo and drops the record.
                    found.append(
                        observed if observed.applied != Level.NONE else Observed(ref, self.acts_from)
                    )
            # Gone while held: observed as held, so lifting "restores" it (a no-op) and its
            # record is dropped.
            found += [
                Observed(ObjectRef(self.kind, name, region), self.acts_from)
                for name in missing
                if ObjectRef(self.kind, name, region) not in seen
            ]
        return found
