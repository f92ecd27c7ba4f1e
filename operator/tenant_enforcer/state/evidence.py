"""Evidence snapshots in a directory: `root/<tenant>/<snapshot_id>/`, one YAML file per object
and an `index.json` (the objects in order, each file's sha256, the time).

A snapshot is written to a temporary directory beside its final place and renamed into
place, so it is either complete or absent; putting an id that exists already is a no-op that
returns the same location (a retried apply after a crash takes no second snapshot).  `get`
checks every file against its sha256 before returning anything.  Files are readable by the
operator only: a snapshot may hold secret data when the ladder opts in.

Implements `targets.base.EvidenceStore`; an S3-backed store will implement the same two calls.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import tempfile
from collections import Counter
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from tenant_enforcer.model.duration import format_time

DEFAULT_EVIDENCE_DIR = Path("/var/lib/tenant-enforcer/evidence")
INDEX = "index.json"
INDEX_VERSION = 1
# Tenants and snapshot ids become directory names: one safe path component each.
_COMPONENT = re.compile(r"^[A-Za-z0-9][-A-Za-z0-9_.]{0,252}$")


class EvidenceCorrupted(ValueError):
    """A stored snapshot does not match its index (a file changed, went missing or was added)."""


def _component(what: str, value: str) -> str:
    if not _COMPONENT.fullmatch(value) or ".." in value:
        raise ValueError(f"{what} {value!r} cannot name a directory: use letters, digits, '-', '_', '.'")
    return value


def file_name(doc: Mapping[str, Any]) -> str:
    """`Kind.namespace.name.yaml` (`_` for a cluster-scoped object): one file per object."""
    meta = doc.get("metadata") or {}
    kind, name = doc.get("kind"), meta.get("name")
    if not isinstance(kind, str) or not isinstance(name, str) or not kind or not name:
        raise ValueError(f"a document without kind or metadata.name cannot be stored: {dict(doc)!r:.200}")
    namespace = meta.get("namespace") or "_"
    return _component("object", f"{kind}.{namespace}.{name}") + ".yaml"


class DirectoryEvidenceStore:
    def __init__(self, root: Path | str = DEFAULT_EVIDENCE_DIR) -> None:
        self.root = Path(root)

    def location(self, tenant: str, snapshot_id: str) -> Path:
        return self.root / _component("tenant", tenant) / _component("snapshot id", snapshot_id)

    def put(self, tenant: str, snapshot_id: str, documents: list[Mapping[str, Any]]) -> str:
        final = self.location(tenant, snapshot_id)
        if final.exists():
            return str(final)
        files = [(file_name(doc), doc) for doc in documents]
        duplicates = sorted(n for n, count in Counter(n for n, _ in files).items() if count > 1)
        if duplicates:
            raise ValueError(f"snapshot {snapshot_id}: objects given twice: {', '.join(duplicates)}")
        final.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{snapshot_id}.", dir=final.parent))
        try:
            entries = []
            for name, doc in files:
                data = yaml.safe_dump(dict(doc), sort_keys=True, allow_unicode=True).encode()
                _write(staging / name, data)
                meta = doc.get("metadata") or {}
                entries.append(
                    {
                        "apiVersion": doc.get("apiVersion"),
                        "kind": doc["kind"],
                        "namespace": meta.get("namespace"),
                        "name": meta["name"],
                        "file": name,
                        "sha256": hashlib.sha256(data).hexdigest(),
                    }
                )
            index = {
                "version": INDEX_VERSION,
                "tenant": tenant,
                "snapshot": snapshot_id,
                "createdAt": format_time(datetime.now(UTC)),
                "objects": entries,
            }
            _write(staging / INDEX, json.dumps(index, indent=2, sort_keys=True).encode())
            _fsync_dir(staging)
            try:
                staging.rename(final)
            except OSError:
                if not final.exists():
                    raise
                # Another put of the same id won the race: theirs stands, ours goes.
            else:
                _fsync_dir(final.parent)
        finally:
            if staging.exists():
                shutil.rmtree(staging, ignore_errors=True)
        return str(final)

    def index(self, tenant: str, snapshot_id: str) -> dict[str, Any]:
        path = self.location(tenant, snapshot_id) / INDEX
        try:
            index: dict[str, Any] = json.loads(path.read_bytes())
        except FileNotFoundError:
            raise KeyError(f"no evidence snapshot {snapshot_id!r} for tenant {tenant!r}") from None
        return index

    def get(self, tenant: str, snapshot_id: str) -> list[dict[str, Any]]:
        index = self.index(tenant, snapshot_id)
        folder = self.location(tenant, snapshot_id)
        listed = {entry["file"] for entry in index["objects"]}
        extra = sorted(p.name for p in folder.iterdir() if p.name != INDEX and p.name not in listed)
        if extra:
            raise EvidenceCorrupted(f"{folder}: files not in the index: {', '.join(extra)}")
        documents = []
        for entry in index["objects"]:
            try:
                data = (folder / entry["file"]).read_bytes()
            except FileNotFoundError:
                raise EvidenceCorrupted(f"{folder}: {entry['file']} is missing") from None
            if hashlib.sha256(data).hexdigest() != entry["sha256"]:
                raise EvidenceCorrupted(f"{folder}: {entry['file']} does not match its sha256 in the index")
            documents.append(yaml.safe_load(data))
        return documents

    def snapshots(self, tenant: str) -> list[str]:
        """The complete snapshots of a tenant, oldest id first (ids sort by time)."""
        folder = self.root / _component("tenant", tenant)
        if not folder.is_dir():
            return []
        return sorted(p.name for p in folder.iterdir() if not p.name.startswith(".") and (p / INDEX).exists())


def _write(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())


def _fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):  # not every filesystem lets a directory be fsynced
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
