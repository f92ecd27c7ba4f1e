"""Evidence snapshots: the directory store (pure filesystem) and the manifests that go in it."""

from __future__ import annotations

import hashlib
import json
import stat
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
import yaml

from tenant_enforcer.state.evidence import INDEX, DirectoryEvidenceStore, EvidenceCorrupted
from tenant_enforcer.targets.k8s.deprovision import (
    KIND_BY_NAME,
    OMITTED_DATA_ANNOTATION,
    clean_manifest,
    snapshot_id_for,
)

TENANT, SNAPSHOT = "acme", "acme-web-20260101T000000Z"


def doc(kind: str, name: str, namespace: str | None = "acme-web", **rest: Any) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name}
    if namespace:
        meta["namespace"] = namespace
    return {"apiVersion": "v1", "kind": kind, "metadata": meta, **rest}


DOCS = [
    doc("ServiceAccount", "app"),
    doc(
        "ConfigMap",
        "tricky",
        # Values YAML would read back as other types if they were written unquoted.
        data={
            "yes": "yes",
            "on": "off",
            "when": "2026-01-01T00:00:00Z",
            "octal": "0123",
            "float": "1e3",
            "null": "null",
            "empty": "",
            "unicode": "Grüße ✓",
            "multi": "line one\nline two\n",
        },
    ),
    doc("Deployment", "web", spec={"replicas": 3, "paused": False, "x": None, "big": 2**62, "f": 0.5}),
    doc("Namespace", "acme-web", namespace=None),
]


@pytest.fixture
def store(tmp_path: Path) -> DirectoryEvidenceStore:
    return DirectoryEvidenceStore(tmp_path / "evidence")


def test_put_writes_one_file_per_object_and_an_index(store: DirectoryEvidenceStore) -> None:
    location = store.put(TENANT, SNAPSHOT, DOCS)
    folder = store.root / TENANT / SNAPSHOT
    assert location == str(folder)
    index = json.loads((folder / INDEX).read_text())
    assert index["tenant"] == TENANT and index["snapshot"] == SNAPSHOT and index["version"] == 1
    assert index["createdAt"].endswith("Z")
    assert [(o["kind"], o["namespace"], o["name"]) for o in index["objects"]] == [
        ("ServiceAccount", "acme-web", "app"),
        ("ConfigMap", "acme-web", "tricky"),
        ("Deployment", "acme-web", "web"),
        ("Namespace", None, "acme-web"),
    ]
    assert [o["file"] for o in index["objects"]] == [
        "ServiceAccount.acme-web.app.yaml",
        "ConfigMap.acme-web.tricky.yaml",
        "Deployment.acme-web.web.yaml",
        "Namespace._.acme-web.yaml",
    ]
    assert sorted(p.name for p in folder.iterdir()) == sorted([INDEX, *(o["file"] for o in index["objects"])])
    for entry, original in zip(index["objects"], DOCS, strict=True):
        data = (folder / entry["file"]).read_bytes()
        assert entry["sha256"] == hashlib.sha256(data).hexdigest()
        assert yaml.safe_load(data) == original  # plain YAML, readable without us


def test_get_gives_back_exactly_what_was_put_in_order(store: DirectoryEvidenceStore) -> None:
    store.put(TENANT, SNAPSHOT, DOCS)
    assert store.get(TENANT, SNAPSHOT) == DOCS


def test_a_second_put_of_the_same_id_is_a_no_op(store: DirectoryEvidenceStore) -> None:
    first = store.put(TENANT, SNAPSHOT, DOCS)
    index = (store.root / TENANT / SNAPSHOT / INDEX).read_bytes()
    second = store.put(TENANT, SNAPSHOT, [doc("ConfigMap", "other")])
    assert second == first
    assert (store.root / TENANT / SNAPSHOT / INDEX).read_bytes() == index
    assert store.get(TENANT, SNAPSHOT) == DOCS
    assert sorted(p.name for p in (store.root / TENANT).iterdir()) == [SNAPSHOT]  # no staging left


