"""Firewall on AWS: the tenant's instances quarantined, its ALB listeners answering 503, its
buckets closed to the public and to everyone's data access.

Four targets, registered in this order (raising goes in this order, lifting in reverse):

`QuarantineGroupTarget`: one security group of ours per tenant and VPC,
`tenant-enforcer-quarantine-<tenant>`, with no rules at all (its default egress rule is
revoked, and any rule someone adds later is revoked again).  Created before any interface
is moved into it; deleted on lift once no interface uses it any more.

`QuarantineTarget`: each network interface of the tenant's instances gets exactly the
quarantine group of its VPC.  Prior state: its group list.  Restore puts those groups back,
only if the interface still has exactly the quarantine group; otherwise it reports.

`LoadBalancerListenerTarget`: each listener of the tenant's application load balancers
answers a fixed 503.  Prior state: its default actions.  (Known gap: the listener's other
rules, e.g. path-based forwards, are not changed yet and still route their traffic.)

`BucketTarget`: each tenant bucket gets a public access block with every setting on and a
Deny statement under the Sid `TenantEnforcerFirewall` added to its policy, the rest of the
policy kept as it was.  Prior state: the policy document (or its absence) and the public
access block (or its absence).  Restore puts both back exactly; if the policy was changed
meanwhile, their changes are kept and only our statement is removed (and reported).  The
statement denies data access (objects and listings) to every principal, not policy
management, so the operator can still take it out; its ARNs assume the `aws` partition.

What marks a resource as ours: the saved prior state (the operator's own store) and what we
set (the quarantine group, the fixed response, our Sid), never a tenant-writable tag alone.
Every write is idempotent; a level cut short by a crash is found half-applied by the next
discovery (saved but not yet set: `drifted`) and finished by re-asserting.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping
from typing import Any

from tenant_enforcer.model.levels import Level
from tenant_enforcer.model.policy import AwsScope
from tenant_enforcer.model.refs import ObjectRef, Observed
from tenant_enforcer.targets.aws.base import ENFORCED_TAG, AwsTarget, has_tenant_tag, tag_filters
from tenant_enforcer.targets.base import MANAGED_BY, PriorRecord, TenantScope
from tenant_enforcer.targets.errors import AwsTargetError, ErrorClass, TargetError
from tenant_enforcer.targets.registry import register

QUARANTINE_PREFIX = "tenant-enforcer-quarantine-"
QUARANTINE_TAG = "tenant-enforcer.io/quarantine-of"  # value: tenant
FIREWALL_SID = "TenantEnforcerFirewall"
LIVE_INSTANCE_STATES = ["pending", "running", "stopping", "stopped"]
FILTER_CHUNK = 200  # values per EC2 filter
TAGS_CHUNK = 20  # ELBv2 DescribeTags takes at most 20 ARNs

FIXED_503 = {
    "Type": "fixed-response",
    "FixedResponseConfig": {
        "StatusCode": "503",
        "ContentType": "text/plain",
        "MessageBody": "Service suspended by the hosting provider.",
    },
}
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


class NotYetSafe(TargetError):
    """A step that must wait for another one: transient, so the reconcile is retried."""

    def __init__(self, what: str) -> None:
        Exception.__init__(self, what)
        self.error_class = ErrorClass.TRANSIENT


def quarantine_name(tenant: str) -> str:
    return f"{QUARANTINE_PREFIX}{tenant}"


def chunks(items: list[str], size: int) -> Iterator[list[str]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


class FirewallTarget(AwsTarget):
    acts_from = Level.FIREWALL

    def tolerant(self, done: Collection[str], what: str, fn: Callable[..., Any], **kwargs: Any) -> Any:
        """One call whose error codes in `done` mean "already so" (returns None then)."""
        try:
            return self.call(what, fn, **kwargs)
        except AwsTargetError as exc:
            if exc.code in done:
                return None
            raise

    def saved_in(self, scope: TenantScope, region: str) -> dict[ObjectRef, PriorRecord]:
        return {ref: rec for ref, rec in scope.saved_of_kind(self.kind).items() if ref.namespace == region}


# --- EC2: quarantine security group and network interfaces ----------------------------------


class Ec2Firewall(FirewallTarget):
    service = "ec2"

    def tenant_enis(self, ec2: Any, aws: AwsScope) -> dict[str, str]:
        """Network interface id → VPC id, for every live instance tagged as the tenant's."""
        filters = [*tag_filters(aws), {"Name": "instance-state-name", "Values": LIVE_INSTANCE_STATES}]
        enis: dict[str, str] = {}
        for reservation in self.paginate(ec2, "describe_instances", "Reservations", Filters=filters):
            for instance in reservation.get("Instances") or []:
                for eni in instance.get("NetworkInterfaces") or []:
                    enis[eni["NetworkInterfaceId"]] = eni.get("VpcId") or instance.get("VpcId")
        return enis

    def quarantine_groups(self, ec2: Any, tenant: str, vpc: str | None = None) -> dict[str, dict[str, Any]]:
        """VPC id → our quarantine group there (as described)."""
        filters = [{"Name": "group-name", "Values": [quarantine_name(tenant)]}]
        if vpc:
            filters.append({"Name": "vpc-id", "Values": [vpc]})
        groups = self.paginate(ec2, "describe_security_groups", "SecurityGroups", Filters=filters)
        return {g["VpcId"]: g for g in groups if g.get("VpcId")}

    def describe_enis(self, ec2: Any, ids: list[str]) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []
        for part in chunks(sorted(ids), FILTER_CHUNK):
            filters = [{"Name": "network-interface-id", "Values": part}]
            found += self.paginate(ec2, "describe_network_interfaces", "NetworkInterfaces", Filters=filters)
        return found


