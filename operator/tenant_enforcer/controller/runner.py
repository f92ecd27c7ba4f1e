"""Wire the operator together and run kopf: `tenant-enforcer run` and the in-process tests."""

from __future__ import annotations

import asyncio
import logging
import threading
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import kopf
from kubernetes import client, config

from tenant_enforcer.controller.act import Actuator
from tenant_enforcer.controller.breaker import load_breaker
from tenant_enforcer.controller.handlers import Runtime, register_handlers
from tenant_enforcer.controller.prime import prime_view
from tenant_enforcer.controller.queue import WorkQueue
from tenant_enforcer.controller.reconcile import Reconciler
from tenant_enforcer.controller.store import ClusterView
from tenant_enforcer.controller.watch import EnforcedObjectsWatch
from tenant_enforcer.controller.workers import Workers
from tenant_enforcer.core.breaker import Limit
from tenant_enforcer.record.audit import AuditLog, default_actor
from tenant_enforcer.record.events import EventRecorder
from tenant_enforcer.record.notices import Notifier
from tenant_enforcer.record.recorder import Recorder
from tenant_enforcer.record.writer import GROUP, POLICIES, VERSION, StatusWriter
from tenant_enforcer.state.evidence import open_evidence_store
from tenant_enforcer.state.prior import PriorStateStore
from tenant_enforcer.targets.aws.session import AwsSessions, AwsSettings
from tenant_enforcer.targets.base import Clients
from tenant_enforcer.targets.registry import load_builtin_targets

log = logging.getLogger(__name__)
PREFIX = "tenant-enforcer.io"


@dataclass(frozen=True)
class OperatorConfig:
    kubeconfig: Path | None = None  # None: in-cluster service account
    namespace: str = "tenant-enforcer"  # the operator's own namespace (always protected)
    dry_run: bool = False
    workers: int = 4
    liveness: str | None = None  # e.g. http://0.0.0.0:8080/healthz
    # Where Deprovision's evidence snapshots go: a directory, or s3://bucket/prefix.
    evidence_dir: Path | str = Path("/var/lib/tenant-enforcer/evidence")
    aws_endpoint_url: str | None = None  # AWS API endpoint override (moto, LocalStack); None: AWS
    # The audit log (hash-chained JSON Lines). None: audit.jsonl in evidence_dir when that is a
    # directory, else DEFAULT_AUDIT_LOG: on the chart's evidence volume either way.
    audit_log: Path | None = None
    # Secret (key hmac-key) in `namespace` signing webhook notices; None: webhooks are not called.
    notice_secret: str | None = None
    # The global breaker: at most breaker_limit disruptive raises per breaker_window; 0: off.
    breaker_limit: int = 50
    breaker_window: timedelta = timedelta(minutes=10)


DEFAULT_AUDIT_LOG = Path("/var/lib/tenant-enforcer/evidence/audit.jsonl")


def audit_log_path(conf: OperatorConfig) -> Path:
    if conf.audit_log is not None:
        return Path(conf.audit_log)
    if str(conf.evidence_dir).startswith("s3://"):
        return DEFAULT_AUDIT_LOG
    return Path(conf.evidence_dir) / "audit.jsonl"


def kube_configuration(kubeconfig: Path | None) -> Any:
    cfg = client.Configuration()
    if kubeconfig:
        config.load_kube_config(config_file=str(kubeconfig), client_configuration=cfg)  # type: ignore[no-untyped-call]
    else:
        config.load_incluster_config(client_configuration=cfg)  # type: ignore[no-untyped-call]
    return cfg


def connection_info(cfg: Any) -> kopf.ConnectionInfo:
    """The same credentials for kopf's watches as for our client: one source of truth."""
    auth = (cfg.api_key or {}).get("authorization", "") or (cfg.api_key or {}).get("BearerToken", "")
    scheme, _, token = auth.partition(" ")
    return kopf.ConnectionInfo(
        server=cfg.host,
        ca_path=cfg.ssl_ca_cert,
        insecure=not cfg.verify_ssl,
        certificate_path=cfg.cert_file,
        private_key_path=cfg.key_file,
        scheme=scheme or None,
        token=token or None,
        default_namespace="default",
    )


