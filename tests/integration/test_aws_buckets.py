"""Deprovision of a tenant's S3 buckets against moto in server mode: evidence of each bucket
(also for a tenant with buckets and nothing else), kept for the ladder's retention, emptied
and deleted after it only if the ladder says so, with an inventory of every object version
stored first; a deletion cut short is finished by the next reconcile.

Every registered AWS target is driven (awsdriver.AwsDriver), so the Firewall level (our Deny
statement and public access block on each bucket) is applied on the way up as in the operator.

moto (5.2.5) behaviours relied on: `list_object_versions` lists versions and delete markers
of a versioned bucket and objects of an unversioned one with VersionId "null", which
`delete_objects` accepts; `list_multipart_uploads` / `abort_multipart_upload`;
`delete_bucket` refuses a bucket that is not empty (BucketNotEmpty).  Not emulated: moto does
not evaluate bucket policies unless IAM enforcement is on, so that our own Deny statement
would stop the operator from listing and deleting objects on AWS is not exercised here (the
test checks that the statement is taken out before the bucket is emptied).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from awsdriver import REGION, TAG_KEY, AwsDriver
from kubehelpers import Kube, MotoServer

from tenant_enforcer.model.duration import parse_time
from tenant_enforcer.model.ladder import DeprovisionSettings, Ladder
from tenant_enforcer.model.levels import Level
from tenant_enforcer.targets.aws.deprovision import DeprovisionedBucketTarget
from tenant_enforcer.targets.aws.firewall.buckets import FIREWALL_SID, BucketTarget

KIND = DeprovisionedBucketTarget.kind


def ladder(delete: bool, retention: timedelta) -> Ladder:
    settings = DeprovisionSettings(bucket_retention=retention, delete_buckets_after_retention=delete)
    return Ladder("buckets", rules=(), deprovision=settings)


def bucket_estate(aws: MotoServer, tenant: str, other: str) -> dict[str, str]:
    """A versioned bucket with two versions of one key, a deleted key (a delete marker) and an
    unfinished multipart upload, with a policy of its own; an unversioned bucket; another
    tenant's bucket.  Names by role."""
    s3 = aws.client("s3", REGION)
    names = {"versioned": f"{tenant}-media", "plain": f"{tenant}-logs", "other": f"{other}-media"}
    for role, bucket in names.items():
        s3.create_bucket(Bucket=bucket)
        owner = other if role == "other" else tenant
        s3.put_bucket_tagging(Bucket=bucket, Tagging={"TagSet": [{"Key": TAG_KEY, "Value": owner}]})
        s3.put_object(Bucket=bucket, Key="a.txt", Body=b"one")
    versioned = names["versioned"]
    s3.put_bucket_versioning(Bucket=versioned, VersioningConfiguration={"Status": "Enabled"})
    s3.put_object(Bucket=versioned, Key="a.txt", Body=b"two")
    s3.put_object(Bucket=versioned, Key="b.txt", Body=b"gone")
    s3.delete_object(Bucket=versioned, Key="b.txt")
    s3.create_multipart_upload(Bucket=versioned, Key="big.bin")
    s3.put_bucket_policy(
        Bucket=versioned,
        Policy=json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [
                    {
                        "Sid": "TenantReads",
                        "Effect": "Allow",
                        "Principal": {"AWS": "arn:aws:iam::123456789012:root"},
                        "Action": "s3:GetObject",
                        "Resource": f"arn:aws:s3:::{versioned}/*",
                    }
                ],
            }
        ),
    )
    return names


def buckets(aws: MotoServer) -> set[str]:
    return {b["Name"] for b in aws.client("s3", REGION).list_buckets()["Buckets"]}


def versions(aws: MotoServer, bucket: str) -> list[tuple[str, str, bool]]:
    listed = aws.client("s3", REGION).list_object_versions(Bucket=bucket)
    found = [(v["Key"], v["VersionId"], False) for v in listed.get("Versions") or []]
    found += [(m["Key"], m["VersionId"], True) for m in listed.get("DeleteMarkers") or []]
    return sorted(found)


