"""TenantPolicy: one per tenant: what it owns, who to tell, which ladder applies."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from tenant_enforcer.model.duration import parse_time
from tenant_enforcer.model.levels import Level

# Never enforced, whatever a policy says; the API server rejects them by name too (CEL).
PROTECTED_NAMESPACES = frozenset({"kube-system", "kube-public", "kube-node-lease"})
PROTECTED_LABEL = "tenant-enforcer.io/protected"


@dataclass(frozen=True)
class Hold:
    """While active, the tenant's target level is capped at `max_level` (an appeal, say)."""

    until: datetime
    reason: str
    max_level: Level = Level.NOTICE


@dataclass(frozen=True)
class Approval:
    """A person's approval of `level` for a tenant, covering the named verdicts."""

    name: str
    tenant: str
    level: Level
    verdicts: frozenset[str]
    approver: str
    reason: str = ""

    @classmethod
    def from_resource(cls, body: Mapping[str, Any]) -> Approval:
        """An EnforcementApproval, read strictly: anything the CRD would refuse raises ValueError."""
        spec = body["spec"]
        level = Level.parse(_text(spec, "level"))
        if not level.disruptive:
            raise ValueError(f"level {level.api_name} never needs an approval")
        verdicts = spec["verdicts"]
        if not (isinstance(verdicts, list) and verdicts and all(isinstance(v, str) and v for v in verdicts)):
            raise ValueError("verdicts must be a non-empty list of ModerationVerdict names")
        return cls(
            name=_text(body["metadata"], "name"),
            tenant=_text(spec, "tenant"),
            level=level,
            verdicts=frozenset(verdicts),
            approver=_text(spec, "approver"),
            reason=_text(spec, "reason"),
        )


def _text(mapping: Mapping[str, Any], key: str) -> str:
    value = mapping[key]
    if not isinstance(value, str) or not value:
        raise ValueError(f"{key} must be a non-empty string, not {value!r}")
    return value


@dataclass(frozen=True)
class LabelSelector:
    match_labels: tuple[tuple[str, str], ...] = ()
    # (key, operator, values): operators In, NotIn, Exists, DoesNotExist as in Kubernetes.
    match_expressions: tuple[tuple[str, str, tuple[str, ...]], ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        if any(labels.get(k) != v for k, v in self.match_labels):
            return False
        for key, op, values in self.match_expressions:
            present = key in labels
            ok = {
                "In": present and labels.get(key) in values,
                "NotIn": not present or labels.get(key) not in values,
                "Exists": present,
                "DoesNotExist": not present,
            }.get(op, False)
            if not ok:
                return False
        return True

    @classmethod
    def from_spec(cls, spec: Mapping[str, Any]) -> LabelSelector:
        return cls(
            match_labels=tuple(sorted((spec.get("matchLabels") or {}).items())),
            match_expressions=tuple(
                (e["key"], e["operator"], tuple(e.get("values") or ()))
                for e in spec.get("matchExpressions") or ()
            ),
        )


@dataclass(frozen=True)
class AwsScope:
    """The tenant's AWS resources: those tagged `tag_key=tag_value` in `regions`, reached
    with the operator's credentials or by assuming `role_arn` (with `external_id`)."""

    regions: tuple[str, ...]
    tag_key: str
    tag_value: str
    account_id: str | None = None
    role_arn: str | None = None
    external_id: str | None = None

    @classmethod
    def from_spec(cls, spec: Mapping[str, Any]) -> AwsScope | None:
        if not spec.get("tagKey") or not spec.get("regions"):
            return None  # nothing identifies the tenant's resources: no AWS enforcement
        return cls(
            regions=tuple(spec["regions"]),
            tag_key=spec["tagKey"],
            tag_value=spec["tagValue"],
            account_id=spec.get("accountId"),
            role_arn=spec.get("roleArn"),
            external_id=spec.get("externalId"),
        )


@dataclass(frozen=True)
class Contacts:
    """Where the tenant is told about enforcement (spec.contacts)."""

    webhook_url: str | None = None
    sns_topic_arn: str | None = None
    emails: tuple[str, ...] = ()  # declared by the CRD; nothing sends e-mail yet

    @property
    def channels(self) -> tuple[str, ...]:
        """The channels the operator sends notices to: "webhook", "sns"."""
        return tuple(n for n, v in (("webhook", self.webhook_url), ("sns", self.sns_topic_arn)) if v)

    @classmethod
    def from_spec(cls, spec: Mapping[str, Any]) -> Contacts:
        return cls(
            webhook_url=spec.get("webhookUrl") or None,
            sns_topic_arn=spec.get("snsTopicArn") or None,
            emails=tuple(spec.get("emails") or ()),
        )


@dataclass(frozen=True)
class TenantPolicy:
    name: str
    tenant: str
    ladder: str
    namespace_names: tuple[str, ...] = ()
    namespace_selector: LabelSelector | None = None
    hold: Hold | None = None
    aws: AwsScope | None = None
    generation: int = 0
    created_at: datetime | None = None
    contacts: Contacts = Contacts()

    def owns(self, namespace: str, labels: Mapping[str, str]) -> bool:
        if namespace in self.namespace_names:
            return True
        return self.namespace_selector is not None and self.namespace_selector.matches(labels)

    @classmethod
    def from_resource(cls, body: Mapping[str, Any]) -> TenantPolicy:
        meta, spec = body["metadata"], body["spec"]
        ns = spec.get("namespaces") or {}
        selector = ns.get("selector")
        hold = spec.get("hold")
        created = meta.get("creationTimestamp")
        return cls(
            name=meta["name"],
            tenant=spec["tenant"],
            ladder=spec["ladder"],
            namespace_names=tuple(ns.get("names") or ()),
            namespace_selector=LabelSelector.from_spec(selector) if selector else None,
            hold=(
                Hold(
                    parse_time(hold["until"]),
                    hold.get("reason", ""),
                    Level.parse(hold.get("maxLevel", "Notice")),
                )
                if hold
                else None
            ),
            aws=AwsScope.from_spec(spec["aws"]) if spec.get("aws") else None,
            generation=int(meta.get("generation") or 0),
            created_at=parse_time(created) if created else None,
            contacts=Contacts.from_spec(spec.get("contacts") or {}),
        )
