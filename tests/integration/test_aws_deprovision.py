"""Deprovision on AWS against moto in server mode: evidence first (EBS snapshots of each
volume, the instance, load balancer and bucket documents), then instances terminated and load
balancers deleted, buckets kept; the lift re-creates nothing and names the evidence.  Also the
S3 evidence store.

Every registered AWS target is driven directly (awsdriver.AwsDriver: real planner, actuator and
prior-state store, own `AwsSessions`, a `DirectoryEvidenceStore` under tmp_path), so ScaleDown
and Firewall are applied on the way up as in the operator.

moto (5.2.5) behaviours relied on: `run_instances` attaches an EBS root volume (plus the
`BlockDeviceMappings` asked for) described under `BlockDeviceMappings`; `create_snapshot` with
`TagSpecifications` and `describe_snapshots` with `tag:` filters (snapshots are `completed` at
once); `terminate_instances` moves an instance to `terminated` at once and it stays described;
ELBv2 `describe_target_groups(LoadBalancerArn=…)`, `describe_target_health`, `describe_rules`,
`delete_load_balancer` (gone at once, its listeners with it) and `delete_target_group`; S3
`put_object(ServerSideEncryption="AES256")` reported back by `head_object`.  An Auto Scaling
group's instances carry its PropagateAtLaunch tags and an EBS root volume; terminating one of
them through EC2 removes it from the group, and only an InService one is replaced (moto ignores
suspended processes and Desired there), so a Standby one is simply gone.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from awsdriver import AWS_TARGETS, REGION, TAG_KEY, AwsDriver
from kubehelpers import AuditLog, Kube, MotoServer, wait_for

from tenant_enforcer.model.levels import Level
from tenant_enforcer.state.evidence import DirectoryEvidenceStore, EvidenceCorrupted, S3EvidenceStore
from tenant_enforcer.targets.aws.compute import HELD_SUSPENDED, AutoScalingGroupTarget
from tenant_enforcer.targets.aws.deprovision import (
    SNAPSHOT_INSTANCE_TAG,
    DeletedLoadBalancerTarget,
    TerminatedInstanceTarget,
)


@dataclass
class Estate:
    instances: list[str]
    volumes: dict[str, list[str]]  # instance → its volumes
    load_balancer: str  # name
    target_group: str  # ARN
    buckets: list[str]
    other_instance: str
    other_load_balancer: str
    other_bucket: str


def _tags(owner: str, resource: str) -> list[dict[str, Any]]:
    return [{"ResourceType": resource, "Tags": [{"Key": TAG_KEY, "Value": owner}]}]


def estate(aws: MotoServer, tenant: str, other: str) -> Estate:
    ec2, elb, s3 = aws.client("ec2", REGION), aws.client("elbv2", REGION), aws.client("s3", REGION)
    vpc = next(v["VpcId"] for v in ec2.describe_vpcs()["Vpcs"] if v.get("IsDefault"))
    subnets = sorted(
        s["SubnetId"] for s in ec2.describe_subnets(Filters=[{"Name": "vpc-id", "Values": [vpc]}])["Subnets"]
    )
    image = ec2.describe_images()["Images"][0]["ImageId"]

    def launch(owner: str, **kwargs: Any) -> str:
        run = ec2.run_instances(
            ImageId=image, MinCount=1, MaxCount=1, TagSpecifications=_tags(owner, "instance"), **kwargs
        )
        return str(run["Instances"][0]["InstanceId"])

    data_disk = [{"DeviceName": "/dev/sdf", "Ebs": {"VolumeSize": 8, "DeleteOnTermination": False}}]
    instances = [launch(tenant, SubnetId=subnets[0], BlockDeviceMappings=data_disk), launch(tenant)]
    other_instance = launch(other)
    described = ec2.describe_instances(InstanceIds=instances)["Reservations"]
    volumes = {
        i["InstanceId"]: sorted(m["Ebs"]["VolumeId"] for m in i["BlockDeviceMappings"])
        for r in described
        for i in r["Instances"]
    }

    def load_balancer(owner: str, targets: list[str]) -> tuple[str, str]:
        name = f"lb-{owner}"[:32]
        lb = elb.create_load_balancer(Name=name, Subnets=subnets[:2], Tags=[{"Key": TAG_KEY, "Value": owner}])
        lb_arn = lb["LoadBalancers"][0]["LoadBalancerArn"]
        tg = elb.create_target_group(Name=f"tg-{owner}"[:32], Protocol="HTTP", Port=80, VpcId=vpc)
        tg_arn = tg["TargetGroups"][0]["TargetGroupArn"]
        elb.register_targets(TargetGroupArn=tg_arn, Targets=[{"Id": t} for t in targets])
        elb.create_listener(
            LoadBalancerArn=lb_arn,
            Protocol="HTTP",
            Port=80,
            DefaultActions=[{"Type": "forward", "TargetGroupArn": tg_arn}],
        )
        return name, tg_arn

    lb, tg = load_balancer(tenant, instances)
    other_lb, _ = load_balancer(other, [other_instance])

    buckets, other_bucket = [f"{tenant}-data", f"{tenant}-bare"], f"{other}-data"
    for bucket, owner in [(buckets[0], tenant), (buckets[1], tenant), (other_bucket, other)]:
        s3.create_bucket(Bucket=bucket)
        s3.put_bucket_tagging(Bucket=bucket, Tagging={"TagSet": [{"Key": TAG_KEY, "Value": owner}]})
        s3.put_object(Bucket=bucket, Key="kept.txt", Body=b"tenant data")
    s3.put_bucket_policy(
        Bucket=buckets[0],
        Policy=json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [
                    {
                        "Sid": "PublicRead",
                        "Effect": "Allow",
                        "Principal": "*",
                        "Action": "s3:GetObject",
                        "Resource": f"arn:aws:s3:::{buckets[0]}/*",
                    }
                ],
            }
        ),
    )
    return Estate(instances, volumes, lb, tg, buckets, other_instance, other_lb, other_bucket)


def auto_scaling_group(aws: MotoServer, tenant: str) -> str:
    """A group of 2 instances (AZRebalance already suspended), tagged tenant=<tenant> and
    propagated to its instances."""
    ec2, asg = aws.client("ec2", REGION), aws.client("autoscaling", REGION)
    name = f"{tenant}-web"
    asg.create_launch_configuration(
        LaunchConfigurationName=name,
        ImageId=ec2.describe_images()["Images"][0]["ImageId"],
        InstanceType="t3.micro",
    )
    asg.create_auto_scaling_group(
        AutoScalingGroupName=name,
        LaunchConfigurationName=name,
        MinSize=1,
        MaxSize=4,
        DesiredCapacity=2,
        AvailabilityZones=[f"{REGION}a"],
        Tags=[{"Key": TAG_KEY, "Value": tenant, "PropagateAtLaunch": True}],
    )
    asg.suspend_processes(AutoScalingGroupName=name, ScalingProcesses=["AZRebalance"])
    return name


def group_state(aws: MotoServer, name: str) -> dict[str, Any]:
    group = aws.client("autoscaling", REGION).describe_auto_scaling_groups(AutoScalingGroupNames=[name])[
        "AutoScalingGroups"
    ][0]
    ec2 = aws.client("ec2", REGION)
    members = [i["InstanceId"] for i in group["Instances"]]
    states = {
        i["InstanceId"]: i["State"]["Name"]
        for r in (ec2.describe_instances(InstanceIds=members)["Reservations"] if members else [])
        for i in r["Instances"]
    }
    return {
        "sizes": (group["MinSize"], group["DesiredCapacity"], group["MaxSize"]),
        "SuspendedProcesses": sorted(p["ProcessName"] for p in group["SuspendedProcesses"]),
        "Members": {
            i["InstanceId"]: (i["LifecycleState"], states[i["InstanceId"]]) for i in group["Instances"]
        },
        "Tags": sorted(t["Key"] for t in group["Tags"]),
    }


def all_instances(aws: MotoServer) -> dict[str, str]:
    """Every instance moto knows, terminated ones too: id → state."""
    pages = aws.client("ec2", REGION).get_paginator("describe_instances").paginate()
    return {
        i["InstanceId"]: i["State"]["Name"]
        for page in pages
        for r in page["Reservations"]
        for i in r["Instances"]
    }


def instance_state(aws: MotoServer, instance: str) -> str:
    described = aws.client("ec2", REGION).describe_instances(InstanceIds=[instance])["Reservations"]
    return str(described[0]["Instances"][0]["State"]["Name"])


def load_balancers(aws: MotoServer) -> set[str]:
    return {
        lb["LoadBalancerName"]
        for lb in aws.client("elbv2", REGION).describe_load_balancers()["LoadBalancers"]
    }


def target_groups(aws: MotoServer) -> set[str]:
    return {
        tg["TargetGroupArn"] for tg in aws.client("elbv2", REGION).describe_target_groups()["TargetGroups"]
    }


def ebs_snapshots(aws: MotoServer, instance: str) -> list[dict[str, Any]]:
    filters = [{"Name": f"tag:{SNAPSHOT_INSTANCE_TAG}", "Values": [instance]}]
    found = aws.client("ec2", REGION).describe_snapshots(OwnerIds=["self"], Filters=filters)["Snapshots"]
    return list(found)


def objects(aws: MotoServer, bucket: str) -> list[str]:
    listed = aws.client("s3", REGION).list_objects_v2(Bucket=bucket).get("Contents") or []
    return [o["Key"] for o in listed]


@pytest.fixture
def driver(kube: Kube, aws: MotoServer, unique: str, tmp_path: Path) -> Iterator[AwsDriver]:
    made = AwsDriver(kube, aws, f"awsdp-{unique}", tmp_path / "evidence")
    yield made
    made.close()


def test_deprovision_takes_evidence_then_terminates_and_deletes_and_the_lift_names_the_evidence(
    driver: AwsDriver, aws: MotoServer, unique: str
) -> None:
    tenant = driver.scope.tenant
    world = estate(aws, tenant, f"awsdo-{unique}")
    other_groups = target_groups(aws) - {world.target_group}

    # A first attempt is cut short after the evidence: nothing is terminated.
    driver.refuse("TerminateInstances", "UnauthorizedOperation")  # a crash, as a refused call
    first = driver.reconcile(Level.DEPROVISION)
    assert first.fatal and all("ec2.terminate_instances: UnauthorizedOperation" in f for f in first.fatal)
    assert {instance_state(aws, i) for i in world.instances} <= {"running", "stopped"}
    pending = driver.observed(TerminatedInstanceTarget.kind)
    assert all(pending[i].pending and pending[i].applied is Level.DEPROVISION for i in world.instances)

    # The retry finishes it, reusing the EBS snapshots it took.
    driver.faults.clear()
    result = driver.reconcile(Level.DEPROVISION)
    assert not result.failed, result

    for instance in world.instances:
        assert instance_state(aws, instance) in ("shutting-down", "terminated")
        snaps = ebs_snapshots(aws, instance)
        assert sorted(s["VolumeId"] for s in snaps) == world.volumes[instance], "one EBS snapshot per volume"
        assert all(s["State"] in ("pending", "completed") for s in snaps)
        documents = driver.evidence.get(tenant, f"aws-{REGION}-{instance}")
        kinds = {(d["kind"], d["metadata"]["name"]) for d in documents}
        assert ("Ec2Instance", instance) in kinds
        assert {name for kind, name in kinds if kind == "EbsSnapshot"} == {s["SnapshotId"] for s in snaps}
        assert ("LoadBalancer", world.load_balancer) in kinds
        assert {name for kind, name in kinds if kind == "S3Bucket"} == set(world.buckets)
        bucket = next(d for d in documents if d["metadata"]["name"] == world.buckets[0])
        assert bucket["description"]["Policy"]["Statement"][0]["Sid"] == "PublicRead"
        described = next(d for d in documents if d["kind"] == "Ec2Instance")["description"]
        assert described["InstanceId"] == instance
    lb_evidence = driver.evidence.get(tenant, f"aws-{REGION}-elb-{world.load_balancer}")
    assert (
        lb_evidence[0]["kind"] == "LoadBalancer" and lb_evidence[0]["metadata"]["name"] == world.load_balancer
    )
    assert lb_evidence[0]["description"]["Listeners"][0]["DefaultActions"]
    group_doc = next(d for d in lb_evidence if d["kind"] == "TargetGroup")
    assert sorted(t["Target"]["Id"] for t in group_doc["description"]["Targets"]) == sorted(world.instances)

    assert world.load_balancer not in load_balancers(aws)
    assert world.target_group not in target_groups(aws)
    for bucket in world.buckets:
        assert objects(aws, bucket) == ["kept.txt"], "buckets are retained with their objects"
    # The other tenant's instance, load balancer, target group and bucket are untouched.
    assert instance_state(aws, world.other_instance) == "running"
    assert world.other_load_balancer in load_balancers(aws)
    assert other_groups <= target_groups(aws)
    assert objects(aws, world.other_bucket) == ["kept.txt"]

    # Held: the evidence is reported, nothing more to do, and no second EBS snapshot.
    held = driver.observed(TerminatedInstanceTarget.kind)
    for instance in world.instances:
        assert held[instance].applied is Level.DEPROVISION and not held[instance].pending
        assert held[instance].evidence == str(driver.evidence.location(tenant, f"aws-{REGION}-{instance}"))
    lbs = driver.observed(DeletedLoadBalancerTarget.kind)
    assert lbs[world.load_balancer].evidence == str(
        driver.evidence.location(tenant, f"aws-{REGION}-elb-{world.load_balancer}")
    )
    again = driver.reconcile(Level.DEPROVISION)
    assert not again.failed and not [
        a for a in again.done if a.ref.kind in (TerminatedInstanceTarget.kind, DeletedLoadBalancerTarget.kind)
    ]
    assert all(len(ebs_snapshots(aws, i)) == len(world.volumes[i]) for i in world.instances)

    # The lift re-creates nothing and names the evidence and the EBS snapshot ids.
    lifted = driver.reconcile(Level.NONE)
    assert not lifted.failed, lifted
    for instance in world.instances:
        message = next(m for m in lifted.conflicts if instance in m)
        assert "not re-created" in message
        assert str(driver.evidence.location(tenant, f"aws-{REGION}-{instance}")) in message
        assert all(s["SnapshotId"] in message for s in ebs_snapshots(aws, instance))
        assert instance_state(aws, instance) == "terminated"
    assert any(world.load_balancer in m and "not re-created" in m for m in lifted.conflicts)
    assert world.load_balancer not in load_balancers(aws)
    saved = driver.store.load(tenant)
    assert not [r for r in saved if r.kind in (TerminatedInstanceTarget.kind, DeletedLoadBalancerTarget.kind)]
    for bucket in world.buckets:
        assert objects(aws, bucket) == ["kept.txt"]


def test_the_calls_made_are_the_iam_actions_declared(driver: AwsDriver, aws: MotoServer, unique: str) -> None:
    estate(aws, driver.scope.tenant, f"awsdo-{unique}")
    assert not driver.reconcile(Level.DEPROVISION).failed
    assert not driver.reconcile(Level.NONE).failed
    declared = {a for cls in AWS_TARGETS for a in cls.iam}
    made = set(driver.calls)
    assert made <= declared, f"undeclared calls: {sorted(made - declared)}"
    ours = {a for cls in (TerminatedInstanceTarget, DeletedLoadBalancerTarget) for a in cls.iam}
    assert ours <= made, f"declared but never called: {sorted(ours - made)}"


def test_evidence_that_cannot_be_read_means_nothing_is_deleted(
    driver: AwsDriver, aws: MotoServer, unique: str
) -> None:
    """Access denied on a bucket setting the evidence needs: no snapshot is stored, no
    instance terminated, no load balancer deleted; the error names the call."""
    driver.refuse("GetBucketVersioning", "AccessDenied")
    world = estate(aws, driver.scope.tenant, f"awsdo-{unique}")
    result = driver.reconcile(Level.DEPROVISION)
    assert result.fatal and all("s3.get_bucket_versioning" in f and "AccessDenied" in f for f in result.fatal)
    assert {instance_state(aws, i) for i in world.instances} <= {"running", "stopped"}
    assert world.load_balancer in load_balancers(aws)
    assert world.target_group in target_groups(aws)
    assert driver.evidence.snapshots(driver.scope.tenant) == []


def test_no_evidence_store_means_nothing_is_deleted(
    kube: Kube, aws: MotoServer, unique: str
) -> None:
    made = AwsDriver(kube, aws, f"awsdn-{unique}", None)  # no evidence store
    try:
        world = estate(aws, made.scope.tenant, f"awsdo-{unique}")
        result = made.reconcile(Level.DEPROVISION)
        assert result.fatal and all("no evidence store" in f for f in result.fatal)
        assert {instance_state(aws, i) for i in world.instances} <= {"running", "stopped"}
        assert world.load_balancer in load_balancers(aws)
    finally:
        made.close()


# --- the S3 evidence store ---------------------------------------------------------------------


def test_s3_evidence_store_round_trip(aws: MotoServer) -> None:
    s3 = aws.client("s3", REGION)
    s3.create_bucket(Bucket="operator-evidence")
    store = S3EvidenceStore(s3, "operator-evidence", "/tenant-enforcer/evidence/")
    documents = [
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "a", "namespace": "ns"},
            "data": {"k": "v"},
        },
        {"apiVersion": "aws/v1", "kind": "Ec2Instance", "metadata": {"name": "i-1", "namespace": REGION}},
    ]
    with pytest.raises(KeyError):
        store.get("acme", "snap-1")
    location = store.put("acme", "snap-1", list(documents))
    assert location == "s3://operator-evidence/tenant-enforcer/evidence/acme/snap-1/"
    assert store.get("acme", "snap-1") == documents
    assert store.snapshots("acme") == ["snap-1"]

    keys = sorted(o["Key"] for o in s3.list_objects_v2(Bucket="operator-evidence")["Contents"])
    assert keys == [
        "tenant-enforcer/evidence/acme/snap-1/ConfigMap.ns.a.yaml",
        "tenant-enforcer/evidence/acme/snap-1/Ec2Instance.us-east-1.i-1.yaml",
        "tenant-enforcer/evidence/acme/snap-1/index.json",
    ]
    for key in keys:
        assert s3.head_object(Bucket="operator-evidence", Key=key)["ServerSideEncryption"] == "AES256"
    index = json.loads(s3.get_object(Bucket="operator-evidence", Key=keys[-1])["Body"].read())
    assert [e["file"] for e in index["objects"]] == [k.rsplit("/", 1)[1] for k in keys[:2]]

    # A second put of the same id is a no-op returning the same location.
    before = {k: s3.head_object(Bucket="operator-evidence", Key=k)["ETag"] for k in keys}
    assert store.put("acme", "snap-1", [documents[0]]) == location
    assert {k: s3.head_object(Bucket="operator-evidence", Key=k)["ETag"] for k in keys} == before
    assert store.get("acme", "snap-1") == documents

    # get checks every document against its sha256.
    s3.put_object(Bucket="operator-evidence", Key=keys[0], Body=b"tampered: true\n")
    with pytest.raises(EvidenceCorrupted):
        store.get("acme", "snap-1")
    s3.delete_object(Bucket="operator-evidence", Key=keys[1])
    with pytest.raises(EvidenceCorrupted):
        store.get("acme", "snap-1")


# --- end to end, through the operator -----------------------------------------------------------


def test_a_verdict_straight_to_deprovision_through_the_operator(
    kube: Kube, operator: AuditLog, aws: MotoServer, unique: str
) -> None:
    tenant = f"awsde-{unique}"
    world = estate(aws, tenant, f"awsdo-{unique}")
    kube.ladder(
        tenant,
        [{"name": "csam", "categories": ["csam"], "level": "Deprovision", "noticePeriod": "0s"}],
        approvalRequired=[],
    )
    kube.namespace(f"{tenant}-app")
    kube.policy(
        tenant,
        tenant,
        tenant,
        [f"{tenant}-app"],
        aws={"regions": [REGION], "tagKey": TAG_KEY, "tagValue": tenant},
    )
    kube.verdict(f"v-{unique}", tenant, category="csam", severity="critical")
    wait_for(
        "level Deprovision", lambda: kube.status("tenantpolicies", tenant).get("level") == "Deprovision", 90
    )
    for instance in world.instances:
        assert instance_state(aws, instance) in ("shutting-down", "terminated")
        assert sorted(s["VolumeId"] for s in ebs_snapshots(aws, instance)) == world.volumes[instance]
    assert world.load_balancer not in load_balancers(aws)
    assert world.other_load_balancer in load_balancers(aws)
    assert instance_state(aws, world.other_instance) == "running"
    for bucket in world.buckets:
        assert objects(aws, bucket) == ["kept.txt"]
    assert operator.evidence_dir is not None
    store = DirectoryEvidenceStore(operator.evidence_dir)
    ids = [f"aws-{REGION}-{i}" for i in world.instances] + [f"aws-{REGION}-elb-{world.load_balancer}"]
    ids += [f"aws-{REGION}-s3-{bucket}" for bucket in world.buckets]  # each bucket's own evidence
    wanted = sorted(str(store.location(tenant, sid)) for sid in ids)
    assert "None" not in wanted, "every instance, load balancer and bucket has its evidence stored"
    wait_for(
        "status.snapshots",
        lambda: sorted(s for s in kube.status("tenantpolicies", tenant).get("snapshots") or [] if "aws-" in s)
        == wanted,
    )

    kube.verdict(f"clear-{unique}", tenant, category="csam", outcome="cleared", supersedes=[f"v-{unique}"])
    wait_for("level None", lambda: kube.status("tenantpolicies", tenant).get("level") == "None", 90)

    def not_restored() -> list[str] | None:
        """The NotRestored messages once each instance has one (posted after the status patch)."""
        found = [e.message for e in kube.events_for(tenant) if e.reason == "NotRestored"]
        named = all(any(i in m and "not re-created" in m for m in found) for i in world.instances)
        return found if named else None

    messages = wait_for("a NotRestored Event per instance", not_restored)
    for instance in world.instances:
        assert any(instance in m and "not re-created" in m for m in messages), messages
        assert instance_state(aws, instance) == "terminated"
    assert world.load_balancer not in load_balancers(aws)


def test_a_held_groups_instances_get_evidence_and_are_terminated_and_the_lift_terminates_nothing_more(
    driver: AwsDriver, aws: MotoServer, unique: str
) -> None:
    """ScaleDown keeps the group's instances (Standby, stopped): Deprovision finds them by the
    tenant tag they carry, snapshots their volumes and terminates them; lifting afterwards
    gives the group back its processes and sizes without launching or terminating anything."""
    tenant = driver.scope.tenant
    world = estate(aws, tenant, f"awsdo-{unique}")
    group = auto_scaling_group(aws, tenant)
    members = sorted(group_state(aws, group)["Members"])
    assert len(members) == 2

    assert not driver.reconcile(Level.SCALE_DOWN).failed
    held = group_state(aws, group)
    assert held["Members"] == dict.fromkeys(members, ("Standby", "stopped"))
    assert held["sizes"] == (0, 0, 0) and set(held["SuspendedProcesses"]) == HELD_SUSPENDED
    volumes = {
        i["InstanceId"]: sorted(m["Ebs"]["VolumeId"] for m in i["BlockDeviceMappings"])
        for r in aws.client("ec2", REGION).describe_instances(InstanceIds=members)["Reservations"]
        for i in r["Instances"]
    }
    assert all(volumes[i] for i in members)

    result = driver.reconcile(Level.DEPROVISION)
    assert not result.failed, result
    for instance in members:
        assert instance_state(aws, instance) in ("shutting-down", "terminated")
        snaps = ebs_snapshots(aws, instance)
        assert sorted(s["VolumeId"] for s in snaps) == volumes[instance], "one EBS snapshot per volume"
        kinds = {
            (d["kind"], d["metadata"]["name"])
            for d in driver.evidence.get(tenant, f"aws-{REGION}-{instance}")
        }
        assert ("Ec2Instance", instance) in kinds
    deprovisioned = group_state(aws, group)
    assert deprovisioned["Members"] == {}, "terminated Standby instances are not replaced"
    assert deprovisioned["sizes"] == (0, 0, 0)
    again = driver.reconcile(Level.DEPROVISION)
    assert not again.failed and not again.done, again

    everything = all_instances(aws)
    lifted = driver.reconcile(Level.NONE)
    assert not lifted.failed, lifted
    assert any(group in m and "not returned" in m for m in lifted.conflicts), lifted.conflicts
    after = group_state(aws, group)
    # Nothing launched, nothing more terminated: the same instances in the same states.
    assert all_instances(aws) == everything
    assert after["Members"] == {}
    assert instance_state(aws, world.other_instance) == "running"
    # Processes as before, the marker gone, sizes consistent: Max back, Desired lowered by
    # the 2 instances lost (not replaced), Min with it.
    assert after["SuspendedProcesses"] == ["AZRebalance"]
    assert after["Tags"] == [TAG_KEY]
    assert after["sizes"] == (0, 0, 4)
    saved = driver.store.load(tenant)
    assert not [r for r in saved if r.kind == AutoScalingGroupTarget.kind], "the group's record is dropped"
    assert driver.reconcile(Level.NONE).done == []  # nothing left to give back
