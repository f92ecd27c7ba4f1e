"""The worked example: a local control plane, the operator, one verdict, its appeal.

Run from a checkout (it applies the repo's crds/ and examples/).  Each step prints what a
platform engineer would see with kubectl, using the CRDs' printer columns.
"""

from __future__ import annotations

import json
import secrets
import subprocess
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import yaml

from tenant_enforcer.controller.runner import OperatorConfig, run
from tenant_enforcer.core.notice import verify
from tenant_enforcer.devcluster.cluster import LocalCluster, running_cluster
from tenant_enforcer.model.duration import format_time

REPO = Path(__file__).resolve().parents[2]
OPERATOR_NAMESPACE = "tenant-enforcer"
NOTICE_SECRET = "tenant-enforcer-notices"


class NoticeInbox:
    """The tenant's webhook, on 127.0.0.1: keeps each notice and whether its signature verified."""

    def __init__(self) -> None:
        self.key = secrets.token_hex(16).encode()
        self.received: list[tuple[bool, dict[str, Any]]] = []
        inbox = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                ok = verify(inbox.key, dict(self.headers.items()), body, datetime.now(UTC))
                inbox.received.append((ok, json.loads(body)))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *_: Any) -> None:  # quiet: the demo prints what arrived
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/notices"
        threading.Thread(target=self.server.serve_forever, name="webhook", daemon=True).start()

    def show(self) -> None:
        print("notices received by acme's webhook:")
        for ok, doc in self.received:
            before, after = doc["from"], doc["to"]
            step = f"; next: {doc['next']['level']} at {doc['next']['at']}" if doc.get("next") else ""
            print(
                f"  {doc['kind']:5} {before['level']}→{after['level']} (target {after['targetLevel']}), "
                f"signature {'verified' if ok else 'INVALID'}, id {doc['id'][:12]}…{step}"
            )


def _say(text: str) -> None:
    print(f"\n=== {text}", flush=True)


def _kubectl(cluster: LocalCluster, *args: str, stdin: str | None = None, show: bool = True) -> str:
    out = subprocess.run(cluster.kubectl_cmd(*args), input=stdin, capture_output=True, text=True, check=True)
    if show:
        print(f"$ kubectl {' '.join(args)}\n{out.stdout.rstrip()}", flush=True)
    return out.stdout


def _wait(what: str, check: Callable[[], bool], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.5)
    raise TimeoutError(f"timed out waiting for {what}")


def _verdict(path: Path, issued: datetime) -> str:
    doc: dict[str, Any] = yaml.safe_load(path.read_text())
    doc["spec"]["issuedAt"] = format_time(issued)  # the examples carry a fixed date; the demo is now
    return yaml.safe_dump(doc)


def _local_tenant(path: Path, webhook: str) -> str:
    """The example tenant names AWS resources and an SNS topic; the demo has no AWS account
    (and a tenant whose AWS scope cannot be read is, rightly, left untouched), so it drops
    them, and points the tenant's webhook at the demo's inbox."""
    docs = list(yaml.safe_load_all(path.read_text()))
    for doc in docs:
        if doc.get("kind") == "TenantPolicy":
            doc["spec"].pop("aws", None)
            doc["spec"]["contacts"] = {"webhookUrl": webhook}
    return yaml.safe_dump_all(docs)


def _status(cluster: LocalCluster, field: str) -> str:
    return _kubectl(cluster, "get", "tp", "acme", "-o", f"jsonpath={{.status.{field}}}", show=False)


def _wait_for_tenant(
    cluster: LocalCluster, what: str, check: Callable[[], bool], timeout: float = 60
) -> None:
    try:
        _wait(what, check, timeout)
    except TimeoutError:
        _kubectl(cluster, "get", "tp", "acme", "-o", "yaml")  # show why, then fail
        raise


def _pods(cluster: LocalCluster) -> int:
    out = _kubectl(
        cluster,
        "get",
        "pods",
        "-n",
        "acme-web",
        "--field-selector=status.phase=Running",
        "-o",
        "name",
        show=False,
    )
    return len(out.split())


