"""ScaleDown on AWS against moto in server mode: Auto Scaling groups and standalone instances.

End to end, the operator (in-process, real kube-apiserver, `aws_endpoint_url` = moto) holds a
tenant's AWS compute at ScaleDown and gives it back exactly.  Where a test needs botocore
hooks (to record the calls made, or inject faults) it drives the AWS targets directly
(awsdriver.AwsDriver), with its own `AwsSessions`, the real planner and actuator and the real
prior-state store: the operator fixture's sessions are not reachable from a test.

moto (5.2.5) behaviours relied on: tag filters on describe_instances and
describe_auto_scaling_groups; instances launched by a group carry `aws:autoscaling:groupName`
and the group's PropagateAtLaunch tags; a group's size change launches or terminates instances
at once, counting only its InService instances (`active_instances`: a Standby instance is
neither counted nor terminated when Desired drops to 0); enter_standby with
ShouldDecrementDesiredCapacity decrements Desired once per instance, exit_standby increments
it once per instance; stop/start take effect at once (`stopped`/`running` on the next
describe), on a Standby instance too, without the group noticing.
With `POST /moto-api/reset-auth` (body `0`) moto authorises every request through its IAM:
credentials of a role assumed beforehand are judged by the role's policies (the operator's
own test keys belong to no moto user, so the role is assumed while IAM is still off).
Not emulated: suspended processes have no effect (a suspended Launch still launches when
Desired rises, and ExitStandby works whatever is suspended); EnterStandby does not check
that Desired stays ≥ MinSize, ExitStandby does not check Desired + n ≤ MaxSize, neither
limits a call to 20 ids; the only lifecycle states are InService and Standby (no Pending,
EnteringStandby, Terminating); no health checks (a stopped InService instance is not
replaced); instances go straight to `stopped` / `running` (the `stopping` and `pending` paths
are not exercised); stop/start of a terminated instance succeed instead of answering
IncorrectInstanceState.
"""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from awsdriver import REGION, TAG_KEY, AwsDriver
from kubehelpers import OPERATOR_NAMESPACE, AuditLog, Kube, MotoServer, wait_for

from tenant_enforcer.model.levels import Level
from tenant_enforcer.targets.aws.base import ENFORCED_TAG
from tenant_enforcer.targets.aws.compute import (
    HELD_SUSPENDED,
    AutoScalingGroupTarget,
    Ec2InstanceTarget,
)
from tenant_enforcer.targets.base import Target
from tenant_enforcer.targets.errors import AwsTargetError, ErrorClass

COMPUTE = (AutoScalingGroupTarget, Ec2InstanceTarget)


# --- the tenant's AWS estate and what we compare -------------------------------------------


def estate(aws: MotoServer, tenant: str) -> dict[str, str]:
    """An Auto Scaling group (2 instances, AZRebalance already suspended), a running and a
    stopped standalone instance, all tagged tenant=<tenant>."""
    ec2, asg = aws.client("ec2", REGION), aws.client("autoscaling", REGION)
    image = ec2.describe_images()["Images"][0]["ImageId"]
    group = f"{tenant}-web"
    asg.create_launch_configuration(LaunchConfigurationName=group, ImageId=image, InstanceType="t3.micro")
    asg.create_auto_scaling_group(
        AutoScalingGroupName=group,
        LaunchConfigurationName=group,
        MinSize=1,
        MaxSize=4,
        DesiredCapacity=2,
        AvailabilityZones=[f"{REGION}a"],
        Tags=[
            {"Key": TAG_KEY, "Value": tenant, "PropagateAtLaunch": True},
            {"Key": "team", "Value": "web", "PropagateAtLaunch": False},
        ],
    )
    asg.suspend_processes(AutoScalingGroupName=group, ScalingProcesses=["AZRebalance"])
    tags = [{"ResourceType": "instance", "Tags": [{"Key": TAG_KEY, "Value": tenant}]}]
    running, stopped = (
        ec2.run_instances(ImageId=image, MinCount=1, MaxCount=1, TagSpecifications=tags)["Instances"][0][
            "InstanceId"
        ]
        for _ in range(2)
    )
    ec2.stop_instances(InstanceIds=[stopped])
    return {"group": group, "running": running, "stopped": stopped}


def _tags(tags: list[dict[str, Any]] | None) -> dict[str, str]:
    return {t["Key"]: t["Value"] for t in tags or []}


