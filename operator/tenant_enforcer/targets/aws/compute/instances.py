"""`Ec2InstanceTarget` (kind `Ec2Instance`): the tenant's standalone instances are stopped at
ScaleDown; restore starts those that were running before, and only those.  Instances a group
launched (tagged `aws:autoscaling:groupName`) are left to `AutoScalingGroupTarget`."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from tenant_enforcer.model.levels import Level
from tenant_enforcer.model.policy import AwsScope
from tenant_enforcer.model.refs import ObjectRef, Observed
from tenant_enforcer.targets.aws.base import ENFORCED_TAG, has_tenant_tag, tag_filters
from tenant_enforcer.targets.aws.compute.common import (
    ASG_NAME_TAG,
    LIVE_STATES,
    RUNNING,
    STOPPED,
    ComputeTarget,
    gone,
    held_level,
    tag_value,
)
from tenant_enforcer.targets.base import PriorRecord, TenantScope
from tenant_enforcer.targets.errors import AwsTargetError
from tenant_enforcer.targets.registry import register


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
            if has_tenant_tag(tags, aws) and tag_value(tags, ASG_NAME_TAG) is None:
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
            if gone(exc):
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
                if gone(exc):
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
                if not gone(exc):
                    raise
                return []
        if held_level(instance.get("Tags")) != Level.NONE:
            self.call(
                "ec2.DeleteTags", client.delete_tags, Resources=[ref.name], Tags=[{"Key": ENFORCED_TAG}]
            )
        return conflicts
