"""ScaleDown on the tenant's AWS compute: Auto Scaling groups and standalone EC2 instances.

An Auto Scaling group is held by suspending its scaling processes and setting Min, Max and
Desired to 0; an instance that is not in a group is stopped (a group's instances are reached
through the group).  Each object is read with its service's own tag filter, and the tenant
tag is checked again on every item returned (never act on what a filter let through).

Prior state is exactly what apply changes (sizes and suspended processes; the instance's
running/stopped state), saved by the actuator before the first change.  The tag
`ENFORCED_TAG=<level>` only marks an object as ours: it is written first on apply and
removed last on restore, so after a crash the next reconcile finishes either.  Objects we
hold are also looked up through their saved records: one that lost the tenant tag is still
given back, one that is gone has its record dropped on the lift.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Callable, Iterator, Mapping
from typing import Any, ClassVar

from tenant_enforcer.model.levels import Level
from tenant_enforcer.model.policy import AwsScope
from tenant_enforcer.model.refs import ObjectRef, Observed
from tenant_enforcer.targets.aws.base import ENFORCED_TAG, AwsTarget, has_tenant_tag, tag_filters
from tenant_enforcer.targets.base import PriorRecord, TenantScope
from tenant_enforcer.targets.errors import AwsTargetError, ErrorClass
from tenant_enforcer.targets.registry import register

ASG_NAME_TAG = "aws:autoscaling:groupName"  # set by Auto Scaling on the instances it launches

# Every Auto Scaling process.  While held, all are suspended except Terminate: it must run
# for the group to drain to 0 instances (it is resumed if the tenant had suspended it, and
# suspended again on restore).
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
HELD_SUSPENDED = frozenset(PROCESSES) - {"Terminate"}
SIZES = ("MinSize", "MaxSize", "DesiredCapacity")

LIVE_STATES = ("pending", "running", "stopping", "stopped")  # not shutting-down / terminated
RUNNING, STOPPED = "running", "stopped"


def held_level(tags: list[dict[str, Any]] | None) -> Level:
    value = next((t.get("Value") for t in tags or [] if t.get("Key") == ENFORCED_TAG), None)
    try:
        return Level.parse(value) if value else Level.NONE
    except ValueError:
        return Level.NONE


def _tag_value(tags: list[dict[str, Any]] | None, key: str) -> str | None:
    return next((t.get("Value") for t in tags or [] if t.get("Key") == key), None)


def _gone(exc: AwsTargetError) -> bool:
    return exc.error_class is ErrorClass.GONE


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
            for start in range(0, len(missing), self.chunk):
                for item in self.named(client, missing[start : start + self.chunk]):
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


@register
class AutoScalingGroupTarget(ComputeTarget):
    """Processes suspended, sizes to 0; restore resumes only what we suspended and puts the
    sizes back unless someone changed them while held (then they are reported, not clobbered)."""

    kind = "AutoScalingGroup"
    service = "autoscaling"
    id_key = "AutoScalingGroupName"
    chunk = 50
    iam = (
        "autoscaling:DescribeAutoScalingGroups",
        "autoscaling:CreateOrUpdateTags",
        "autoscaling:DeleteTags",
        "autoscaling:UpdateAutoScalingGroup",
        "autoscaling:SuspendProcesses",
        "autoscaling:ResumeProcesses",
    )

    @staticmethod
    def fields(group: Mapping[str, Any]) -> dict[str, Any]:
        suspended = sorted({p["ProcessName"] for p in group.get("SuspendedProcesses") or []})
        return {**{size: group.get(size) for size in SIZES}, "SuspendedProcesses": suspended}

    @staticmethod
    def held(prior: Mapping[str, Any] | None) -> dict[str, Any]:
        """What we set at ScaleDown: sizes 0, every process but Terminate suspended (processes
        AWS may add later keep the tenant's setting)."""
        known = set(PROCESSES)
        kept = {p for p in (prior or {}).get("SuspendedProcesses") or [] if p not in known}
        return {**dict.fromkeys(SIZES, 0), "SuspendedProcesses": sorted(HELD_SUSPENDED | kept)}

    def tagged(self, client: Any, aws: AwsScope) -> Iterator[dict[str, Any]]:
        filters = [{"Name": f"tag:{aws.tag_key}", "Values": [aws.tag_value]}]
        groups = self.paginate(client, "describe_auto_scaling_groups", "AutoScalingGroups", Filters=filters)
        return (g for g in groups if has_tenant_tag(g.get("Tags"), aws))

    def named(self, client: Any, names: list[str]) -> Iterator[dict[str, Any]]:
        return self.paginate(
            client, "describe_auto_scaling_groups", "AutoScalingGroups", AutoScalingGroupNames=names
        )

    def observe(self, ref: ObjectRef, item: Mapping[str, Any], scope: TenantScope) -> Observed:
        applied = held_level(item.get("Tags"))
        current = self.fields(item)
        prior = scope.saved.get(ref)
        drifted = applied != Level.NONE and current != self.held(prior.state if prior else current)
        return Observed(ref, applied, current, drifted)

    def _read(self, client: Any, name: str) -> dict[str, Any] | None:
        groups = self.call(
            "autoscaling.DescribeAutoScalingGroups",
            client.describe_auto_scaling_groups,
            AutoScalingGroupNames=[name],
        )["AutoScalingGroups"]
        return groups[0] if groups else None

    def _tag(self, ref: ObjectRef) -> dict[str, Any]:
        return {"ResourceId": ref.name, "ResourceType": "auto-scaling-group", "Key": ENFORCED_TAG}

    def apply(self, ref: ObjectRef, level: Level, scope: TenantScope) -> None:
        assert scope.aws is not None and ref.namespace is not None
        client = self.client(scope.aws, ref.namespace)
        group = self._read(client, ref.name)
        if group is None:
            return  # gone since discovery: nothing to hold
        current = self.fields(group)
        prior = scope.saved.get(ref)
        want = self.held(prior.state if prior else current)
        if held_level(group.get("Tags")) != level:
            self.call(
                "autoscaling.CreateOrUpdateTags",
                client.create_or_update_tags,
                Tags=[{**self._tag(ref), "Value": level.api_name, "PropagateAtLaunch": False}],
            )

        def to_zero() -> list[str]:
            if any(current[size] != 0 for size in SIZES):
                # All three at once: AWS checks Min ≤ Desired ≤ Max on the result.
                self.call(
                    "autoscaling.UpdateAutoScalingGroup",
                    client.update_auto_scaling_group,
                    AutoScalingGroupName=ref.name,
                    **dict.fromkeys(SIZES, 0),
                )
            return []

        self._converge(
            client, ref.name, set(current["SuspendedProcesses"]), set(want["SuspendedProcesses"]), to_zero
        )

    def _converge(
        self, client: Any, name: str, current: set[str], want: set[str], sizes: Callable[[], list[str]]
    ) -> list[str]:
        """Resume, change the sizes, then suspend, so that exactly `want` (among the known
        processes) ends up suspended: Terminate runs while the group drains and Launch while
        it refills; what holds the group still is suspended last.  Returns `sizes()`'s reports."""
        known = set(PROCESSES)
        resume, suspend = sorted((current - want) & known), sorted((want - current) & known)
        if resume:
            self.call(
                "autoscaling.ResumeProcesses",
                client.resume_processes,
                AutoScalingGroupName=name,
                ScalingProcesses=resume,
            )
        conflicts = sizes()
        if suspend:
            self.call(
                "autoscaling.SuspendProcesses",
                client.suspend_processes,
                AutoScalingGroupName=name,
                ScalingProcesses=suspend,
            )
        return conflicts

    def restore(self, ref: ObjectRef, prior: PriorRecord | None, scope: TenantScope) -> list[str]:
        assert scope.aws is not None and ref.namespace is not None
        client = self.client(scope.aws, ref.namespace)
        group = self._read(client, ref.name)
        if group is None:
            return []
        current = self.fields(group)
        conflicts: list[str] = []
        if prior is None:
            conflicts.append(
                f"{ref}: no prior state was recorded, so sizes and processes are left as they are"
            )
        else:
            state = prior.state
            held = set(self.held(state)["SuspendedProcesses"])
            before = set(state.get("SuspendedProcesses") or [])
            now = set(current["SuspendedProcesses"])
            # Only what we changed, and only where it still holds what we set (a process
            # someone else flipped back already has its prior value).
            ours_suspended = (held - before) & now
            ours_resumed = (before - held) - now
            conflicts += self._converge(
                client,
                ref.name,
                now,
                (now - ours_suspended) | ours_resumed,
                lambda: self._restore_sizes(client, ref, current, state),
            )
        if held_level(group.get("Tags")) != Level.NONE:
            self.call("autoscaling.DeleteTags", client.delete_tags, Tags=[self._tag(ref)])
        return conflicts

    def _restore_sizes(
        self, client: Any, ref: ObjectRef, current: Mapping[str, Any], prior: Mapping[str, Any]
    ) -> list[str]:
        result = {size: current[size] for size in SIZES}
        conflicts = []
        for size in SIZES:
            if current[size] == prior.get(size):
                continue
            if current[size] == 0:
                result[size] = prior.get(size)
            else:
                conflicts.append(
                    f"{ref}: {size} was changed to {current[size]} while enforced "
                    f"(we set 0, it was {prior.get(size)}); left as it is"
                )
        if result == {size: current[size] for size in SIZES}:
            return conflicts
        if not result["MinSize"] <= result["DesiredCapacity"] <= result["MaxSize"]:
            return [
                *conflicts,
                f"{ref}: restoring the other sizes would give Min {result['MinSize']}, Desired "
                f"{result['DesiredCapacity']}, Max {result['MaxSize']}; sizes left as they are",
            ]
        self.call(
            "autoscaling.UpdateAutoScalingGroup",
            client.update_auto_scaling_group,
            AutoScalingGroupName=ref.name,
            **result,
        )
        return conflicts


@register
class Ec2InstanceTarget(ComputeTarget):
    """Standalone instances (not launched by an Auto Scaling group) are stopped; restore
    starts those that were running before, and only those."""

    kind = "Ec2Instance"
    service = "ec2"
    id_key = "InstanceId"
    chunk = 200  # values per filter
    iam = (
        "ec2:DescribeInstances",
        "ec2:CreateTags",
        "ec2:DeleteTags",
        "ec2:StopInstances",
        "ec2:StartInstances",
    )

    @staticmethod
    def fields(instance: Mapping[str, Any]) -> dict[str, Any]:
        name = (instance.get("State") or {}).get("Name")
        return {"State": RUNNING if name in ("pending", "running") else STOPPED}

    def tagged(self, client: Any, aws: AwsScope) -> Iterator[dict[str, Any]]:
        filters = [*tag_filters(aws), {"Name": "instance-state-name", "Values": list(LIVE_STATES)}]
        for instance in self._instances(client, filters):
            tags = instance.get("Tags")
            if has_tenant_tag(tags, aws) and _tag_value(tags, ASG_NAME_TAG) is None:
                yield instance

    def named(self, client: Any, names: list[str]) -> Iterator[dict[str, Any]]:
        # A filter, not InstanceIds: one missing id would fail the whole read.
        filters = [
            {"Name": "instance-id", "Values": names},
            {"Name": "instance-state-name", "Values": list(LIVE_STATES)},
        ]
        return self._instances(client, filters)

    def _instances(self, client: Any, filters: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
        for reservation in self.paginate(client, "describe_instances", "Reservations", Filters=filters):
            for instance in reservation.get("Instances") or []:
                if (instance.get("State") or {}).get("Name") in LIVE_STATES:
                    yield instance

    def observe(self, ref: ObjectRef, item: Mapping[str, Any], scope: TenantScope) -> Observed:
        applied = held_level(item.get("Tags"))
        current = self.fields(item)
        return Observed(ref, applied, current, applied != Level.NONE and current["State"] == RUNNING)

    def _read(self, client: Any, instance_id: str) -> dict[str, Any] | None:
        """The instance, or None when it is gone or on its way out (terminating)."""
        try:
            reservations = self.call(
                "ec2.DescribeInstances", client.describe_instances, InstanceIds=[instance_id]
            )["Reservations"]
        except AwsTargetError as exc:
            if _gone(exc):
                return None
            raise
        instances = [i for r in reservations for i in r.get("Instances") or []]
        if not instances or (instances[0].get("State") or {}).get("Name") not in LIVE_STATES:
            return None
        instance: dict[str, Any] = instances[0]
        return instance

    def apply(self, ref: ObjectRef, level: Level, scope: TenantScope) -> None:
        assert scope.aws is not None and ref.namespace is not None
        client = self.client(scope.aws, ref.namespace)
        instance = self._read(client, ref.name)
        if instance is None:
            return
        if held_level(instance.get("Tags")) != level:
            self.call(
                "ec2.CreateTags",
                client.create_tags,
                Resources=[ref.name],
                Tags=[{"Key": ENFORCED_TAG, "Value": level.api_name}],
            )
        if self.fields(instance)["State"] == RUNNING:
            try:
                self.call("ec2.StopInstances", client.stop_instances, InstanceIds=[ref.name])
            except AwsTargetError as exc:
                # IncorrectInstanceState: done if it is stopping, stopped or going away by
                # now; a pending instance cannot be stopped yet (raised: retried later).
                if _gone(exc):
                    return
                if exc.code == "IncorrectInstanceState":
                    again = self._read(client, ref.name)
                    if again is None or self.fields(again)["State"] == STOPPED:
                        return
                raise

    def restore(self, ref: ObjectRef, prior: PriorRecord | None, scope: TenantScope) -> list[str]:
        assert scope.aws is not None and ref.namespace is not None
        client = self.client(scope.aws, ref.namespace)
        instance = self._read(client, ref.name)
        if instance is None:
            return []
        conflicts = []
        state = (instance.get("State") or {}).get("Name")
        if prior is None:
            conflicts.append(f"{ref}: no prior state was recorded, so it is left {state}")
        elif prior.state.get("State") == RUNNING and state in ("stopping", "stopped"):
            # A stopping instance cannot be started yet: IncorrectInstanceState, retried.
            try:
                self.call("ec2.StartInstances", client.start_instances, InstanceIds=[ref.name])
            except AwsTargetError as exc:
                if not _gone(exc):
                    raise
                return []
        if held_level(instance.get("Tags")) != Level.NONE:
            self.call(
                "ec2.DeleteTags", client.delete_tags, Resources=[ref.name], Tags=[{"Key": ENFORCED_TAG}]
            )
        return conflicts