def describe(aws: MotoServer) -> dict[str, Any]:
    """Every group (with its instances: lifecycle and EC2 state) and every live standalone
    instance, field by field (all tenants)."""
    ec2, asg = aws.client("ec2", REGION), aws.client("autoscaling", REGION)
    states = {
        i["InstanceId"]: i["State"]["Name"]
        for page in ec2.get_paginator("describe_instances").paginate()
        for r in page["Reservations"]
        for i in r["Instances"]
    }
    groups = {
        g["AutoScalingGroupName"]: {
            "MinSize": g["MinSize"],
            "MaxSize": g["MaxSize"],
            "DesiredCapacity": g["DesiredCapacity"],
            "SuspendedProcesses": sorted(p["ProcessName"] for p in g["SuspendedProcesses"]),
            "Tags": sorted((t["Key"], t["Value"], t["PropagateAtLaunch"]) for t in g["Tags"]),
            "InService": sum(i["LifecycleState"] == "InService" for i in g["Instances"]),
            "Members": {
                i["InstanceId"]: (i["LifecycleState"], states.get(i["InstanceId"])) for i in g["Instances"]
            },
        }
        for page in asg.get_paginator("describe_auto_scaling_groups").paginate()
        for g in page["AutoScalingGroups"]
    }
    instances = {
        i["InstanceId"]: {"State": i["State"]["Name"], "Tags": _tags(i.get("Tags"))}
        for page in ec2.get_paginator("describe_instances").paginate()
        for r in page["Reservations"]
        for i in r["Instances"]
        if i["State"]["Name"] != "terminated" and "aws:autoscaling:groupName" not in _tags(i.get("Tags"))
    }
    return {"groups": groups, "instances": instances}


def held_as_expected(now: dict[str, Any], mine: dict[str, str], before: dict[str, Any]) -> None:
    group = now["groups"][mine["group"]]
    assert (group["MinSize"], group["MaxSize"], group["DesiredCapacity"]) == (0, 0, 0)
    assert group["InService"] == 0
    assert set(group["SuspendedProcesses"]) == HELD_SUSPENDED  # AZRebalance was already among them
    assert "Terminate" in group["SuspendedProcesses"]  # the group terminates nothing
    assert (ENFORCED_TAG, "ScaleDown", False) in group["Tags"]
    # The same instances as before, kept: in Standby and stopped.
    members = before["groups"][mine["group"]]["Members"]
    assert len(members) == 2
    assert group["Members"] == dict.fromkeys(members, ("Standby", "stopped"))
    for key in ("running", "stopped"):
        instance = now["instances"][mine[key]]
        assert instance["State"] == "stopped", key
        assert instance["Tags"][ENFORCED_TAG] == "ScaleDown", key


def untouched(before: dict[str, Any], now: dict[str, Any], owner: dict[str, str]) -> None:
    assert now["groups"][owner["group"]] == before["groups"][owner["group"]]
    for key in ("running", "stopped"):
        assert now["instances"][owner[key]] == before["instances"][owner[key]], key


# --- end to end, through the operator -------------------------------------------------------


def aws_ladder(kube: Kube, unique: str, **spec: Any) -> str:
    name = f"aws-scale-{unique}"
    kube.ladder(
        name, [{"name": "fraud", "categories": ["fraud"], "level": "ScaleDown", "noticePeriod": "0s"}], **spec
    )
    return name


def aws_tenant(kube: Kube, unique: str, ladder: str) -> str:
    tenant = f"aws-{unique}"
    kube.namespace(f"{tenant}-app")  # a policy names namespaces; this one stays empty
    kube.policy(
        tenant,
        tenant,
        ladder,
        [f"{tenant}-app"],
        aws={"regions": [REGION], "tagKey": TAG_KEY, "tagValue": tenant},
    )
    return tenant


def level(kube: Kube, tenant: str) -> str | None:
    return kube.status("tenantpolicies", tenant).get("level")


