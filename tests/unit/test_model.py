"""Parsing of our custom resources from the dicts the API server returns."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tenant_enforcer.model.duration import format_duration, format_time, parse_duration, parse_time
from tenant_enforcer.model.ladder import (
    DEFAULT_NOTICE_PERIOD,
    DeprovisionSettings,
    Escalation,
    FirewallSettings,
    Ladder,
    Mode,
    Rule,
    ScaleDownSettings,
)
from tenant_enforcer.model.levels import Level, Severity
from tenant_enforcer.model.policy import Hold, LabelSelector, TenantPolicy
from tenant_enforcer.model.verdict import Evidence, Outcome, Verdict

# --- durations and times -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("0", timedelta(0)),
        ("0s", timedelta(0)),
        ("90s", timedelta(seconds=90)),
        ("15m", timedelta(minutes=15)),
        ("24h", timedelta(hours=24)),
        ("1h30m", timedelta(hours=1, minutes=30)),
        ("1h30m15s", timedelta(hours=1, minutes=30, seconds=15)),
        ("1.5h", timedelta(hours=1, minutes=30)),
        ("500ms", timedelta(milliseconds=500)),
        ("720h", timedelta(days=30)),
    ],
)
def test_parse_duration(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize("text", ["1 day", "-1h", "1d", "", "h", "1h ", "1H", "30", "1h-30m", "P1D"])
def test_parse_duration_rejects(text: str) -> None:
    with pytest.raises(ValueError, match="invalid duration"):
        parse_duration(text)


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (timedelta(0), "0s"),
        (timedelta(seconds=90), "1m30s"),
        (timedelta(hours=1, minutes=30), "1h30m"),
        (timedelta(days=2), "48h"),
    ],
)
def test_format_duration_round_trips(value: timedelta, text: str) -> None:
    assert format_duration(value) == text
    assert parse_duration(text) == value


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2024-05-01T12:00:00Z", datetime(2024, 5, 1, 12, tzinfo=UTC)),
        ("2024-05-01T12:00:00.250000Z", datetime(2024, 5, 1, 12, 0, 0, 250000, tzinfo=UTC)),
        ("2024-05-01T14:00:00+02:00", datetime(2024, 5, 1, 12, tzinfo=UTC)),
        ("2024-05-01T12:00:00", datetime(2024, 5, 1, 12, tzinfo=UTC)),  # naive: taken as UTC
    ],
)
def test_parse_time(text: str, expected: datetime) -> None:
    parsed = parse_time(text)
    assert parsed == expected
    assert parsed.tzinfo is not None
    assert format_time(parsed) == "2024-05-01T12:00:00Z"


# --- levels --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "level", "disruptive"),
    [
        ("None", Level.NONE, False),
        ("Notice", Level.NOTICE, False),
        ("ScaleDown", Level.SCALE_DOWN, True),
        ("Firewall", Level.FIREWALL, True),
        ("Deprovision", Level.DEPROVISION, True),
    ],
)
def test_level_parse(name: str, level: Level, disruptive: bool) -> None:
    assert Level.parse(name) is level
    assert level.api_name == name
    assert level.disruptive is disruptive


@pytest.mark.parametrize("name", ["firewall", "Scaledown", "", "Quarantine"])
def test_level_parse_rejects(name: str) -> None:
    with pytest.raises(ValueError, match="unknown level"):
        Level.parse(name)


def test_levels_are_ordered() -> None:
    assert sorted(Level, reverse=True) == [
        Level.DEPROVISION,
        Level.FIREWALL,
        Level.SCALE_DOWN,
        Level.NOTICE,
        Level.NONE,
    ]


@pytest.mark.parametrize(
    ("name", "severity"),
    [
        ("low", Severity.LOW),
        ("medium", Severity.MEDIUM),
        ("high", Severity.HIGH),
        ("critical", Severity.CRITICAL),
    ],
)
def test_severity_parse(name: str, severity: Severity) -> None:
    assert Severity.parse(name) is severity
    assert severity.api_name == name


def test_severity_parse_rejects() -> None:
    with pytest.raises(ValueError, match="unknown severity"):
        Severity.parse("severe")


# --- EnforcementLadder ---------------------------------------------------------------------------

LADDER_BODY: dict[str, Any] = {
    "apiVersion": "tenant-enforcer.io/v1alpha1",
    "kind": "EnforcementLadder",
    "metadata": {"name": "default", "generation": 3, "uid": "4c1c2f0e-0000-4000-8000-000000000001"},
    "spec": {
        "mode": "DryRun",
        "noticePeriod": "12h",
        "rules": [
            {"name": "spam", "categories": ["spam"], "level": "Notice"},
            {
                "name": "violence",
                "categories": ["violence", "extremism"],
                "minSeverity": "high",
                "minConfidence": 0.8,
                "level": "Firewall",
                "noticePeriod": "1h30m",
            },
            {"name": "csam", "categories": ["csam"], "level": "Deprovision", "noticePeriod": "0"},
        ],
        "escalations": [
            {"from": "Notice", "after": "168h", "to": "ScaleDown"},
            {"from": "Firewall", "after": "720h", "to": "Deprovision"},
        ],
        "approvalRequired": ["Firewall", "Deprovision"],
        "levelSettings": {
            "scaleDown": {"replicas": 1},
            "firewall": {"allowDNS": False, "allowIngressFromNamespaces": ["monitoring", "ingress-nginx"]},
            "deprovision": {
                "snapshotSecretData": True,
                "pvcRetention": "168h",
                "deletePVCsAfterRetention": False,
                "bucketRetention": "2160h",
                "deleteBucketsAfterRetention": True,
            },
        },
    },
}


def test_ladder_from_resource() -> None:
    assert Ladder.from_resource(LADDER_BODY) == Ladder(
        name="default",
        rules=(
            Rule("spam", Level.NOTICE, frozenset({"spam"})),
            Rule(
                "violence",
                Level.FIREWALL,
                frozenset({"violence", "extremism"}),
                Severity.HIGH,
                0.8,
                timedelta(hours=1, minutes=30),
            ),
            Rule("csam", Level.DEPROVISION, frozenset({"csam"}), notice_period=timedelta(0)),
        ),
        mode=Mode.DRY_RUN,
        notice_period=timedelta(hours=12),
        escalations=(
            Escalation(Level.NOTICE, timedelta(days=7), Level.SCALE_DOWN),
            Escalation(Level.FIREWALL, timedelta(days=30), Level.DEPROVISION),
        ),
        approval_required=frozenset({Level.FIREWALL, Level.DEPROVISION}),
        scale_down=ScaleDownSettings(replicas=1),
        firewall=FirewallSettings(
            allow_dns=False, allow_ingress_from_namespaces=("monitoring", "ingress-nginx")
        ),
        deprovision=DeprovisionSettings(
            snapshot_secret_data=True,
            pvc_retention=timedelta(days=7),
            delete_pvcs_after_retention=False,
            bucket_retention=timedelta(days=90),
            delete_buckets_after_retention=True,
        ),
    )


def test_ladder_defaults() -> None:
    ladder = Ladder.from_resource(
        {"metadata": {"name": "minimal"}, "spec": {"rules": [{"name": "r", "level": "Notice"}]}}
    )
    assert ladder == Ladder(name="minimal", rules=(Rule("r", Level.NOTICE),))
    assert ladder.mode is Mode.ENFORCE
    assert ladder.notice_period == DEFAULT_NOTICE_PERIOD == timedelta(hours=24)
    assert ladder.approval_required == frozenset({Level.DEPROVISION})
    assert ladder.deprovision.pvc_retention == timedelta(days=30)
    assert ladder.deprovision.bucket_retention == timedelta(days=30)
    assert ladder.deprovision.delete_buckets_after_retention is False  # buckets are kept unless said
    assert ladder.rules[0].categories == frozenset()  # any category
    assert (ladder.rules[0].min_severity, ladder.rules[0].min_confidence) == (Severity.LOW, 0.0)
    assert ladder.rules[0].notice_period is None  # the ladder's


def test_ladder_without_approvals() -> None:
    body = {"metadata": {"name": "x"}, "spec": {"rules": [], "approvalRequired": []}}
    assert Ladder.from_resource(body).approval_required == frozenset()


def test_ladder_levels() -> None:
    assert Ladder.from_resource(LADDER_BODY).levels == frozenset(
        {Level.NOTICE, Level.SCALE_DOWN, Level.FIREWALL, Level.DEPROVISION}
    )


@pytest.mark.parametrize(
    "spec",
    [
        {"rules": [{"name": "r", "level": "Quarantine"}]},
        {"rules": [{"name": "r", "level": "Notice", "minSeverity": "severe"}]},
        {"rules": [{"name": "r", "level": "Notice", "noticePeriod": "1 day"}]},
        {"rules": [], "noticePeriod": "-1h"},
        {"rules": [], "mode": "Audit"},
        {"rules": [], "escalations": [{"from": "Notice", "after": "7d", "to": "ScaleDown"}]},
        {"rules": [], "approvalRequired": ["deprovision"]},
    ],
)
def test_ladder_rejects(spec: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        Ladder.from_resource({"metadata": {"name": "bad"}, "spec": spec})


# --- ModerationVerdict ---------------------------------------------------------------------------


def test_verdict_from_resource() -> None:
    body = {
        "apiVersion": "tenant-enforcer.io/v1alpha1",
        "kind": "ModerationVerdict",
        "metadata": {"name": "mv-2024-0501-7f3a", "creationTimestamp": "2024-05-01T12:00:05Z"},
        "spec": {
            "tenant": "acme",
            "category": "phishing",
            "severity": "high",
            "confidence": 0.93,
            "outcome": "violation",
            "issuer": "system:serviceaccount:moderation:classifier",
            "issuedAt": "2024-05-01T12:00:00Z",
            "expiresAt": "2024-08-01T00:00:00Z",
            "supersedes": ["mv-2024-0430-1b2c"],
            "evidence": [
                {
                    "uri": "s3://evidence/acme/7f3a.json",
                    "sha256": "ab" * 32,
                    "description": "login page clone",
                },
                {"uri": "https://moderation.example/cases/7f3a"},
            ],
        },
    }
    assert Verdict.from_resource(body) == Verdict(
        name="mv-2024-0501-7f3a",
        tenant="acme",
        category="phishing",
        severity=Severity.HIGH,
        confidence=0.93,
        outcome=Outcome.VIOLATION,
        issuer="system:serviceaccount:moderation:classifier",
        issued_at=datetime(2024, 5, 1, 12, tzinfo=UTC),
        expires_at=datetime(2024, 8, 1, tzinfo=UTC),
        supersedes=("mv-2024-0430-1b2c",),
        evidence=(
            Evidence("s3://evidence/acme/7f3a.json", "ab" * 32, "login page clone"),
            Evidence("https://moderation.example/cases/7f3a"),
        ),
    )


def test_verdict_defaults() -> None:
    body = {
        "metadata": {"name": "mv-1"},
        "spec": {
            "tenant": "acme",
            "category": "spam",
            "severity": "low",
            "issuer": "alice",
            "issuedAt": "2024-05-01T12:00:00Z",
        },
    }
    v = Verdict.from_resource(body)
    assert (v.confidence, v.outcome, v.expires_at, v.supersedes, v.evidence) == (
        1.0,
        Outcome.VIOLATION,
        None,
        (),
        (),
    )


def test_cleared_verdict() -> None:
    body = {
        "metadata": {"name": "mv-2"},
        "spec": {
            "tenant": "acme",
            "category": "spam",
            "severity": "low",
            "issuer": "bob",
            "issuedAt": "2024-05-02T00:00:00Z",
            "outcome": "cleared",
        },
    }
    assert Verdict.from_resource(body).outcome is Outcome.CLEARED


@pytest.mark.parametrize(
    ("field", "value"), [("severity", "severe"), ("outcome", "dismissed"), ("issuedAt", "yesterday")]
)
def test_verdict_rejects(field: str, value: str) -> None:
    spec = {
        "tenant": "acme",
        "category": "spam",
        "severity": "low",
        "issuer": "a",
        "issuedAt": "2024-05-01T00:00:00Z",
    }
    with pytest.raises(ValueError):
        Verdict.from_resource({"metadata": {"name": "mv"}, "spec": {**spec, field: value}})


# --- TenantPolicy and label selectors ------------------------------------------------------------

LABELS = {"tenant": "acme", "tier": "gold", "env": "prod"}


@pytest.mark.parametrize(
    ("selector", "matches"),
    [
        ({}, True),  # empty selector: everything
        ({"matchLabels": {"tenant": "acme"}}, True),
        ({"matchLabels": {"tenant": "acme", "env": "dev"}}, False),
        ({"matchLabels": {"team": "x"}}, False),
        ({"matchExpressions": [{"key": "tier", "operator": "In", "values": ["gold", "silver"]}]}, True),
        ({"matchExpressions": [{"key": "tier", "operator": "In", "values": ["bronze"]}]}, False),
        ({"matchExpressions": [{"key": "team", "operator": "In", "values": ["x"]}]}, False),
        ({"matchExpressions": [{"key": "tier", "operator": "NotIn", "values": ["bronze"]}]}, True),
        ({"matchExpressions": [{"key": "tier", "operator": "NotIn", "values": ["gold"]}]}, False),
        ({"matchExpressions": [{"key": "team", "operator": "NotIn", "values": ["x"]}]}, True),  # absent key
        ({"matchExpressions": [{"key": "env", "operator": "Exists"}]}, True),
        ({"matchExpressions": [{"key": "team", "operator": "Exists"}]}, False),
        ({"matchExpressions": [{"key": "team", "operator": "DoesNotExist"}]}, True),
        ({"matchExpressions": [{"key": "env", "operator": "DoesNotExist"}]}, False),
        (
            {"matchExpressions": [{"key": "env", "operator": "Gt", "values": ["1"]}]},
            False,
        ),  # unknown: no match
        (
            {
                "matchLabels": {"tenant": "acme"},
                "matchExpressions": [
                    {"key": "env", "operator": "In", "values": ["prod"]},
                    {"key": "team", "operator": "DoesNotExist"},
                ],
            },
            True,
        ),
        (
            {
                "matchLabels": {"tenant": "acme"},
                "matchExpressions": [{"key": "env", "operator": "In", "values": ["dev"]}],
            },
            False,
        ),
    ],
)
def test_label_selector(selector: dict[str, Any], matches: bool) -> None:
    assert LabelSelector.from_spec(selector).matches(LABELS) is matches


POLICY_BODY: dict[str, Any] = {
    "apiVersion": "tenant-enforcer.io/v1alpha1",
    "kind": "TenantPolicy",
    "metadata": {"name": "acme", "generation": 4, "creationTimestamp": "2024-04-01T09:30:00Z"},
    "spec": {
        "tenant": "acme",
        "ladder": "default",
        "namespaces": {"names": ["acme-web", "acme-db"], "selector": {"matchLabels": {"tenant": "acme"}}},
        "hold": {"until": "2024-05-08T00:00:00Z", "reason": "appeal #42", "maxLevel": "ScaleDown"},
    },
}


def test_policy_from_resource() -> None:
    assert TenantPolicy.from_resource(POLICY_BODY) == TenantPolicy(
        name="acme",
        tenant="acme",
        ladder="default",
        namespace_names=("acme-web", "acme-db"),
        namespace_selector=LabelSelector(match_labels=(("tenant", "acme"),)),
        hold=Hold(datetime(2024, 5, 8, tzinfo=UTC), "appeal #42", Level.SCALE_DOWN),
        generation=4,
        created_at=datetime(2024, 4, 1, 9, 30, tzinfo=UTC),
    )


def test_policy_defaults() -> None:
    body = {
        "metadata": {"name": "p"},
        "spec": {"tenant": "t", "ladder": "default", "hold": {"until": "2024-05-08T00:00:00Z"}},
    }
    policy = TenantPolicy.from_resource(body)
    assert (policy.namespace_names, policy.namespace_selector, policy.generation, policy.created_at) == (
        (),
        None,
        0,
        None,
    )
    assert policy.hold == Hold(datetime(2024, 5, 8, tzinfo=UTC), "", Level.NOTICE)


@pytest.mark.parametrize(
    ("namespace", "labels", "owned"),
    [
        ("acme-web", {}, True),  # by name
        ("acme-batch", {"tenant": "acme"}, True),  # by selector
        ("globex-web", {"tenant": "globex"}, False),
        ("acme-tmp", {}, False),
    ],
)
def test_policy_owns(namespace: str, labels: dict[str, str], owned: bool) -> None:
    assert TenantPolicy.from_resource(POLICY_BODY).owns(namespace, labels) is owned


def test_policy_with_names_only_owns_nothing_else() -> None:
    body = {
        "metadata": {"name": "p"},
        "spec": {"tenant": "t", "ladder": "l", "namespaces": {"names": ["t-1"]}},
    }
    policy = TenantPolicy.from_resource(body)
    assert policy.owns("t-1", {})
    assert not policy.owns("t-2", {"tenant": "t"})
