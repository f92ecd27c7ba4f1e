"""EC2 quarantine: one rule-less security group per tenant and VPC, and the tenant's network
interfaces moved into it alone.

`QuarantineGroupTarget`: one security group of ours per tenant and VPC,
`tenant-enforcer-quarantine-<tenant>`, with no rules at all (its default egress rule is
revoked, and any rule someone adds later is revoked again).  Created before any interface
is moved into it; deleted on lift once no interface uses it any more.

`QuarantineTarget`: each network interface of the tenant's instances gets exactly the
quarantine group of its VPC.  Prior state: its group list.  Restore puts those groups back,
only if the interface still has exactly the quarantine group; otherwise it reports.

Both are registered here, the group first: it must exist before any interface is moved in,
and it goes last on lift.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from tenant_enforcer.model.levels import Level
from tenant_enforcer.model.policy import AwsScope
from tenant_enforcer.model.refs import ObjectRef, Observed
from tenant_enforcer.targets.aws.base import ENFORCED_TAG, tag_filters
from tenant_enforcer.targets.aws.firewall.base import FirewallTarget, NotYetSafe, chunks
from tenant_enforcer.targets.base import MANAGED_BY, PriorRecord, TenantScope
from tenant_enforcer.targets.errors import AwsTargetError
from tenant_enforcer.targets.registry import register

QUARANTINE_PREFIX = "tenant-enforcer-quarantine-"
QUARANTINE_TAG = "tenant-enforcer.io/quarantine-of"  # value: tenant
LIVE_INSTANCE_STATES = ["pending", "running", "stopping", "stopped"]
FILTER_CHUNK = 200  # values per EC2 filter


def quarantine_name(tenant: str) -> str:
    return f"{QUARANTINE_PREFIX}{tenant}"


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
