"""Notices to a tenant's contacts: what to tell, its stable id, and the signature. Pure.

A notice announces the tenant's state: the applied level and the target level.  It is due
whenever that pair differs from the one the tenant was last told about (a verdict raises
the target and starts a notice period, the period ends and the level applies, the lift).

Ids chain: a notice's id is derived from the tenant's policy uid, the previous notice's id
and the state announced, so the same transition always gets the same id (a receiver can
de-duplicate retries and re-sends), and a state reached a second time gets a new one.

Signature (webhook), in the manner of Stripe's: the sender sets
  X-Tenant-Enforcer-Timestamp: <unix seconds>
  X-Tenant-Enforcer-Signature: sha256=<hex HMAC-SHA256(key, "<timestamp>." + body)>
The receiver recomputes the HMAC over the timestamp, a dot and the raw body bytes with the
shared key, compares in constant time, and rejects timestamps too far from its clock
(replays).  `verify` does exactly that.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from tenant_enforcer.core.ladder import Decision, evaluate
from tenant_enforcer.model.duration import format_time
from tenant_enforcer.model.ladder import Ladder
from tenant_enforcer.model.levels import Level
from tenant_enforcer.model.policy import Approval, Hold
from tenant_enforcer.model.verdict import Verdict

DOCUMENT_TYPE = "tenant-enforcer.io/notice/v1"
SIGNATURE_HEADER = "X-Tenant-Enforcer-Signature"
TIMESTAMP_HEADER = "X-Tenant-Enforcer-Timestamp"
ID_HEADER = "X-Tenant-Enforcer-Notice-Id"
DEFAULT_TOLERANCE = timedelta(minutes=5)
DEFAULT_APPEAL = (
    "To appeal, reply to your provider's abuse or support contact quoting this notice's id. "
    "While an appeal is reviewed, the provider can hold enforcement at a lower level."
)


@dataclass(frozen=True)
class NoticeState:
    """What a notice announces: the applied level and the level the verdicts call for."""

    level: Level
    target: Level

    @classmethod
    def from_record(cls, record: Mapping[str, Any] | None) -> NoticeState:
        """The state a lastNotice/pendingNotice status field names; (None, None) if absent."""
        if not record:
            return cls(Level.NONE, Level.NONE)
        try:
            return cls(
                Level.parse(record.get("level") or "None"), Level.parse(record.get("targetLevel") or "None")
            )
        except ValueError:
            return cls(Level.NONE, Level.NONE)


def notice_id(policy_uid: str, previous_id: str, state: NoticeState) -> str:
    material = f"{policy_uid}\n{previous_id}\n{state.level.api_name}\n{state.target.api_name}"
    return hashlib.sha256(material.encode()).hexdigest()[:32]


def change_kind(before: NoticeState, after: NoticeState) -> str:
    """Kind of change: "lift" (back to None), "raise" (a higher level applies or is coming) or "lower"."""
    if after.level == Level.NONE and after.target == Level.NONE:
        return "lift"
    if max(after.level, after.target) > max(before.level, before.target) or after.level > before.level:
        return "raise"
    return "lower"


@dataclass(frozen=True)
class NoticeContext:
    """The tenant-side facts a notice names."""

    tenant: str
    policy: str
    policy_uid: str
    verdicts: Mapping[str, Verdict]  # the tenant's verdicts, by name
    appeal: str = DEFAULT_APPEAL
    # To say which level the next step brings (the ladder evaluated at Decision.next_due).
    ladder: Ladder | None = None
    hold: Hold | None = None
    approvals: tuple[Approval, ...] = ()

    def level_at(self, when: datetime) -> Level | None:
        if self.ladder is None:
            return None
        return evaluate(self.ladder, self.verdicts.values(), when, self.hold, self.approvals).target


def build_notice(
    context: NoticeContext,
    notice: str,
    before: NoticeState,
    after: NoticeState,
    decision: Decision | None,
    created_at: datetime,
) -> dict[str, Any]:
    """The notice document (JSON-ready): the same body for the webhook and for SNS."""
    verdicts = []
    for name in decision.active_verdicts if decision else ():
        verdict = context.verdicts.get(name)
        evaluation = decision.verdicts.get(name) if decision else None
        verdicts.append(
            {
                "name": name,
                "category": verdict.category if verdict else None,
                "severity": verdict.severity.name.lower() if verdict else None,
                "level": evaluation.level.api_name if evaluation else None,
            }
        )
    next_step = None
    if decision and decision.next_due:
        upcoming = context.level_at(decision.next_due)
        next_step = {"at": format_time(decision.next_due), "level": upcoming.api_name if upcoming else None}
    return {
        "type": DOCUMENT_TYPE,
        "id": notice,
        "kind": change_kind(before, after),
        "tenant": context.tenant,
        "policy": context.policy,
        "createdAt": format_time(created_at),
        "from": {"level": before.level.api_name, "targetLevel": before.target.api_name},
        "to": {"level": after.level.api_name, "targetLevel": after.target.api_name},
        "reason": decision.reason if decision else "",
        "verdicts": verdicts,
        "next": next_step,
        "appeal": context.appeal,
    }


def subject(document: Mapping[str, Any]) -> str:
    """A one-line summary (SNS subjects: ASCII, at most 100 characters)."""
    to = document["to"]
    text = f"tenant-enforcer: {document['tenant']} {document['kind']}: level {to['level']}"
    text += f", target {to['targetLevel']}"
    return text.encode("ascii", "replace").decode()[:100]


def encode(document: Mapping[str, Any]) -> bytes:
    """The exact bytes sent (and signed): compact, keys sorted."""
    return json.dumps(document, sort_keys=True, separators=(",", ":")).encode()


def signature(key: bytes, timestamp: int, body: bytes) -> str:
    digest = hmac.new(key, str(timestamp).encode() + b"." + body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def verify(
    key: bytes,
    headers: Mapping[str, str],
    body: bytes,
    now: datetime,
    tolerance: timedelta = DEFAULT_TOLERANCE,
) -> bool:
    """What a receiver does: the signature matches and the timestamp is recent."""
    try:
        timestamp = int(headers[TIMESTAMP_HEADER])
    except (KeyError, ValueError):
        return False
    if abs(now.timestamp() - timestamp) > tolerance.total_seconds():
        return False
    return hmac.compare_digest(signature(key, timestamp, body), headers.get(SIGNATURE_HEADER, ""))


def retry_delay(attempts: int, base: timedelta, cap: timedelta = timedelta(hours=1)) -> timedelta:
    """Backoff after `attempts` failed attempts: base, 2 * base, 4 * base, … up to `cap`."""
    delay: timedelta = base * (2 ** max(0, min(attempts - 1, 20)))
    return min(delay, cap)
