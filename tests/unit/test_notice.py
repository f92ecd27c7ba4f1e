"""The pure notice builder, its ids, the signature scheme and the backoff (core/notice.py)."""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import UTC, datetime, timedelta

from tenant_enforcer.core import notice as n
from tenant_enforcer.core.ladder import evaluate
from tenant_enforcer.model.ladder import Ladder, Rule
from tenant_enforcer.model.levels import Level, Severity
from tenant_enforcer.model.policy import Contacts, TenantPolicy
from tenant_enforcer.model.verdict import Outcome, Verdict

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
LADDER = Ladder(
    "l", (Rule("fraud", Level.SCALE_DOWN, frozenset({"fraud"})),), notice_period=timedelta(hours=24)
)
VERDICT = Verdict(
    "v1", "acme", "fraud", Severity.HIGH, 1.0, Outcome.VIOLATION, "mod", NOW - timedelta(hours=1)
)
CONTEXT = n.NoticeContext("acme", "acme-policy", "uid-1", {"v1": VERDICT}, ladder=LADDER)
NONE = n.NoticeState(Level.NONE, Level.NONE)


def test_notice_names_verdicts_the_next_step_and_how_to_appeal() -> None:
    decision = evaluate(LADDER, [VERDICT], NOW)
    assert decision.target == Level.NOTICE  # the notice period of ScaleDown runs
    after = n.NoticeState(Level.NOTICE, decision.target)
    doc = n.build_notice(CONTEXT, "id-1", NONE, after, decision, NOW)
    assert doc["id"] == "id-1" and doc["kind"] == "raise"
    assert doc["tenant"] == "acme" and doc["policy"] == "acme-policy"
    assert doc["from"] == {"level": "None", "targetLevel": "None"}
    assert doc["to"] == {"level": "Notice", "targetLevel": "Notice"}
    assert doc["verdicts"] == [{"name": "v1", "category": "fraud", "severity": "high", "level": "Notice"}]
    assert doc["next"] == {"at": "2026-11-28T11:00:00Z", "level": "ScaleDown"}
    assert "appeal" in doc["appeal"].lower()
    assert json.loads(n.encode(doc)) == doc


def test_lift_notice_has_no_verdicts_and_no_next_step() -> None:
    decision = evaluate(LADDER, [], NOW)
    doc = n.build_notice(CONTEXT, "id-2", n.NoticeState(Level.NOTICE, Level.NOTICE), NONE, decision, NOW)
    assert doc["kind"] == "lift" and doc["verdicts"] == [] and doc["next"] is None


def test_change_kinds() -> None:
    notice = n.NoticeState(Level.NOTICE, Level.NOTICE)
    scaled = n.NoticeState(Level.SCALE_DOWN, Level.SCALE_DOWN)
    assert n.change_kind(notice, scaled) == "raise"
    assert n.change_kind(scaled, notice) == "lower"
    assert n.change_kind(scaled, NONE) == "lift"


def test_ids_are_stable_per_transition_and_new_for_a_repeated_state() -> None:
    notice = n.NoticeState(Level.NOTICE, Level.NOTICE)
    first = n.notice_id("uid-1", "", notice)
    assert first == n.notice_id("uid-1", "", notice)
    lift = n.notice_id("uid-1", first, NONE)
    again = n.notice_id("uid-1", lift, notice)
    assert len({first, lift, again}) == 3
    assert n.notice_id("uid-2", "", notice) != first


def test_signature_is_hmac_sha256_of_timestamp_dot_body() -> None:
    key, body, ts = b"k3y", b'{"a":1}', 1_790_000_000
    expected = hmac.new(key, b"1790000000." + body, hashlib.sha256).hexdigest()
    assert n.signature(key, ts, body) == f"sha256={expected}"
    headers = {n.TIMESTAMP_HEADER: str(ts), n.SIGNATURE_HEADER: n.signature(key, ts, body)}
    at = datetime.fromtimestamp(ts, UTC)
    assert n.verify(key, headers, body, at)
    assert not n.verify(b"other", headers, body, at)
    assert not n.verify(key, headers, body + b" ", at)
    assert not n.verify(key, headers, body, at + timedelta(minutes=6))  # a replay, too late
    assert not n.verify(key, {n.SIGNATURE_HEADER: headers[n.SIGNATURE_HEADER]}, body, at)


def test_backoff_doubles_up_to_the_cap() -> None:
    base = timedelta(seconds=10)
    assert [n.retry_delay(a, base).total_seconds() for a in (1, 2, 3)] == [10, 20, 40]
    assert n.retry_delay(50, base) == timedelta(hours=1)


def test_subject_is_short_ascii() -> None:
    doc = n.build_notice(CONTEXT, "x", NONE, n.NoticeState(Level.NOTICE, Level.NOTICE), None, NOW)
    text = n.subject({**doc, "tenant": "é" * 200})
    assert len(text) <= 100 and text.isascii()


def test_contacts_parse_at_the_edge() -> None:
    body = {
        "metadata": {"name": "p"},
        "spec": {
            "tenant": "acme",
            "ladder": "l",
            "namespaces": {"names": ["a"]},
            "contacts": {"webhookUrl": "https://x.example/h", "emails": ["a@x.example"]},
        },
    }
    policy = TenantPolicy.from_resource(body)
    assert policy.contacts == Contacts("https://x.example/h", None, ("a@x.example",))
    assert policy.contacts.channels == ("webhook",)
    del body["spec"]["contacts"]
    assert TenantPolicy.from_resource(body).contacts.channels == ()
