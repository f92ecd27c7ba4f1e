"""`--evidence-dir` takes a directory or s3://bucket/prefix; both stores behave the same."""

from __future__ import annotations

from pathlib import Path

from kubehelpers import MotoServer

from tenant_enforcer.state.evidence import DirectoryEvidenceStore, S3EvidenceStore, open_evidence_store

DOCS = [
    {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "namespace": "n"}, "data": {"k": "v"}}
]


def test_a_path_opens_the_directory_store(tmp_path: Path) -> None:
    store = open_evidence_store(tmp_path / "evidence")
    assert isinstance(store, DirectoryEvidenceStore)
    location = store.put("acme", "snap-1", DOCS)
    assert Path(location).is_dir()
    assert store.get("acme", "snap-1") == DOCS


def test_an_s3_url_opens_the_s3_store_with_prefix(aws: MotoServer) -> None:
    aws.client("s3").create_bucket(Bucket="operator-evidence")
    store = open_evidence_store("s3://operator-evidence/cluster-a/evidence", aws.endpoint)
    assert isinstance(store, S3EvidenceStore)
    location = store.put("acme", "snap-1", DOCS)
    assert location.startswith("s3://operator-evidence/cluster-a/evidence/acme/snap-1")
    keys = [o["Key"] for o in aws.client("s3").list_objects_v2(Bucket="operator-evidence")["Contents"]]
    assert keys and all(k.startswith("cluster-a/evidence/acme/snap-1/") for k in keys)
    assert store.get("acme", "snap-1") == DOCS
