"""Notices to a tenant's contacts, with the operator in-process on a control plane of its own.

The webhook is a real HTTP server on 127.0.0.1; SNS is moto's server, delivering to an SQS
queue subscribed to the topic.  The operator runs with --notice-secret here (and is stopped
and started again to show that nothing is re-sent after a restart), so it gets a cluster of
its own: two operators on one cluster is not a supported setup.
"""

from __future__ import annotations

import base64
import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubehelpers import OPERATOR_NAMESPACE, OPERATOR_USER, Kube, MotoServer, wait_for
from kubernetes import client, config

from tenant_enforcer.controller.runner import OperatorConfig, run
from tenant_enforcer.core import notice as n
from tenant_enforcer.devcluster.cluster import LocalCluster, running_cluster
from tenant_enforcer.devcluster.helm import helm_template
from tenant_enforcer.model.duration import format_time

ROOT = Path(__file__).resolve().parents[2]
SECRET = "tenant-enforcer-notices"
KEY = b"notice-signing-key-for-tests"
POLICIES = "tenantpolicies"
LEVEL = "tenant-enforcer.io/level"
# ScaleDown after a one-hour notice period: the tenant sits at Notice, told when ScaleDown is due.
RULE = {"name": "fraud", "categories": ["fraud"], "level": "ScaleDown", "noticePeriod": "1h"}


class Hook:
    """A webhook receiver: records every POST (headers, body) and answers `self.status`."""

    def __init__(self) -> None:
        self.status = 200
        self.received: list[tuple[dict[str, str], bytes, int]] = []
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                status = hook.status
                hook.received.append((dict(self.headers.items()), body, status))
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/notices"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def delivered(self) -> list[tuple[dict[str, str], bytes]]:
        return [(h, b) for h, b, status in self.received if status == 200]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def hook() -> Iterator[Hook]:
    receiver = Hook()
    yield receiver
    receiver.close()


@pytest.fixture(scope="module")
def own_kube(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Kube]:
    with running_cluster(tmp_path_factory.mktemp("notices-cluster")) as cluster:
        cluster.install_crds(ROOT / "crds")
        kube = Kube(config.new_client_from_config(config_file=str(cluster.kubeconfig)), cluster)
        kube.namespace(OPERATOR_NAMESPACE, {"tenant-enforcer.io/protected": "true"})
        kube.core.create_namespaced_secret(
            OPERATOR_NAMESPACE,
            client.V1Secret(metadata={"name": SECRET}, data={"hmac-key": base64.b64encode(KEY).decode()}),
        )
        yield kube


@contextmanager
def operator(
    cluster: LocalCluster, workdir: Path, aws: MotoServer, notice_secret: str | None = SECRET
) -> Iterator[None]:
    conf = OperatorConfig(
        kubeconfig=cluster.kubeconfig_for(OPERATOR_USER),
        namespace=OPERATOR_NAMESPACE,
        workers=2,
        evidence_dir=workdir / "evidence",
        aws_endpoint_url=aws.endpoint,
        notice_secret=notice_secret,
    )
    stop, ready = threading.Event(), threading.Event()
    thread = threading.Thread(target=run, args=(conf,), kwargs={"stop": stop, "ready": ready}, daemon=True)
    thread.start()
    assert ready.wait(60), "operator did not become ready"
    try:
        yield
    finally:
        stop.set()
        thread.join(30)
    assert not thread.is_alive(), "operator did not stop within 30 s"


def _tenant(kube: Kube, unique: str, contacts: dict[str, str], **ladder: Any) -> str:
    tenant = f"n-{unique}"
    kube.namespace(f"{tenant}-web")
    kube.ladder(f"ladder-{unique}", [RULE], **ladder)
    kube.policy(tenant, tenant, f"ladder-{unique}", [f"{tenant}-web"], contacts=contacts)
    wait_for("initial status", lambda: kube.status(POLICIES, tenant).get("targetLevel") == "None")
    return tenant


def _verified(headers: dict[str, str], body: bytes) -> dict[str, Any]:
    assert n.verify(KEY, headers, body, datetime.now(UTC)), headers
    assert not n.verify(b"another key", headers, body, datetime.now(UTC))
    document: dict[str, Any] = json.loads(body)
    assert headers[n.ID_HEADER] == document["id"]
    return document