def test_scale_down_holds_groups_and_standalone_instances_and_the_lift_restores_them(
    kube: Kube, operator: AuditLog, aws: MotoServer, unique: str
) -> None:
    ladder = aws_ladder(kube, unique)
    tenant = f"aws-{unique}"
    mine, theirs = estate(aws, tenant), estate(aws, f"other-{unique}")
    before = describe(aws)
    assert before["groups"][mine["group"]]["InService"] == 2
    aws_tenant(kube, unique, ladder)
    wait_for("level None", lambda: level(kube, tenant) == "None")

    kube.verdict(f"v-{unique}", tenant, category="fraud", severity="high")
    wait_for("level ScaleDown", lambda: level(kube, tenant) == "ScaleDown", timeout=60)
    held = describe(aws)
    held_as_expected(held, mine, before)
    untouched(before, held, theirs)
    prior = kube.core.read_namespaced_config_map(f"prior-state-{tenant}", OPERATOR_NAMESPACE).data
    members = sorted(before["groups"][mine["group"]]["Members"])
    assert json.loads(prior[f"AutoScalingGroup.{REGION}.{mine['group']}"])["state"] == {
        "MinSize": 1,
        "MaxSize": 4,
        "DesiredCapacity": 2,
        "SuspendedProcesses": ["AZRebalance"],
        "InService": members,
        "Standby": [],
        "Running": members,
    }
    assert json.loads(prior[f"Ec2Instance.{REGION}.{mine['running']}"])["state"] == {"State": "running"}
    assert json.loads(prior[f"Ec2Instance.{REGION}.{mine['stopped']}"])["state"] == {"State": "stopped"}

    kube.verdict(f"clear-{unique}", tenant, category="fraud", outcome="cleared", supersedes=[f"v-{unique}"])
    wait_for("level None", lambda: level(kube, tenant) == "None", timeout=60)
    after = describe(aws)
    for owner in (mine, theirs):
        # Sizes, processes, tags, instance states, and the same group instances InService
        # and running: as before.
        untouched(before, after, owner)
    assert after["groups"][mine["group"]]["Members"] == dict.fromkeys(members, ("InService", "running"))
    assert not [
        c
        for c in kube.core.list_namespaced_config_map(OPERATOR_NAMESPACE).items
        if c.metadata.name == f"prior-state-{tenant}"
    ]


def test_dry_run_records_the_aws_plan_and_changes_nothing(
    kube: Kube, operator: AuditLog, aws: MotoServer, unique: str
) -> None:
    tenant = f"aws-{unique}"
    mine = estate(aws, tenant)
    before = describe(aws)
    aws_tenant(kube, unique, aws_ladder(kube, unique, mode="DryRun"))
    kube.verdict(f"v-{unique}", tenant, category="fraud", severity="high")
    dry = wait_for(
        "DryRun condition with a plan",
        lambda: (c := kube.condition("tenantpolicies", tenant, "DryRun")) and "would" in c["message"] and c,
        timeout=60,
    )
    assert f"AutoScalingGroup {REGION}/{mine['group']}" in dry["message"]
    assert f"Ec2Instance {REGION}/{mine['running']}" in dry["message"]
    assert describe(aws) == before
    assert not [
        c
        for c in kube.core.list_namespaced_config_map(OPERATOR_NAMESPACE).items
        if c.metadata.name == f"prior-state-{tenant}"
    ]


# --- end to end under moto's IAM enforcement ---------------------------------------------------

POLICY = Path(__file__).resolve().parents[2] / "docs" / "aws-iam-policy.json"
ACCOUNT = "123456789012"  # moto's default account


def set_auth(aws: MotoServer, after_requests: str) -> None:
    """`0`: every request is authorised by moto's IAM from now on; `inf`: none is (default)."""
    request = urllib.request.Request(
        f"{aws.endpoint}/moto-api/reset-auth",
        data=after_requests.encode(),
        headers={"Content-Type": "text/plain"},
        method="POST",
    )
    urllib.request.urlopen(request).close()


@contextmanager
def iam_enforced(aws: MotoServer) -> Iterator[None]:
    set_auth(aws, "0")
    try:
        yield
    finally:
        set_auth(aws, "inf")


def tenant_role(aws: MotoServer, tenant: str, extra: list[dict[str, Any]] | None = None) -> str:
    """A role allowed exactly docs/aws-iam-policy.json (plus `extra` statements)."""
    iam = aws.client("iam")
    trust = {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Principal": {"AWS": ACCOUNT}, "Action": "sts:AssumeRole"}],
    }
    role = iam.create_role(RoleName=f"te-{tenant}", AssumeRolePolicyDocument=json.dumps(trust))["Role"]
    policy = json.loads(POLICY.read_text())
    policy["Statement"] += extra or []
    iam.put_role_policy(
        RoleName=role["RoleName"], PolicyName="tenant-enforcer", PolicyDocument=json.dumps(policy)
    )
    return str(role["Arn"])