def _story(cluster: LocalCluster, inbox: NoticeInbox) -> None:
    _say("the ladder, tenant acme (two namespaces) and its workloads: 3 web pods, an allow-all policy")
    _kubectl(cluster, "apply", "-f", str(REPO / "examples" / "ladder.yaml"))
    _kubectl(cluster, "apply", "-f", "-", stdin=_local_tenant(REPO / "examples" / "tenant.yaml", inbox.url))
    _kubectl(cluster, "apply", "-f", str(REPO / "examples" / "workloads.yaml"))
    _wait("tenant status", lambda: _status(cluster, "targetLevel") == "None")
    _wait("3 web pods running", lambda: _pods(cluster) == 3)
    _kubectl(cluster, "get", "tenant-enforcer")
    _kubectl(cluster, "get", "deploy,pods,networkpolicies", "-n", "acme-web")

    _say("the moderation pipeline files a high-severity violence verdict against acme")
    now = datetime.now(UTC)
    _kubectl(cluster, "apply", "-f", "-", stdin=_verdict(REPO / "examples/verdicts/high.yaml", now))
    _wait_for_tenant(cluster, "level Notice", lambda: _status(cluster, "level") == "Notice")
    print(
        "The ladder calls for Firewall after a 1h notice period: acme is at Notice now,\n"
        "its namespaces are labelled, and the next step is due at .status.nextDueAt."
    )
    _kubectl(cluster, "get", "tp,mv")
    _kubectl(cluster, "get", "ns", "-l", "tenant-enforcer.io/tenant=acme", "-L", "tenant-enforcer.io/level")
    _kubectl(
        cluster,
        "get",
        "tp",
        "acme",
        "-o",
        "jsonpath={.status.reason}{'\\n'}next due: {.status.nextDueAt}{'\\n'}",
    )
    _wait("the notice to acme's webhook", lambda: bool(inbox.received))
    inbox.show()

    _say("then a critical terrorism verdict: the ladder says Deprovision, which needs a person's approval")
    _kubectl(
        cluster,
        "apply",
        "-f",
        "-",
        stdin=_verdict(REPO / "examples/verdicts/critical.yaml", now + timedelta(seconds=1)),
    )
    _wait_for_tenant(cluster, "level Firewall", lambda: _status(cluster, "level") == "Firewall")
    _wait("web pods gone", lambda: _pods(cluster) == 0)
    print(
        "Deprovision waits for approval, so everything below it applies now: workloads scaled\n"
        "to zero behind a pods: 0 quota, and traffic denied except DNS and monitoring; the\n"
        "tenant's allow-all policy is set aside (saved first, in the operator's namespace)."
    )
    _kubectl(
        cluster,
        "get",
        "tp",
        "acme",
        "-o",
        "custom-columns=LEVEL:.status.level,TARGET:.status.targetLevel,AWAITING:.status.awaitingApproval",
    )
    _kubectl(cluster, "get", "deploy,pods,networkpolicies,resourcequotas", "-n", "acme-web")
    _kubectl(cluster, "get", "configmaps", "-n", "tenant-enforcer")

    _say("on appeal both verdicts are overturned by one clearing verdict")
    clearing: dict[str, Any] = yaml.safe_load(
        _verdict(REPO / "examples/verdicts/clearing.yaml", now + timedelta(seconds=2))
    )
    clearing["spec"]["supersedes"] = ["acme-violence-high", "acme-terror-critical"]
    _kubectl(cluster, "apply", "-f", "-", stdin=yaml.safe_dump(clearing))
    _wait_for_tenant(cluster, "level None", lambda: _status(cluster, "level") == "None")
    _wait("3 web pods running again", lambda: _pods(cluster) == 3, timeout=120)
    _kubectl(cluster, "get", "tp,mv")
    _kubectl(cluster, "get", "deploy,pods,networkpolicies,resourcequotas", "-n", "acme-web")
    _kubectl(
        cluster,
        "get",
        "events",
        "-n",
        "default",
        "--sort-by=.lastTimestamp",
        "-o",
        "custom-columns=OBJECT:.involvedObject.name,REASON:.reason,MESSAGE:.message",
    )
    _wait("the lift notice", lambda: any(doc["kind"] == "lift" for _, doc in inbox.received))
    inbox.show()


def run_demo(keep: bool = False, workdir: Path | None = None) -> int:
    with running_cluster(workdir, full=True) as cluster:
        _say("a local control plane with controllers and two KWOK nodes; installing the CRDs")
        cluster.install_crds(REPO / "crds")
        _kubectl(cluster, "get", "crd", "-l", "app.kubernetes.io/part-of=tenant-enforcer")
        inbox = NoticeInbox()
        _kubectl(cluster, "create", "namespace", OPERATOR_NAMESPACE, show=False)
        _kubectl(
            cluster,
            "create",
            "secret",
            "generic",
            NOTICE_SECRET,
            "-n",
            OPERATOR_NAMESPACE,
            f"--from-literal=hmac-key={inbox.key.decode()}",
            show=False,
        )
        stop, ready = threading.Event(), threading.Event()
        conf = OperatorConfig(
            kubeconfig=cluster.kubeconfig,
            namespace=OPERATOR_NAMESPACE,
            evidence_dir=cluster.directory / "evidence",
            notice_secret=NOTICE_SECRET,
        )
        operator = threading.Thread(
            target=run, args=(conf,), kwargs={"stop": stop, "ready": ready}, name="operator", daemon=True
        )
        operator.start()
        try:
            ready.wait(60)
            _story(cluster, inbox)
            if keep:
                _say(f"left running: export KUBECONFIG={cluster.kubeconfig}; Ctrl-C stops everything")
                threading.Event().wait()
        except KeyboardInterrupt:
            pass
        finally:
            stop.set()
            operator.join(30)
            inbox.server.shutdown()
        _say("stopped the operator and the control plane")
    return 0
