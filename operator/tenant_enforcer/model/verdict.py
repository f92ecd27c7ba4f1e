"""ModerationVerdict: one fact from the moderation pipeline about a tenant."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import Enum
from typing import Any

from tenant_enforcer.model.duration import parse_time
from tenant_enforcer.model.levels import Severity


class Outcome(Enum):
    VIOLATION = "violation"
    CLEARED = "cleared"


class VerdictState(Enum):
    """What a verdict currently means; shown in the verdict's status."""

    PENDING = "Pending"  # issuedAt is still in the future
    ACTIVE = "Active"
    EXPIRED = "Expired"
    SUPERSEDED = "Superseded"
    UNKNOWN_TENANT = "UnknownTenant"  # decided by the controller: no TenantPolicy names it


@dataclass(frozen=True)
class Evidence:
    uri: str
    sha256: str | None = None
    description: str | None = None


@dataclass(frozen=True)
class Verdict:
    name: str
    tenant: str
    category: str
    severity: Severity
    confidence: float
    outcome: Outcome
    issuer: str
    issued_at: datetime
    expires_at: datetime | None = None
    supersedes: tuple[str, ...] = ()
    evidence: tuple[Evidence, ...] = ()

    @classmethod
    def from_resource(cls, body: Mapping[str, Any]) -> Verdict:
        spec = body["spec"]
        expires = spec.get("expiresAt")
        return cls(
            name=body["metadata"]["name"],
            tenant=spec["tenant"],
            category=spec["category"],
            severity=Severity.parse(spec["severity"]),
            confidence=float(spec.get("confidence", 1.0)),
            outcome=Outcome(spec.get("outcome", "violation")),
            issuer=spec["issuer"],
            issued_at=parse_time(spec["issuedAt"]),
            expires_at=parse_time(expires) if expires else None,
            supersedes=tuple(spec.get("supersedes") or ()),
            evidence=tuple(
                Evidence(e["uri"], e.get("sha256"), e.get("description")) for e in spec.get("evidence") or ()
            ),
        )
