"""What AWS targets share: the tenant's regions, tag filters, paginated reads, error wrapping.

Each AWS kind is one target behind the same `Target` interface as the Kubernetes ones.
ObjectRefs carry the region as their namespace (`ObjectRef("Ec2Instance", "i-123",
"us-east-1")`).  Reads use each service's own tag filters (the tagging API is a hint at
most: it does not return Auto Scaling groups); any failed read raises, so the reconcile
never acts on partial data.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass
from typing import Any, ClassVar, TypeVar

from tenant_enforcer.model.policy import AwsScope
from tenant_enforcer.model.refs import ObjectRef
from tenant_enforcer.targets.base import Clients, PriorRecord, Target, TenantScope
from tenant_enforcer.targets.errors import AwsTargetError

R = TypeVar("R")
ENFORCED_TAG = "tenant-enforcer.io/enforced-level"  # on AWS resources we hold at a level
TAGS_CHUNK = 20  # ELBv2 DescribeTags takes at most 20 ARNs


@dataclass(frozen=True)
class TenantBucket:
    name: str
    region: str
    tags: list[dict[str, Any]]


class AwsTarget(Target):
    """Subclasses set `service` and `iam` (the IAM actions they call, checked by a test)."""

    service: ClassVar[str]
    iam: ClassVar[tuple[str, ...]] = ()

    def __init__(self, clients: Clients) -> None:
        super().__init__(clients)
        self.sessions = clients.aws

    def client(self, scope: AwsScope, region: str) -> Any:
        return self.sessions.client(scope, self.service, region)

    @staticmethod
    def regions(scope: TenantScope) -> tuple[str, ...]:
        return scope.aws.regions if scope.aws else ()

    def saved_in(self, scope: TenantScope, region: str) -> dict[ObjectRef, PriorRecord]:
        """This kind's saved prior state in `region` (ObjectRefs carry the region as namespace)."""
        return {ref: rec for ref, rec in scope.saved_of_kind(self.kind).items() if ref.namespace == region}

    def call(self, what: str, fn: Callable[..., R], **kwargs: Any) -> R:
        """One AWS call; errors come out classified (see errors.classify_aws)."""
        try:
            return fn(**kwargs)
        except Exception as exc:  # botocore raises ClientError and several transport errors
            raise AwsTargetError(what, exc) from exc

    def tolerant(self, done: Collection[str], what: str, fn: Callable[..., Any], **kwargs: Any) -> Any:
        """One call whose error codes in `done` mean "already so" or "not there" (None then)."""
        try:
            return self.call(what, fn, **kwargs)
        except AwsTargetError as exc:
            if exc.code in done:
                return None
            raise

    def paginate(self, client: Any, operation: str, key: str, **kwargs: Any) -> Iterator[Any]:
        """Every item under `key` of every page; a failed page raises (never partial data)."""
        try:
            for page in client.get_paginator(operation).paginate(**kwargs):
                yield from page.get(key) or []
        except Exception as exc:
            raise AwsTargetError(f"{self.service}.{operation}", exc) from exc

    def tenant_buckets(self, s3: Any, aws: AwsScope) -> list[TenantBucket]:
        """Every bucket carrying the tenant's tag, with its region and tags (S3 lists the
        buckets of every region at once; a bucket gone meanwhile is left out)."""
        found = []
        for listed in self.paginate(s3, "list_buckets", "Buckets"):
            name = listed["Name"]
            tagging = self.tolerant(
                {"NoSuchTagSet", "NoSuchBucket"},
                f"s3.get_bucket_tagging {name}",
                s3.get_bucket_tagging,
                Bucket=name,
            )
            if tagging is None or not has_tenant_tag(tagging.get("TagSet"), aws):
                continue
            region = listed.get("BucketRegion")
            if not region:
                location = self.tolerant(
                    {"NoSuchBucket"}, f"s3.get_bucket_location {name}", s3.get_bucket_location, Bucket=name
                )
                if location is None:
                    continue
                region = location.get("LocationConstraint") or "us-east-1"  # None: us-east-1
            region = "eu-west-1" if region == "EU" else str(region)
            found.append(TenantBucket(name, region, list(tagging.get("TagSet") or [])))
        return found

    def tenant_load_balancers(self, elb: Any, aws: AwsScope) -> list[dict[str, Any]]:
        """The ELBv2 load balancers carrying the tenant's tag (each with its `Tags`), by name."""
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


def tag_filters(scope: AwsScope) -> list[dict[str, Any]]:
    """EC2-style filters selecting the tenant's resources by its tag."""
    return [{"Name": f"tag:{scope.tag_key}", "Values": [scope.tag_value]}]


def has_tenant_tag(tags: list[dict[str, str]] | None, scope: AwsScope) -> bool:
    return any(t.get("Key") == scope.tag_key and t.get("Value") == scope.tag_value for t in tags or [])
