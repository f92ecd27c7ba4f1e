"""Session fixtures: a real local control plane (built from Go sources, cached) and its clients.

Started lazily: unit tests never pay for it.  Each test uses its own tenant and namespace
names (see `unique`), so tests do not depend on each other or on their order.
"""

from __future__ import annotations

import json
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from kubernetes import client, config

from tenant_enforcer.devcluster.cluster import LocalCluster, running_cluster

ROOT = Path(__file__).resolve().parent.parent
CRDS = ROOT / "crds"


APPROVER_MESSAGE = "spec.approver must be the identity creating the approval"


def install_crds(cluster: LocalCluster, timeout: float = 30) -> None:
    """The CRDs and the approval policy, once the API server enforces that policy: a new
    ValidatingAdmissionPolicy takes a moment to reach the admission plugin, so a server-side
    dry run of an approval in someone else's name is repeated until it is refused."""
    cluster.install_crds(CRDS)
    probe = {
        "apiVersion": "tenant-enforcer.io/v1alpha1",
        "kind": "EnforcementApproval",
        "metadata": {"name": "admission-policy-probe"},
        "spec": {
            "tenant": "probe",
            "level": "Deprovision",
            "verdicts": ["probe"],
            "approver": "not-the-admin",
            "reason": "checks that the approval policy is enforced",
        },
    }
    deadline = time.monotonic() + timeout
    while True:
        done = subprocess.run(
            cluster.kubectl_cmd("create", "--dry-run=server", "-f", "-"),
            input=json.dumps(probe),
            capture_output=True,
            text=True,
        )
        if done.returncode and APPROVER_MESSAGE in done.stderr:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"the approval policy is not enforced after {timeout:.0f} s: {done}")
        time.sleep(0.2)


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
