"""Deprovision on AWS: evidence first, then the tenant's instances terminated and its load
balancers deleted, verified.  Buckets are kept (retention): their policy, settings and tags
go into the evidence, nothing in them is touched.

Two targets, registered in this order (instances go before their load balancers):

`TerminatedInstanceTarget` (kind `TerminatedEc2Instance`, one per tenant instance): an EBS
snapshot of each attached volume, found again by its tags and deterministic description on a
retry (never a second one), then an evidence snapshot `aws-<region>-<instance id>` through the
evidence store: the instance description, its EBS snapshots, the tenant's load balancers
(listeners, rules, target groups and their targets) and buckets in that region.  Its location
is tagged on the instance (`tenant-enforcer.io/evidence`), then the instance is terminated and
verified `shutting-down` or `terminated`.

`DeletedLoadBalancerTarget` (kind `DeletedLoadBalancer`, one per tenant ELBv2 load balancer,
by name): the evidence snapshot `aws-<region>-elb-<name>` (the same documents, the load
balancer's own first), then the load balancer is deleted (its listeners and rules go with
it), verified gone, and the target groups only it used are deleted after it.

What marks progress is the prior-state record the actuator saves before the first change
(the instance's volumes; the load balancer's ARN and target groups): a tenant resource with a
record that still exists is a deletion under way (`pending`), finished by the next reconcile;
one with a record that is gone (or terminated) is held at Deprovision.  A resource the tenant
terminated itself (no record) is left alone.

Lifting re-creates nothing: the restore message names the evidence location and the EBS
snapshot ids, and the record is dropped.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from typing import Any

from tenant_enforcer.model.levels import Level
from tenant_enforcer.model.policy import AwsScope
from tenant_enforcer.model.refs import ObjectRef, Observed
from tenant_enforcer.targets.aws.base import AwsTarget, has_tenant_tag, tag_filters
from tenant_enforcer.targets.base import MANAGED_BY, EvidenceStore, PriorRecord, TenantScope
from tenant_enforcer.targets.errors import AwsTargetError, ErrorClass, TargetError
from tenant_enforcer.targets.registry import register

EVIDENCE_TAG = "tenant-enforcer.io/evidence"  # on an instance: where its evidence snapshot is
SNAPSHOT_TENANT_TAG = "tenant-enforcer.io/evidence-of"  # on our EBS snapshots: the tenant
SNAPSHOT_INSTANCE_TAG = "tenant-enforcer.io/instance"  # on our EBS snapshots: the instance
GONE_STATES = ("shutting-down", "terminated")
API_VERSION = "aws.tenant-enforcer.io/v1"  # of the evidence documents
TAGS_CHUNK = 20  # ELBv2 DescribeTags takes at most 20 ARNs
MAX_TAG_VALUE = 256

S3_READS = (
    "s3:ListAllMyBuckets",
    "s3:GetBucketTagging",
    "s3:GetBucketLocation",
    "s3:GetBucketPolicy",
    "s3:GetBucketPublicAccessBlock",
    "s3:GetBucketVersioning",
    "s3:GetEncryptionConfiguration",
)
ELB_READS = (
    "elasticloadbalancing:DescribeLoadBalancers",
    "elasticloadbalancing:DescribeTags",
    "elasticloadbalancing:DescribeListeners",
    "elasticloadbalancing:DescribeRules",
    "elasticloadbalancing:DescribeTargetGroups",
    "elasticloadbalancing:DescribeTargetHealth",
)


class DeprovisionIncomplete(TargetError):
    """A step is not finished yet (or cannot be done): the message says which."""

    def __init__(self, message: str, error_class: ErrorClass = ErrorClass.TRANSIENT) -> None:
        Exception.__init__(self, message)
        self.error_class = error_class


def document(kind: str, name: str, region: str, body: Any) -> dict[str, Any]:
    """One evidence document (plain JSON: datetimes as ISO strings)."""
    return {
        "apiVersion": API_VERSION,
        "kind": kind,
        "metadata": {"name": name, "namespace": region},
        "description": json.loads(json.dumps(body, default=str)),
    }


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


class AwsDeprovisionTarget(AwsTarget):
    acts_from = Level.DEPROVISION

    def paginate(self, client: Any, operation: str, key: str, **kwargs: Any) -> Iterator[Any]:
        """As `AwsTarget.paginate`, naming the client's own service (these targets read
        ELBv2 and S3 too) in the error."""
        try:
            for page in client.get_paginator(operation).paginate(**kwargs):
                yield from page.get(key) or []
        except Exception as exc:
            raise AwsTargetError(f"{client.meta.service_model.service_name}.{operation}", exc) from exc

    # --- evidence --------------------------------------------------------------------------

    def store(self, ref: ObjectRef) -> EvidenceStore:
        if self.clients.evidence is None:
            raise DeprovisionIncomplete(
                f"deprovision {ref}: no evidence store is configured; nothing is deleted without evidence",
                ErrorClass.FATAL,
            )
        return self.clients.evidence

    def put(self, tenant: str, snapshot_id: str, documents: list[dict[str, Any]], ref: ObjectRef) -> str:
        try:
            return self.store(ref).put(tenant, snapshot_id, list[Mapping[str, Any]](documents))
        except (OSError, ValueError) as exc:  # unavailable: retried; refused: reported, nothing deleted
            raise TargetError(f"store evidence snapshot {snapshot_id}: {exc}", exc) from exc

    def stored_location(self, tenant: str, snapshot_id: str) -> str | None:
        """Where a stored snapshot is (None: not stored).  A put of an id that is stored
        already is a no-op returning its location (the EvidenceStore contract)."""
        store = self.clients.evidence
        if store is None:
            return None
        try:
            documents = store.get(tenant, snapshot_id)
            return store.put(tenant, snapshot_id, list[Mapping[str, Any]](documents))
        except KeyError:
            return None
        except (OSError, ValueError) as exc:
            raise TargetError(f"read evidence snapshot {snapshot_id}: {exc}", exc) from exc

    def context_documents(self, scope: TenantScope, region: str) -> list[dict[str, Any]]:
        """The tenant's load balancers and buckets in `region`, as evidence documents."""
        assert scope.aws is not None
        elb = self.sessions.client(scope.aws, "elbv2", region)
        documents = []
        for lb in self.tenant_load_balancers(elb, scope.aws):
            documents += self.load_balancer_documents(elb, lb, region)
        return documents + self.bucket_documents(scope.aws, region)

    def tenant_load_balancers(self, elb: Any, aws: AwsScope) -> list[dict[str, Any]]:
        lbs = {
            lb["LoadBalancerArn"]: lb for lb in self.paginate(elb, "describe_load_balancers", "LoadBalancers")
        }
        arns = sorted(lbs)
        tenant: list[dict[str, Any]] = []
        for start in range(0, len(arns), TAGS_CHUNK):
            described = self.call(
                "elbv2.describe_tags", elb.describe_tags, ResourceArns=arns[start : start + TAGS_CHUNK]
            )
            for d in described.get("TagDescriptions") or []:
                if has_tenant_tag(d.get("Tags"), aws):
                    tenant.append({**lbs[d["ResourceArn"]], "Tags": d.get("Tags") or []})
        return sorted(tenant, key=lambda lb: str(lb["LoadBalancerName"]))

    def target_groups(self, elb: Any, lb_arn: str) -> list[dict[str, Any]]:
        try:
            return list(self.paginate(elb, "describe_target_groups", "TargetGroups", LoadBalancerArn=lb_arn))
        except AwsTargetError as exc:
            if exc.code == "LoadBalancerNotFound":
                return []
            raise

    def load_balancer_documents(self, elb: Any, lb: Mapping[str, Any], region: str) -> list[dict[str, Any]]:
        arn, name = lb["LoadBalancerArn"], lb["LoadBalancerName"]
        listeners = list(self.paginate(elb, "describe_listeners", "Listeners", LoadBalancerArn=arn))
        for listener in listeners:
            rules = self.call("elbv2.describe_rules", elb.describe_rules, ListenerArn=listener["ListenerArn"])
            listener["Rules"] = rules.get("Rules") or []
        documents = [document("LoadBalancer", name, region, {**lb, "Listeners": listeners})]
        for group in self.target_groups(elb, arn):
            health = self.call(
                "elbv2.describe_target_health",
                elb.describe_target_health,
                TargetGroupArn=group["TargetGroupArn"],
            )
            body = {**group, "Targets": health.get("TargetHealthDescriptions") or []}
            documents.append(document("TargetGroup", f"{name}.{group['TargetGroupName']}", region, body))
        return documents

    def bucket_documents(self, aws: AwsScope, region: str) -> list[dict[str, Any]]:
        """Each tenant bucket in `region`: tags, location, policy, public access block,
        versioning and default encryption (the bucket and its objects are kept)."""
        s3 = self.sessions.client(aws, "s3", region)
        documents = []
        for listed in self.paginate(s3, "list_buckets", "Buckets"):
            bucket = listed["Name"]
            tagging = self._s3(s3.get_bucket_tagging, bucket, {"NoSuchTagSet", "NoSuchBucket"})
            if tagging is None or not has_tenant_tag(tagging.get("TagSet"), aws):
                continue
            location = self._s3(s3.get_bucket_location, bucket, {"NoSuchBucket"})
            if location is None:
                continue
            where = str(location.get("LocationConstraint") or "us-east-1")
            if ("eu-west-1" if where == "EU" else where) != region:
                continue
            policy = self._s3(s3.get_bucket_policy, bucket, {"NoSuchBucketPolicy"})
            pab = self._s3(s3.get_public_access_block, bucket, {"NoSuchPublicAccessBlockConfiguration"})
            versioning = self._s3(s3.get_bucket_versioning, bucket, set())
            encryption = self._s3(
                s3.get_bucket_encryption, bucket, {"ServerSideEncryptionConfigurationNotFoundError"}
            )
            body = {
                "Name": bucket,
                "Region": region,
                "Tags": tagging.get("TagSet") or [],
                "Policy": json.loads(policy["Policy"]) if policy else None,
                "PublicAccessBlock": pab["PublicAccessBlockConfiguration"] if pab else None,
                "Versioning": {k: v for k, v in (versioning or {}).items() if k != "ResponseMetadata"},
                "Encryption": (encryption or {}).get("ServerSideEncryptionConfiguration"),
            }
            documents.append(document("S3Bucket", bucket, region, body))
        return documents

    def _s3(self, fn: Any, bucket: str, absent: set[str]) -> dict[str, Any] | None:
        try:
            found: dict[str, Any] = self.call(f"s3.{fn.__name__} {bucket}", fn, Bucket=bucket)
        except AwsTargetError as exc:
            if exc.code in absent:
                return None
            raise
        return found

    def region_of(self, ref: ObjectRef) -> str:
        assert ref.namespace is not None
        return ref.namespace