def test_snapshots_are_private_to_the_operator(store: DirectoryEvidenceStore) -> None:
    store.put(TENANT, SNAPSHOT, DOCS)
    folder = store.root / TENANT / SNAPSHOT
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    assert stat.S_IMODE((store.root / TENANT).stat().st_mode) == 0o700
    for path in folder.iterdir():
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path.name


def test_a_failed_put_leaves_nothing_behind(store: DirectoryEvidenceStore) -> None:
    unwritable = doc("ConfigMap", "bad", data={"value": object()})
    with pytest.raises(yaml.YAMLError):
        store.put(TENANT, SNAPSHOT, [DOCS[0], unwritable])
    assert list((store.root / TENANT).iterdir()) == []
    with pytest.raises(KeyError):
        store.get(TENANT, SNAPSHOT)
    # The same id can still be taken afterwards.
    store.put(TENANT, SNAPSHOT, DOCS)
    assert store.get(TENANT, SNAPSHOT) == DOCS


def test_missing_snapshot_is_a_key_error(store: DirectoryEvidenceStore) -> None:
    with pytest.raises(KeyError):
        store.get(TENANT, SNAPSHOT)
    store.put(TENANT, SNAPSHOT, DOCS)
    with pytest.raises(KeyError):
        store.get(TENANT, "acme-web-20990101T000000Z")
    with pytest.raises(KeyError):
        store.get("someone-else", SNAPSHOT)


def test_snapshots_lists_complete_snapshots_oldest_first(store: DirectoryEvidenceStore) -> None:
    assert store.snapshots(TENANT) == []
    later, earlier = "acme-web-20260102T000000Z", "acme-web-20260101T000000Z"
    store.put(TENANT, later, DOCS)
    store.put(TENANT, earlier, [])
    (store.root / TENANT / ".staging-leftover").mkdir()
    assert store.snapshots(TENANT) == [earlier, later]
    assert store.get(TENANT, earlier) == []


@pytest.mark.parametrize(
    "change",
    ["edit", "remove", "add"],
)
def test_get_refuses_a_snapshot_that_does_not_match_its_index(
    store: DirectoryEvidenceStore, change: str
) -> None:
    store.put(TENANT, SNAPSHOT, DOCS)
    folder = store.root / TENANT / SNAPSHOT
    target = folder / "Deployment.acme-web.web.yaml"
    if change == "edit":
        target.write_text(target.read_text().replace("replicas: 3", "replicas: 0"))
    elif change == "remove":
        target.unlink()
    else:
        (folder / "Secret.acme-web.planted.yaml").write_text("kind: Secret\n")
    with pytest.raises(EvidenceCorrupted, match=r"Deployment\.acme-web\.web\.yaml|planted"):
        store.get(TENANT, SNAPSHOT)


@pytest.mark.parametrize(
    "tenant, snapshot", [("../etc", SNAPSHOT), (TENANT, "a/b"), (TENANT, ".hidden"), ("", "x")]
)
def test_names_that_are_not_one_path_component_are_refused(
    store: DirectoryEvidenceStore, tenant: str, snapshot: str
) -> None:
    with pytest.raises(ValueError, match="cannot name a directory"):
        store.put(tenant, snapshot, DOCS)
    assert not store.root.exists() or not any(store.root.rglob("*.yaml"))


def test_an_object_given_twice_is_refused(store: DirectoryEvidenceStore) -> None:
    with pytest.raises(ValueError, match=r"given twice: ConfigMap\.acme-web\.x\.yaml"):
        store.put(TENANT, SNAPSHOT, [doc("ConfigMap", "x"), doc("ConfigMap", "x", data={"a": "b"})])
    with pytest.raises(KeyError):
        store.get(TENANT, SNAPSHOT)


# --- what goes into a snapshot --------------------------------------------------------------

LIVE_META: dict[str, Any] = {
    "name": "web",
    "namespace": "acme-web",
    "uid": "u-web",
    "resourceVersion": "42",
    "generation": 3,
    "creationTimestamp": "2026-01-01T00:00:00Z",
    "managedFields": [{"manager": "kubectl"}],
    "labels": {"app": "web"},
    "annotations": {"owner": "alice", "deployment.kubernetes.io/revision": "2"},
}


