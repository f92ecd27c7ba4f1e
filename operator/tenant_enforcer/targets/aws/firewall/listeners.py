"""ELBv2: every listener of the tenant's application load balancers answers a fixed 503, and so
does every one of its rules.

Two targets, registered in this order (raising goes in this order, lifting in reverse):

- `LoadBalancerListenerTarget` (kind `ElbListener`): each listener's default actions
  (`modify_listener`).  Prior state: `{"defaultActions": [...]}`.
- `LoadBalancerRuleTarget` (kind `ElbListenerRule`): each non-default rule of those listeners
  (host, path, header … conditions forwarding elsewhere) gets its actions replaced by the same
  503 (`modify_rule` with `Actions` only: the rule's ARN, priority and conditions are kept).
  Prior state: `{"actions": [...]}`.  The default rule is the listener's default actions and
  belongs to the first target.

Why each rule is an object of its own rather than a part of its listener's prior state: a
prior record is saved once, before the first change, and never overwritten, so a listener's
record could never take in a rule the tenant adds while the listener is held.  As objects of
their own, such a rule is found at level None by the next discovery and planned like any
other: the actuator saves its actions as a new record (before any change, in the reconcile's
one prior-state write) and only then does `apply` replace them.  Per-rule priors are thereby
additive, and a pass cut short is finished by the next one (saved but not answering our 503:
drifted, re-asserted).  A rule added while held routes its traffic until that next reconcile.

Restore: a listener or rule gets exactly its saved actions back, and only where it still
answers our 503; anything else means someone changed it meanwhile, so it is left as it is and
reported.  One answering our 503 without a saved record is reported and left too.  One deleted
meanwhile (by the tenant, or with its listener or load balancer) is skipped: nothing of ours is
left on it and there is nothing to give back.  What marks one as ours is our saved record or
our exact fixed response, never a tag.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from tenant_enforcer.model.levels import Level
from tenant_enforcer.model.policy import AwsScope
from tenant_enforcer.model.refs import ObjectRef, Observed
from tenant_enforcer.targets.aws.firewall.base import FirewallTarget
from tenant_enforcer.targets.base import PriorRecord, TenantScope
from tenant_enforcer.targets.errors import AwsTargetError
from tenant_enforcer.targets.registry import register

FIXED_503 = {
    "Type": "fixed-response",
    "FixedResponseConfig": {
        "StatusCode": "503",
        "ContentType": "text/plain",
        "MessageBody": "Service suspended by the hosting provider.",
    },
}
Actions = list[dict[str, Any]]


def listener_ref_name(arn: str) -> str:
    """`…:listener/app/<lb>/<lb-id>/<listener-id>` → `<lb>.<lb-id>.<listener-id>` (a valid
    prior-state key: no `:` or `/`)."""
    return ".".join(arn.split(":listener/", 1)[1].split("/")[1:])


def rule_ref_name(arn: str) -> str:
    """`…:listener-rule/app/<lb>/<lb-id>/<listener-id>/<rule-id>` →
    `<lb>.<lb-id>.<listener-id>.<rule-id>`."""
    return ".".join(arn.split(":listener-rule/", 1)[1].split("/")[1:])


def listener_of(rule_name: str) -> str:
    """The listener's ref name within a rule's ref name."""
    return rule_name.rsplit(".", 1)[0]


def comparable_actions(actions: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    return [{k: v for k, v in a.items() if k != "Order"} for a in actions]


def is_fixed_503(actions: Iterable[Mapping[str, Any]]) -> bool:
    return comparable_actions(actions) == [FIXED_503]


class ElbFirewallTarget(FirewallTarget):
    """What the listener and rule targets share: finding the tenant's listeners again, and
    holding a list of actions at our 503 / giving it back."""

    service = "elbv2"

    def listener(self, elb: Any, name: str) -> dict[str, Any] | None:
        """The listener a ref name names, found again through its load balancer's name."""
        lb_name, lb_id, listener_id = name.split(".")
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

    def listeners_in(self, elb: Any, aws: AwsScope, held: Iterable[str]) -> dict[str, dict[str, Any]]:
        """The tenant's listeners by ref name, plus those named in `held` (held by us, even if
        their load balancer lost the tag since); deleted ones are missing."""
        listeners = {}
        albs = [
            lb["LoadBalancerArn"]
            for lb in self.tenant_load_balancers(elb, aws)
            if lb.get("Type") == "application"
        ]
        for lb in sorted(albs):
            for listener in self.paginate(elb, "describe_listeners", "Listeners", LoadBalancerArn=lb):
                listeners[listener_ref_name(listener["ListenerArn"])] = dict(listener)
        for name in sorted(set(held)):
            if name not in listeners and (listener := self.listener(elb, name)) is not None:
                listeners[name] = listener
        return listeners

    @staticmethod
    def observed(
        ref: ObjectRef, key: str, actions: Actions | None, saved: Mapping[ObjectRef, Any]
    ) -> Observed:
        """`actions` None: deleted, nothing left to hold (only reached for saved refs)."""
        if actions is None:
            return Observed(ref, Level.FIREWALL)
        held = is_fixed_503(actions)
        applied = Level.FIREWALL if held or ref in saved else Level.NONE
        return Observed(ref, applied, {key: actions}, drifted=ref in saved and not held)

    @staticmethod
    def hold(current: Actions, write: Callable[[Actions], object]) -> None:
        if not is_fixed_503(current):
            write([FIXED_503])

    @staticmethod
    def give_back(
        ref: ObjectRef,
        what: str,
        current: Actions,
        before: Actions | None,
        write: Callable[[Actions], object],
    ) -> list[str]:
        """Write `before` back where `current` is still our 503; report what cannot be."""
        if before is None:
            held = is_fixed_503(current)
            return [f"{ref}: answers our 503 with no saved prior {what}; left as it is"] if held else []
        if comparable_actions(current) == comparable_actions(before):
            return []
        if not is_fixed_503(current):
            return [f"{ref}: {what} were changed while enforced; left as they are"]
        if not before:
            return [f"{ref}: no saved {what} to give back; left answering our 503"]
        write(before)
        return []