# --- instances ---------------------------------------------------------------------------------


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
            saved = {r for r in scope.saved_of_kind(self.kind) if r.namespace == region}
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
        location = self.stored_location(scope.tenant, sid)
        ebs = sorted(str(s["SnapshotId"]) for s in self.ebs_snapshots(ec2, scope.tenant, ref.name).values())
        where = (
            f"evidence snapshot {sid} ({location})" if location else f"no evidence snapshot {sid} was stored"
        )
        volumes = f"EBS snapshots: {', '.join(ebs)}" if ebs else "no EBS snapshots"
        instance = self._read(ec2, ref)
        if instance is not None and (instance.get("State") or {}).get("Name") not in GONE_STATES:
            return [
                f"{ref}: deprovisioning was lifted before the instance was terminated; {where}; {volumes}"
            ]
        return [f"{ref}: terminated instances are not re-created automatically; {where}; {volumes}"]


# --- load balancers ----------------------------------------------------------------------------


@register
class DeletedLoadBalancerTarget(AwsDeprovisionTarget):
    """The tenant's ELBv2 load balancers: evidence, then deleted with their listeners, then
    the target groups only they used."""

    kind = "DeletedLoadBalancer"
    service = "elbv2"
    iam = (
        *ELB_READS,
        "elasticloadbalancing:DeleteLoadBalancer",
        "elasticloadbalancing:DeleteTargetGroup",
        *S3_READS,
    )

    @staticmethod
    def snapshot_id(ref: ObjectRef) -> str:
        return f"aws-{ref.namespace}-elb-{ref.name}"

    def _own_groups(self, elb: Any, lb_arn: str) -> list[str]:
        """The target groups that only this load balancer uses."""
        return sorted(
            g["TargetGroupArn"]
            for g in self.target_groups(elb, lb_arn)
            if g.get("LoadBalancerArns") == [lb_arn]
        )

    def _group_exists(self, elb: Any, arn: str) -> bool:
        try:
            self.call("elbv2.describe_target_groups", elb.describe_target_groups, TargetGroupArns=[arn])
        except AwsTargetError as exc:
            if exc.code == "TargetGroupNotFound":
                return False
            raise
        return True

    def _by_name(self, elb: Any, name: str) -> dict[str, Any] | None:
        try:
            found = self.call("elbv2.describe_load_balancers", elb.describe_load_balancers, Names=[name])
        except AwsTargetError as exc:
            if exc.code == "LoadBalancerNotFound":
                return None
            raise
        lbs = found.get("LoadBalancers") or []
        return dict(lbs[0]) if lbs else None

    def discover(self, scope: TenantScope) -> list[Observed]:
        if scope.aws is None:
            return []
        found = []
        for region in self.regions(scope):
            elb = self.client(scope.aws, region)
            saved = scope.saved_of_kind(self.kind)
            lbs = {lb["LoadBalancerName"]: lb for lb in self.tenant_load_balancers(elb, scope.aws)}
            for ref in sorted(r for r in saved if r.namespace == region and r.name not in lbs):
                if (lb := self._by_name(elb, ref.name)) is not None:  # held, even if it lost the tag
                    lbs[ref.name] = lb
            names = sorted(set(lbs) | {r.name for r in saved if r.namespace == region})
            for name in names:
                ref = ObjectRef(self.kind, name, region)
                lb = lbs.get(name)
                record = saved.get(ref)
                if record is None:
                    assert lb is not None
                    state = {
                        "LoadBalancerArn": lb["LoadBalancerArn"],
                        "TargetGroups": self._own_groups(elb, lb["LoadBalancerArn"]),
                    }
                    found.append(Observed(ref, Level.NONE, state))
                    continue
                left = lb is not None or any(
                    self._group_exists(elb, arn) for arn in record.state.get("TargetGroups") or []
                )
                evidence = self.stored_location(scope.tenant, self.snapshot_id(ref))
                found.append(Observed(ref, Level.DEPROVISION, evidence=evidence, pending=left))
        return found

    def apply(self, ref: ObjectRef, level: Level, scope: TenantScope) -> None:
        assert scope.aws is not None
        self.store(ref)
        region = self.region_of(ref)
        elb = self.client(scope.aws, region)
        lb = self._by_name(elb, ref.name)
        record = scope.saved.get(ref)
        groups = set((record.state if record else {}).get("TargetGroups") or [])
        if lb is not None:
            groups |= set(self._own_groups(elb, lb["LoadBalancerArn"]))
            # 1. Evidence first: this load balancer's configuration, then the rest of the region's.
            own = self.load_balancer_documents(elb, lb, region)
            names = {(d["kind"], d["metadata"]["name"]) for d in own}
            rest = [
                d
                for d in self.context_documents(scope, region)
                if (d["kind"], d["metadata"]["name"]) not in names
            ]
            self.put(scope.tenant, self.snapshot_id(ref), own + rest, ref)
            # 2. Deleted (its listeners and their rules go with it), 3. verified.
            try:
                self.call(
                    "elbv2.delete_load_balancer",
                    elb.delete_load_balancer,
                    LoadBalancerArn=lb["LoadBalancerArn"],
                )
            except AwsTargetError as exc:
                if exc.code != "LoadBalancerNotFound":
                    raise
            if self._by_name(elb, ref.name) is not None:
                raise DeprovisionIncomplete(f"{ref}: deletion requested, the load balancer is still there")
        # 4. Then the target groups it alone used.
        errors = []
        for arn in sorted(groups):
            try:
                self.call("elbv2.delete_target_group", elb.delete_target_group, TargetGroupArn=arn)
            except AwsTargetError as exc:
                if exc.code != "TargetGroupNotFound":
                    errors.append(str(exc))
        if errors:
            raise DeprovisionIncomplete(f"{ref}: target groups not deleted: {'; '.join(errors)}")

    def restore(self, ref: ObjectRef, prior: PriorRecord | None, scope: TenantScope) -> list[str]:
        assert scope.aws is not None
        sid = self.snapshot_id(ref)
        location = self.stored_location(scope.tenant, sid)
        where = (
            f"evidence snapshot {sid} ({location})" if location else f"no evidence snapshot {sid} was stored"
        )
        if self._by_name(self.client(scope.aws, self.region_of(ref)), ref.name) is not None:
            return [f"{ref}: deprovisioning was lifted before the load balancer was deleted; {where}"]
        return [f"{ref}: deleted load balancers are not re-created automatically; {where}"]