def role_tenant(kube: Kube, unique: str, ladder: str, role_arn: str) -> str:
    """Like `aws_tenant`, reached through `role_arn`.  Returns once the operator observed it:
    its clients then hold the role's credentials (assumed while moto's IAM was off: moto
    knows no user for the operator's own test keys)."""
    tenant = f"aws-{unique}"
    kube.namespace(f"{tenant}-app")
    kube.policy(
        tenant,
        tenant,
        ladder,
        [f"{tenant}-app"],
        aws={"regions": [REGION], "tagKey": TAG_KEY, "tagValue": tenant, "roleArn": role_arn},
    )
    wait_for("level None", lambda: level(kube, tenant) == "None")
    return tenant


def test_the_documented_iam_policy_is_enough_to_hold_and_lift(
    kube: Kube, operator: AuditLog, aws: MotoServer, unique: str
) -> None:
    tenant = f"aws-{unique}"
    mine = estate(aws, tenant)
    before = describe(aws)
    role = tenant_role(aws, tenant)
    role_tenant(kube, unique, aws_ladder(kube, unique), role)
    with iam_enforced(aws):
        kube.verdict(f"v-{unique}", tenant, category="fraud", severity="high")
        wait_for("level ScaleDown", lambda: level(kube, tenant) == "ScaleDown", timeout=60)
    held_as_expected(describe(aws), mine, before)
    with iam_enforced(aws):
        kube.verdict(
            f"clear-{unique}", tenant, category="fraud", outcome="cleared", supersedes=[f"v-{unique}"]
        )
        wait_for("level None", lambda: level(kube, tenant) == "None", timeout=60)
    assert kube.condition("tenantpolicies", tenant, "Stalled") is None
    assert describe(aws) == before


def test_a_denied_read_stalls_the_tenant_and_changes_nothing(
    kube: Kube, operator: AuditLog, aws: MotoServer, unique: str
) -> None:
    tenant = f"aws-{unique}"
    estate(aws, tenant)
    before = describe(aws)
    deny = {"Effect": "Deny", "Action": "autoscaling:DescribeAutoScalingGroups", "Resource": "*"}
    role = tenant_role(aws, tenant, [deny])
    role_tenant(kube, unique, aws_ladder(kube, unique), role)
    with iam_enforced(aws):
        kube.verdict(f"v-{unique}", tenant, category="fraud", severity="high")
        stalled = wait_for(
            "Stalled: ObserveFailed",
            lambda: (
                (c := kube.condition("tenantpolicies", tenant, "Stalled"))
                and c["reason"] == "ObserveFailed"
                and c
            ),
            timeout=60,
        )
        assert "autoscaling.describe_auto_scaling_groups: AccessDenied" in stalled["message"], stalled
        assert level(kube, tenant) == "None"
    assert describe(aws) == before


# --- the targets driven directly, with botocore hooks ----------------------------------------


@pytest.fixture
def driver(kube: Kube, aws: MotoServer, unique: str) -> Iterator[Callable[..., AwsDriver]]:
    """Makes drivers for the AWS compute targets only (or the `kinds` given), each with its
    own prior-state store."""
    made: list[AwsDriver] = []

    def make(kinds: tuple[type[Target], ...] = COMPUTE) -> AwsDriver:
        store = f"-{len(made)}" if made else ""
        made.append(AwsDriver(kube, aws, f"aws-{unique}", None, kinds=kinds, store=store))
        return made[-1]

    yield make
    for d in made:
        d.close()


def test_every_call_made_is_declared_and_every_declared_action_is_used(
    aws: MotoServer, driver: Callable[..., AwsDriver], unique: str
) -> None:
    mine = estate(aws, f"aws-{unique}")
    # Launch suspended by the tenant: the lift resumes it for the instances to leave Standby
    # and suspends it again, so every declared action is exercised.
    aws.client("autoscaling").suspend_processes(
        AutoScalingGroupName=mine["group"], ScalingProcesses=["Launch"]
    )
    before = describe(aws)
    for target in COMPUTE:  # each driven alone: the group target calls EC2 too
        d = driver(kinds=(target,))
        result = d.reconcile(Level.SCALE_DOWN)
        assert not result.failed, result
        result = d.reconcile(Level.NONE)
        assert not result.failed and not result.conflicts, result
        assert describe(aws) == before
        made = set(d.calls)
        assert made <= set(target.iam), f"{target.__name__} calls undeclared {sorted(made - set(target.iam))}"
        assert made == set(target.iam), f"{target.__name__} declares unused {sorted(set(target.iam) - made)}"


