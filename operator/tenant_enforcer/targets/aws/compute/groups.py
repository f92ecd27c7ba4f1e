"""`AutoScalingGroupTarget` (kind `AutoScalingGroup`): the group keeps its instances, stopped.

Held (each step idempotent, in this order, so a crash anywhere is finished by the next
reconcile re-running apply): marker tag; every scaling process suspended (Terminate too);
MinSize 0; the InService instances moved to Standby with ShouldDecrementDesiredCapacity (the
desired capacity drops with them, nothing is replaced); Min, Max and Desired 0; then the
group's running instances stopped ("put the instance in Standby, then stop it": AWS's way to
stop an instance of a group without the group replacing it).

Prior state: the sizes, the suspended processes, and which instances were InService, in
Standby and running (ids).  Restore (re-run until it returns): the instances that were running
started (and seen running before they go back: a stopped instance returned to service would
be found unhealthy and replaced); the processes we suspended resumed; MaxSize back first, so
that Desired + n ≤ Max when the n instances we put in Standby exit it (ExitStandby increments
Desired); then Min and Desired back; the tenant's own suspended processes as they were
(Launch is resumed for the exit if the tenant had suspended it, and suspended again after).
A size someone changed while held is reported and left as it is.

Instances terminated while held (Deprovision terminates them, after their EBS snapshots) are
reported, not returned: Desired (and Min, if it would exceed Desired) come back lowered by
their number, so the lift launches no replacement (lifting re-creates nothing).  Instances
that joined the group while it was held (a Launch despite the suspension) were moved to
Standby and stopped like the others; the lift leaves them there and names them: returning
them would exceed the prior capacity and have the group terminate one of them.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from tenant_enforcer.model.levels import Level
from tenant_enforcer.model.policy import AwsScope
from tenant_enforcer.model.refs import ObjectRef, Observed
from tenant_enforcer.targets.aws.base import ENFORCED_TAG, has_tenant_tag
from tenant_enforcer.targets.aws.compute.common import (
    HELD_SUSPENDED,
    PROCESSES,
    RUNNING,
    SIZES,
    STOPPED,
    ComputeTarget,
    NotYet,
    chunks,
    held_level,
)
from tenant_enforcer.targets.base import PriorRecord, TenantScope
from tenant_enforcer.targets.registry import register

IN_SERVICE, STANDBY = "InService", "Standby"
STANDBY_CHUNK = 20  # instance ids per EnterStandby / ExitStandby call
EC2_CHUNK = 200  # values per DescribeInstances filter; ids per Stop/StartInstances call
UP = ("pending", "running")  # EC2 states that count as running (what we stop)

# A group's instances: id → (lifecycle state in the group, EC2 state); an instance EC2 no
# longer describes (or describes as shutting-down / terminated) is left out.
Members = dict[str, tuple[str, str]]


def ids(members: Members, lifecycle: str | None = None, ec2: tuple[str, ...] | None = None) -> list[str]:
    return sorted(
        i
        for i, (life, state) in members.items()
        if (lifecycle is None or life == lifecycle) and (ec2 is None or state in ec2)
    )


@register
class AutoScalingGroupTarget(ComputeTarget):
    """Processes suspended, instances in Standby and stopped, sizes to 0; restore gives back
    the same instances, running and InService, then the sizes and processes (see module)."""

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
        "autoscaling:EnterStandby",
        "autoscaling:ExitStandby",
        "ec2:DescribeInstances",
        "ec2:StopInstances",
        "ec2:StartInstances",
    )

    # --- reading ------------------------------------------------------------------------------

    @staticmethod
    def fields(group: Mapping[str, Any], members: Members) -> dict[str, Any]:
        suspended = sorted({p["ProcessName"] for p in group.get("SuspendedProcesses") or []})
        return {
            **{size: group.get(size) for size in SIZES},
            "SuspendedProcesses": suspended,
            "InService": ids(members, IN_SERVICE),
            "Standby": ids(members, STANDBY),
            "Running": ids(members, ec2=UP),
        }

    @staticmethod
    def held_processes(prior: Mapping[str, Any] | None) -> set[str]:
        """Every known process suspended; processes AWS may add later keep the tenant's setting."""
        known = set(PROCESSES)
        return set(HELD_SUSPENDED) | {
            p for p in (prior or {}).get("SuspendedProcesses") or [] if p not in known
        }

    def holding(self, current: Mapping[str, Any], prior: Mapping[str, Any] | None) -> bool:
        """Whether `current` is what we hold the group at."""
        return (
            all(current[size] == 0 for size in SIZES)
            and set(current["SuspendedProcesses"]) == self.held_processes(prior)
            and not current["InService"]
            and not current["Running"]
        )

    def ec2(self, aws: AwsScope, region: str) -> Any:
        return self.call("sts.AssumeRole", self.sessions.client, scope=aws, service="ec2", region=region)

    def members(self, ec2: Any, group: Mapping[str, Any]) -> Members:
        lifecycle = {
            str(i["InstanceId"]): str(i.get("LifecycleState") or "") for i in group.get("Instances") or []
        }
        states: dict[str, str] = {}
        for part in chunks(sorted(lifecycle), EC2_CHUNK):
            # A filter, not InstanceIds: one missing id would fail the whole read.
            filters = [{"Name": "instance-id", "Values": part}]
            for reservation in self.paginate(ec2, "describe_instances", "Reservations", Filters=filters):
                for instance in reservation.get("Instances") or []:
                    states[instance["InstanceId"]] = (instance.get("State") or {}).get("Name") or ""
        return {
            i: (life, states[i])
            for i, life in lifecycle.items()
            if states.get(i) in (*UP, "stopping", STOPPED) and not life.startswith("Terminat")
        }

    def tagged(self, client: Any, aws: AwsScope) -> Iterator[dict[str, Any]]:
        filters = [{"Name": f"tag:{aws.tag_key}", "Values": [aws.tag_value]}]
        groups = self.paginate(client, "describe_auto_scaling_groups", "AutoScalingGroups", Filters=filters)
        return (g for g in groups if has_tenant_tag(g.get("Tags"), aws))

    def named(self, client: Any, names: list[str]) -> Iterator[dict[str, Any]]:
        return self.paginate(
            client, "describe_auto_scaling_groups", "AutoScalingGroups", AutoScalingGroupNames=names
        )

    def observe(self, ref: ObjectRef, item: Mapping[str, Any], scope: TenantScope) -> Observed:
        assert scope.aws is not None and ref.namespace is not None
        applied = held_level(item.get("Tags"))
        current = self.fields(item, self.members(self.ec2(scope.aws, ref.namespace), item))
        prior = scope.saved.get(ref)
        drifted = applied != Level.NONE and not self.holding(current, prior.state if prior else current)
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

    # --- small writes ---------------------------------------------------------------------------

    def _processes(self, client: Any, name: str, resume: set[str], suspend: set[str]) -> None:
        known = set(PROCESSES)
        if resume & known:
            self.call(
                "autoscaling.ResumeProcesses",
                client.resume_processes,
                AutoScalingGroupName=name,
                ScalingProcesses=sorted(resume & known),
            )
        if suspend & known:
            self.call(
                "autoscaling.SuspendProcesses",
                client.suspend_processes,
                AutoScalingGroupName=name,
                ScalingProcesses=sorted(suspend & known),
            )

    def _sizes(self, client: Any, name: str, **sizes: int) -> None:
        # All at once where several change: AWS checks Min ≤ Desired ≤ Max on the result.
        self.call(
            "autoscaling.UpdateAutoScalingGroup",
            client.update_auto_scaling_group,
            AutoScalingGroupName=name,
            **sizes,
        )

    def _instances(self, ec2: Any, what: str, instance_ids: list[str]) -> None:
        method = {"StopInstances": ec2.stop_instances, "StartInstances": ec2.start_instances}[what]
        for part in chunks(instance_ids, EC2_CHUNK):
            self.call(f"ec2.{what}", method, InstanceIds=part)

    # --- ScaleDown ------------------------------------------------------------------------------

    def apply(self, ref: ObjectRef, level: Level, scope: TenantScope) -> None:
        assert scope.aws is not None and ref.namespace is not None
        client = self.client(scope.aws, ref.namespace)
        group = self._read(client, ref.name)
        if group is None:
            return  # gone since discovery: nothing to hold
        prior = scope.saved.get(ref)
        ec2 = self.ec2(scope.aws, ref.namespace)
        members = self.members(ec2, group)
        current = self.fields(group, members)
        # 1. The marker first: from now on discovery sees the group as ours to finish.
        if held_level(group.get("Tags")) != level:
            self.call(
                "autoscaling.CreateOrUpdateTags",
                client.create_or_update_tags,
                Tags=[{**self._tag(ref), "Value": level.api_name, "PropagateAtLaunch": False}],
            )
        # 2. Every process suspended: nothing launched, terminated, replaced or rebalanced.
        held = self.held_processes(prior.state if prior else current)
        self._processes(client, ref.name, set(), held - set(current["SuspendedProcesses"]))
        # 3. MinSize 0, so that Desired may drop with the instances leaving service.
        if current["MinSize"] != 0:
            self._sizes(client, ref.name, MinSize=0)
        # 4. InService → Standby, Desired decremented with them (AWS refuses a Desired below
        #    0: past that, they go without decrement; Launch is suspended, nothing replaces them).
        desired = int(current["DesiredCapacity"] or 0)
        for part in chunks(current["InService"], STANDBY_CHUNK):
            decrement, rest = part[: max(desired, 0)], part[max(desired, 0) :]
            for batch, flag in ((decrement, True), (rest, False)):
                if batch:
                    self.call(
                        "autoscaling.EnterStandby",
                        client.enter_standby,
                        AutoScalingGroupName=ref.name,
                        InstanceIds=batch,
                        ShouldDecrementDesiredCapacity=flag,
                    )
            desired -= len(decrement)
        # 5. Sizes 0.
        if current["MaxSize"] != 0 or desired != 0:
            self._sizes(client, ref.name, **dict.fromkeys(SIZES, 0))
        # 6. The group's running instances stopped (all in Standby now: the group leaves them be).
        in_standby = set(current["Standby"]) | set(current["InService"])
        running = [i for i in ids(members, ec2=(RUNNING,)) if i in in_standby]
        self._instances(ec2, "StopInstances", running)
        starting = ids(members, ec2=("pending",))
        if starting:
            raise NotYet(f"{ref}: instances {', '.join(starting)} are still starting; stopped once running")

    # --- lift -----------------------------------------------------------------------------------

    def restore(self, ref: ObjectRef, prior: PriorRecord | None, scope: TenantScope) -> list[str]:
        assert scope.aws is not None and ref.namespace is not None
        client = self.client(scope.aws, ref.namespace)
        group = self._read(client, ref.name)
        if group is None:
            return []
        conflicts: list[str] = []
        if prior is None:
            conflicts.append(
                f"{ref}: no prior state was recorded, so sizes, processes and instances are left as they are"
            )
        else:
            conflicts += self._give_back(client, ref, group, prior.state, scope.aws)
        if held_level(group.get("Tags")) != Level.NONE:
            self.call("autoscaling.DeleteTags", client.delete_tags, Tags=[self._tag(ref)])
        return conflicts

    def _give_back(
        self, client: Any, ref: ObjectRef, group: Mapping[str, Any], state: Mapping[str, Any], aws: AwsScope
    ) -> list[str]:
        assert ref.namespace is not None
        ec2 = self.ec2(aws, ref.namespace)
        members = self.members(ec2, group)
        current = self.fields(group, members)
        conflicts: list[str] = []
        was_in_service = list(state.get("InService") or [])
        was_running = list(state.get("Running") or [])
        lost = sorted({i for i in (*was_in_service, *was_running) if i not in members})
        if lost:
            conflicts.append(
                f"{ref}: instances {', '.join(lost)} were terminated or left the group while it was "
                "held; they are not returned, and no replacement is launched"
            )
        joined = sorted(set(ids(members, STANDBY)) - set(was_in_service) - set(state.get("Standby") or []))
        if joined:
            conflicts.append(
                f"{ref}: instances {', '.join(joined)} joined the group while it was held; left in "
                "Standby as they are"
            )

        # 1. The instances that were running started, and seen running before any goes back
        #    into service (a stopped or starting one would be found unhealthy and replaced).
        start = [i for i in was_running if i in members and members[i][1] == STOPPED]
        self._instances(ec2, "StartInstances", start)
        if start:
            members = self.members(ec2, group)
        waiting = [i for i in was_running if i in members and members[i][1] != RUNNING]
        if waiting:
            raise NotYet(f"{ref}: instances {', '.join(waiting)} are not running yet; returned once they are")
        to_exit = [i for i in was_in_service if i in members and members[i][0] == STANDBY]

        # 2. The processes we suspended resumed; Launch too while instances exit Standby, if
        #    the tenant had it suspended (suspended again in step 5).
        before = set(state.get("SuspendedProcesses") or []) & set(PROCESSES)
        now = set(current["SuspendedProcesses"]) & set(PROCESSES)
        resume = now - before
        if to_exit and "Launch" in now:
            resume.add("Launch")
        self._processes(client, ref.name, resume, set())
        now -= resume

        # 3. The sizes to give back.  Instances lost while held lower Desired (and Min, where
        #    it would exceed Desired) by their number: nothing is launched in their place.
        prior = {size: int(state.get(size) or 0) for size in SIZES}
        lost_in_service = [i for i in was_in_service if i not in members]
        want = {**prior, "DesiredCapacity": max(0, prior["DesiredCapacity"] - len(lost_in_service))}
        want["MinSize"] = min(prior["MinSize"], want["DesiredCapacity"])
        if want != prior:
            conflicts.append(
                f"{ref}: given back with MinSize {want['MinSize']} (was {prior['MinSize']}) and "
                f"DesiredCapacity {want['DesiredCapacity']} (was {prior['DesiredCapacity']}): "
                "the instances lost while held are not replaced"
            )
        # Ours: what we set (0), Desired as the exits raised it (one per instance InService),
        # or already given back; anything else was changed by someone while held.
        now_sizes = {size: int(current[size] or 0) for size in SIZES}
        ours = {"MinSize": 0, "MaxSize": 0, "DesiredCapacity": len(ids(members, IN_SERVICE))}
        give_back = {}
        for size in SIZES:
            value = now_sizes[size]
            done = value == want[size] and (size != "DesiredCapacity" or not to_exit)
            give_back[size] = value == ours[size] or done
            if not give_back[size]:
                conflicts.append(
                    f"{ref}: {size} was changed to {value} while enforced "
                    f"(we set 0, it was {prior[size]}); left as it is"
                )

        # 4. MaxSize first (ExitStandby needs Desired + n ≤ Max), then the exits, then Min and
        #    Desired: Min ≤ Desired ≤ Max holds after every call.
        if to_exit and give_back["MaxSize"] and now_sizes["MaxSize"] < want["MaxSize"]:
            self._sizes(client, ref.name, MaxSize=want["MaxSize"])
            now_sizes["MaxSize"] = want["MaxSize"]
        room = max(0, now_sizes["MaxSize"] - now_sizes["DesiredCapacity"])
        if len(to_exit) > room:
            conflicts.append(
                f"{ref}: no room under MaxSize {now_sizes['MaxSize']} to return "
                f"{', '.join(to_exit[room:])} to service; left in Standby"
            )
        for part in chunks(to_exit[:room], STANDBY_CHUNK):
            self.call(
                "autoscaling.ExitStandby",
                client.exit_standby,
                AutoScalingGroupName=ref.name,
                InstanceIds=part,
            )
            now_sizes["DesiredCapacity"] += len(part)
        result = {size: want[size] if give_back[size] else now_sizes[size] for size in SIZES}
        if result != now_sizes:
            if result["MinSize"] <= result["DesiredCapacity"] <= result["MaxSize"]:
                self._sizes(client, ref.name, **result)
            else:
                conflicts.append(
                    f"{ref}: restoring the other sizes would give Min {result['MinSize']}, Desired "
                    f"{result['DesiredCapacity']}, Max {result['MaxSize']}; sizes left as they are"
                )

        # 5. The tenant's own suspended processes as they were.
        self._processes(client, ref.name, set(), before - now)
        return conflicts
