"""S3: each tenant bucket closed to the public and to everyone's data access.

`BucketTarget`: each tenant bucket gets a public access block with every setting on and a
Deny statement under the Sid `TenantEnforcerFirewall` added to its policy, the rest of the
policy kept as it was.  Prior state: the policy document (or its absence) and the public
access block (or its absence).  Restore puts both back exactly; if the policy was changed
meanwhile, their changes are kept and only our statement is removed (and reported).  The
statement denies data access (objects and listings) to every principal, not policy
management, so the operator can still take it out; its ARNs assume the `aws` partition.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from tenant_enforcer.model.levels import Level
from tenant_enforcer.model.refs import ObjectRef, Observed
from tenant_enforcer.targets.aws.firewall.base import FirewallTarget
from tenant_enforcer.targets.base import PriorRecord, TenantScope
from tenant_enforcer.targets.errors import AwsTargetError
from tenant_enforcer.targets.registry import register

FIREWALL_SID = "TenantEnforcerFirewall"
PAB_ALL_ON = {
    "BlockPublicAcls": True,
    "IgnorePublicAcls": True,
    "BlockPublicPolicy": True,
    "RestrictPublicBuckets": True,
}
# Data access only: denying s3:* to "*" would also deny us PutBucketPolicy, and only the
# account's root user could lift it.
DENIED_S3_ACTIONS = [
    "s3:GetObject*",
    "s3:PutObject*",
    "s3:DeleteObject*",
    "s3:ListBucket*",
    "s3:RestoreObject",
    "s3:ReplicateObject",
]


def deny_statement(bucket: str) -> dict[str, Any]:
    return {
        "Sid": FIREWALL_SID,
        "Effect": "Deny",
        "Principal": "*",
        "Action": list(DENIED_S3_ACTIONS),
        "Resource": [f"arn:aws:s3:::{bucket}", f"arn:aws:s3:::{bucket}/*"],
    }


def parse_policy(policy: str | None) -> dict[str, Any] | None:
    return json.loads(policy) if policy else None


def statements(doc: Mapping[str, Any] | None) -> list[Any]:
    found = (doc or {}).get("Statement") or []
    return list(found) if isinstance(found, list) else [found]


def our_statement(doc: Mapping[str, Any] | None) -> Any:
    return next((s for s in statements(doc) if isinstance(s, dict) and s.get("Sid") == FIREWALL_SID), None)


def with_our_statement(doc: Mapping[str, Any] | None, bucket: str) -> dict[str, Any]:
    out = dict(doc or {"Version": "2012-10-17"})
    out["Statement"] = [*without_our_statement(doc).get("Statement", []), deny_statement(bucket)]
    return out


def without_our_statement(doc: Mapping[str, Any] | None) -> dict[str, Any]:
    out = dict(doc or {})
    out["Statement"] = [
        s for s in statements(doc) if not (isinstance(s, dict) and s.get("Sid") == FIREWALL_SID)
    ]
    return out


@register
class BucketTarget(FirewallTarget):
    """The tenant's S3 buckets (ObjectRef: bucket name, its region as namespace)."""

    kind = "S3Bucket"
    service = "s3"
    iam = (
        "s3:ListAllMyBuckets",
        "s3:GetBucketTagging",
        "s3:GetBucketLocation",
        "s3:GetBucketPolicy",
        "s3:PutBucketPolicy",
        "s3:DeleteBucketPolicy",
        "s3:GetBucketPublicAccessBlock",
        "s3:PutBucketPublicAccessBlock",  # also what DeletePublicAccessBlock needs
    )

    def _state(self, s3: Any, bucket: str) -> dict[str, Any] | None:
        """The policy (as stored) and public access block, or None if the bucket is gone."""
        try:
            policy = self.call(f"s3.get_bucket_policy {bucket}", s3.get_bucket_policy, Bucket=bucket)[
                "Policy"
            ]
        except AwsTargetError as exc:
            if exc.code == "NoSuchBucket":
                return None
            if exc.code != "NoSuchBucketPolicy":
                raise
            policy = None
        pab = self.tolerant(
            {"NoSuchPublicAccessBlockConfiguration"},
            f"s3.get_public_access_block {bucket}",
            s3.get_public_access_block,
            Bucket=bucket,
        )
        return {"policy": policy, "publicAccessBlock": pab["PublicAccessBlockConfiguration"] if pab else None}

    def discover(self, scope: TenantScope) -> list[Observed]:
        if scope.aws is None or not self.regions(scope):
            return []
        regions = set(self.regions(scope))
        s3 = self.client(scope.aws, self.regions(scope)[0])
        saved = scope.saved_of_kind(self.kind)
        refs = [
            ObjectRef(self.kind, b.name, b.region)
            for b in self.tenant_buckets(s3, scope.aws)
            if b.region in regions
        ]
        found = []
        for ref in sorted(set(refs) | set(saved)):  # held by us, even if it lost the tag since
            assert ref.namespace is not None
            state = self._state(self.client(scope.aws, ref.namespace), ref.name)
            if state is None:
                found.append(Observed(ref, Level.FIREWALL if ref in saved else Level.NONE))
                continue
            doc = parse_policy(state["policy"])
            ours = our_statement(doc)
            held = ours == deny_statement(ref.name) and state["publicAccessBlock"] == PAB_ALL_ON
            applied = Level.FIREWALL if ours is not None or ref in saved else Level.NONE
            found.append(Observed(ref, applied, state, drifted=applied is Level.FIREWALL and not held))
        return found

    def apply(self, ref: ObjectRef, level: Level, scope: TenantScope) -> None:
        assert scope.aws is not None and ref.namespace is not None
        s3 = self.client(scope.aws, ref.namespace)
        state = self._state(s3, ref.name)
        if state is None:
            return  # gone since discovery
        doc = parse_policy(state["policy"])
        wanted = with_our_statement(doc, ref.name)
        # The policy first: with BlockPublicPolicy on, S3 refuses a policy it deems public.
        if doc != wanted:
            self.call(
                "s3.put_bucket_policy", s3.put_bucket_policy, Bucket=ref.name, Policy=json.dumps(wanted)
            )
        if state["publicAccessBlock"] != PAB_ALL_ON:
            self.call(
                "s3.put_public_access_block",
                s3.put_public_access_block,
                Bucket=ref.name,
                PublicAccessBlockConfiguration=dict(PAB_ALL_ON),
            )

    def restore(self, ref: ObjectRef, prior: PriorRecord | None, scope: TenantScope) -> list[str]:
        assert scope.aws is not None and ref.namespace is not None
        s3 = self.client(scope.aws, ref.namespace)
        state = self._state(s3, ref.name)
        if state is None:
            return []
        conflicts: list[str] = []
        doc = parse_policy(state["policy"])
        if prior is None:
            if our_statement(doc) is None:
                return []
            return [f"{ref}: carries our Deny statement but no saved prior state; left as it is"]
        before_pab = prior.state.get("publicAccessBlock")
        before_policy = prior.state.get("policy")
        # The public access block first: the policy we put back may be one it would refuse.
        pab = state["publicAccessBlock"]
        if pab == PAB_ALL_ON and before_pab != PAB_ALL_ON:
            if before_pab is None:
                self.tolerant(
                    {"NoSuchPublicAccessBlockConfiguration"},
                    "s3.delete_public_access_block",
                    s3.delete_public_access_block,
                    Bucket=ref.name,
                )
            else:
                self.call(
                    "s3.put_public_access_block",
                    s3.put_public_access_block,
                    Bucket=ref.name,
                    PublicAccessBlockConfiguration=dict(before_pab),
                )
        elif pab != before_pab:
            conflicts.append(f"{ref}: public access block was changed while enforced; left as it is")

        before_doc = parse_policy(before_policy)
        if our_statement(doc) is None:
            if doc != before_doc:
                conflicts.append(
                    f"{ref}: bucket policy was changed while enforced (our statement gone); left as it is"
                )
            return conflicts
        if doc == with_our_statement(before_doc, ref.name):  # as we left it: give back exactly
            if before_policy is None:
                self.tolerant(
                    {"NoSuchBucketPolicy"},
                    "s3.delete_bucket_policy",
                    s3.delete_bucket_policy,
                    Bucket=ref.name,
                )
            else:
                self.call("s3.put_bucket_policy", s3.put_bucket_policy, Bucket=ref.name, Policy=before_policy)
            return conflicts
        rest = without_our_statement(doc)  # changed meanwhile: keep theirs, take ours out
        if rest["Statement"]:
            self.call("s3.put_bucket_policy", s3.put_bucket_policy, Bucket=ref.name, Policy=json.dumps(rest))
        else:
            self.tolerant(
                {"NoSuchBucketPolicy"}, "s3.delete_bucket_policy", s3.delete_bucket_policy, Bucket=ref.name
            )
        conflicts.append(
            f"{ref}: bucket policy was changed while enforced; their changes kept, only our statement removed"
        )
        return conflicts
