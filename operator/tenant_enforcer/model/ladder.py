"""EnforcementLadder: which verdicts call for which level, and how levels are applied."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from enum import Enum
from typing import Any

from tenant_enforcer.model.duration import parse_duration
from tenant_enforcer.model.levels import Level, Severity

DEFAULT_NOTICE_PERIOD = timedelta(hours=24)


class Mode(Enum):
    ENFORCE = "Enforce"
    DRY_RUN = "DryRun"


@dataclass(frozen=True)
class Rule:
    """A verdict matching every criterion calls for `level`."""

    name: str
    level: Level
    categories: frozenset[str] = frozenset()  # empty: any category
    min_severity: Severity = Severity.LOW
    min_confidence: float = 0.0
    notice_period: timedelta | None = None  # None: the ladder's default

    @classmethod
    def from_spec(cls, spec: Mapping[str, Any]) -> Rule:
        notice = spec.get("noticePeriod")
        return cls(
            name=spec["name"],
            level=Level.parse(spec["level"]),
            categories=frozenset(spec.get("categories") or ()),
            min_severity=Severity.parse(spec.get("minSeverity", "low")),
            min_confidence=float(spec.get("minConfidence", 0.0)),
            notice_period=parse_duration(notice) if notice is not None else None,
        )


@dataclass(frozen=True)
class Escalation:
    """A verdict whose level has been `from_level` for `after` rises to `to`."""

    from_level: Level
    after: timedelta
    to: Level

    @classmethod
    def from_spec(cls, spec: Mapping[str, Any]) -> Escalation:
        return cls(Level.parse(spec["from"]), parse_duration(spec["after"]), Level.parse(spec["to"]))


@dataclass(frozen=True)
class ScaleDownSettings:
    replicas: int = 0


@dataclass(frozen=True)
class FirewallSettings:
    allow_dns: bool = True
    allow_ingress_from_namespaces: tuple[str, ...] = ("monitoring",)


@dataclass(frozen=True)
class DeprovisionSettings:
    snapshot_secret_data: bool = False
    pvc_retention: timedelta = timedelta(days=30)
    delete_pvcs_after_retention: bool = True
    bucket_retention: timedelta = timedelta(days=30)
    delete_buckets_after_retention: bool = False  # tenant buckets are kept unless the ladder says so


@dataclass(frozen=True)
class Ladder:
    name: str
    rules: tuple[Rule, ...]
    mode: Mode = Mode.ENFORCE
    notice_period: timedelta = DEFAULT_NOTICE_PERIOD
    escalations: tuple[Escalation, ...] = ()
    approval_required: frozenset[Level] = frozenset({Level.DEPROVISION})
    scale_down: ScaleDownSettings = field(default_factory=ScaleDownSettings)
    firewall: FirewallSettings = field(default_factory=FirewallSettings)
    deprovision: DeprovisionSettings = field(default_factory=DeprovisionSettings)

    @property
    def levels(self) -> frozenset[Level]:
        """Every level this ladder can reach, by rule or by escalation."""
        return frozenset({r.level for r in self.rules} | {e.to for e in self.escalations})

    @classmethod
    def from_resource(cls, body: Mapping[str, Any]) -> Ladder:
        spec = body["spec"]
        settings = spec.get("levelSettings") or {}
        scale = settings.get("scaleDown") or {}
        fw = settings.get("firewall") or {}
        dep = settings.get("deprovision") or {}
        approval = spec.get("approvalRequired")
        return cls(
            name=body["metadata"]["name"],
            rules=tuple(Rule.from_spec(r) for r in spec.get("rules") or ()),
            mode=Mode(spec.get("mode", "Enforce")),
            notice_period=parse_duration(spec.get("noticePeriod", "24h")),
            escalations=tuple(Escalation.from_spec(e) for e in spec.get("escalations") or ()),
            approval_required=(
                frozenset(Level.parse(x) for x in approval)
                if approval is not None
                else frozenset({Level.DEPROVISION})
            ),
            scale_down=ScaleDownSettings(replicas=int(scale.get("replicas", 0))),
            firewall=FirewallSettings(
                allow_dns=bool(fw.get("allowDNS", True)),
                allow_ingress_from_namespaces=tuple(fw.get("allowIngressFromNamespaces", ("monitoring",))),
            ),
            deprovision=DeprovisionSettings(
                snapshot_secret_data=bool(dep.get("snapshotSecretData", False)),
                pvc_retention=parse_duration(dep.get("pvcRetention", "720h")),
                delete_pvcs_after_retention=bool(dep.get("deletePVCsAfterRetention", True)),
                bucket_retention=parse_duration(dep.get("bucketRetention", "720h")),
                delete_buckets_after_retention=bool(dep.get("deleteBucketsAfterRetention", False)),
            ),
        )
