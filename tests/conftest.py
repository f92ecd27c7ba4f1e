"""Session fixtures: a real local control plane (built from Go sources, cached) and its clients.

Started lazily: unit tests never pay for it.  Each test uses its own tenant and namespace
names (see `unique`), so tests do not depend on each other or on their order.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from kubernetes import client, config

from tenant_enforcer.devcluster.cluster import LocalCluster, running_cluster

ROOT = Path(__file__).resolve().parent.parent
CRDS = ROOT / "crds"


def install_crds(cluster: LocalCluster) -> None:
    cluster.install_crds(CRDS)


@pytest.fixture(scope="session")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    """etcd + kube-apiserver: enough for everything that needs no pods."""
    with running_cluster(tmp_path_factory.mktemp("cluster")) as running:
        yield running


@pytest.fixture(scope="session")
def full_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    """Adds kube-controller-manager, kube-scheduler and KWOK nodes so Deployments get Pods."""
    with running_cluster(tmp_path_factory.mktemp("full-cluster"), full=True) as running:
        install_crds(running)
        yield running


@pytest.fixture(scope="session")
def crds(cluster: LocalCluster) -> None:
    install_crds(cluster)


@pytest.fixture(scope="session")
def api(cluster: LocalCluster) -> client.ApiClient:
    return config.new_client_from_config(config_file=str(cluster.kubeconfig))


@pytest.fixture
def unique() -> str:
    """A short suffix that keeps each test's tenants and namespaces apart."""
    return uuid.uuid4().hex[:6]
