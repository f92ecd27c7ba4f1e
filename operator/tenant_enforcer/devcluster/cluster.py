"""Start and stop a local control plane: etcd + kube-apiserver, optionally controllers + KWOK.

Every process runs in its own process group and is asked to die with us (PR_SET_PDEATHSIG),
so neither a failed test nor Ctrl-C leaves orphans.  Stop goes in reverse order: a
kube-apiserver whose etcd went first hangs in its shutdown.
"""

from __future__ import annotations

import ctypes
import os
import signal
import socket
import ssl
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from tenant_enforcer.devcluster.build import Binaries, ensure_binaries
from tenant_enforcer.devcluster.configfiles import write_audit_policy, write_kubeconfig
from tenant_enforcer.devcluster.pki import LocalPKI

FAKE_NODE_ANNOTATION = "kwok.x-k8s.io/node"
STOP_TIMEOUT_S = 15.0


class ClusterError(RuntimeError):
    """A component did not come up; the message names the binary, port and log file."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _die_with_parent() -> None:
    # Runs in the child between fork and exec: SIGTERM it if the Python process dies.
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


@dataclass
class Component:
    name: str
    process: subprocess.Popen[bytes]
    log: Path
    port: int | None = None

    def tail(self, lines: int = 15) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def stop(self) -> None:
        if self.process.poll() is not None:
            return
        try:
            os.killpg(self.process.pid, signal.SIGTERM)
            self.process.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(5)
        except ProcessLookupError:
            pass


@dataclass
class LocalCluster:
    """A running control plane.  Use `start_cluster()`; call `stop()` (or use the context)."""

    directory: Path
    binaries: Binaries
    kubeconfig: Path
    server: str
    pki: LocalPKI | None = None
    components: list[Component] = field(default_factory=list)

    @property
    def audit_log(self) -> Path:
        return self.directory / "audit.log"

    def kubeconfig_for(self, user: str, groups: tuple[str, ...] = ("system:masters",)) -> Path:
        """A kubeconfig with a client certificate for `user`, e.g. the operator's own identity."""
        assert self.pki is not None
        pair = self.pki.issue(f"user-{user}", user, org=",".join(groups) or None)
        path = self.directory / f"{user}.kubeconfig"
        write_kubeconfig(path, self.server, self.pki.ca.cert, pair, user)
        return path

    @property
    def kubectl(self) -> Path:
        return self.binaries.kubectl

    def kubectl_cmd(self, *args: str) -> list[str]:
        return [str(self.kubectl), f"--kubeconfig={self.kubeconfig}", *args]

    def stop(self) -> None:
        for component in reversed(self.components):
            component.stop()
        self.components.clear()

    def install_crds(self, directory: Path, timeout: float = 60) -> None:
        """Apply every manifest in `directory` (CRDs and their admission policies) and wait until
        the CRDs can be served, not just Established: the API server answers 429 while a new
        resource's storage initializes, and clients that start then (kopf) back off for tens
        of seconds.  Admission policies take a moment more to be enforced; callers that rely
        on one poll for it (tests/conftest.py)."""
        subprocess.run(
            self.kubectl_cmd("apply", "--server-side", "-f", str(directory)), check=True, capture_output=True
        )
        deadline = time.monotonic() + timeout
        # Each file on its own: concatenated, two files without `---` between them would merge.
        docs = [d for p in sorted(directory.glob("*.yaml")) for d in yaml.safe_load_all(p.read_text())]
        for doc in docs:
            if not doc or doc.get("kind") != "CustomResourceDefinition":
                continue
            plural = f"{doc['spec']['names']['plural']}.{doc['spec']['group']}"
            while subprocess.run(self.kubectl_cmd("get", plural), capture_output=True).returncode:
                if time.monotonic() > deadline:
                    raise ClusterError(f"CRD {plural} not servable within {timeout:.0f} s")
                time.sleep(0.2)


