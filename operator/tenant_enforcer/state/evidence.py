"""Evidence snapshots in a directory: `root/<tenant>/<snapshot_id>/`, one YAML file per object
and an `index.json` (the objects in order, each file's sha256, the time).

A snapshot is written to a temporary directory beside its final place and renamed into
place, so it is either complete or absent; putting an id that exists already is a no-op that
returns the same location (a retried apply after a crash takes no second snapshot).  `get`
checks every file against its sha256 before returning anything.  Files are readable by the
operator only: a snapshot may hold secret data when the ladder opts in.

Implements `targets.base.EvidenceStore`; `S3EvidenceStore` implements the same calls on an S3
bucket (same layout and index, server-side encryption).
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
from tenant_enforcer.targets.base import EvidenceStore

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


def encode_snapshot(
    tenant: str, snapshot_id: str, documents: list[Mapping[str, Any]]
) -> tuple[list[tuple[str, bytes]], bytes]:
    """A snapshot's files (name, YAML) and its index (JSON, a sha256 per file): one format
    for every store, so a snapshot reads the same wherever it was written."""
    files = [(file_name(doc), doc) for doc in documents]
    duplicates = sorted(n for n, count in Counter(n for n, _ in files).items() if count > 1)
    if duplicates:
        raise ValueError(f"snapshot {snapshot_id}: objects given twice: {', '.join(duplicates)}")
    encoded: list[tuple[str, bytes]] = []
    entries = []
    for name, doc in files:
        data = yaml.safe_dump(dict(doc), sort_keys=True, allow_unicode=True).encode()
        encoded.append((name, data))
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
    return encoded, json.dumps(index, indent=2, sort_keys=True).encode()


class DirectoryEvidenceStore:
    def __init__(self, root: Path | str = DEFAULT_EVIDENCE_DIR) -> None:
        self.root = Path(root)

    def folder(self, tenant: str, snapshot_id: str) -> Path:
        return self.root / _component("tenant", tenant) / _component("snapshot id", snapshot_id)

    def location(self, tenant: str, snapshot_id: str) -> str | None:
        folder = self.folder(tenant, snapshot_id)
        return str(folder) if (folder / INDEX).exists() else None

    def put(self, tenant: str, snapshot_id: str, documents: list[Mapping[str, Any]]) -> str:
        final = self.folder(tenant, snapshot_id)
        if final.exists():
            return str(final)
        final.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        encoded, index = encode_snapshot(tenant, snapshot_id, documents)
        staging = Path(tempfile.mkdtemp(prefix=f".{snapshot_id}.", dir=final.parent))
        try:
            for name, data in encoded:
                _write(staging / name, data)
            _write(staging / INDEX, index)
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
        path = self.folder(tenant, snapshot_id) / INDEX
        try:
            index: dict[str, Any] = json.loads(path.read_bytes())
        except FileNotFoundError:
            raise KeyError(f"no evidence snapshot {snapshot_id!r} for tenant {tenant!r}") from None
        return index

    def get(self, tenant: str, snapshot_id: str) -> list[dict[str, Any]]:
        index = self.index(tenant, snapshot_id)
        folder = self.folder(tenant, snapshot_id)
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


class EvidenceUnavailable(OSError):
    """The S3 store could not be read or written (throttling, permissions, the network):
    an OSError, so targets report it like a directory that cannot be written."""


class S3EvidenceStore:
    """Evidence snapshots in S3: `s3://bucket/prefix/<tenant>/<snapshot_id>/`, one YAML object
    per document and `index.json` (each document's sha256), every object written with
    server-side encryption (AES256).

    The documents go first and the index last, so a snapshot exists (`get` finds it) only
    once it is complete; a put of an id whose index exists is a no-op returning the same
    location.  `get` checks each document against its sha256 in the index.  `client` is a
    boto3 S3 client; the bucket is the operator's, never a tenant's.
    """

    def __init__(self, client: Any, bucket: str, prefix: str = "") -> None:
        self.client = client
        self.bucket = bucket
        self.prefix = prefix.strip("/")

    def key(self, tenant: str, snapshot_id: str, name: str = "") -> str:
        parts = [self.prefix] if self.prefix else []
        parts += [_component("tenant", tenant), _component("snapshot id", snapshot_id), name]
        return "/".join(parts)

    def url(self, tenant: str, snapshot_id: str) -> str:
        return f"s3://{self.bucket}/{self.key(tenant, snapshot_id)}"

    def location(self, tenant: str, snapshot_id: str) -> str | None:
        complete = self._read(self.key(tenant, snapshot_id, INDEX)) is not None
        return self.url(tenant, snapshot_id) if complete else None

    def put(self, tenant: str, snapshot_id: str, documents: list[Mapping[str, Any]]) -> str:
        location = self.url(tenant, snapshot_id)
        if self._read(self.key(tenant, snapshot_id, INDEX)) is not None:
            return location
        encoded, index = encode_snapshot(tenant, snapshot_id, documents)
        for name, data in encoded:
            self._write(self.key(tenant, snapshot_id, name), data, "application/yaml")
        # The index goes last: a snapshot exists only once it is complete.
        self._write(self.key(tenant, snapshot_id, INDEX), index, "application/json")
        return location

    def index(self, tenant: str, snapshot_id: str) -> dict[str, Any]:
        data = self._read(self.key(tenant, snapshot_id, INDEX))
        if data is None:
            raise KeyError(f"no evidence snapshot {snapshot_id!r} for tenant {tenant!r}")
        index: dict[str, Any] = json.loads(data)
        return index

    def get(self, tenant: str, snapshot_id: str) -> list[dict[str, Any]]:
        index = self.index(tenant, snapshot_id)
        where = self.url(tenant, snapshot_id)
        documents = []
        for entry in index["objects"]:
            data = self._read(self.key(tenant, snapshot_id, entry["file"]))
            if data is None:
                raise EvidenceCorrupted(f"{where}: {entry['file']} is missing")
            if hashlib.sha256(data).hexdigest() != entry["sha256"]:
                raise EvidenceCorrupted(f"{where}: {entry['file']} does not match its sha256 in the index")
            documents.append(yaml.safe_load(data))
        return documents

    def snapshots(self, tenant: str) -> list[str]:
        """The complete snapshots of a tenant (those with an index), ids in order."""
        base = self.key(tenant, "x")[: -len("x/")]
        found = []
        try:
            for page in self.client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=base, Delimiter="/"
            ):
                found += [p["Prefix"][len(base) :].rstrip("/") for p in page.get("CommonPrefixes") or []]
        except Exception as exc:  # botocore ClientError and transport errors
            raise EvidenceUnavailable(f"list {self.bucket}/{base}: {exc}") from exc
        return sorted(sid for sid in found if self._read(self.key(tenant, sid, INDEX)) is not None)

    def _write(self, key: str, data: bytes, content_type: str) -> None:
        try:
            self.client.put_object(
                Bucket=self.bucket,
                Key=key,
                Body=data,
                ContentType=content_type,
                ServerSideEncryption="AES256",
            )
        except Exception as exc:  # botocore ClientError and transport errors
            raise EvidenceUnavailable(f"write s3://{self.bucket}/{key}: {exc}") from exc

    def _read(self, key: str) -> bytes | None:
        """The object's bytes, or None if there is no such key."""
        try:
            data: bytes = self.client.get_object(Bucket=self.bucket, Key=key)["Body"].read()
        except Exception as exc:  # botocore ClientError and transport errors
            code = ((getattr(exc, "response", None) or {}).get("Error") or {}).get("Code")
            if code in ("NoSuchKey", "404"):
                return None
            raise EvidenceUnavailable(f"read s3://{self.bucket}/{key}: {exc}") from exc
        return data


def open_evidence_store(location: str | Path, aws_endpoint_url: str | None = None) -> EvidenceStore:
    """A directory path, or `s3://bucket/prefix` for the S3 backend (the operator's own
    credentials; `aws_endpoint_url` as for the AWS targets)."""
    text = str(location)
    if not text.startswith("s3://"):
        return DirectoryEvidenceStore(Path(text))
    bucket, _, prefix = text.removeprefix("s3://").partition("/")
    import boto3

    from tenant_enforcer.targets.aws.session import RETRIES

    s3 = boto3.client("s3", endpoint_url=aws_endpoint_url, config=RETRIES)
    return S3EvidenceStore(s3, bucket, prefix.strip("/"))