def test_a_second_reconcile_makes_no_mutating_call(
    aws: MotoServer, driver: Callable[..., AwsDriver], unique: str
) -> None:
    estate(aws, f"aws-{unique}")
    d = driver()
    d.reconcile(Level.SCALE_DOWN)
    d.calls.clear()
    result = d.reconcile(Level.SCALE_DOWN)
    assert d.last_actions == [] and not result.failed
    assert d.mutating == []


@pytest.mark.parametrize(
    ("code", "status", "error_class"),
    [("AccessDenied", 403, ErrorClass.FATAL), ("Throttling", 400, ErrorClass.TRANSIENT)],
)
def test_a_failing_read_changes_nothing_and_names_the_call_and_code(
    aws: MotoServer,
    driver: Callable[..., AwsDriver],
    unique: str,
    code: str,
    status: int,
    error_class: ErrorClass,
) -> None:
    mine = estate(aws, f"aws-{unique}")
    before = describe(aws)
    d = driver()
    fault = d.refuse("DescribeAutoScalingGroups", code, status)
    with pytest.raises(AwsTargetError) as failed:
        d.reconcile(Level.SCALE_DOWN)
    # What the reconcile turns into Stalled: ObserveFailed (fatal) or a retry (transient).
    assert failed.value.code == code
    assert failed.value.error_class is error_class
    assert str(failed.value) == f"autoscaling.describe_auto_scaling_groups: {code}"
    # A throttled read is retried (session.RETRIES: 5 retries after the first try), then given up.
    assert fault.sent == (6 if error_class is ErrorClass.TRANSIENT else 1)
    assert d.mutating == []
    assert describe(aws) == before
    assert d.store.load(f"aws-{unique}") == {}
    assert mine["group"] in before["groups"]


def test_a_failure_in_the_middle_leaves_each_resource_done_or_untouched_and_the_next_reconcile_completes(
    aws: MotoServer, driver: Callable[..., AwsDriver], unique: str
) -> None:
    mine = estate(aws, f"aws-{unique}")
    before = describe(aws)
    members = sorted(before["groups"][mine["group"]]["Members"])
    # Not a code botocore retries: the operation fails once, as seen by the actuator.
    d = driver()
    d.refuse("EnterStandby", "ResourceContention", 400, times=1)

    result = d.reconcile(Level.SCALE_DOWN)
    assert result.transient == ["autoscaling.EnterStandby: ResourceContention"], result
    now = describe(aws)
    group, was = now["groups"][mine["group"]], before["groups"][mine["group"]]
    # The group, cut short after the steps before the standby: marked, every process
    # suspended, MinSize 0; its instances still InService and running, none replaced.
    assert (ENFORCED_TAG, "ScaleDown", False) in group["Tags"]
    assert set(group["SuspendedProcesses"]) == HELD_SUSPENDED
    assert (group["MinSize"], group["MaxSize"], group["DesiredCapacity"]) == (0, was["MaxSize"], 2)
    assert group["Members"] == was["Members"] == dict.fromkeys(members, ("InService", "running"))
    # The instances, in another batch: done.
    assert now["instances"][mine["running"]]["State"] == "stopped"
    saved = d.store.load(f"aws-{unique}")
    assert {ref.name for ref in saved} == {mine["group"], mine["running"], mine["stopped"]}
    group_prior = next(rec.state for ref, rec in saved.items() if ref.name == mine["group"])
    assert group_prior["InService"] == group_prior["Running"] == members
    assert group_prior["MinSize"] == 1 and group_prior["SuspendedProcesses"] == ["AZRebalance"]

    _, inventory = d.observe()
    assert [o.ref.name for o in inventory if o.drifted] == [mine["group"]]
    result = d.reconcile(Level.SCALE_DOWN)
    assert not result.failed, result
    held_as_expected(describe(aws), mine, before)
    d.reconcile(Level.SCALE_DOWN)
    assert d.last_actions == []

    result = d.reconcile(Level.NONE)
    assert not result.failed and not result.conflicts, result
    assert describe(aws) == before


