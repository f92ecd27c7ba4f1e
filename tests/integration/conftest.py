"""Fixtures: the operator, running in-process against the real API server.

`kube` + `operator` use the light control plane (etcd + kube-apiserver); `kube_full` +
`operator_full` the full one (controllers, scheduler, KWOK nodes) where pods must exist.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any

import pytest
from kubehelpers import OPERATOR_NAMESPACE, OPERATOR_USER, AuditLog, Kube, MotoServer
from kubernetes import client, config
from moto.server import ThreadedMotoServer

from tenant_enforcer.controller.runner import OperatorConfig, run
from tenant_enforcer.devcluster.cluster import LocalCluster


@contextmanager
def running_operator(
    cluster: LocalCluster, workdir: Path, aws_endpoint: str | None = None, **overrides: Any
) -> Iterator[AuditLog]:
    """The operator in a thread, with its own identity so its writes can be counted;
    `overrides` sets other OperatorConfig fields (e.g. breaker_limit)."""
    kubeconfig = cluster.kubeconfig_for(OPERATOR_USER)
    # The shared operators run many tests' raises in a few minutes: no breaker unless asked.
    overrides = {"breaker_limit": 0, **overrides}
    conf = OperatorConfig(
        kubeconfig=kubeconfig,
        namespace=OPERATOR_NAMESPACE,
        workers=2,
        evidence_dir=workdir / "evidence",
        aws_endpoint_url=aws_endpoint,
        **overrides,
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
def operator_factory() -> Callable[..., AbstractContextManager[AuditLog]]:
    """`running_operator`, for tests that run their own operator on their own cluster."""
    return running_operator


@pytest.fixture(scope="session")
def kube(cluster: LocalCluster, api: client.ApiClient, crds: None) -> Kube:
    return Kube(api, cluster)


@pytest.fixture(scope="session")
def operator(
    cluster: LocalCluster, crds: None, tmp_path_factory: pytest.TempPathFactory, moto_server: MotoServer
) -> Iterator[AuditLog]:
    with running_operator(cluster, tmp_path_factory.mktemp("operator"), moto_server.endpoint) as audit:
        yield audit


@pytest.fixture(scope="session")
def kube_full(full_cluster: LocalCluster) -> Kube:
    return Kube(config.new_client_from_config(config_file=str(full_cluster.kubeconfig)), full_cluster)


@pytest.fixture(scope="session")
def operator_full(
    full_cluster: LocalCluster, tmp_path_factory: pytest.TempPathFactory, moto_server: MotoServer
) -> Iterator[AuditLog]:
    with running_operator(
        full_cluster, tmp_path_factory.mktemp("operator-full"), moto_server.endpoint
    ) as audit:
        yield audit


@pytest.fixture(scope="session")
def moto_server() -> Iterator[MotoServer]:
    """moto in server mode on a free loopback port: the operator talks to it over HTTP."""
    os.environ.update(
        {
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_EC2_METADATA_DISABLED": "true",
        }
    )
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield MotoServer(f"http://{host}:{port}")
    server.stop()


@pytest.fixture
def aws(moto_server: MotoServer) -> MotoServer:
    """A clean moto state for each test that uses AWS."""
    moto_server.reset()
    return moto_server