def group_ids(eni: Mapping[str, Any]) -> list[str]:
    return [g["GroupId"] for g in eni.get("Groups") or []]


def has_rules(group: Mapping[str, Any]) -> bool:
    return bool(group.get("IpPermissions") or group.get("IpPermissionsEgress"))


@register
class QuarantineGroupTarget(Ec2Firewall):
    """Our rule-less security group, one per tenant and VPC (ObjectRef name: the VPC id)."""

    kind = "Ec2QuarantineGroup"
    iam = (
        "ec2:DescribeInstances",
        "ec2:DescribeSecurityGroups",
        "ec2:DescribeNetworkInterfaces",
        "ec2:CreateSecurityGroup",
        "ec2:CreateTags",
        "ec2:RevokeSecurityGroupIngress",
        "ec2:RevokeSecurityGroupEgress",
        "ec2:DeleteSecurityGroup",
    )

    def discover(self, scope: TenantScope) -> list[Observed]:
        if scope.aws is None:
            return []
        found = []
        for region in self.regions(scope):
            ec2 = self.client(scope.aws, region)
            vpcs = set(self.tenant_enis(ec2, scope.aws).values())
            groups = self.quarantine_groups(ec2, scope.tenant)
            for vpc in sorted(vpcs | set(groups)):
                ref = ObjectRef(self.kind, vpc, region)
                group = groups.get(vpc)
                if group is None:
                    found.append(Observed(ref, Level.NONE))
                else:
                    found.append(Observed(ref, Level.FIREWALL, drifted=has_rules(group)))
        return found

    def apply(self, ref: ObjectRef, level: Level, scope: TenantScope) -> None:
        assert scope.aws is not None and ref.namespace is not None
        ec2 = self.client(scope.aws, ref.namespace)
        group = self.quarantine_groups(ec2, scope.tenant, ref.name).get(ref.name)
        if group is None:
            tags = [
                {"Key": QUARANTINE_TAG, "Value": scope.tenant},
                {"Key": ENFORCED_TAG, "Value": level.api_name},
                *({"Key": k, "Value": v} for k, v in MANAGED_BY.items()),
            ]
            self.tolerant(
                {"InvalidGroup.Duplicate"},  # created meanwhile (a parallel or an earlier run)
                "ec2.create_security_group",
                ec2.create_security_group,
                GroupName=quarantine_name(scope.tenant),
                Description=f"tenant-enforcer quarantine of tenant {scope.tenant}: no rules",
                VpcId=ref.name,
                TagSpecifications=[{"ResourceType": "security-group", "Tags": tags}],
            )
            group = self.quarantine_groups(ec2, scope.tenant, ref.name).get(ref.name)
            if group is None:
                raise NotYetSafe(f"{ref}: quarantine group created but not visible yet")
        # The default egress rule, and any rule added since: a quarantine has none.
        for key, revoke in (
            ("IpPermissions", ec2.revoke_security_group_ingress),
            ("IpPermissionsEgress", ec2.revoke_security_group_egress),
        ):
            if group.get(key):
                self.tolerant(
                    {"InvalidPermission.NotFound"},
                    f"ec2.{revoke.__name__}",
                    revoke,
                    GroupId=group["GroupId"],
                    IpPermissions=group[key],
                )

    def restore(self, ref: ObjectRef, prior: PriorRecord | None, scope: TenantScope) -> list[str]:
        assert scope.aws is not None and ref.namespace is not None
        ec2 = self.client(scope.aws, ref.namespace)
        group = self.quarantine_groups(ec2, scope.tenant, ref.name).get(ref.name)
        if group is None:
            return []
        gid = group["GroupId"]
        users = list(
            self.paginate(
                ec2,
                "describe_network_interfaces",
                "NetworkInterfaces",
                Filters=[{"Name": "group-id", "Values": [gid]}],
            )
        )
        ours = {r.name for r in scope.saved_of_kind(QuarantineTarget.kind) if r.namespace == ref.namespace}
        # Ours, still held: their restore has not run yet (or failed), so wait for it.
        waiting = sorted(
            u["NetworkInterfaceId"]
            for u in users
            if u["NetworkInterfaceId"] in ours and group_ids(u) == [gid]
        )
        if waiting:
            raise NotYetSafe(
                f"keep {ref} until these interfaces have their groups back: {', '.join(waiting)}"
            )
        if users:
            names = ", ".join(sorted(e["NetworkInterfaceId"] for e in users))
            return [
                f"{ref}: quarantine group {gid} is still used by {names} (changed while quarantined, or "
                "not ours to restore); left in place"
            ]
        try:
            self.tolerant(
                {"InvalidGroup.NotFound"}, "ec2.delete_security_group", ec2.delete_security_group, GroupId=gid
            )
        except AwsTargetError as exc:
            if exc.code == "DependencyViolation":  # e.g. another group's rule references it
                return [f"{ref}: quarantine group {gid} is still referenced ({exc.code}); left in place"]
            raise
        return []


