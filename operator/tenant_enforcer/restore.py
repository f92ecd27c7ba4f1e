"""`tenant-enforcer restore`: create a tenant's objects again from a Deprovision evidence snapshot.

The operator never re-creates what Deprovision deleted (the snapshot is evidence, for people
to decide on); this is how a person does it once the level is lifted.  Objects are created
in dependency order (service accounts and RBAC, config, claims, network policies and
services, then workloads and their autoscalers), with server-side dry run on `--dry-run`.
What already exists is left as it is and reported, and so is what the snapshot cannot give
back: a Secret whose values were not kept (only its keys are in the snapshot), a Job or Pod
that had already run to completion (creating it would run it again), or an object that
another target had set aside and gives back itself when its level is lifted.

Objects the snapshot shows held by another target (a Deployment scaled down before it was
deleted) carry that target's marks and the prior state it had saved: they are created
without our marks, and the saved fields are written back through that target's own writer
(the scale subresource for replicas, and so on), so they come back as before enforcement.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kubernetes import client, config

from tenant_enforcer.model.refs import ObjectRef
from tenant_enforcer.targets.base import Clients, EvidenceStore
from tenant_enforcer.targets.errors import ErrorClass, TargetError
from tenant_enforcer.targets.k8s.deprovision import (
    FINISHED_ANNOTATION,
    KINDS,
    OMITTED_DATA_ANNOTATION,
    PRIOR_STATE_ANNOTATION,
    SET_ASIDE_ANNOTATION,
    STATE_LABEL,
    Kind,
    marked,
)
from tenant_enforcer.targets.k8s.marked import FieldTarget
from tenant_enforcer.targets.registry import load_builtin_targets

RESTORE_FIELD_MANAGER = "tenant-enforcer-restore"
OUR_PREFIX = "tenant-enforcer.io/"  # our labels and annotations, never a tenant's
_ORDER = {k.kind: i for i, k in enumerate(KINDS)}
_KIND = {k.kind: k for k in KINDS}


@dataclass
class RestoreReport:
    tenant: str
    snapshot: str
    dry_run: bool = False
    created: list[str] = field(default_factory=list)
    existing: list[str] = field(default_factory=list)  # left as they are
    skipped: list[str] = field(default_factory=list)  # the snapshot cannot give them back
    given_back: list[str] = field(default_factory=list)  # prior state restored through a target
    notes: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failed

    def lines(self) -> list[str]:
        would = "would be " if self.dry_run else ""
        head = f"snapshot {self.snapshot} of tenant {self.tenant}" + (" (dry run)" if self.dry_run else "")
        return [
            head,
            *(f"  {would}created: {x}" for x in self.created),
            *(f"  exists, left as it is: {x}" for x in self.existing),
            *(f"  not restored: {x}" for x in self.skipped),
            *(f"  {would}given back as before enforcement: {x}" for x in self.given_back),
            *(f"  note: {x}" for x in self.notes),
            *(f"  FAILED: {x}" for x in self.failed),
        ]


def api_client(kubeconfig: Path | None = None) -> Any:
    """The given kubeconfig, else the usual one ($KUBECONFIG, ~/.kube/config), else in-cluster."""
    if kubeconfig is not None:
        return config.new_client_from_config(config_file=str(kubeconfig))  # type: ignore[no-untyped-call]
    try:
        return config.new_client_from_config()  # type: ignore[no-untyped-call]
    except config.ConfigException:
        cfg = client.Configuration()
        config.load_incluster_config(client_configuration=cfg)  # type: ignore[no-untyped-call]
        return client.ApiClient(cfg)


def restore_snapshot(
    api: Any,
    store: EvidenceStore,
    tenant: str,
    snapshot_id: str,
    *,
    dry_run: bool = False,
    field_manager: str = RESTORE_FIELD_MANAGER,
) -> RestoreReport:
    """Create the snapshot's objects again; raises KeyError if there is no such snapshot."""
    documents = store.get(tenant, snapshot_id)
    report = RestoreReport(tenant, snapshot_id, dry_run)
    namespaces = sorted({str((d.get("metadata") or {}).get("namespace")) for d in documents})
    report.failed += [problem for ns in namespaces if (problem := _namespace_problem(api, ns))]
    if report.failed:
        return report  # nothing is created into a namespace that would delete it again
    targets = load_builtin_targets().build(Clients(api, field_manager))
    for doc in sorted(documents, key=lambda d: _ORDER.get(str(d.get("kind")), len(KINDS))):
        meta = doc.get("metadata") or {}
        ref = ObjectRef(str(doc.get("kind")), str(meta.get("name")), meta.get("namespace"))
        annotations = meta.get("annotations") or {}
        kind = _KIND.get(ref.kind)
        if kind is None:
            report.skipped.append(f"{ref}: not a kind that Deprovision deletes")
            continue
        if SET_ASIDE_ANNOTATION in annotations:
            report.skipped.append(
                f"{ref}: set aside by {annotations[SET_ASIDE_ANNOTATION]}, which gives it back itself "
                "when its level is lifted"
            )
            continue
        if FINISHED_ANNOTATION in annotations:
            how = annotations[FINISHED_ANNOTATION]
            report.skipped.append(
                f"{ref}: it had run to completion ({how}) before it was deleted; creating it again "
                "would run it again"
            )
            continue
        if OMITTED_DATA_ANNOTATION in annotations:
            keys = annotations[OMITTED_DATA_ANNOTATION]
            report.skipped.append(
                f"{ref}: its values were not kept in the snapshot (keys: {keys}); create it from the "
                "tenant's own source"
            )
            continue
        try:
            created = _create(api, kind, ref, _body(doc), field_manager, dry_run)
        except TargetError as exc:
            report.failed.append(str(exc))
            continue
        if not created:
            report.existing.append(str(ref))
            continue
        report.created.append(str(ref))
        target = targets.get(ref.kind)
        if isinstance(target, FieldTarget) and marked(doc):
            _give_back(target, ref, annotations, dry_run, report)
    return report