@register
class LoadBalancerListenerTarget(ElbFirewallTarget):
    """Listeners of the tenant's application load balancers (ObjectRef name: see
    `listener_ref_name`)."""

    kind = "ElbListener"
    iam = (
        "elasticloadbalancing:DescribeLoadBalancers",
        "elasticloadbalancing:DescribeTags",
        "elasticloadbalancing:DescribeListeners",
        "elasticloadbalancing:ModifyListener",
    )

    def discover(self, scope: TenantScope) -> list[Observed]:
        if scope.aws is None:
            return []
        found = []
        for region in self.regions(scope):
            elb = self.client(scope.aws, region)
            saved = self.saved_in(scope, region)
            listeners = {
                ObjectRef(self.kind, name, region): listener
                for name, listener in self.listeners_in(elb, scope.aws, [r.name for r in saved]).items()
            }
            for ref in sorted(set(listeners) | set(saved)):
                actions = (listeners[ref].get("DefaultActions") or []) if ref in listeners else None
                found.append(self.observed(ref, "defaultActions", actions, saved))
        return found

    def _writer(self, elb: Any, listener: Mapping[str, Any]) -> Callable[[Actions], object]:
        return lambda actions: self.tolerant(
            {"ListenerNotFound"},
            "elbv2.modify_listener",
            elb.modify_listener,
            ListenerArn=listener["ListenerArn"],
            DefaultActions=actions,
        )

    def apply(self, ref: ObjectRef, level: Level, scope: TenantScope) -> None:
        assert scope.aws is not None and ref.namespace is not None
        elb = self.client(scope.aws, ref.namespace)
        if (listener := self.listener(elb, ref.name)) is not None:
            self.hold(listener.get("DefaultActions") or [], self._writer(elb, listener))

    def restore(self, ref: ObjectRef, prior: PriorRecord | None, scope: TenantScope) -> list[str]:
        assert scope.aws is not None and ref.namespace is not None
        elb = self.client(scope.aws, ref.namespace)
        if (listener := self.listener(elb, ref.name)) is None:
            return []
        before = None if prior is None else list(prior.state.get("defaultActions") or [])
        current = listener.get("DefaultActions") or []
        return self.give_back(ref, "default actions", current, before, self._writer(elb, listener))


