"""`DeletedLoadBalancerTarget` (kind `DeletedLoadBalancer`, one per tenant ELBv2 load
balancer, by name): the evidence snapshot `aws-<region>-elb-<name>` (the same documents as for
an instance, the load balancer's own first), then the load balancer is deleted (its listeners
and rules go with it), verified gone, and the target groups only it used are deleted after it.

Progress is the prior-state record (the load balancer's ARN and target groups): with a record,
anything of it still there is a deletion under way (`pending`).  Lifting re-creates nothing:
it names the evidence location.
"""

from __future__ import annotations

from typing import Any

from tenant_enforcer.model.levels import Level
from tenant_enforcer.model.refs import ObjectRef, Observed
from tenant_enforcer.targets.aws.deprovision.evidence import (
    ELB_READS,
    S3_READS,
    AwsDeprovisionTarget,
    DeprovisionIncomplete,
)
from tenant_enforcer.targets.base import PriorRecord, TenantScope
from tenant_enforcer.targets.errors import AwsTargetError
from tenant_enforcer.targets.registry import register


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
        where = self.evidence_note(scope.tenant, sid)
        if self._by_name(self.client(scope.aws, self.region_of(ref)), ref.name) is not None:
            return [f"{ref}: deprovisioning was lifted before the load balancer was deleted; {where}"]
        return [f"{ref}: deleted load balancers are not re-created automatically; {where}"]
