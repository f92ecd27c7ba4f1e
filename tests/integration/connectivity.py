"""What the NetworkPolicies of a set of namespaces mean, computed by network-config-analyzer.

Our test clusters have no data plane, so a policy's presence says little: this exports the
namespaces, their Pods and their NetworkPolicies from the real API server into a folder of
manifests and asks `nca --connectivity` which connections they allow between the pods (and
to and from IP ranges outside the cluster).

nca's `txt_no_fw_rules` output is one allowed connection per line, e.g.

    t-1234-web/web => kube-system/kube-dns-1234 : {protocols:TCP, UDP,dst_ports:53}
    mon-1234/prom => t-1234-web/web : All connections
    0.0.0.0-255.255.255.255 => other/client : All connections

An endpoint is `namespace/pod` or an IP range; a pod's connections with itself are not
listed.  Anything else in that output, or a non-zero exit, fails loudly.

nca pins exact versions of its dependencies (network-config-analyzer 2.1.0: PyYAML==6.0.2),
while the kubernetes client we run on needs PyYAML >= 6.0.3 (37.x): in one environment pip
would quietly downgrade the client.  So nca gets a virtualenv of its own, created on first
use and cached beside the control-plane binaries (~/.cache/tenant-enforcer/nca-<version>/);
NCA_PYTHON may name an interpreter that has it instead.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from kubernetes import client

from tenant_enforcer.devcluster.build import cache_root

NCA_VERSION = "2.1.0"
ALL = "All connections"
_LINE = re.compile(r"^(?P<src>\S+) => (?P<dst>\S+) : (?P<allowed>.+)$")


@dataclass(frozen=True, order=True)
class Connection:
    src: str  # "namespace/pod", or an IP range for traffic from outside the cluster
    dst: str
    allowed: str  # "All connections", or e.g. "{protocols:TCP, UDP,dst_ports:53}"

    def __str__(self) -> str:
        return f"{self.src} => {self.dst} : {self.allowed}"


def _raw(response: Any) -> dict[str, Any]:
    result: dict[str, Any] = json.loads(response.data)
    return result


def export(api: client.ApiClient, namespaces: Iterable[str], directory: Path) -> dict[str, int]:
    """Write the namespaces, every Pod and every NetworkPolicy in them as manifests; returns
    how many of each were written."""
    core, net = client.CoreV1Api(api), client.NetworkingV1Api(api)
    docs: dict[str, list[dict[str, Any]]] = {"namespaces": [], "pods": [], "policies": []}
    for name in sorted(set(namespaces)):
        ns = _raw(core.read_namespace(name, _preload_content=False))
        docs["namespaces"].append(
            {
                "apiVersion": "v1",
                "kind": "Namespace",
                "metadata": {"name": name, "labels": ns["metadata"].get("labels") or {}},
            }
        )
        for pod in _raw(core.list_namespaced_pod(name, _preload_content=False))["items"]:
            meta = pod["metadata"]
            docs["pods"].append(
                {
                    "apiVersion": "v1",
                    "kind": "Pod",
                    "metadata": {"name": meta["name"], "namespace": name, "labels": meta.get("labels") or {}},
                    "spec": pod["spec"],
                }
            )
        for policy in _raw(net.list_namespaced_network_policy(name, _preload_content=False))["items"]:
            meta = policy["metadata"]
            docs["policies"].append(
                {
                    "apiVersion": "networking.k8s.io/v1",
                    "kind": "NetworkPolicy",
                    "metadata": {"name": meta["name"], "namespace": name, "labels": meta.get("labels") or {}},
                    "spec": policy["spec"],
                }
            )
    for what, items in docs.items():
        (directory / f"{what}.yaml").write_text(yaml.safe_dump_all(items, sort_keys=True))
    return {what: len(items) for what, items in docs.items()}


def nca_python() -> str:
    """An interpreter with network-config-analyzer installed (see the module's docstring)."""
    if os.environ.get("NCA_PYTHON"):
        return os.environ["NCA_PYTHON"]
    final = cache_root() / f"nca-{NCA_VERSION}"
    if (final / "complete").exists():
        return str(final / "bin" / "python")
    final.parent.mkdir(parents=True, exist_ok=True)
    # Filled aside, then renamed into place: an interrupted install is never trusted.
    # (`python -m` finds a renamed virtualenv's packages: they are found from its own path.)
    tmp = Path(tempfile.mkdtemp(prefix=f".nca-{NCA_VERSION}.", dir=final.parent))
    try:
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(tmp)], check=True, capture_output=True)
        pip = subprocess.run(
            [
                str(tmp / "bin" / "python"),
                "-m",
                "pip",
                "install",
                "-q",
                f"network-config-analyzer=={NCA_VERSION}",
            ],
            capture_output=True,
            text=True,
            timeout=900,
        )
        assert pip.returncode == 0, f"installing network-config-analyzer failed:\n{pip.stdout}\n{pip.stderr}"
        (tmp / "complete").write_text(NCA_VERSION)
        if (final / "complete").exists():  # another run finished first: keep that one
            shutil.rmtree(tmp)
        else:
            shutil.rmtree(final, ignore_errors=True)
            os.replace(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return str(final / "bin" / "python")


def run_nca(directory: Path, out: Path) -> frozenset[Connection]:
    """Run nca on the manifests in `directory`, writing its answer to `out`."""
    proc = subprocess.run(
        [
            nca_python(),
            "-m",
            "nca",
            "--connectivity",
            "--resource_list",
            str(directory),
            "--output_format",
            "txt_no_fw_rules",
            "--output_endpoints",
            "pods",
            "--file_out",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, f"nca failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
    return parse(out.read_text())


def parse(text: str) -> frozenset[Connection]:
    connections = set()
    for line in text.splitlines():
        if not line.strip():
            continue
        match = _LINE.match(line.strip())
        assert match, f"unexpected line in nca's output: {line!r}\n{text}"
        connections.add(Connection(match["src"], match["dst"], match["allowed"]))
    return frozenset(connections)


@dataclass(frozen=True)
class Analysis:
    connections: frozenset[Connection]
    exported: dict[str, int]  # how many namespaces, pods and policies nca saw

    def touching(self, namespaces: Iterable[str]) -> frozenset[Connection]:
        """The connections that start or end at a pod of `namespaces`."""
        prefixes = tuple(f"{ns}/" for ns in namespaces)
        return frozenset(
            c for c in self.connections if c.src.startswith(prefixes) or c.dst.startswith(prefixes)
        )

    def not_touching(self, namespaces: Iterable[str]) -> frozenset[Connection]:
        return self.connections - self.touching(namespaces)


def analyze(api: client.ApiClient, namespaces: Iterable[str]) -> Analysis:
    with tempfile.TemporaryDirectory(prefix="nca-") as tmp:
        manifests = Path(tmp) / "manifests"
        manifests.mkdir()
        exported = export(api, namespaces, manifests)
        return Analysis(run_nca(manifests, Path(tmp) / "connectivity.txt"), exported)