class _Starter:
    """Builds the command lines and waits for each component; one instance per cluster."""

    def __init__(self, directory: Path, binaries: Binaries, pki: LocalPKI) -> None:
        self.dir = directory
        self.bins = binaries
        self.pki = pki
        self.components: list[Component] = []

    def spawn(self, name: str, argv: list[str], port: int | None = None) -> Component:
        log = self.dir / f"{name}.log"
        handle = log.open("wb")
        try:
            proc = subprocess.Popen(
                argv,
                stdout=handle,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                preexec_fn=_die_with_parent,
            )
        except OSError as exc:
            raise ClusterError(f"cannot start {name} ({argv[0]}): {exc}") from exc
        finally:
            handle.close()
        component = Component(name, proc, log, port)
        self.components.append(component)
        return component

    def wait_until(self, component: Component, ready: Callable[[], bool], timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if component.process.poll() is not None:
                raise ClusterError(
                    f"{component.name} exited with code {component.process.returncode} before {what} "
                    f"(port {component.port}); log {component.log}:\n{component.tail()}"
                )
            if ready():
                return
            time.sleep(0.2)
        raise ClusterError(
            f"{component.name} did not become {what} within {timeout:.0f} s "
            f"(port {component.port}); log {component.log}:\n{component.tail()}"
        )


def _http_ok(url: str, context: ssl.SSLContext | None = None) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2, context=context) as resp:
            return bool(resp.status == 200)
    except OSError:
        return False


def _start_etcd(st: _Starter) -> str:
    client, peer = free_port(), free_port()
    url = f"http://127.0.0.1:{client}"
    etcd = st.spawn(
        "etcd",
        [
            str(st.bins.etcd),
            "--name=local",
            f"--data-dir={st.dir / 'etcd-data'}",
            f"--listen-client-urls={url}",
            f"--advertise-client-urls={url}",
            f"--listen-peer-urls=http://127.0.0.1:{peer}",
            f"--initial-advertise-peer-urls=http://127.0.0.1:{peer}",
            f"--initial-cluster=local=http://127.0.0.1:{peer}",
            # A throw-away cluster: durability buys nothing and fsync dominates its latency.
            "--unsafe-no-fsync",
            "--log-level=warn",
        ],
        port=client,
    )
    st.wait_until(etcd, lambda: _http_ok(f"{url}/health"), 30, "healthy")
    return url


def _start_apiserver(st: _Starter, etcd_url: str) -> tuple[str, Path]:
    port = free_port()
    serving = st.pki.issue("apiserver", "kube-apiserver", server=True)
    sa = st.pki.service_account_keys()
    admin = st.pki.issue("admin", "admin", org="system:masters")
    server = f"https://127.0.0.1:{port}"
    kubeconfig = st.dir / "admin.kubeconfig"
    write_kubeconfig(kubeconfig, server, st.pki.ca.cert, admin, "admin")
    apiserver = st.spawn(
        "kube-apiserver",
        [
            str(st.bins.kube_apiserver),
            f"--etcd-servers={etcd_url}",
            "--bind-address=127.0.0.1",
            "--advertise-address=127.0.0.1",
            f"--secure-port={port}",
            f"--tls-cert-file={serving.cert}",
            f"--tls-private-key-file={serving.key}",
            f"--client-ca-file={st.pki.ca.cert}",
            "--authorization-mode=RBAC",
            f"--service-account-key-file={sa.cert}",
            f"--service-account-signing-key-file={sa.key}",
            "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
            "--service-cluster-ip-range=10.0.0.0/24",
            "--allow-privileged=true",
            "--disable-admission-plugins=ServiceAccount",
            # Every write, by whom: tests count the operator's API writes from this log.
            f"--audit-policy-file={write_audit_policy(st.dir)}",
            f"--audit-log-path={st.dir / 'audit.log'}",
            "--audit-log-format=json",
            "--audit-log-mode=blocking",
            "--v=1",
        ],
        port=port,
    )
    context = ssl.create_default_context(cafile=str(st.pki.ca.cert))
    context.load_cert_chain(str(admin.cert), str(admin.key))
    st.wait_until(apiserver, lambda: _http_ok(f"{server}/readyz", context), 90, "ready (/readyz)")
    return server, kubeconfig