def policy_sids(aws: MotoServer, bucket: str) -> list[str]:
    policy = json.loads(aws.client("s3", REGION).get_bucket_policy(Bucket=bucket)["Policy"])
    return [s.get("Sid") for s in policy["Statement"]]


@pytest.fixture
def make_driver(kube: Kube, aws: MotoServer, unique: str, tmp_path: Path) -> Iterator[Any]:
    made: list[AwsDriver] = []

    def make(lad: Ladder | None) -> AwsDriver:
        driver = AwsDriver(kube, aws, f"awsbk-{unique}", tmp_path / "evidence", lad)
        made.append(driver)
        return driver

    yield make
    for driver in made:
        driver.close()


def test_buckets_only_tenant_leaves_evidence_and_keeps_its_buckets(
    make_driver: Any, aws: MotoServer, unique: str
) -> None:
    driver: AwsDriver = make_driver(None)  # no ladder: the defaults keep buckets
    tenant = driver.scope.tenant
    names = bucket_estate(aws, tenant, f"awsbo-{unique}")
    before = {b: versions(aws, b) for b in names.values()}

    result = driver.reconcile(Level.DEPROVISION)
    assert not result.failed, result

    for role in ("versioned", "plain"):
        bucket = names[role]
        sid = f"aws-{REGION}-s3-{bucket}"
        documents = driver.evidence.get(tenant, sid)
        assert [(d["kind"], d["metadata"]["name"]) for d in documents] == [("S3Bucket", bucket)]
        body = documents[0]["description"]
        assert body["Tags"] == [{"Key": TAG_KEY, "Value": tenant}]
        observed = driver.observed(KIND)[bucket]
        assert observed.applied is Level.DEPROVISION and not observed.pending
        assert observed.evidence == driver.evidence.location(tenant, sid)
        assert observed.due is None, "a ladder that keeps buckets schedules no deletion"
    versioned = driver.evidence.get(tenant, f"aws-{REGION}-s3-{names['versioned']}")[0]["description"]
    # The evidence was taken at Deprovision, after Firewall added our statement to the policy.
    assert [s["Sid"] for s in versioned["Policy"]["Statement"]] == ["TenantReads", FIREWALL_SID]
    assert versioned["Versioning"] == {"Status": "Enabled"}
    assert all(versions(aws, b) == before[b] for b in names.values()), "nothing in a bucket is touched"
    other = f"aws-{REGION}-s3-{names['other']}"
    assert driver.evidence.location(tenant, other) is None, "another tenant's bucket is not the tenant's"

    # A second pass changes nothing and takes no second snapshot.
    snapshots = driver.evidence.snapshots(tenant)
    again = driver.reconcile(Level.DEPROVISION)
    assert not again.failed and not again.done, again
    assert driver.evidence.snapshots(tenant) == snapshots

    lifted = driver.reconcile(Level.NONE)
    assert not lifted.failed, lifted
    assert not [c for c in lifted.conflicts if KIND in c], "kept buckets have nothing to report"
    assert buckets(aws) >= set(names.values())
    assert all(versions(aws, b) == before[b] for b in names.values())
    assert policy_sids(aws, names["versioned"]) == ["TenantReads"], "the firewall statement is lifted"
    assert not driver.store.load(tenant), "every record is dropped after the lift"


