"""Fixtures: the operator, running in-process against the real API server.

`kube` + `operator` use the light control plane (etcd + kube-apiserver); `kube_full` +
`operator_full` the full one (controllers, scheduler, KWOK nodes) where pods must exist.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from kubehelpers import OPERATOR_NAMESPACE, OPERATOR_USER, AuditLog, Kube
from kubernetes import client, config

from tenant_enforcer.controller.runner import OperatorConfig, run
from tenant_enforcer.devcluster.cluster import LocalCluster


@contextmanager
def running_operator(cluster: LocalCluster, workdir: Path) -> Iterator[AuditLog]:
    """The operator in a thread, with its own identity so its writes can be counted."""
    kubeconfig = cluster.kubeconfig_for(OPERATOR_USER)
    conf = OperatorConfig(
        kubeconfig=kubeconfig, namespace=OPERATOR_NAMESPACE, workers=2, evidence_dir=workdir / "evidence"
    )
    stop, ready = threading.Event(), threading.Event()
    thread = threading.Thread(
        target=run, args=(conf,), kwargs={"stop": stop, "ready": ready}, daemon=True, name="operator"
    )
    thread.start()
    assert ready.wait(60), "operator did not become ready"
    try:
        yield AuditLog(cluster.audit_log, OPERATOR_USER, evidence_dir=conf.evidence_dir)
    finally:
        stop.set()
        thread.join(30)
    assert not thread.is_alive(), "operator did not stop within 30 s"


@pytest.fixture(scope="session")
def kube(cluster: LocalCluster, api: client.ApiClient, crds: None) -> Kube:
    return Kube(api, cluster)


@pytest.fixture(scope="session")
def operator(
    cluster: LocalCluster, crds: None, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[AuditLog]:
    with running_operator(cluster, tmp_path_factory.mktemp("operator")) as audit:
        yield audit


@pytest.fixture(scope="session")
def kube_full(full_cluster: LocalCluster) -> Kube:
    return Kube(config.new_client_from_config(config_file=str(full_cluster.kubeconfig)), full_cluster)


@pytest.fixture(scope="session")
def operator_full(full_cluster: LocalCluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[AuditLog]:
    with running_operator(full_cluster, tmp_path_factory.mktemp("operator-full")) as audit:
        yield audit
