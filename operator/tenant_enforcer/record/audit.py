"""The audit log: one hash-chained JSON Lines record per decision that changed something.

Written by the record step when a reconcile changes a tenant's level or target, or runs
actions; a reconcile that changes nothing writes nothing.  In dry-run, a change of target
level is recorded with `dryRun: true` and the actions that would run (`wouldDo`).

The writer appends under a lock (reconciles run in several threads) and fsyncs each record.
On start it checks the last record (its own hash) and carries the chain on from it.  A torn
last line (a crash during a write) is not repaired: the file is moved aside as
`<name>.torn-<time>` and a new segment starts, whose first record links to the last intact
record of the moved file.  A last record that fails its hash is refused: that is tampering,
not a crash.
"""

from __future__ import annotations

import json
import os
import socket
import threading
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from tenant_enforcer.core.plan import Action
from tenant_enforcer.model.duration import format_time
from tenant_enforcer.model.levels import Level
from tenant_enforcer.model.policy import Approval
from tenant_enforcer.record.chain import (
    GENESIS,
    SEGMENT_STARTED,
    digest,
    line,
    parse,
    seal,
    verify,
    verify_files,
)
from tenant_enforcer.record.status import Outcome
from tenant_enforcer.state.prior import PriorStateStore

MAX_ITEMS = 50  # actions, errors, refs per record: records stay small and bounded
MAX_TEXT = 500
TAIL_BYTES = 256 * 1024


class AuditLogError(RuntimeError):
    """The audit log cannot be continued safely; the operator refuses to start."""


class Writer(Protocol):
    """Who writes the log: the actor named in each record, where prior state is kept."""

    @property
    def actor(self) -> str: ...

    @property
    def prior_namespace(self) -> str: ...


def default_actor(namespace: str) -> str:
    """Who acts: the operator in its namespace, on this host (the pod's name in a cluster)."""
    return f"tenant-enforcer/{namespace}@{socket.gethostname()}"


def _clip(items: Iterable[Any]) -> list[Any]:
    listed = list(items)
    clipped = [x[:MAX_TEXT] if isinstance(x, str) else x for x in listed[:MAX_ITEMS]]
    if len(listed) > MAX_ITEMS:
        clipped.append(f"… {len(listed) - MAX_ITEMS} more")
    return clipped


def _action(action: Action, result: str) -> dict[str, Any]:
    op = "restore" if action.is_restore else "reassert" if action.reassert else "enforce"
    return {"op": op, "ref": str(action.ref), "to": action.level.api_name, "result": result}


def _event(before: Level, outcome: Outcome, target_changed: bool) -> str | None:
    if outcome.dry_run:
        return "DryRunPlanned" if target_changed else None
    if outcome.planned and (
        outcome.failures or (outcome.problem and outcome.problem.reason == "ActionFailed")
    ):
        return "ActionsFailed"
    if outcome.level != before:
        return "Lifted" if outcome.level == Level.NONE else "LevelChanged"
    if outcome.planned:
        return "ActionsApplied"
    return "TargetChanged" if target_changed else None


def audit_payload(
    tenant: str,
    policy: str,
    previous: Mapping[str, Any],
    outcome: Outcome,
    approvals: Iterable[Approval],
    log: Writer,
) -> dict[str, Any] | None:
    """What one reconcile decided and did, for the log; None when it changed nothing."""
    try:
        before = Level.parse(previous.get("level") or "None")
    except ValueError:
        before = Level.NONE
    target_changed = previous.get("targetLevel", "None") != outcome.target.api_name
    event = _event(before, outcome, target_changed)
    if event is None:
        return None
    decision = outcome.decision
    active = decision.active_verdicts if decision else ()
    done = set(outcome.applied)
    if outcome.dry_run:
        actions = [_action(a, "wouldDo") for a in outcome.planned]
    else:
        actions = [_action(a, "done" if a in done else "notDone") for a in outcome.planned]
    covering = [
        {"name": a.name, "approver": a.approver, "level": a.level.api_name}
        for a in approvals
        if outcome.target.disruptive and a.level >= outcome.target and set(active) <= a.verdicts
    ]
    payload: dict[str, Any] = {
        "tenant": tenant,
        "policy": policy,
        "event": event,
        "from": before.api_name,
        "to": outcome.level.api_name,
        "target": outcome.target.api_name,
        "reason": (decision.reason if decision else "")[:MAX_TEXT],
        "verdicts": _clip(active),
        "approvals": _clip(covering),
        "actor": log.actor,
        "dryRun": outcome.dry_run,
        "actions": _clip(actions),
    }
    errors = [*outcome.failures, *([outcome.problem.message] if outcome.problem else [])]
    if errors:
        payload["errors"] = _clip(errors)
    if outcome.conflicts:
        payload["conflicts"] = _clip(outcome.conflicts)
    changed = [a.ref for a in outcome.applied if not a.is_restore]
    if changed:  # where the state before our first change is kept (never the state itself)
        payload["priorState"] = {
            "configMap": f"{log.prior_namespace}/{PriorStateStore.name_for(tenant)}",
            "keys": _clip(sorted(r.key for r in changed)),
        }
    if outcome.evidence:
        payload["evidence"] = _clip(outcome.evidence)
    return payload