def test_buckets_are_emptied_and_deleted_only_after_the_retention_with_an_inventory_first(
    make_driver: Any, aws: MotoServer, unique: str
) -> None:
    keep = make_driver(ladder(delete=True, retention=timedelta(hours=1)))
    tenant = keep.scope.tenant
    names = bucket_estate(aws, tenant, f"awsbr-{unique}")
    versioned = names["versioned"]
    before = versions(aws, versioned)
    assert len(before) == 4  # a.txt twice, b.txt and its delete marker

    result = keep.reconcile(Level.DEPROVISION)
    assert not result.failed, result
    record = keep.store.load(tenant)
    observed = keep.observed(KIND)
    for role in ("versioned", "plain"):
        ref = next(r for r in record if r.kind == KIND and r.name == names[role])
        due = parse_time(record[ref].captured_at) + timedelta(hours=1)
        assert observed[names[role]].due == due, "the retention end is scheduled"
        assert not observed[names[role]].pending
    assert buckets(aws) >= set(names.values()), "kept during the retention"
    assert versions(aws, versioned) == before

    # The ladder is edited to a retention that is over: the next reconcile deletes, but the
    # first attempt is cut short after the bucket was emptied (DeleteBucket refused).
    over = keep
    over.scope = replace(keep.scope, ladder=ladder(delete=True, retention=timedelta(0)))
    assert [n for n, o in over.observed(KIND).items() if o.pending] == sorted([names["plain"], versioned])
    over.refuse("DeleteBucket", "AccessDenied")
    cut = over.reconcile(Level.DEPROVISION)
    assert cut.fatal and all("s3.delete_bucket" in f and "AccessDenied" in f for f in cut.fatal), cut
    assert versions(aws, versioned) == [], "every version and delete marker is gone"
    assert FIREWALL_SID not in policy_sids(aws, versioned), "our Deny is taken out before emptying"
    assert over.observed(KIND)[versioned].pending, "the deletion is still to finish"

    over.faults.clear()
    done = over.reconcile(Level.DEPROVISION)
    assert not done.failed, done
    assert not (buckets(aws) & {versioned, names["plain"]}), "the tenant's buckets are deleted"
    assert names["other"] in buckets(aws) and versions(aws, names["other"]), "another tenant's is kept"

    # The inventory went to the evidence store before anything was deleted: the first
    # listing stands (the retry, which found nothing left, did not replace it).
    inventory = over.evidence.get(tenant, f"aws-{REGION}-s3-{versioned}-contents")
    listed = sorted(
        (o["Key"], o["VersionId"], o["DeleteMarker"]) for d in inventory for o in d["description"]["Objects"]
    )
    assert listed == before
    assert all(d["kind"] == "S3ObjectInventory" for d in inventory)

    gone = over.observed(KIND)
    assert gone[versioned].applied is Level.DEPROVISION and not gone[versioned].pending
    assert gone[versioned].due is None

    lifted = over.reconcile(Level.NONE)
    assert not lifted.failed, lifted
    messages = [c for c in lifted.conflicts if f"{KIND} {REGION}/{versioned}" in c]
    assert len(messages) == 1 and "deleted after its retention" in messages[0]
    assert str(over.evidence.location(tenant, f"aws-{REGION}-s3-{versioned}-contents")) in messages[0]
    assert not over.store.load(tenant), "the records of deleted buckets are dropped"
    assert versioned not in buckets(aws), "nothing is re-created"


def test_bucket_deletion_calls_only_what_the_target_declares(
    make_driver: Any, aws: MotoServer, unique: str
) -> None:
    driver = make_driver(ladder(delete=True, retention=timedelta(0)))
    names = bucket_estate(aws, driver.scope.tenant, f"awsbi-{unique}")
    # A retention of 0: the evidence, then the deletion, in one reconcile.
    result = driver.reconcile(Level.DEPROVISION)
    assert not result.failed, result
    assert not (buckets(aws) & {names["versioned"], names["plain"]})
    made = set(driver.calls)
    assert {"s3:DeleteBucket", "s3:DeleteObject", "s3:ListBucketVersions"} <= made
    declared = {a for t in driver.targets.values() for a in getattr(t, "iam", ())}
    assert made <= declared, f"calls not declared in any target's iam: {sorted(made - declared)}"
    s3_calls = {c for c in made if c.startswith("s3:")}
    assert s3_calls <= set(DeprovisionedBucketTarget.iam) | set(BucketTarget.iam)
