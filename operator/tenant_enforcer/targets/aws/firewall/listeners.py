"""ELBv2: each listener of the tenant's application load balancers answers a fixed 503.

`LoadBalancerListenerTarget`: prior state is the listener's default actions; restore puts
them back only if the listener still answers our 503, otherwise it reports.  (Known gap: the
listener's other rules, e.g. path-based forwards, are not changed yet and still route their
traffic.)
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from tenant_enforcer.model.levels import Level
from tenant_enforcer.model.policy import AwsScope
from tenant_enforcer.model.refs import ObjectRef, Observed
from tenant_enforcer.targets.aws.base import has_tenant_tag
from tenant_enforcer.targets.aws.firewall.base import FirewallTarget, chunks
from tenant_enforcer.targets.base import PriorRecord, TenantScope
from tenant_enforcer.targets.registry import register

TAGS_CHUNK = 20  # ELBv2 DescribeTags takes at most 20 ARNs
FIXED_503 = {
    "Type": "fixed-response",
    "FixedResponseConfig": {
        "StatusCode": "503",
        "ContentType": "text/plain",
        "MessageBody": "Service suspended by the hosting provider.",
    },
}


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
