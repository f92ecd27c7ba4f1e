"""Fixtures: the operator, running in-process against the real API server."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest
from kubehelpers import OPERATOR_NAMESPACE, OPERATOR_USER, AuditLog, Kube
from kubernetes import client

from tenant_enforcer.controller.runner import OperatorConfig, run
from tenant_enforcer.devcluster.cluster import LocalCluster


@pytest.fixture(scope="session")
def kube(cluster: LocalCluster, api: client.ApiClient, crds: None) -> Kube:
    return Kube(api, cluster)


@pytest.fixture(scope="session")
def operator(cluster: LocalCluster, crds: None) -> Iterator[AuditLog]:
    """The operator in a thread, with its own identity so its writes can be counted."""
    kubeconfig = cluster.kubeconfig_for(OPERATOR_USER)
    stop, ready = threading.Event(), threading.Event()
    thread = threading.Thread(
        target=run,
        args=(OperatorConfig(kubeconfig=kubeconfig, namespace=OPERATOR_NAMESPACE, workers=2),),
        kwargs={"stop": stop, "ready": ready},
        daemon=True,
        name="operator",
    )
    thread.start()
    assert ready.wait(60), "operator did not become ready"
    yield AuditLog(cluster.audit_log, OPERATOR_USER)
    stop.set()
    thread.join(30)
    assert not thread.is_alive(), "operator did not stop within 30 s"
