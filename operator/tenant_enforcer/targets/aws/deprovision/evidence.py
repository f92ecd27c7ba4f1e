"""What both deprovision targets do before deleting anything: gather the tenant's AWS
configuration as evidence documents and store them through the evidence store.

`AwsDeprovisionTarget` is their shared base: it refuses to go on without an evidence store,
stores a snapshot idempotently (a retry finds the one it stored), and describes the tenant's
load balancers (listeners, rules, target groups and their targets) and buckets in a region
(policy, settings and tags; nothing in a bucket is touched: buckets are kept for retention).
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from typing import Any

from tenant_enforcer.model.levels import Level
from tenant_enforcer.model.policy import AwsScope
from tenant_enforcer.model.refs import ObjectRef
from tenant_enforcer.targets.aws.base import AwsTarget
from tenant_enforcer.targets.base import EvidenceStore, TenantScope
from tenant_enforcer.targets.errors import AwsTargetError, ErrorClass, TargetError

API_VERSION = "aws.tenant-enforcer.io/v1"  # of the evidence documents
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
        """Where a stored snapshot is (None: not stored, or no store configured)."""
        store = self.clients.evidence
        if store is None:
            return None
        try:
            return store.location(tenant, snapshot_id)
        except (OSError, ValueError) as exc:
            raise TargetError(f"read evidence snapshot {snapshot_id}: {exc}", exc) from exc

    def evidence_note(self, tenant: str, snapshot_id: str) -> str:
        """Where a snapshot is, for the restore messages that name the evidence."""
        location = self.stored_location(tenant, snapshot_id)
        if location is None:
            return f"no evidence snapshot {snapshot_id} was stored"
        return f"evidence snapshot {snapshot_id} ({location})"

    def context_documents(self, scope: TenantScope, region: str) -> list[dict[str, Any]]:
        """The tenant's load balancers and buckets in `region`, as evidence documents."""
        assert scope.aws is not None
        elb = self.sessions.client(scope.aws, "elbv2", region)
        documents = []
        for lb in self.tenant_load_balancers(elb, scope.aws):
            documents += self.load_balancer_documents(elb, lb, region)
        return documents + self.bucket_documents(scope.aws, region)

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
        """Each tenant bucket in `region`, as an evidence document (see `bucket_document`)."""
        s3 = self.sessions.client(aws, "s3", region)
        here = [b for b in self.tenant_buckets(s3, aws) if b.region == region]
        documents = [self.bucket_document(s3, b.name, region, b.tags) for b in here]
        return [d for d in documents if d is not None]  # None: gone since the listing

    def bucket_document(
        self, s3: Any, bucket: str, region: str, tags: list[dict[str, Any]]
    ) -> dict[str, Any] | None:
        """The bucket's tags, location, policy, public access block, versioning and default
        encryption (nothing in it is read or touched); None if it is gone."""
        versioning = self._s3(s3.get_bucket_versioning, bucket, {"NoSuchBucket"})
        if versioning is None:
            return None
        policy = self._s3(s3.get_bucket_policy, bucket, {"NoSuchBucketPolicy"})
        pab = self._s3(s3.get_public_access_block, bucket, {"NoSuchPublicAccessBlockConfiguration"})
        encryption = self._s3(
            s3.get_bucket_encryption, bucket, {"ServerSideEncryptionConfigurationNotFoundError"}
        )
        body = {
            "Name": bucket,
            "Region": region,
            "Tags": tags,
            "Policy": json.loads(policy["Policy"]) if policy else None,
            "PublicAccessBlock": pab["PublicAccessBlockConfiguration"] if pab else None,
            "Versioning": {k: v for k, v in versioning.items() if k != "ResponseMetadata"},
            "Encryption": (encryption or {}).get("ServerSideEncryptionConfiguration"),
        }
        return document("S3Bucket", bucket, region, body)

    def _s3(self, fn: Any, bucket: str, absent: set[str]) -> dict[str, Any] | None:
        found: dict[str, Any] | None = self.tolerant(absent, f"s3.{fn.__name__} {bucket}", fn, Bucket=bucket)
        return found

    def region_of(self, ref: ObjectRef) -> str:
        assert ref.namespace is not None
        return ref.namespace