def _reconciled_again(kube: Kube, tenant: str, emails: list[str]) -> None:
    """A spec change the notices do not care about; wait until the operator has seen it."""
    current = kube.get(POLICIES, tenant)
    contacts = {**current["spec"]["contacts"], "emails": emails}
    kube.custom.patch_cluster_custom_object(
        "tenant-enforcer.io", "v1alpha1", POLICIES, tenant, {"spec": {"contacts": contacts}}
    )
    generation = kube.get(POLICIES, tenant)["metadata"]["generation"]
    wait_for(
        f"observedGeneration {generation}",
        lambda: kube.status(POLICIES, tenant).get("observedGeneration") == generation,
    )
    time.sleep(1)  # a notice would be sent in the same reconcile; give a stray one time to land


def test_webhook_notices_each_transition_once_signed_and_never_again_after_restart(
    own_kube: Kube, aws: MotoServer, hook: Hook, unique: str, tmp_path: Path
) -> None:
    kube = own_kube
    with operator(kube.cluster, tmp_path, aws):
        tenant = _tenant(kube, unique, {"webhookUrl": hook.url})
        assert hook.received == []  # None → None is no transition
        issued = datetime.now(UTC).replace(microsecond=0) - timedelta(seconds=1)
        kube.verdict(f"v-{unique}", tenant, category="fraud", severity="high", issued=issued)

        wait_for("the notice", lambda: len(hook.received) >= 1)
        assert kube.ns_labels(f"{tenant}-web")[LEVEL] == "Notice"
        raised = _verified(*hook.delivered()[0])
        assert raised["kind"] == "raise" and raised["tenant"] == tenant and raised["policy"] == tenant
        assert raised["from"] == {"level": "None", "targetLevel": "None"}
        assert raised["to"] == {"level": "Notice", "targetLevel": "Notice"}
        assert raised["verdicts"] == [
            {"name": f"v-{unique}", "category": "fraud", "severity": "high", "level": "Notice"}
        ]
        assert raised["next"] == {"at": format_time(issued + timedelta(hours=1)), "level": "ScaleDown"}
        last = wait_for("lastNotice", lambda: kube.status(POLICIES, tenant).get("lastNotice"))
        assert last["id"] == raised["id"] and last["channels"] == ["webhook"] and not last["dryRun"]
        assert "NoticeSent" in {e.reason for e in kube.events_for(tenant)}

        _reconciled_again(kube, tenant, ["ops@example.com"])
        assert len(hook.received) == 1

    with operator(kube.cluster, tmp_path, aws):  # a restart: status says what was sent
        _reconciled_again(kube, tenant, ["ops@example.com", "abuse@example.com"])
        assert len(hook.received) == 1

        kube.verdict(f"clear-{unique}", tenant, outcome="cleared", supersedes=[f"v-{unique}"])
        wait_for("the lift notice", lambda: len(hook.received) >= 2)
        lifted = _verified(*hook.delivered()[1])
        assert lifted["kind"] == "lift" and lifted["id"] != raised["id"]
        assert lifted["from"] == raised["to"]
        assert lifted["to"] == {"level": "None", "targetLevel": "None"}
        assert lifted["verdicts"] == [] and lifted["next"] is None
        wait_for("level None", lambda: kube.status(POLICIES, tenant).get("level") == "None")
        _reconciled_again(kube, tenant, ["ops@example.com"])
        assert len(hook.received) == 2


def test_failed_webhook_never_holds_enforcement_and_is_retried_until_sent_once(
    own_kube: Kube, aws: MotoServer, hook: Hook, unique: str, tmp_path: Path
) -> None:
    kube = own_kube
    hook.status = 500
    with operator(kube.cluster, tmp_path, aws):
        tenant = _tenant(kube, unique, {"webhookUrl": hook.url})
        kube.verdict(f"v-{unique}", tenant, category="fraud", severity="high")

        wait_for("NoticeFailed", lambda: "NoticeFailed" in {e.reason for e in kube.events_for(tenant)})
        status = kube.status(POLICIES, tenant)
        assert status["level"] == "Notice"  # enforcement went ahead
        assert kube.ns_labels(f"{tenant}-web")[LEVEL] == "Notice"
        pending = wait_for("pendingNotice", lambda: kube.status(POLICIES, tenant).get("pendingNotice"))
        assert pending["attempts"] >= 1 and "HTTP 500" in pending["error"]
        assert "lastNotice" not in kube.status(POLICIES, tenant)

        hook.status = 200
        wait_for("the retried notice", lambda: hook.delivered(), timeout=60)
        last = wait_for("lastNotice", lambda: kube.status(POLICIES, tenant).get("lastNotice"))
        assert "pendingNotice" not in kube.status(POLICIES, tenant)
        document = _verified(*hook.delivered()[0])
        assert last["id"] == document["id"] == pending["id"]
        assert {h[n.ID_HEADER] for h, _, _ in hook.received} == {document["id"]}  # one notice, retried

        _reconciled_again(kube, tenant, ["ops@example.com"])
        assert len(hook.delivered()) == 1