@register
class QuarantineTarget(Ec2Firewall):
    """Each network interface of the tenant's instances, held in the quarantine group alone."""

    kind = "Ec2NetworkInterface"
    iam = (
        "ec2:DescribeInstances",
        "ec2:DescribeNetworkInterfaces",
        "ec2:DescribeSecurityGroups",
        "ec2:ModifyNetworkInterfaceAttribute",
    )

    def discover(self, scope: TenantScope) -> list[Observed]:
        if scope.aws is None:
            return []
        found = []
        for region in self.regions(scope):
            ec2 = self.client(scope.aws, region)
            saved = self.saved_in(scope, region)
            # Interfaces we hold stay ours even if the instance lost the tenant's tag since.
            ids = set(self.tenant_enis(ec2, scope.aws)) | {ref.name for ref in saved}
            quarantine = {vpc: g["GroupId"] for vpc, g in self.quarantine_groups(ec2, scope.tenant).items()}
            described = {e["NetworkInterfaceId"]: e for e in self.describe_enis(ec2, list(ids))}
            for eni_id in sorted(ids):
                ref = ObjectRef(self.kind, eni_id, region)
                eni = described.get(eni_id)
                if eni is None:  # gone (its instance terminated): nothing left to hold
                    found.append(Observed(ref, Level.FIREWALL if ref in saved else Level.NONE))
                    continue
                groups = group_ids(eni)
                held = quarantine.get(eni.get("VpcId", "")) is not None and groups == [
                    quarantine[eni["VpcId"]]
                ]
                applied = Level.FIREWALL if held or ref in saved else Level.NONE
                # Saved but not in quarantine: our move was cut short, or someone moved it out.
                found.append(Observed(ref, applied, {"groups": groups}, drifted=ref in saved and not held))
        return found

    def _read(self, ec2: Any, ref: ObjectRef) -> dict[str, Any] | None:
        enis = self.describe_enis(ec2, [ref.name])
        return enis[0] if enis else None

    def apply(self, ref: ObjectRef, level: Level, scope: TenantScope) -> None:
        assert scope.aws is not None and ref.namespace is not None
        ec2 = self.client(scope.aws, ref.namespace)
        eni = self._read(ec2, ref)
        if eni is None:
            return  # gone since discovery
        group = self.quarantine_groups(ec2, scope.tenant, eni["VpcId"]).get(eni["VpcId"])
        if group is None or has_rules(group):
            raise NotYetSafe(f"move {ref} once the quarantine group of {eni['VpcId']} is in place")
        if group_ids(eni) == [group["GroupId"]]:
            return
        self.tolerant(
            {"InvalidNetworkInterfaceID.NotFound"},
            "ec2.modify_network_interface_attribute",
            ec2.modify_network_interface_attribute,
            NetworkInterfaceId=ref.name,
            Groups=[group["GroupId"]],
        )

    def restore(self, ref: ObjectRef, prior: PriorRecord | None, scope: TenantScope) -> list[str]:
        assert scope.aws is not None and ref.namespace is not None
        ec2 = self.client(scope.aws, ref.namespace)
        eni = self._read(ec2, ref)
        if eni is None:
            return []
        current = group_ids(eni)
        group = self.quarantine_groups(ec2, scope.tenant, eni["VpcId"]).get(eni["VpcId"])
        quarantined = group is not None and current == [group["GroupId"]]
        if prior is None:
            return (
                [f"{ref}: in the quarantine group with no saved prior groups; left as it is"]
                if quarantined
                else []
            )
        before = list(prior.state.get("groups") or [])
        if sorted(current) == sorted(before):
            return []  # never moved (cut short before the move), or moved back by someone: done
        if not quarantined:
            return [
                f"{ref}: groups were changed to {current} while quarantined (before: {before}); "
                "left as they are"
            ]
        try:
            self.tolerant(
                {"InvalidNetworkInterfaceID.NotFound"},
                "ec2.modify_network_interface_attribute",
                ec2.modify_network_interface_attribute,
                NetworkInterfaceId=ref.name,
                Groups=before,
            )
        except AwsTargetError as exc:
            if exc.code == "InvalidGroup.NotFound":
                return [f"{ref}: a group it had before ({before}) no longer exists; left in quarantine"]
            raise
        return []