@pytest.mark.parametrize("operation", ["StartInstances", "ExitStandby", "UpdateAutoScalingGroup"])
def test_a_lift_cut_short_is_finished_by_the_next_one(
    aws: MotoServer, driver: Callable[..., AwsDriver], unique: str, operation: str
) -> None:
    mine = estate(aws, f"aws-{unique}")
    before = describe(aws)
    d = driver(kinds=(AutoScalingGroupTarget,))
    fault = d.refuse(operation, "ResourceContention", 400, times=0)
    result = d.reconcile(Level.SCALE_DOWN)
    assert not result.failed, result

    fault.times = 1
    result = d.reconcile(Level.NONE)
    assert fault.sent == 1
    assert len(result.transient) == 1 and operation in result.transient[0], result
    assert {ref.name for ref in d.store.load(f"aws-{unique}")} == {mine["group"]}  # kept for the retry
    group = describe(aws)["groups"][mine["group"]]
    assert set(group["Members"]) == set(before["groups"][mine["group"]]["Members"])  # none lost

    result = d.reconcile(Level.NONE)
    assert not result.failed and not result.conflicts, result
    assert describe(aws) == before
    assert d.store.load(f"aws-{unique}") == {}


def test_drift_is_reasserted_and_a_restore_reports_sizes_changed_meanwhile(
    aws: MotoServer, driver: Callable[..., AwsDriver], unique: str
) -> None:
    mine = estate(aws, f"aws-{unique}")
    before = describe(aws)
    d = driver()
    d.reconcile(Level.SCALE_DOWN)
    ec2, asg = aws.client("ec2"), aws.client("autoscaling")
    ec2.start_instances(InstanceIds=[mine["running"]])  # the tenant starts it again

    _, inventory = d.observe()
    assert [o.ref.name for o in inventory if o.drifted] == [mine["running"]]
    d.reconcile(Level.SCALE_DOWN)
    assert [(a.ref.name, a.reassert) for a in d.last_actions] == [(mine["running"], True)]
    assert describe(aws)["instances"][mine["running"]]["State"] == "stopped"

    asg.update_auto_scaling_group(AutoScalingGroupName=mine["group"], MaxSize=3)  # changed while held
    result = d.reconcile(Level.NONE)
    assert not result.failed
    assert len(result.conflicts) == 1 and "MaxSize was changed to 3" in result.conflicts[0], result.conflicts
    group = describe(aws)["groups"][mine["group"]]
    assert (group["MinSize"], group["MaxSize"], group["DesiredCapacity"]) == (1, 3, 2)
    assert group["SuspendedProcesses"] == before["groups"][mine["group"]]["SuspendedProcesses"]
    assert group["Tags"] == before["groups"][mine["group"]]["Tags"]
    assert group["Members"] == before["groups"][mine["group"]]["Members"]  # the same, back in service
    assert describe(aws)["instances"] == before["instances"]


def test_a_held_resource_that_lost_the_tenant_tag_is_still_given_back_and_gone_ones_are_forgotten(
    aws: MotoServer, driver: Callable[..., AwsDriver], unique: str
) -> None:
    tenant = f"aws-{unique}"
    mine = estate(aws, tenant)
    ec2 = aws.client("ec2")
    extra = ec2.run_instances(
        ImageId=ec2.describe_images()["Images"][0]["ImageId"],
        MinCount=1,
        MaxCount=1,
        TagSpecifications=[{"ResourceType": "instance", "Tags": [{"Key": TAG_KEY, "Value": tenant}]}],
    )["Instances"][0]["InstanceId"]
    d = driver()
    result = d.reconcile(Level.SCALE_DOWN)
    assert not result.failed
    # While held, the tenant untags one instance we stopped and terminates another.
    ec2.delete_tags(Resources=[mine["running"]], Tags=[{"Key": TAG_KEY}])
    ec2.terminate_instances(InstanceIds=[extra])
    _, inventory = d.observe()
    by_name = {o.ref.name: o for o in inventory}
    assert by_name[mine["running"]].applied == Level.SCALE_DOWN  # found through its record
    assert by_name[extra].applied == Level.SCALE_DOWN and not by_name[extra].state  # gone
    d.reconcile(Level.SCALE_DOWN)
    assert d.last_actions == []

    result = d.reconcile(Level.NONE)
    assert not result.failed and not result.conflicts, result
    now = describe(aws)["instances"]
    assert now[mine["running"]] == {"State": "running", "Tags": {}}  # started again, marker removed
    assert extra not in now
    assert d.store.load(tenant) == {}  # every record dropped, the gone one's too