def test_clean_manifest_keeps_what_the_tenant_wrote_and_nothing_the_server_did() -> None:
    live = {
        "metadata": {
            **LIVE_META,
            "ownerReferences": [
                {"apiVersion": "example.com/v1", "kind": "App", "name": "gone", "uid": "u-doomed"},
                {"apiVersion": "example.com/v1", "kind": "App", "name": "stays", "uid": "u-kept"},
            ],
            "finalizers": ["example.com/keep", "foregroundDeletion"],
        },
        "spec": {"replicas": 3},
        "status": {"readyReplicas": 3},
    }
    assert clean_manifest(KIND_BY_NAME["Deployment"], live, doomed_uids={"u-doomed"}) == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": "web",
            "namespace": "acme-web",
            "labels": {"app": "web"},
            "annotations": {"owner": "alice"},
            "ownerReferences": [
                {"apiVersion": "example.com/v1", "kind": "App", "name": "stays", "uid": "u-kept"}
            ],
            "finalizers": ["example.com/keep"],
        },
        "spec": {"replicas": 3},
    }
    assert live["status"] == {"readyReplicas": 3}  # the live object is not changed


def test_secret_values_are_left_out_unless_the_ladder_opts_in() -> None:
    secret = {
        "metadata": {"name": "creds", "namespace": "acme-web", "uid": "u"},
        "type": "Opaque",
        "data": {"password": "aHVudGVyMg==", "user": "YWRtaW4="},
    }
    kept = clean_manifest(KIND_BY_NAME["Secret"], secret, keep_secret_data=False)
    assert "data" not in kept and "stringData" not in kept
    assert kept["type"] == "Opaque"
    assert kept["metadata"]["annotations"] == {OMITTED_DATA_ANNOTATION: "password,user"}
    assert "aHVudGVyMg==" not in json.dumps(kept)
    opted_in = clean_manifest(KIND_BY_NAME["Secret"], secret, keep_secret_data=True)
    assert opted_in["data"] == secret["data"] and "annotations" not in opted_in["metadata"]


def test_generated_fields_that_would_block_creating_it_again_are_dropped() -> None:
    service = {
        "metadata": {"name": "web", "namespace": "n"},
        "spec": {"clusterIP": "10.0.0.7", "clusterIPs": ["10.0.0.7"], "ports": [{"port": 80}]},
    }
    assert clean_manifest(KIND_BY_NAME["Service"], service)["spec"] == {"ports": [{"port": 80}]}
    headless = {
        "metadata": {"name": "db", "namespace": "n"},
        "spec": {"clusterIP": "None", "clusterIPs": ["None"]},
    }
    assert clean_manifest(KIND_BY_NAME["Service"], headless)["spec"] == headless["spec"]
    uid_labels = {"controller-uid": "u", "batch.kubernetes.io/controller-uid": "u", "app": "once"}
    job = {
        "metadata": {"name": "once", "namespace": "n", "labels": dict(uid_labels)},
        "spec": {
            "selector": {"matchLabels": {"batch.kubernetes.io/controller-uid": "u"}},
            "template": {"metadata": {"labels": dict(uid_labels)}, "spec": {"restartPolicy": "Never"}},
        },
    }
    clean_job = clean_manifest(KIND_BY_NAME["Job"], job)
    assert "selector" not in clean_job["spec"]
    assert clean_job["metadata"]["labels"] == {"app": "once"}
    assert clean_job["spec"]["template"]["metadata"]["labels"] == {"app": "once"}
    pod = {"metadata": {"name": "p", "namespace": "n"}, "spec": {"nodeName": "kwok-1", "containers": []}}
    assert clean_manifest(KIND_BY_NAME["Pod"], pod)["spec"] == {"containers": []}


def test_snapshot_ids_name_the_namespace_and_the_time() -> None:
    when = datetime(2026, 1, 2, 4, 5, 6, tzinfo=timezone(timedelta(hours=2)))
    assert snapshot_id_for("acme-web", when) == "acme-web-20260102T020506Z"