def ensure_namespace(api: Any, name: str) -> None:
    """Our own namespace holds prior state; create it when running outside the Helm chart.

    Read first: with the chart's RBAC a create of an existing namespace is refused (403)
    before the API server would say it exists (409).
    """
    core = client.CoreV1Api(api)
    try:
        core.read_namespace(name)
        return
    except client.ApiException as exc:
        if exc.status != 404:
            raise
    body: Any = {"metadata": {"name": name, "labels": {"tenant-enforcer.io/protected": "true"}}}
    try:
        core.create_namespace(body)
    except client.ApiException as exc:
        if exc.status != 409:
            raise


class NoDiffBase(kopf.DiffBaseStorage):
    """kopf's last-handled configuration, kept nowhere.

    We register no create/update/resume handlers (the reconcile is level-triggered), so the
    diff base would have no reader; storing it costs one PATCH per object at first sight
    and one per metadata edit.  kopf still manages our finalizer for `on.delete`.
    """

    def fetch(self, *, body: kopf.Body) -> kopf.BodyEssence | None:
        return None

    def store(self, *, body: kopf.Body, patch: kopf.Patch, essence: kopf.BodyEssence) -> None:
        return None


def kopf_settings() -> kopf.OperatorSettings:
    settings = kopf.OperatorSettings()
    settings.persistence.finalizer = f"{PREFIX}/finalizer"
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=PREFIX)
    settings.persistence.diffbase_storage = NoDiffBase()
    settings.posting.level = logging.WARNING
    return settings


def run(
    conf: OperatorConfig, stop: threading.Event | None = None, ready: threading.Event | None = None
) -> None:
    """Run until `stop` is set (or a signal, when on the main thread)."""
    # First: an audit log whose end fails its hash stops the operator here (AuditLogError).
    audit = AuditLog(audit_log_path(conf), default_actor(conf.namespace), conf.namespace)
    cfg = kube_configuration(conf.kubeconfig)
    cfg.connection_pool_maxsize = max(4, conf.workers * 2)
    api = client.ApiClient(cfg)
    aws = AwsSessions(AwsSettings(endpoint_url=conf.aws_endpoint_url))
    targets = load_builtin_targets().build(
        Clients(api, evidence=open_evidence_store(conf.evidence_dir, conf.aws_endpoint_url), aws=aws)
    )
    ensure_namespace(api, conf.namespace)
    view = ClusterView()
    queue = WorkQueue()
    writer = StatusWriter(api)
    actuator = Actuator(targets, PriorStateStore(api, conf.namespace))
    recorder = Recorder(writer, EventRecorder(api), Notifier(api, conf.namespace, conf.notice_secret, aws))
    recorder.audit = audit
    # Before any reconcile: the raises already recorded in TenantPolicy histories count.
    breaker = load_breaker(api, Limit(conf.breaker_limit, conf.breaker_window), GROUP, VERSION, POLICIES)
    reconciler = Reconciler(view, actuator, recorder, conf.namespace, conf.dry_run, breaker)
    registry = kopf.OperatorRegistry()
    register_handlers(
        registry, Runtime(view, queue, reconciler, writer, lambda: connection_info(cfg), breaker)
    )
    # The whole picture first: a reconcile on a half-filled view would act on part of the facts.
    queue.add_many(prime_view(api, view))
    workers = Workers(queue, reconciler.reconcile, conf.workers)
    workers.start()
    enforced_watch = EnforcedObjectsWatch(api, targets.values(), queue.add)
    enforced_watch.start()
    try:
        asyncio.run(
            kopf.operator(
                registry=registry,
                settings=kopf_settings(),
                clusterwide=True,
                standalone=True,
                liveness_endpoint=conf.liveness,
                stop_flag=stop,
                ready_flag=ready,
            )
        )
    finally:
        enforced_watch.stop()
        workers.stop()
        actuator.close()
        audit.close()
        api.close()  # type: ignore[no-untyped-call]
