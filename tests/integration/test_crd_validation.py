"""The CRDs' schemas and CEL rules, checked by a real kube-apiserver.

Every invalid object must be refused with 422, an error naming the offending field, and the
human message of the rule that caught it. Every example under examples/ must be accepted.
The pure tests at the bottom need no cluster: every schema property carries a description
(so `kubectl explain` helps), and the duration rules use the model's DURATION_PATTERN.
"""

from __future__ import annotations

import copy
import json
import re
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from tenant_enforcer.model.duration import DURATION_PATTERN, parse_duration
from tenant_enforcer.model.ladder import Ladder
from tenant_enforcer.model.policy import Approval, TenantPolicy
from tenant_enforcer.model.verdict import Verdict

ROOT = Path(__file__).resolve().parents[2]
CRD_DIR = ROOT / "crds"
EXAMPLES_DIR = ROOT / "examples"

GROUP = "tenant-enforcer.io"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
PLURALS = {
    "TenantPolicy": "tenantpolicies",
    "ModerationVerdict": "moderationverdicts",
    "EnforcementLadder": "enforcementladders",
    "EnforcementApproval": "enforcementapprovals",
}
# The test's own identity (the admin kubeconfig): the approval policy binds spec.approver to it.
ADMIN_USER = "admin"
DURATION_MESSAGE = "must be a duration such as 30s, 15m, 24h or 1h30m"


def unique_name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


# --- valid objects, mutated by each case ------------------------------------------------------


def valid_policy(name: str) -> dict[str, Any]:
    return {
        "apiVersion": API_VERSION,
        "kind": "TenantPolicy",
        "metadata": {"name": name},
        "spec": {
            "tenant": "acme",
            "ladder": "default",
            "namespaces": {"names": ["acme-web"]},
            "aws": {
                "accountId": "123456789012",
                "regions": ["us-east-1"],
                "tagKey": "tenant",
                "tagValue": "acme",
            },
            "contacts": {"webhookUrl": "https://hooks.acme.example/notices"},
            "hold": {"until": "2026-12-01T00:00:00Z", "reason": "appeal pending"},
        },
    }


def valid_verdict(name: str) -> dict[str, Any]:
    return {
        "apiVersion": API_VERSION,
        "kind": "ModerationVerdict",
        "metadata": {"name": name},
        "spec": {
            "tenant": "acme",
            "category": "spam",
            "severity": "low",
            "confidence": 0.9,
            "issuer": "trust-and-safety@hoster.example",
            "issuedAt": "2026-11-27T00:00:00Z",
            "expiresAt": "2026-12-27T00:00:00Z",
            "evidence": [{"uri": "s3://evidence/acme/1", "sha256": "a" * 64}],
        },
    }


def valid_ladder(name: str) -> dict[str, Any]:
    return {
        "apiVersion": API_VERSION,
        "kind": "EnforcementLadder",
        "metadata": {"name": name},
        "spec": {
            "noticePeriod": "24h",
            "rules": [
                {"name": "spam", "categories": ["spam"], "level": "Notice", "noticePeriod": "0s"},
                {"name": "fraud", "categories": ["fraud"], "minSeverity": "medium", "level": "ScaleDown"},
            ],
            "escalations": [{"from": "ScaleDown", "after": "72h", "to": "Firewall"}],
            "approvalRequired": ["Deprovision"],
            "levelSettings": {"scaleDown": {"replicas": 0}, "deprovision": {"pvcRetention": "720h"}},
        },
    }


def valid_approval(name: str) -> dict[str, Any]:
    return {
        "apiVersion": API_VERSION,
        "kind": "EnforcementApproval",
        "metadata": {"name": name},
        "spec": {
            "tenant": "acme",
            "level": "Deprovision",
            "verdicts": ["acme-terror-critical"],
            "approver": ADMIN_USER,
            "reason": "legal reviewed the evidence",
        },
    }