def _namespace_problem(api: Any, namespace: str) -> str | None:
    try:
        ns: Any = client.CoreV1Api(api).read_namespace(namespace, _preload_content=False)  # raw response
    except client.ApiException as exc:
        if exc.status == 404:
            return f"namespace {namespace} does not exist: create it first"
        return str(TargetError(f"read namespace {namespace}", exc))
    labels = (json.loads(ns.data).get("metadata") or {}).get("labels") or {}
    if STATE_LABEL in labels:
        return (
            f"namespace {namespace} is still deprovisioned ({STATE_LABEL}={labels[STATE_LABEL]}): lift the "
            "tenant's level first, or the operator deletes what is restored"
        )
    return None


def _body(doc: Mapping[str, Any]) -> dict[str, Any]:
    """The manifest without our marks: the evidence notes, and the enforcement marks that other
    targets had put on the object (what they held is given back separately)."""
    body = copy.deepcopy(dict(doc))
    meta = body["metadata"]
    for field_name in ("labels", "annotations"):
        kept = {k: v for k, v in (meta.get(field_name) or {}).items() if not k.startswith(OUR_PREFIX)}
        if kept:
            meta[field_name] = kept
        else:
            meta.pop(field_name, None)
    return body


def _create(api: Any, kind: Kind, ref: ObjectRef, body: dict[str, Any], manager: str, dry_run: bool) -> bool:
    """Create; False if an object of that name exists already."""
    create = kind.kube.method(getattr(client, kind.kube.api)(api), "create")
    try:
        create(
            ref.namespace,
            body,
            field_manager=manager,
            dry_run="All" if dry_run else None,
            _preload_content=False,
        )
    except (client.ApiException, OSError) as exc:
        error = TargetError(f"create {ref}", exc)
        if error.error_class is ErrorClass.CONFLICT:
            return False
        raise TargetError(f"create {ref}: {_api_message(exc)}", exc) from exc
    return True


def _api_message(exc: BaseException) -> str:
    """The API server's own explanation (which field is invalid), for the person running this."""
    try:
        message = json.loads(getattr(exc, "body", None) or "{}").get("message")
    except (ValueError, AttributeError):
        message = None
    return str(message or exc)


def _give_back(
    target: FieldTarget, ref: ObjectRef, annotations: Mapping[str, str], dry_run: bool, report: RestoreReport
) -> None:
    """Write back the fields the target had saved before its first change (the snapshot shows
    them as enforced: replicas 0, suspended), through the target's own writer."""
    raw = annotations.get(PRIOR_STATE_ANNOTATION)
    if not raw:
        report.notes.append(f"{ref}: was enforced but no prior state was saved; created as in the snapshot")
        return
    prior: dict[str, Any] = json.loads(raw)
    what = f"{ref}: {json.dumps(prior, sort_keys=True)}"
    if dry_run:
        report.given_back.append(what)
        return
    assert ref.namespace is not None
    try:
        obj = target.kube.read(target.kube_kind, ref.namespace, ref.name)
        if obj is None:
            report.failed.append(f"give back {ref}: it is gone again")
            return
        current = target.fields(obj)
        wanted = {**current, **prior}
        if wanted != current:
            target.write(ref, wanted, current)
    except TargetError as exc:
        report.failed.append(f"give back {ref}: {exc}")
        return
    report.given_back.append(what)
