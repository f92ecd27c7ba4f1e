"""`DeprovisionedBucketTarget` (kind `DeprovisionedS3Bucket`, one per tenant bucket): the
bucket's configuration goes to the evidence store as `aws-<region>-s3-<bucket>` (so a tenant
with buckets and nothing else still leaves evidence), and the bucket is kept with everything
in it for the ladder's `bucketRetention`.  Only if the ladder says `deleteBucketsAfterRetention`,
once that period has passed, is the bucket emptied and deleted:

1. our firewall Deny statement is taken out of its policy (it denies data access to every
   principal, the operator included; the public access block stays on);
2. an inventory of every object version and delete marker goes to the evidence store as
   `aws-<region>-s3-<bucket>-contents` (the first listing stands: a retry does not replace it);
3. every version and delete marker is deleted, unfinished multipart uploads are aborted;
4. the bucket is deleted, verified gone.

The retention runs from the prior-state record's capture time: the actuator saves the record
just before the first Deprovision step, and never overwrites it.  Lifting gives nothing back
(evidence only, or a bucket deleted on purpose): the message names the evidence.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from tenant_enforcer.model.duration import parse_time
from tenant_enforcer.model.levels import Level
from tenant_enforcer.model.refs import ObjectRef, Observed
from tenant_enforcer.targets.aws.deprovision.evidence import (
    S3_READS,
    AwsDeprovisionTarget,
    DeprovisionIncomplete,
    document,
)
from tenant_enforcer.targets.aws.firewall.buckets import without_our_statement
from tenant_enforcer.targets.base import PriorRecord, TenantScope
from tenant_enforcer.targets.errors import AwsTargetError
from tenant_enforcer.targets.registry import register

DELETE_BATCH = 1000  # DeleteObjects takes at most 1,000 keys
INVENTORY_PAGE = 1000  # object versions per inventory document


@register
class DeprovisionedBucketTarget(AwsDeprovisionTarget):
    """The tenant's S3 buckets: evidence, retention, then (if the ladder says so) deletion."""

    kind = "DeprovisionedS3Bucket"
    service = "s3"
    iam = (
        *S3_READS,
        "s3:PutBucketPolicy",
        "s3:DeleteBucketPolicy",
        "s3:ListBucketVersions",
        "s3:ListBucketMultipartUploads",
        "s3:DeleteObject",
        "s3:DeleteObjectVersion",
        "s3:AbortMultipartUpload",
        "s3:DeleteBucket",
    )

    @staticmethod
    def snapshot_id(ref: ObjectRef) -> str:
        return f"aws-{ref.namespace}-s3-{ref.name}"

    @staticmethod
    def retention_end(prior: PriorRecord | None, scope: TenantScope) -> datetime | None:
        """When the bucket may be deleted; None while the ladder keeps buckets."""
        settings = scope.ladder.deprovision if scope.ladder else None
        if prior is None or settings is None or not settings.delete_buckets_after_retention:
            return None
        try:
            return parse_time(prior.captured_at) + settings.bucket_retention
        except ValueError:  # a record without a readable capture time: keep the bucket
            return None

    def discover(self, scope: TenantScope) -> list[Observed]:
        if scope.aws is None:
            return []
        found = []
        now = datetime.now(UTC)
        regions = self.regions(scope)
        listed = self.tenant_buckets(self.client(scope.aws, regions[0]), scope.aws) if regions else []
        for region in regions:
            s3 = self.client(scope.aws, region)
            saved = self.saved_in(scope, region)
            tenant = {b.name for b in listed if b.region == region}
            for name in sorted(tenant | {r.name for r in saved}):
                ref = ObjectRef(self.kind, name, region)
                if ref not in saved:
                    found.append(Observed(ref, Level.NONE, {"Bucket": name}))
                    continue
                evidence = self.stored_location(scope.tenant, self.snapshot_id(ref))
                exists = self._exists(s3, name)
                end = self.retention_end(saved[ref], scope)
                due = end if exists and end is not None and now < end else None
                # Evidence missing, or retention over: a step of this level is still to do.
                pending = exists and (evidence is None or (end is not None and now >= end))
                found.append(Observed(ref, Level.DEPROVISION, evidence=evidence, due=due, pending=pending))
        return found

    def _exists(self, s3: Any, bucket: str) -> bool:
        return self._s3(s3.get_bucket_versioning, bucket, {"NoSuchBucket"}) is not None

    def apply(self, ref: ObjectRef, level: Level, scope: TenantScope) -> None:
        assert scope.aws is not None
        self.store(ref)
        region = self.region_of(ref)
        s3 = self.client(scope.aws, region)
        # 1. Evidence first: the bucket's configuration (taken once; a retry finds it).
        if self.stored_location(scope.tenant, self.snapshot_id(ref)) is None:
            tagging = self._s3(s3.get_bucket_tagging, ref.name, {"NoSuchTagSet", "NoSuchBucket"})
            described = self.bucket_document(s3, ref.name, region, (tagging or {}).get("TagSet") or [])
            if described is None:
                return  # gone since discovery: nothing to keep or delete
            self.put(scope.tenant, self.snapshot_id(ref), [described], ref)
        # 2. Kept until the retention ends, and deleted then only if the ladder says so.
        end = self.retention_end(scope.saved.get(ref), scope)
        if end is None or datetime.now(UTC) < end:
            return
        self._delete(s3, ref, scope)

    def _delete(self, s3: Any, ref: ObjectRef, scope: TenantScope) -> None:
        bucket = ref.name
        policy = self._s3(s3.get_bucket_policy, bucket, {"NoSuchBucketPolicy", "NoSuchBucket"})
        if policy is not None:
            doc = json.loads(policy["Policy"])
            rest = without_our_statement(doc)
            if rest != doc:  # our Deny would stop us listing and deleting the objects
                if rest["Statement"]:
                    self.call(
                        "s3.put_bucket_policy", s3.put_bucket_policy, Bucket=bucket, Policy=json.dumps(rest)
                    )
                else:
                    self._s3(s3.delete_bucket_policy, bucket, {"NoSuchBucketPolicy", "NoSuchBucket"})
        versions = list(self._versions(s3, bucket))
        contents = f"{self.snapshot_id(ref)}-contents"
        if self.stored_location(scope.tenant, contents) is None:
            pages = [versions[i : i + INVENTORY_PAGE] for i in range(0, len(versions), INVENTORY_PAGE)] or [
                []
            ]
            documents = [
                document(
                    "S3ObjectInventory",
                    f"{bucket}.{n}",
                    ref.namespace or "",
                    {"Bucket": bucket, "Objects": page},
                )
                for n, page in enumerate(pages)
            ]
            self.put(scope.tenant, contents, documents, ref)
        for start in range(0, len(versions), DELETE_BATCH):
            batch = [
                {"Key": v["Key"], "VersionId": v["VersionId"]} for v in versions[start : start + DELETE_BATCH]
            ]
            result = self.call(
                f"s3.delete_objects {bucket}",
                s3.delete_objects,
                Bucket=bucket,
                Delete={"Objects": batch, "Quiet": True},
            )
            errors = result.get("Errors") or []
            if errors:
                first = errors[0]
                raise DeprovisionIncomplete(
                    f"{ref}: {len(errors)} object versions could not be deleted "
                    f"(first: {first.get('Key')} {first.get('Code')}: {first.get('Message')})"
                )
        for upload in self.paginate(s3, "list_multipart_uploads", "Uploads", Bucket=bucket):
            self.tolerant(
                {"NoSuchUpload"},
                f"s3.abort_multipart_upload {bucket}",
                s3.abort_multipart_upload,
                Bucket=bucket,
                Key=upload["Key"],
                UploadId=upload["UploadId"],
            )
        self.tolerant({"NoSuchBucket"}, f"s3.delete_bucket {bucket}", s3.delete_bucket, Bucket=bucket)
        if self._exists(s3, bucket):
            raise DeprovisionIncomplete(f"{ref}: deletion requested, the bucket still exists")

    def _versions(self, s3: Any, bucket: str) -> Iterator[dict[str, Any]]:
        """Every object version and delete marker (unversioned objects have VersionId "null")."""
        try:
            for page in s3.get_paginator("list_object_versions").paginate(Bucket=bucket):
                for key in ("Versions", "DeleteMarkers"):
                    for v in page.get(key) or []:
                        yield {
                            "Key": v["Key"],
                            "VersionId": v.get("VersionId") or "null",
                            "DeleteMarker": key == "DeleteMarkers",
                            "Size": v.get("Size"),
                            "ETag": v.get("ETag"),
                            "LastModified": str(v.get("LastModified")),
                            "IsLatest": v.get("IsLatest"),
                        }
        except Exception as exc:
            raise AwsTargetError(f"s3.list_object_versions {bucket}", exc) from exc

    def restore(self, ref: ObjectRef, prior: PriorRecord | None, scope: TenantScope) -> list[str]:
        assert scope.aws is not None
        sid = self.snapshot_id(ref)
        where = self.evidence_note(scope.tenant, sid)
        contents = self.stored_location(scope.tenant, f"{sid}-contents")
        inventory = f"; inventory of its objects: {contents}" if contents else ""
        if not self._exists(self.client(scope.aws, self.region_of(ref)), ref.name):
            return [
                f"{ref}: the bucket was deleted after its retention and is not re-created; {where}{inventory}"
            ]
        if contents:  # lifted while it was being emptied
            return [
                f"{ref}: lifted while the bucket was being emptied, some objects may be gone; "
                f"{where}{inventory}"
            ]
        return []  # kept whole: nothing of it was changed at this level