def _last_line(path: Path) -> tuple[bytes, bool, int]:
    """The file's last line, whether it ended with a newline, and its 1-based number."""
    size = path.stat().st_size
    with path.open("rb") as f:
        total = sum(chunk.count(b"\n") for chunk in iter(lambda: f.read(1 << 20), b""))
        f.seek(max(0, size - TAIL_BYTES))
        tail = f.read()
    complete = tail.endswith(b"\n")
    body = tail[:-1] if complete else tail
    last = body.rsplit(b"\n", 1)[-1]
    return last, complete, total if complete else total + 1


class AuditLog:
    def __init__(self, path: Path, actor: str, prior_namespace: str) -> None:
        self.path = Path(path)
        self.actor = actor
        self.prior_namespace = prior_namespace
        self._lock = threading.Lock()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._prev, self._seq = GENESIS, 0
        link = self._resume()
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
        if link is not None:
            self._append({"event": SEGMENT_STARTED, "actor": actor, "previousSegment": link})

    def _resume(self) -> dict[str, Any] | None:
        """Carry the chain on from the file's last record; move a torn file aside."""
        if not self.path.exists() or self.path.stat().st_size == 0:
            return None
        last, complete, number = _last_line(self.path)
        record, error = parse(last.decode(errors="replace"), number)
        if complete:
            if record is None:
                raise AuditLogError(f"audit log {self.path}: cannot continue the chain: {error}")
            if digest(record) != record["hash"]:
                raise AuditLogError(
                    f"audit log {self.path}: line {number} fails its hash (edited?); "
                    f"check it with `tenant-enforcer audit verify {self.path}` and move it aside"
                )
            self._prev, self._seq = record["hash"], record["seq"] + 1
            return None
        intact = verify(self.path.read_text(errors="replace"))
        if not intact.torn:
            raise AuditLogError(f"audit log {self.path}: {intact.problem}")
        aside = self.path.with_name(f"{self.path.name}.torn-{datetime.now(UTC):%Y%m%dT%H%M%S%fZ}")
        self.path.rename(aside)
        self._prev, self._seq = intact.last_hash, intact.last_seq + 1
        return {"file": aside.name, "lastSeq": intact.last_seq, "lastHash": intact.last_hash,
                "tornLine": intact.bad_line}  # fmt: skip

    def _append(self, payload: Mapping[str, Any]) -> dict[str, Any]:
        record = seal(payload, self._seq, format_time(datetime.now(UTC)), self._prev)
        data = line(record).encode()
        written = os.write(self._fd, data)
        if written != len(data):
            raise OSError(f"audit log {self.path}: short write ({written} of {len(data)} bytes)")
        os.fsync(self._fd)
        self._prev, self._seq = record["hash"], self._seq + 1
        return record

    def append(self, payload: Mapping[str, Any]) -> dict[str, Any]:
        with self._lock:
            return self._append(payload)

    def close(self) -> None:
        with self._lock:
            os.close(self._fd)


def read_records(path: Path) -> list[dict[str, Any]]:
    """The records of a log that parse (for `audit show`; `audit verify` checks them)."""
    records = []
    for raw in path.read_text().splitlines():
        try:
            record = json.loads(raw)
        except ValueError:
            continue
        if isinstance(record, dict):
            records.append(record)
    return records


def verify_report(paths: Iterable[Path]) -> tuple[int, list[str]]:
    """`audit verify`: 0 and the count and last hash when intact, else 1 naming the first broken line."""
    paths = list(paths)
    name, result = verify_files([(str(p), p.read_text(errors="replace")) for p in paths])
    if not result.ok:
        return 1, [f"{name}: BROKEN at {result.problem}", f"{result.count} intact records before it"]
    lines = [f"{name}: intact, {result.count} records, last hash {result.last_hash}"]
    if result.continues is not None and len(paths) == 1:
        link = result.continues
        lines.append(
            f"a segment: carries on from {link.get('file')} (seq {link.get('lastSeq')}, hash "
            f"{link.get('lastHash')}); give both files, in order, to check the link"
        )
    return 0, lines


def _show(record: Mapping[str, Any]) -> str:
    head = f"{record.get('seq')} {record.get('time')} {record.get('event')}"
    if record.get("event") == SEGMENT_STARTED:
        return f"{head} after {record.get('previousSegment')}"
    dry = " (dry run)" if record.get("dryRun") else ""
    text = f"{head}{dry} tenant={record.get('tenant')} {record.get('from')} → {record.get('to')}"
    text += f" (target {record.get('target')}): {record.get('reason')}"
    for key in ("verdicts", "approvals", "errors", "conflicts"):
        if record.get(key):
            text += f"\n    {key}: {json.dumps(record[key], ensure_ascii=False)}"
    for action in record.get("actions") or ():
        text += f"\n    {json.dumps(action, ensure_ascii=False) if isinstance(action, str) else _act(action)}"
    return text + f"\n    by {record.get('actor')}"


def _act(action: Mapping[str, Any]) -> str:
    return f"{action.get('result')}: {action.get('op')} {action.get('ref')} → {action.get('to')}"


def show_lines(paths: Iterable[Path], tenant: str | None) -> tuple[int, list[str]]:
    """`audit show`: the records, readably (run `audit verify` to trust them)."""
    return 0, [
        _show(r)
        for p in paths
        for r in read_records(p)
        if tenant is None or r.get("tenant") == tenant or r.get("event") == SEGMENT_STARTED
    ]