def _start_controllers(st: _Starter, kubeconfig: Path) -> None:
    sa_key = st.pki.directory / "sa.key"
    kcm = st.spawn(
        "kube-controller-manager",
        [
            str(st.bins.kube_controller_manager),
            f"--kubeconfig={kubeconfig}",
            "--leader-elect=false",
            f"--service-account-private-key-file={sa_key}",
            f"--root-ca-file={st.pki.ca.cert}",
            f"--cluster-signing-cert-file={st.pki.ca.cert}",
            f"--cluster-signing-key-file={st.pki.ca.key}",
            "--use-service-account-credentials=false",
            "--bind-address=127.0.0.1",
            "--secure-port=0",
            "--controllers=*,-nodeipam,-cloud-node-lifecycle,-service-lb-controller,-route",
            "--v=1",
        ],
    )
    scheduler_port = free_port()
    scheduler = st.spawn(
        "kube-scheduler",
        [
            str(st.bins.kube_scheduler),
            f"--kubeconfig={kubeconfig}",
            "--leader-elect=false",
            "--bind-address=127.0.0.1",
            f"--secure-port={scheduler_port}",
            f"--authentication-kubeconfig={kubeconfig}",
            f"--authorization-kubeconfig={kubeconfig}",
            "--v=1",
        ],
        port=scheduler_port,
    )
    insecure = ssl.create_default_context()
    insecure.check_hostname = False
    insecure.verify_mode = ssl.CERT_NONE
    st.wait_until(
        scheduler, lambda: _http_ok(f"https://127.0.0.1:{scheduler_port}/healthz", insecure), 60, "healthy"
    )
    # kube-controller-manager serves nothing here; give it a moment to fail fast on bad flags.
    time.sleep(1)
    if kcm.process.poll() is not None:
        raise ClusterError(f"kube-controller-manager exited early; log {kcm.log}:\n{kcm.tail()}")


def _start_kwok(st: _Starter, kubeconfig: Path, nodes: int) -> None:
    assert st.bins.kwok is not None
    configs = [f"--config={p}" for p in st.bins.kwok_stages]
    kwok = st.spawn(
        "kwok",
        [
            str(st.bins.kwok),
            f"--kubeconfig={kubeconfig}",
            "--manage-all-nodes=false",
            f"--manage-nodes-with-annotation-selector={FAKE_NODE_ANNOTATION}=fake",
            "--cidr=10.244.0.0/16",
            "--node-ip=10.1.0.1",
            *configs,
        ],
    )
    nodes_file = st.dir / "kwok-nodes.yaml"
    nodes_file.write_text(yaml.safe_dump_all([_fake_node(f"kwok-node-{i}") for i in range(nodes)]))
    subprocess.run(
        [str(st.bins.kubectl), f"--kubeconfig={kubeconfig}", "apply", "-f", str(nodes_file)],
        check=True,
        capture_output=True,
    )
    ready_cmd = [
        str(st.bins.kubectl),
        f"--kubeconfig={kubeconfig}",
        "wait",
        "--for=condition=Ready",
        "node",
        "--all",
        "--timeout=1s",
    ]
    st.wait_until(
        kwok,
        lambda: subprocess.run(ready_cmd, capture_output=True).returncode == 0,
        60,
        "managing Ready nodes",
    )


def _fake_node(name: str) -> dict[str, object]:
    capacity = {"cpu": "32", "memory": "256Gi", "pods": "110"}
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "annotations": {FAKE_NODE_ANNOTATION: "fake"},
            "labels": {"type": "kwok", "kubernetes.io/hostname": name, "kubernetes.io/os": "linux"},
        },
        "spec": {},
        "status": {"allocatable": capacity, "capacity": capacity},
    }


def start_cluster(directory: Path | None = None, *, full: bool = False, nodes: int = 2) -> LocalCluster:
    """Start etcd + kube-apiserver (and, if `full`, controllers, scheduler and KWOK nodes)."""
    binaries = ensure_binaries(with_kwok=full)
    workdir = directory or Path(tempfile.mkdtemp(prefix="tenant-enforcer-cluster-"))
    workdir.mkdir(parents=True, exist_ok=True)
    starter = _Starter(workdir, binaries, LocalPKI(workdir / "pki"))
    try:
        etcd_url = _start_etcd(starter)
        server, kubeconfig = _start_apiserver(starter, etcd_url)
        if full:
            _start_controllers(starter, kubeconfig)
            _start_kwok(starter, kubeconfig, nodes)
    except BaseException:
        for component in reversed(starter.components):
            component.stop()
        raise
    return LocalCluster(workdir, binaries, kubeconfig, server, starter.pki, starter.components)


@contextmanager
def running_cluster(directory: Path | None = None, *, full: bool = False) -> Iterator[LocalCluster]:
    cluster = start_cluster(directory, full=full)
    try:
        yield cluster
    finally:
        cluster.stop()
