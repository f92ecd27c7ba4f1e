"""`TerminatedInstanceTarget` (kind `TerminatedEc2Instance`, one per tenant instance): an EBS
snapshot of each attached volume, found again by its tags and deterministic description on a
retry (never a second one), then an evidence snapshot `aws-<region>-<instance id>` through the
evidence store: the instance description, its EBS snapshots, the tenant's load balancers
(listeners, rules, target groups and their targets) and buckets in that region.  Its location
is tagged on the instance (`tenant-enforcer.io/evidence`), then the instance is terminated and
verified `shutting-down` or `terminated`.

Progress is the prior-state record (the instance's volumes): a tenant instance with a record
that still runs is a termination under way (`pending`); one the tenant terminated itself (no
record) is left alone.  Lifting re-creates nothing: it names the evidence and EBS snapshots.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from tenant_enforcer.model.levels import Level
from tenant_enforcer.model.refs import ObjectRef, Observed
from tenant_enforcer.targets.aws.base import has_tenant_tag, tag_filters
from tenant_enforcer.targets.aws.deprovision.evidence import (
    ELB_READS,
    S3_READS,
    AwsDeprovisionTarget,
    DeprovisionIncomplete,
    document,
)
from tenant_enforcer.targets.base import MANAGED_BY, PriorRecord, TenantScope
from tenant_enforcer.targets.errors import AwsTargetError, ErrorClass
from tenant_enforcer.targets.registry import register

EVIDENCE_TAG = "tenant-enforcer.io/evidence"  # on an instance: where its evidence snapshot is
SNAPSHOT_TENANT_TAG = "tenant-enforcer.io/evidence-of"  # on our EBS snapshots: the tenant
SNAPSHOT_INSTANCE_TAG = "tenant-enforcer.io/instance"  # on our EBS snapshots: the instance
GONE_STATES = ("shutting-down", "terminated")
MAX_TAG_VALUE = 256


def snapshot_description(tenant: str, instance: str, volume: str) -> str:
    """Deterministic, so a retry finds the snapshot it took before."""
    return f"tenant-enforcer evidence: tenant {tenant}, instance {instance}, volume {volume}"


def instance_volumes(instance: Mapping[str, Any]) -> list[str]:
    return sorted(
        m["Ebs"]["VolumeId"]
        for m in instance.get("BlockDeviceMappings") or []
        if (m.get("Ebs") or {}).get("VolumeId")
    )


def _tag_value(tags: list[dict[str, Any]] | None, key: str) -> str | None:
    return next((t.get("Value") for t in tags or [] if t.get("Key") == key), None)


@register
class TerminatedInstanceTarget(AwsDeprovisionTarget):
    """The tenant's EC2 instances: EBS snapshots and evidence, then terminated."""

    kind = "TerminatedEc2Instance"
    service = "ec2"
    iam = (
        "ec2:DescribeInstances",
        "ec2:DescribeSnapshots",
        "ec2:CreateSnapshot",
        "ec2:CreateTags",
        "ec2:TerminateInstances",
        *ELB_READS,
        *S3_READS,
    )

    @staticmethod
    def snapshot_id(ref: ObjectRef) -> str:
        return f"aws-{ref.namespace}-{ref.name}"

    def _instances(self, ec2: Any, filters: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
        for reservation in self.paginate(ec2, "describe_instances", "Reservations", Filters=filters):
            yield from reservation.get("Instances") or []

    def discover(self, scope: TenantScope) -> list[Observed]:
        if scope.aws is None:
            return []
        found = []
        for region in self.regions(scope):
            ec2 = self.client(scope.aws, region)
            saved = set(self.saved_in(scope, region))
            instances = {
                i["InstanceId"]: i
                for i in self._instances(ec2, tag_filters(scope.aws))
                if has_tenant_tag(i.get("Tags"), scope.aws)
            }
            missing = sorted(r.name for r in saved if r.name not in instances)
            for start in range(0, len(missing), 200):  # held by us, even if it lost the tag since
                part = missing[start : start + 200]
                for item in self._instances(ec2, [{"Name": "instance-id", "Values": part}]):
                    instances[item["InstanceId"]] = item
            for name in sorted(set(instances) | {r.name for r in saved}):
                ref = ObjectRef(self.kind, name, region)
                instance = instances.get(name)
                if instance is None:
                    found.append(
                        Observed(
                            ref,
                            Level.DEPROVISION,
                            evidence=self.stored_location(scope.tenant, self.snapshot_id(ref)),
                        )
                    )
                    continue
                gone = (instance.get("State") or {}).get("Name") in GONE_STATES
                evidence = _tag_value(instance.get("Tags"), EVIDENCE_TAG)
                if ref not in saved:
                    if not gone:
                        found.append(Observed(ref, Level.NONE, {"Volumes": instance_volumes(instance)}))
                    continue  # terminated by the tenant: not ours
                if evidence is None:  # not tagged yet (or too long for a tag): ask the store
                    evidence = self.stored_location(scope.tenant, self.snapshot_id(ref))
                found.append(Observed(ref, Level.DEPROVISION, evidence=evidence, pending=not gone))
        return found

    def _read(self, ec2: Any, ref: ObjectRef) -> dict[str, Any] | None:
        for instance in self._instances(ec2, [{"Name": "instance-id", "Values": [ref.name]}]):
            return instance
        return None

    def ebs_snapshots(self, ec2: Any, tenant: str, instance: str) -> dict[str, dict[str, Any]]:
        """Our EBS snapshots of the instance, by volume id."""
        filters = [
            {"Name": f"tag:{SNAPSHOT_TENANT_TAG}", "Values": [tenant]},
            {"Name": f"tag:{SNAPSHOT_INSTANCE_TAG}", "Values": [instance]},
        ]
        found: dict[str, dict[str, Any]] = {}
        for snap in self.paginate(ec2, "describe_snapshots", "Snapshots", OwnerIds=["self"], Filters=filters):
            volume = snap.get("VolumeId")
            if (
                volume
                and snap.get("Description") == snapshot_description(tenant, instance, volume)
                and snap.get("State") != "error"
            ):
                found.setdefault(volume, snap)
        return found

    def apply(self, ref: ObjectRef, level: Level, scope: TenantScope) -> None:
        assert scope.aws is not None
        self.store(ref)
        ec2 = self.client(scope.aws, self.region_of(ref))
        instance = self._read(ec2, ref)
        if instance is None or (instance.get("State") or {}).get("Name") in GONE_STATES:
            return  # gone, or on its way out: done
        # 1. Evidence first: an EBS snapshot of each volume (a retry finds those it took).
        snapshots = self.ebs_snapshots(ec2, scope.tenant, ref.name)
        for volume in instance_volumes(instance):
            if volume in snapshots:
                continue
            tags = [
                {"Key": scope.aws.tag_key, "Value": scope.aws.tag_value},
                {"Key": SNAPSHOT_TENANT_TAG, "Value": scope.tenant},
                {"Key": SNAPSHOT_INSTANCE_TAG, "Value": ref.name},
                *({"Key": k, "Value": v} for k, v in MANAGED_BY.items()),
            ]
            snapshots[volume] = self.call(
                "ec2.create_snapshot",
                ec2.create_snapshot,
                VolumeId=volume,
                Description=snapshot_description(scope.tenant, ref.name, volume),
                TagSpecifications=[{"ResourceType": "snapshot", "Tags": tags}],
            )
        region = self.region_of(ref)
        documents = [
            document("Ec2Instance", ref.name, region, instance),
            *(
                document("EbsSnapshot", str(snap["SnapshotId"]), region, snap)
                for _, snap in sorted(snapshots.items())
            ),
            *self.context_documents(scope, region),
        ]
        location = self.put(scope.tenant, self.snapshot_id(ref), documents, ref)
        if len(location) <= MAX_TAG_VALUE and _tag_value(instance.get("Tags"), EVIDENCE_TAG) != location:
            self.call(
                "ec2.create_tags",
                ec2.create_tags,
                Resources=[ref.name],
                Tags=[{"Key": EVIDENCE_TAG, "Value": location}],
            )
        # 2. Then terminated (a stopped instance can be), 3. verified.
        try:
            self.call("ec2.terminate_instances", ec2.terminate_instances, InstanceIds=[ref.name])
        except AwsTargetError as exc:
            if exc.error_class is not ErrorClass.GONE:
                raise
            return
        after = self._read(ec2, ref)
        state = (after or {}).get("State", {}).get("Name")
        if after is not None and state not in GONE_STATES:
            raise DeprovisionIncomplete(f"{ref}: termination requested, instance is still {state}")

    def restore(self, ref: ObjectRef, prior: PriorRecord | None, scope: TenantScope) -> list[str]:
        assert scope.aws is not None
        ec2 = self.client(scope.aws, self.region_of(ref))
        sid = self.snapshot_id(ref)
        ebs = sorted(str(s["SnapshotId"]) for s in self.ebs_snapshots(ec2, scope.tenant, ref.name).values())
        where = self.evidence_note(scope.tenant, sid)
        volumes = f"EBS snapshots: {', '.join(ebs)}" if ebs else "no EBS snapshots"
        instance = self._read(ec2, ref)
        if instance is not None and (instance.get("State") or {}).get("Name") not in GONE_STATES:
            return [
                f"{ref}: deprovisioning was lifted before the instance was terminated; {where}; {volumes}"
            ]
        return [f"{ref}: terminated instances are not re-created automatically; {where}; {volumes}"]