@register
class LoadBalancerRuleTarget(ElbFirewallTarget):
    """The non-default rules of those listeners (ObjectRef name: see `rule_ref_name`)."""

    kind = "ElbListenerRule"
    iam = (
        "elasticloadbalancing:DescribeLoadBalancers",
        "elasticloadbalancing:DescribeTags",
        "elasticloadbalancing:DescribeListeners",
        "elasticloadbalancing:DescribeRules",
        "elasticloadbalancing:ModifyRule",
    )

    def rules_of(self, elb: Any, listener_arn: str) -> list[dict[str, Any]]:
        """The listener's non-default rules, every page (none if it was deleted meanwhile)."""
        try:
            rules = list(self.paginate(elb, "describe_rules", "Rules", ListenerArn=listener_arn))
        except AwsTargetError as exc:
            if exc.code == "ListenerNotFound":
                return []
            raise
        return [dict(rule) for rule in rules if not rule.get("IsDefault")]

    def _rule(self, elb: Any, ref: ObjectRef) -> dict[str, Any] | None:
        """The rule a ref names: its listener found again, then the rule by its ARN."""
        listener = self.listener(elb, listener_of(ref.name))
        if listener is None:
            return None
        rule_id = ref.name.rsplit(".", 1)[1]
        arn = f"{listener['ListenerArn'].replace(':listener/', ':listener-rule/', 1)}/{rule_id}"
        described = self.tolerant(
            {"RuleNotFound", "ListenerNotFound"}, "elbv2.describe_rules", elb.describe_rules, RuleArns=[arn]
        )
        rules = (described or {}).get("Rules") or []
        return dict(rules[0]) if rules else None

    def discover(self, scope: TenantScope) -> list[Observed]:
        if scope.aws is None:
            return []
        found = []
        for region in self.regions(scope):
            elb = self.client(scope.aws, region)
            saved = self.saved_in(scope, region)
            listeners = self.listeners_in(elb, scope.aws, [listener_of(r.name) for r in saved])
            rules = {
                ObjectRef(self.kind, rule_ref_name(rule["RuleArn"]), region): rule
                for name in sorted(listeners)
                for rule in self.rules_of(elb, listeners[name]["ListenerArn"])
            }
            for ref in sorted(set(rules) | set(saved)):
                actions = (rules[ref].get("Actions") or []) if ref in rules else None
                found.append(self.observed(ref, "actions", actions, saved))
        return found

    def _writer(self, elb: Any, rule: Mapping[str, Any]) -> Callable[[Actions], object]:
        return lambda actions: self.tolerant(
            {"RuleNotFound"}, "elbv2.modify_rule", elb.modify_rule, RuleArn=rule["RuleArn"], Actions=actions
        )

    def apply(self, ref: ObjectRef, level: Level, scope: TenantScope) -> None:
        assert scope.aws is not None and ref.namespace is not None
        elb = self.client(scope.aws, ref.namespace)
        if (rule := self._rule(elb, ref)) is not None:
            self.hold(rule.get("Actions") or [], self._writer(elb, rule))

    def restore(self, ref: ObjectRef, prior: PriorRecord | None, scope: TenantScope) -> list[str]:
        assert scope.aws is not None and ref.namespace is not None
        elb = self.client(scope.aws, ref.namespace)
        if (rule := self._rule(elb, ref)) is None:
            return []  # deleted meanwhile: nothing of ours left on it, nothing to give back
        before = None if prior is None else list(prior.state.get("actions") or [])
        return self.give_back(ref, "actions", rule.get("Actions") or [], before, self._writer(elb, rule))