VALID = {
    "TenantPolicy": valid_policy,
    "ModerationVerdict": valid_verdict,
    "EnforcementLadder": valid_ladder,
    "EnforcementApproval": valid_approval,
}


@dataclass(frozen=True)
class Invalid:
    id: str
    kind: str
    mutate: Callable[[dict[str, Any]], None]
    field: str  # the field path the server's error must name
    fragment: str  # the human message (or server wording) it must contain


def _set(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    """Set a dotted path (list indices as numbers) in the body."""

    def mutate(body: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        node: Any = body
        for key in parents:
            node = node[int(key)] if key.isdigit() else node.setdefault(key, {})
        node[int(last) if last.isdigit() else last] = value

    return mutate


def _delete(path: str) -> Callable[[dict[str, Any]], None]:
    def mutate(body: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        node: Any = body
        for key in parents:
            node = node[int(key)] if key.isdigit() else node[key]
        del node[last]

    return mutate


def _supersede_self(body: dict[str, Any]) -> None:
    body["spec"]["supersedes"] = ["some-older-verdict", body["metadata"]["name"]]


INVALID = [
    # ModerationVerdict
    Invalid(
        "verdict-missing-tenant", "ModerationVerdict", _delete("spec.tenant"), "spec.tenant", "Required value"
    ),
    Invalid(
        "verdict-unknown-severity",
        "ModerationVerdict",
        _set("spec.severity", "extreme"),
        "spec.severity",
        'Unsupported value: "extreme"',
    ),
    Invalid(
        "verdict-confidence-above-1",
        "ModerationVerdict",
        _set("spec.confidence", 1.5),
        "spec.confidence",
        "less than or equal to 1",
    ),
    Invalid(
        "verdict-unknown-outcome",
        "ModerationVerdict",
        _set("spec.outcome", "overturned"),
        "spec.outcome",
        'Unsupported value: "overturned"',
    ),
    Invalid(
        "verdict-expires-before-issued",
        "ModerationVerdict",
        _set("spec.expiresAt", "2026-11-26T23:59:59Z"),
        "spec.expiresAt",
        "expiresAt must be after issuedAt",
    ),
    Invalid(
        "verdict-expires-before-issued-other-offset",
        "ModerationVerdict",
        _set("spec.expiresAt", "2026-11-27T00:30:00+01:00"),
        "spec.expiresAt",
        "expiresAt must be after issuedAt",
    ),
    Invalid(
        "verdict-supersedes-itself",
        "ModerationVerdict",
        _supersede_self,
        "spec.supersedes",
        "a verdict may not supersede itself",
    ),
    Invalid(
        "verdict-bad-sha256",
        "ModerationVerdict",
        _set("spec.evidence.0.sha256", "A" * 64),
        "spec.evidence[0].sha256",
        "should match '^[a-f0-9]{64}$'",
    ),
    Invalid(
        "verdict-evidence-without-uri",
        "ModerationVerdict",
        _delete("spec.evidence.0.uri"),
        "spec.evidence[0].uri",
        "Required value",
    ),
    Invalid(
        "verdict-bad-category",
        "ModerationVerdict",
        _set("spec.category", "Spam!"),
        "spec.category",
        "should match",
    ),
    Invalid(
        "verdict-issued-at-not-a-time",
        "ModerationVerdict",
        _set("spec.issuedAt", "yesterday"),
        "spec.issuedAt",
        "date-time",
    ),
    Invalid(
        "verdict-tenant-uppercase",
        "ModerationVerdict",
        _set("spec.tenant", "Acme"),
        "spec.tenant",
        "should match",
    ),
    # TenantPolicy
    Invalid(
        "policy-tenant-uppercase", "TenantPolicy", _set("spec.tenant", "ACME"), "spec.tenant", "should match"
    ),
    Invalid("policy-missing-ladder", "TenantPolicy", _delete("spec.ladder"), "spec.ladder", "Required value"),
    Invalid(
        "policy-names-kube-system",
        "TenantPolicy",
        _set("spec.namespaces.names", ["acme-web", "kube-system"]),
        "spec.namespaces.names",
        "these namespaces are protected",
    ),
    Invalid(
        "policy-no-names-no-selector",
        "TenantPolicy",
        _set("spec.namespaces", {}),
        "spec.namespaces",
        "at least one of namespaces.names or namespaces.selector must be given",
    ),
    Invalid(
        "policy-empty-names-no-selector",
        "TenantPolicy",
        _set("spec.namespaces", {"names": []}),
        "spec.namespaces",
        "at least one of namespaces.names or namespaces.selector must be given",
    ),
    Invalid(
        "policy-empty-selector",
        "TenantPolicy",
        _set("spec.namespaces", {"selector": {}}),
        "spec.namespaces.selector",
        "an empty selector would select every namespace",
    ),
    Invalid(
        "policy-selector-in-without-values",
        "TenantPolicy",
        _set("spec.namespaces.selector", {"matchExpressions": [{"key": "tenant", "operator": "In"}]}),
        "spec.namespaces.selector.matchExpressions[0].values",
        "values must be non-empty for operators In",
    ),
    Invalid(
        "policy-selector-unknown-operator",
        "TenantPolicy",
        _set("spec.namespaces.selector", {"matchExpressions": [{"key": "tenant", "operator": "Like"}]}),
        "spec.namespaces.selector.matchExpressions[0].operator",
        'Unsupported value: "Like"',
    ),
    Invalid(
        "policy-hold-deprovision",
        "TenantPolicy",
        _set("spec.hold.maxLevel", "Deprovision"),
        "spec.hold.maxLevel",
        'Unsupported value: "Deprovision"',
    ),
    Invalid(
        "policy-hold-without-reason",
        "TenantPolicy",
        _delete("spec.hold.reason"),
        "spec.hold.reason",
        "Required value",
    ),
    Invalid(
        "policy-tag-key-without-value",
        "TenantPolicy",
        _delete("spec.aws.tagValue"),
        "spec.aws.tagValue",
        "aws.tagKey and aws.tagValue must be set together",
    ),
    Invalid(
        "policy-tag-value-without-key",
        "TenantPolicy",
        _delete("spec.aws.tagKey"),
        "spec.aws.tagValue",
        "aws.tagKey and aws.tagValue must be set together",
    ),
    Invalid(
        "policy-short-account-id",
        "TenantPolicy",
        _set("spec.aws.accountId", "12345"),
        "spec.aws.accountId",
        "should match",
    ),
    Invalid(
        "policy-bad-role-arn",
        "TenantPolicy",
        _set("spec.aws.roleArn", "arn:aws:iam::123:user/bob"),
        "spec.aws.roleArn",
        "should match",
    ),
    Invalid(
        "policy-bad-region",
        "TenantPolicy",
        _set("spec.aws.regions", ["US-EAST-1"]),
        "spec.aws.regions[0]",
        "should match",
    ),
    Invalid(
        "policy-webhook-not-http",
        "TenantPolicy",
        _set("spec.contacts.webhookUrl", "ftp://hooks.example/x"),
        "spec.contacts.webhookUrl",
        "webhookUrl must be an absolute URL starting with https:// or http://",
    ),
    Invalid(
        "policy-webhook-relative",
        "TenantPolicy",
        _set("spec.contacts.webhookUrl", "/notices"),
        "spec.contacts.webhookUrl",
        "webhookUrl must be an absolute URL",
    ),
    Invalid(
        "policy-bad-sns-arn",
        "TenantPolicy",
        _set("spec.contacts.snsTopicArn", "arn:aws:sqs:us-east-1:1:q"),
        "spec.contacts.snsTopicArn",
        "should match",
    ),
    # EnforcementLadder
    Invalid("ladder-no-rules", "EnforcementLadder", _set("spec.rules", []), "spec.rules", "at least 1 items"),
    Invalid(
        "ladder-duration-words",
        "EnforcementLadder",
        _set("spec.noticePeriod", "1 day"),
        "spec.noticePeriod",
        DURATION_MESSAGE,
    ),
    Invalid(
        "ladder-duration-negative",
        "EnforcementLadder",
        _set("spec.rules.0.noticePeriod", "-1h"),
        "spec.rules[0].noticePeriod",
        DURATION_MESSAGE,
    ),
    Invalid(
        "ladder-duration-days",
        "EnforcementLadder",
        _set("spec.levelSettings.deprovision.pvcRetention", "30d"),
        "spec.levelSettings.deprovision.pvcRetention",
        DURATION_MESSAGE,
    ),
    Invalid(
        "ladder-bucket-retention-days",
        "EnforcementLadder",
        _set("spec.levelSettings.deprovision.bucketRetention", "90d"),
        "spec.levelSettings.deprovision.bucketRetention",
        DURATION_MESSAGE,
    ),
    Invalid(
        "ladder-escalation-after-words",
        "EnforcementLadder",
        _set("spec.escalations.0.after", "3 days"),
        "spec.escalations[0].after",
        DURATION_MESSAGE,
    ),
    Invalid(
        "ladder-escalation-downwards",
        "EnforcementLadder",
        _set("spec.escalations", [{"from": "Firewall", "after": "1h", "to": "ScaleDown"}]),
        "spec.escalations[0].to",
        "to must be a higher level than from",
    ),
    Invalid(
        "ladder-escalation-to-same",
        "EnforcementLadder",
        _set("spec.escalations", [{"from": "Firewall", "after": "1h", "to": "Firewall"}]),
        "spec.escalations[0].to",
        "to must be a higher level than from",
    ),
    Invalid(
        "ladder-two-escalations-from-one-level",
        "EnforcementLadder",
        _set(
            "spec.escalations",
            [
                {"from": "Notice", "after": "1h", "to": "ScaleDown"},
                {"from": "Notice", "after": "2h", "to": "Firewall"},
            ],
        ),
        "spec.escalations",
        "at most one escalation per from level",
    ),
    Invalid(
        "ladder-unknown-level",
        "EnforcementLadder",
        _set("spec.rules.0.level", "Suspend"),
        "spec.rules[0].level",
        'Unsupported value: "Suspend"',
    ),
    Invalid(
        "ladder-rule-without-level",
        "EnforcementLadder",
        _delete("spec.rules.0.level"),
        "spec.rules[0].level",
        "Required value",
    ),
    Invalid(
        "ladder-duplicate-rule-names",
        "EnforcementLadder",
        _set("spec.rules.1.name", "spam"),
        "spec.rules[1]",
        "Duplicate value",
    ),
    Invalid(
        "ladder-negative-confidence",
        "EnforcementLadder",
        _set("spec.rules.0.minConfidence", -0.1),
        "spec.rules[0].minConfidence",
        "greater than or equal to 0",
    ),
    Invalid(
        "ladder-unknown-severity",
        "EnforcementLadder",
        _set("spec.rules.0.minSeverity", "severe"),
        "spec.rules[0].minSeverity",
        'Unsupported value: "severe"',
    ),
    Invalid(
        "ladder-approval-for-notice",
        "EnforcementLadder",
        _set("spec.approvalRequired", ["Notice"]),
        "spec.approvalRequired[0]",
        'Unsupported value: "Notice"',
    ),
    Invalid(
        "ladder-unknown-mode",
        "EnforcementLadder",
        _set("spec.mode", "Audit"),
        "spec.mode",
        'Unsupported value: "Audit"',
    ),
    Invalid(
        "ladder-negative-replicas",
        "EnforcementLadder",
        _set("spec.levelSettings.scaleDown.replicas", -1),
        "spec.levelSettings.scaleDown.replicas",
        "greater than or equal to 0",
    ),
    # EnforcementApproval (the schema answers before the approval policy is asked)
    Invalid(
        "approval-level-notice",
        "EnforcementApproval",
        _set("spec.level", "Notice"),
        "spec.level",
        'Unsupported value: "Notice"',
    ),
    Invalid(
        "approval-unknown-level",
        "EnforcementApproval",
        _set("spec.level", "Suspend"),
        "spec.level",
        'Unsupported value: "Suspend"',
    ),
    Invalid(
        "approval-no-verdicts",
        "EnforcementApproval",
        _set("spec.verdicts", []),
        "spec.verdicts",
        "should have at least 1 items",
    ),
    Invalid(
        "approval-missing-verdicts",
        "EnforcementApproval",
        _delete("spec.verdicts"),
        "spec.verdicts",
        "Required value",
    ),
    Invalid(
        "approval-bad-verdict-name",
        "EnforcementApproval",
        _set("spec.verdicts", ["Not A Name"]),
        "spec.verdicts[0]",
        "should match",
    ),
    Invalid(
        "approval-missing-reason",
        "EnforcementApproval",
        _delete("spec.reason"),
        "spec.reason",
        "Required value",
    ),
    Invalid(
        "approval-reason-too-long",
        "EnforcementApproval",
        _set("spec.reason", "x" * 2049),
        "spec.reason",
        "may not be more than 2048 bytes",
    ),
    Invalid(
        "approval-missing-approver",
        "EnforcementApproval",
        _delete("spec.approver"),
        "spec.approver",
        "Required value",
    ),
    Invalid(
        "approval-missing-tenant",
        "EnforcementApproval",
        _delete("spec.tenant"),
        "spec.tenant",
        "Required value",
    ),
]


def _message(exc: Any) -> str:
    try:
        return str(json.loads(exc.body)["message"])
    except (TypeError, ValueError, KeyError):
        return str(exc.body)


# --- against the API server --------------------------------------------------------------------


@pytest.fixture
def custom(api: Any, crds: None) -> Any:
    from kubernetes import client

    return client.CustomObjectsApi(api)


@pytest.mark.cluster
@pytest.mark.parametrize("kind", sorted(VALID))
def test_valid_baseline_is_accepted(custom: Any, kind: str) -> None:
    """The objects the invalid cases start from are themselves valid (so each case tests one thing)."""
    body = VALID[kind](unique_name("valid"))
    custom.create_cluster_custom_object(
        GROUP, VERSION, PLURALS[kind], body, dry_run="All", field_validation="Strict"
    )


@pytest.mark.cluster
@pytest.mark.parametrize("case", INVALID, ids=[c.id for c in INVALID])
def test_invalid_object_is_refused(custom: Any, case: Invalid) -> None:
    from kubernetes.client.exceptions import ApiException

    body = VALID[case.kind](unique_name(case.kind.lower()))
    case.mutate(body)
    with pytest.raises(ApiException) as raised:
        custom.create_cluster_custom_object(GROUP, VERSION, PLURALS[case.kind], body)
    message = _message(raised.value)
    assert raised.value.status == 422, message
    assert f"{case.field}:" in message, f"error does not name {case.field}: {message}"
    assert case.fragment in message, f"error lacks {case.fragment!r}: {message}"


@pytest.mark.cluster
def test_verdict_spec_is_immutable_but_status_and_labels_are_not(custom: Any) -> None:
    from kubernetes.client.exceptions import ApiException

    plural = PLURALS["ModerationVerdict"]
    name = unique_name("immutable")
    created = custom.create_cluster_custom_object(GROUP, VERSION, plural, valid_verdict(name))
    assert created["spec"]["outcome"] == "violation"  # defaulted
    merge = "application/merge-patch+json"
    try:
        with pytest.raises(ApiException) as raised:
            custom.patch_cluster_custom_object(
                GROUP, VERSION, plural, name, {"spec": {"severity": "critical"}}, _content_type=merge
            )
        message = _message(raised.value)
        assert raised.value.status == 422, message
        assert (
            "spec:" in message and "spec is immutable: file a new verdict that supersedes this one" in message
        )

        labelled = custom.patch_cluster_custom_object(
            GROUP, VERSION, plural, name, {"metadata": {"labels": {"reviewed": "yes"}}}, _content_type=merge
        )
        assert labelled["metadata"]["labels"] == {"reviewed": "yes"}
        assert labelled["spec"]["severity"] == "low"

        status = {"status": {"state": "Active", "reason": "InForce", "observedGeneration": 1}}
        patched = custom.patch_cluster_custom_object_status(
            GROUP, VERSION, plural, name, status, _content_type=merge
        )
        assert patched["status"]["state"] == "Active"

        with pytest.raises(ApiException) as raised:
            custom.patch_cluster_custom_object_status(
                GROUP, VERSION, plural, name, {"status": {"state": "Revoked"}}, _content_type=merge
            )
        assert raised.value.status == 422 and "status.state:" in _message(raised.value)
    finally:
        custom.delete_cluster_custom_object(GROUP, VERSION, plural, name)


@pytest.mark.cluster
def test_approval_spec_is_immutable_but_labels_are_not(custom: Any) -> None:
    from kubernetes.client.exceptions import ApiException

    plural = PLURALS["EnforcementApproval"]
    name = unique_name("approval")
    custom.create_cluster_custom_object(GROUP, VERSION, plural, valid_approval(name))
    merge = "application/merge-patch+json"
    try:
        for change in ({"level": "ScaleDown"}, {"verdicts": ["another-verdict"]}, {"approver": "bob"}):
            with pytest.raises(ApiException) as raised:
                custom.patch_cluster_custom_object(
                    GROUP, VERSION, plural, name, {"spec": change}, _content_type=merge
                )
            message = _message(raised.value)
            assert raised.value.status == 422, message
            assert "spec:" in message, message
            assert "spec is immutable: delete this approval and create a new one" in message, message
        labelled = custom.patch_cluster_custom_object(
            GROUP, VERSION, plural, name, {"metadata": {"labels": {"ticket": "t-1"}}}, _content_type=merge
        )
        assert labelled["metadata"]["labels"] == {"ticket": "t-1"}
        assert labelled["spec"] == valid_approval(name)["spec"]
    finally:
        custom.delete_cluster_custom_object(GROUP, VERSION, plural, name)


VALID_DURATIONS = ["0", "0s", "30s", "15m", "24h", "1h30m", "1.5h", "300ms", "2µs", "1h0m0.5s"]


@pytest.mark.cluster
@pytest.mark.parametrize("text", VALID_DURATIONS)
def test_server_accepts_go_durations(custom: Any, text: str) -> None:
    body = valid_ladder(unique_name("duration"))
    body["spec"]["noticePeriod"] = text
    body["spec"]["escalations"][0]["after"] = text
    custom.create_cluster_custom_object(GROUP, VERSION, PLURALS["EnforcementLadder"], body, dry_run="All")


@pytest.mark.cluster
def test_ladder_defaults_are_filled_in(custom: Any) -> None:
    """The server fills in the same defaults the model assumes, so stored ladders are explicit."""
    body = valid_ladder(unique_name("defaults"))
    body["spec"] = {"rules": [{"name": "any", "level": "Notice"}]}
    created = custom.create_cluster_custom_object(
        GROUP, VERSION, PLURALS["EnforcementLadder"], body, dry_run="All"
    )
    spec = created["spec"]
    assert spec["mode"] == "Enforce"
    assert spec["noticePeriod"] == "24h"
    assert spec["approvalRequired"] == ["Deprovision"]
    assert spec["rules"][0] == {"name": "any", "level": "Notice", "minSeverity": "low", "minConfidence": 0}
    assert spec["levelSettings"] == {
        "scaleDown": {"replicas": 0},
        "firewall": {"allowDNS": True, "allowIngressFromNamespaces": ["monitoring"]},
        "deprovision": {
            "snapshotSecretData": False,
            "pvcRetention": "720h",
            "deletePVCsAfterRetention": True,
            "bucketRetention": "720h",
            "deleteBucketsAfterRetention": False,
        },
    }
    model = Ladder.from_resource(created)
    assert model == Ladder.from_resource(body)  # server defaults and model defaults agree


def _example_documents() -> Iterator[tuple[str, dict[str, Any]]]:
    for path in sorted(EXAMPLES_DIR.rglob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")):
            if doc:
                yield f"{path.relative_to(EXAMPLES_DIR)}:{doc['kind']}/{doc['metadata']['name']}", doc


EXAMPLES = list(_example_documents())


@pytest.mark.cluster
@pytest.mark.parametrize("doc", [d for _, d in EXAMPLES], ids=[i for i, _ in EXAMPLES])
def test_example_is_accepted(api: Any, custom: Any, cluster: Any, doc: dict[str, Any]) -> None:
    """Server-side dry-run create of each example; Strict so a misspelt field is an error too.

    An approval is created by the person it names, as the approval policy requires (that
    person may do anything here: RBAC is tests/integration/test_approvals.py's business)."""
    from kubernetes import client, config

    body = copy.deepcopy(doc)
    # A suffix so the dry run cannot collide with an object another test created for real.
    body["metadata"]["name"] = f"{body['metadata']['name'][:50]}-{uuid.uuid4().hex[:8]}"
    if body["kind"] == "Namespace":
        namespace: Any = body  # the client sends a dict as it is
        client.CoreV1Api(api).create_namespace(namespace, dry_run="All", field_validation="Strict")
        return
    if body["apiVersion"] != API_VERSION:  # the tenant's own workloads (examples/workloads.yaml)
        from kubernetes import utils

        body["metadata"]["namespace"] = "default"
        utils.create_from_dict(api, body, namespace="default", dry_run="All", field_validation="Strict")
        return
    if body["kind"] == "EnforcementApproval":
        approver = config.new_client_from_config(
            config_file=str(cluster.kubeconfig_for(body["spec"]["approver"]))
        )
        custom = client.CustomObjectsApi(approver)
    custom.create_cluster_custom_object(
        GROUP, VERSION, PLURALS[body["kind"]], body, dry_run="All", field_validation="Strict"
    )


# --- pure: no cluster ------------------------------------------------------------------------


def _manifests() -> list[dict[str, Any]]:
    return [
        d for p in sorted(CRD_DIR.glob("*.yaml")) for d in yaml.safe_load_all(p.read_text(encoding="utf-8"))
    ]


def _crds() -> list[dict[str, Any]]:
    return [d for d in _manifests() if d["kind"] == "CustomResourceDefinition"]


def _walk(schema: dict[str, Any], path: str) -> Iterator[tuple[str, dict[str, Any]]]:
    yield path, schema
    for name, sub in (schema.get("properties") or {}).items():
        yield from _walk(sub, f"{path}.{name}")
    if isinstance(schema.get("items"), dict):
        yield from _walk(schema["items"], f"{path}[]")
    if isinstance(schema.get("additionalProperties"), dict):
        yield from _walk(schema["additionalProperties"], f"{path}{{}}")


def test_crds_with_expected_names() -> None:
    crds = {c["spec"]["names"]["kind"]: c for c in _crds()}
    assert set(crds) == set(PLURALS)
    for kind, crd in crds.items():
        names = crd["spec"]["names"]
        assert crd["spec"]["group"] == GROUP and crd["spec"]["scope"] == "Cluster"
        assert names["plural"] == PLURALS[kind]
        assert crd["metadata"]["name"] == f"{PLURALS[kind]}.{GROUP}"
        assert names["categories"] == ["tenant-enforcer"]
        [version] = crd["spec"]["versions"]
        assert version["name"] == VERSION and version["served"] and version["storage"]
        # The operator writes the status of what it acts on; it never writes an approval.
        assert version.get("subresources") == (None if kind == "EnforcementApproval" else {"status": {}})


def test_crds_directory_holds_the_crds_and_the_approval_policy() -> None:
    """Besides the CRDs, crds/ holds only the admission policy binding spec.approver to the
    requesting identity (installed with them by the tests and by Helm's crds/)."""
    others = [d for d in _manifests() if d["kind"] != "CustomResourceDefinition"]
    assert [d["kind"] for d in others] == ["ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding"]
    policy, binding = others
    assert binding["spec"] == {"policyName": policy["metadata"]["name"], "validationActions": ["Deny"]}
    [rule] = policy["spec"]["matchConstraints"]["resourceRules"]
    assert rule["apiGroups"] == [GROUP] and rule["resources"] == [PLURALS["EnforcementApproval"]]
    assert rule["operations"] == ["CREATE"]  # the spec is immutable: an update cannot change the approver
    [validation] = policy["spec"]["validations"]
    assert validation["expression"] == "object.spec.approver == request.userInfo.username"


@pytest.mark.parametrize("crd", _crds(), ids=lambda c: c["spec"]["names"]["kind"])
def test_every_schema_field_is_described(crd: dict[str, Any]) -> None:
    schema = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    # The API server forbids anything but type under metadata; its fields are standard.
    missing = [
        path
        for path, node in _walk(schema, "")
        if path != ".metadata" and not str(node.get("description") or "").strip()
    ]
    assert not missing, f"fields without a description: {missing}"


@pytest.mark.parametrize("crd", _crds(), ids=lambda c: c["spec"]["names"]["kind"])
def test_every_string_and_list_is_bounded_and_every_rule_has_a_message(crd: dict[str, Any]) -> None:
    """Bounds keep the API server's CEL cost estimates within budget."""
    schema = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    exempt = {".apiVersion", ".kind"}  # never seen by CEL rules below the root
    unbounded: list[str] = []
    silent: list[str] = []
    for path, node in _walk(schema, ""):
        kind = str(node.get("type"))
        bounded = {
            "string": "maxLength" in node or "enum" in node or node.get("format") == "date-time",
            "array": "maxItems" in node,
            "object": not isinstance(node.get("additionalProperties"), dict) or "maxProperties" in node,
        }.get(kind, True)
        if not bounded and path not in exempt:
            unbounded.append(path)
        silent += [
            f"{path}: {r['rule']}" for r in node.get("x-kubernetes-validations", []) if not r.get("message")
        ]
    assert not unbounded, f"unbounded strings/lists/maps: {unbounded}"
    assert not silent, f"rules without a message: {silent}"


def test_duration_rules_use_the_models_pattern() -> None:
    """The API server and tenant_enforcer.model.duration must agree on what a duration is."""
    rules = [
        r["rule"]
        for crd in _crds()
        for _, node in _walk(crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"], "")
        for r in node.get("x-kubernetes-validations", [])
        if "matches(" in r["rule"]
    ]
    # noticePeriod, rules[].noticePeriod, escalations[].after, pvcRetention, bucketRetention
    assert len(rules) == 5
    for rule in rules:
        found = re.fullmatch(r"self\.matches\(r'(.*)'\)", rule)
        assert found, rule
        assert found.group(1) == DURATION_PATTERN


@pytest.mark.parametrize("text", VALID_DURATIONS)
def test_model_accepts_durations_the_crd_accepts(text: str) -> None:
    parse_duration(text)


@pytest.mark.parametrize("doc", [d for _, d in EXAMPLES], ids=[i for i, _ in EXAMPLES])
def test_examples_parse_with_the_model(doc: dict[str, Any]) -> None:
    """The operator's model reads every example the API server accepts."""
    parsers: dict[str, Callable[[dict[str, Any]], object]] = {
        "TenantPolicy": TenantPolicy.from_resource,
        "ModerationVerdict": Verdict.from_resource,
        "EnforcementLadder": Ladder.from_resource,
        "EnforcementApproval": Approval.from_resource,
    }
    if doc["kind"] in parsers:
        parsers[doc["kind"]](doc)