def test_sns_notice_carries_the_same_document_as_the_webhook(
    own_kube: Kube, aws: MotoServer, hook: Hook, unique: str, tmp_path: Path
) -> None:
    kube = own_kube
    sns, sqs = aws.client("sns"), aws.client("sqs")
    topic = sns.create_topic(Name=f"tenant-{unique}")["TopicArn"]
    queue = sqs.create_queue(QueueName=f"notices-{unique}")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=queue_arn)
    with operator(kube.cluster, tmp_path, aws):
        tenant = _tenant(kube, unique, {"webhookUrl": hook.url, "snsTopicArn": topic})
        kube.verdict(f"v-{unique}", tenant, category="fraud", severity="high")

        def message() -> dict[str, Any] | None:
            got = sqs.receive_message(QueueUrl=queue, WaitTimeSeconds=1).get("Messages") or []
            return json.loads(got[0]["Body"]) if got else None

        envelope = wait_for("the SNS notice in SQS", message)
        wait_for("the webhook notice", lambda: hook.delivered())
        _, body = hook.delivered()[0]
        assert envelope["Message"] == body.decode()
        assert json.loads(envelope["Message"])["verdicts"][0]["name"] == f"v-{unique}"
        assert tenant in envelope["Subject"]
        last = wait_for("lastNotice", lambda: kube.status(POLICIES, tenant).get("lastNotice"))
        assert sorted(last["channels"]) == ["sns", "webhook"]


def test_dry_run_shows_the_notice_and_sends_nothing(
    own_kube: Kube, aws: MotoServer, hook: Hook, unique: str, tmp_path: Path
) -> None:
    kube = own_kube
    with operator(kube.cluster, tmp_path, aws):
        tenant = _tenant(kube, unique, {"webhookUrl": hook.url}, mode="DryRun")
        kube.verdict(f"v-{unique}", tenant, category="fraud", severity="high")
        shown = wait_for(
            "NoticeDryRun",
            lambda: [e.message for e in kube.events_for(tenant) if e.reason == "NoticeDryRun"],
        )
        assert f"v-{unique}" in shown[0] and "webhook" in shown[0]
        last = wait_for("lastNotice", lambda: kube.status(POLICIES, tenant).get("lastNotice"))
        assert last["dryRun"] is True and last["channels"] == []
        _reconciled_again(kube, tenant, ["ops@example.com"])
        assert hook.received == []
        assert len([e for e in kube.events_for(tenant) if e.reason == "NoticeDryRun"]) == 1


def test_without_a_signing_key_the_webhook_is_not_called_and_status_says_so_once(
    own_kube: Kube, aws: MotoServer, hook: Hook, unique: str, tmp_path: Path
) -> None:
    kube = own_kube
    with operator(kube.cluster, tmp_path, aws, notice_secret=None):
        tenant = _tenant(kube, unique, {"webhookUrl": hook.url})
        kube.verdict(f"v-{unique}", tenant, category="fraud", severity="high")
        last = wait_for("lastNotice", lambda: kube.status(POLICIES, tenant).get("lastNotice"))
        assert last["channels"] == [] and "no HMAC key" in last["skipped"][0]
        assert kube.status(POLICIES, tenant)["level"] == "Notice"
        _reconciled_again(kube, tenant, ["ops@example.com"])
        assert hook.received == []
        assert len([e for e in kube.events_for(tenant) if e.reason == "NoticeSkipped"]) == 1


def test_chart_passes_the_notice_secret_and_may_read_only_that_secret() -> None:
    docs = [
        d
        for d in yaml.safe_load_all(
            helm_template(
                ROOT / "charts" / "tenant-enforcer", "te", "te-system", {"notices.secretName": SECRET}
            )
        )
        if d
    ]
    deployment = next(d for d in docs if d["kind"] == "Deployment")
    command = deployment["spec"]["template"]["spec"]["containers"][0]["command"]
    assert command[command.index("--notice-secret") + 1] == SECRET
    rules = [r for d in docs if d["kind"] == "Role" for r in d["rules"] if "secrets" in r["resources"]]
    assert rules == [
        {"apiGroups": [""], "resources": ["secrets"], "resourceNames": [SECRET], "verbs": ["get"]}
    ]
    default = helm_template(ROOT / "charts" / "tenant-enforcer", "te", "te-system")
    assert "--notice-secret" not in default