# --- ELBv2: listeners answering a fixed 503 ---------------------------------------------------


def listener_ref_name(arn: str) -> str:
    """`…:listener/app/<lb>/<lb-id>/<listener-id>` → `<lb>.<lb-id>.<listener-id>` (a valid
    prior-state key: no `:` or `/`)."""
    return ".".join(arn.split(":listener/", 1)[1].split("/")[1:])


def comparable_actions(actions: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    return [{k: v for k, v in a.items() if k != "Order"} for a in actions]


def is_fixed_503(actions: Iterable[Mapping[str, Any]]) -> bool:
    return comparable_actions(actions) == [FIXED_503]


@register
class LoadBalancerListenerTarget(FirewallTarget):
    """Listeners of the tenant's application load balancers (ObjectRef name: see
    `listener_ref_name`)."""

    kind = "ElbListener"
    service = "elbv2"
    iam = (
        "elasticloadbalancing:DescribeLoadBalancers",
        "elasticloadbalancing:DescribeTags",
        "elasticloadbalancing:DescribeListeners",
        "elasticloadbalancing:ModifyListener",
    )

    def tenant_load_balancers(self, elb: Any, aws: AwsScope) -> list[str]:
        arns = [
            lb["LoadBalancerArn"]
            for lb in self.paginate(elb, "describe_load_balancers", "LoadBalancers")
            if lb.get("Type") == "application"
        ]
        tenant = []
        for part in chunks(arns, TAGS_CHUNK):
            described = self.call("elbv2.describe_tags", elb.describe_tags, ResourceArns=part)
            tenant += [
                d["ResourceArn"]
                for d in described.get("TagDescriptions") or []
                if has_tenant_tag(d.get("Tags"), aws)
            ]
        return sorted(tenant)

    def _listener(self, elb: Any, ref: ObjectRef) -> dict[str, Any] | None:
        """The listener a ref names, found again through its load balancer's name."""
        lb_name, lb_id, listener_id = ref.name.split(".")
        lbs = self.tolerant(
            {"LoadBalancerNotFound"},
            "elbv2.describe_load_balancers",
            elb.describe_load_balancers,
            Names=[lb_name],
        )
        for lb in (lbs or {}).get("LoadBalancers") or []:
            if lb["LoadBalancerArn"].endswith(f"/{lb_name}/{lb_id}"):
                for listener in self.paginate(
                    elb, "describe_listeners", "Listeners", LoadBalancerArn=lb["LoadBalancerArn"]
                ):
                    if listener["ListenerArn"].endswith(f"/{lb_id}/{listener_id}"):
                        return dict(listener)
        return None

    def discover(self, scope: TenantScope) -> list[Observed]:
        if scope.aws is None:
            return []
        found = []
        for region in self.regions(scope):
            elb = self.client(scope.aws, region)
            saved = self.saved_in(scope, region)
            listeners = {}
            for lb in self.tenant_load_balancers(elb, scope.aws):
                for listener in self.paginate(elb, "describe_listeners", "Listeners", LoadBalancerArn=lb):
                    listeners[ObjectRef(self.kind, listener_ref_name(listener["ListenerArn"]), region)] = (
                        listener
                    )
            for ref in sorted(saved):  # held by us, even if its load balancer lost the tag since
                if ref not in listeners and (listener := self._listener(elb, ref)) is not None:
                    listeners[ref] = listener
            for ref in sorted(set(listeners) | set(saved)):
                if ref not in listeners:
                    found.append(Observed(ref, Level.FIREWALL))  # gone: nothing left to hold
                    continue
                actions = listeners[ref].get("DefaultActions") or []
                held = is_fixed_503(actions)
                applied = Level.FIREWALL if held or ref in saved else Level.NONE
                found.append(
                    Observed(ref, applied, {"defaultActions": actions}, drifted=ref in saved and not held)
                )
        return found

    def apply(self, ref: ObjectRef, level: Level, scope: TenantScope) -> None:
        assert scope.aws is not None and ref.namespace is not None
        elb = self.client(scope.aws, ref.namespace)
        listener = self._listener(elb, ref)
        if listener is None or is_fixed_503(listener.get("DefaultActions") or []):
            return
        self.tolerant(
            {"ListenerNotFound"},
            "elbv2.modify_listener",
            elb.modify_listener,
            ListenerArn=listener["ListenerArn"],
            DefaultActions=[FIXED_503],
        )

    def restore(self, ref: ObjectRef, prior: PriorRecord | None, scope: TenantScope) -> list[str]:
        assert scope.aws is not None and ref.namespace is not None
        elb = self.client(scope.aws, ref.namespace)
        listener = self._listener(elb, ref)
        if listener is None:
            return []
        current = listener.get("DefaultActions") or []
        if prior is None:
            return (
                [f"{ref}: answers our 503 with no saved prior actions; left as it is"]
                if is_fixed_503(current)
                else []
            )
        before = list(prior.state.get("defaultActions") or [])
        if comparable_actions(current) == comparable_actions(before):
            return []
        if not is_fixed_503(current):
            return [f"{ref}: default actions were changed while enforced; left as they are"]
        self.tolerant(
            {"ListenerNotFound"},
            "elbv2.modify_listener",
            elb.modify_listener,
            ListenerArn=listener["ListenerArn"],
            DefaultActions=before,
        )
        return []


# --- S3: public access block and a Deny statement ---------------------------------------------


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

    def _is_tenants(self, s3: Any, bucket: str, aws: AwsScope) -> bool:
        tagging = self.tolerant(
            {"NoSuchTagSet", "NoSuchBucket"},
            f"s3.get_bucket_tagging {bucket}",
            s3.get_bucket_tagging,
            Bucket=bucket,
        )
        return tagging is not None and has_tenant_tag(tagging.get("TagSet"), aws)

    def _region(self, s3: Any, listed: Mapping[str, Any]) -> str | None:
        if listed.get("BucketRegion"):
            return str(listed["BucketRegion"])
        found = self.tolerant(
            {"NoSuchBucket"},
            f"s3.get_bucket_location {listed['Name']}",
            s3.get_bucket_location,
            Bucket=listed["Name"],
        )
        if found is None:
            return None
        location = str(found.get("LocationConstraint") or "us-east-1")  # None: us-east-1
        return "eu-west-1" if location == "EU" else location

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
        refs: list[ObjectRef] = []
        for listed in self.paginate(s3, "list_buckets", "Buckets"):
            if not self._is_tenants(s3, listed["Name"], scope.aws):
                continue
            region = self._region(s3, listed)
            if region in regions:
                refs.append(ObjectRef(self.kind, listed["Name"], region))
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
