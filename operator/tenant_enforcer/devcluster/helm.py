"""Build the helm binary from the Go module proxy and cache it by version.

Same rules as the control-plane binaries (`build.py`): a pinned version, built into a
temporary directory that is renamed into `~/.cache/tenant-enforcer/helm-<version>/` only
once the binary exists, so an interrupted build is never trusted.

The version is stamped the way helm's Makefile does it, including the Kubernetes version
`helm template` and `helm lint` assume when no cluster is asked (`.Capabilities.KubeVersion`),
derived from the client-go that helm itself is built against.
"""

from __future__ import annotations

import re
import subprocess
import time
from collections.abc import Mapping
from pathlib import Path

from tenant_enforcer.devcluster.build import (
    BuildError,
    _cached,
    _download_go_mod,
    _go,
    _log,
    _progress,
)

# The newest helm v3 whose go.mod (`go 1.26.0`) the Go we require builds.
HELM_VERSION = "v3.22.0"
HELM_MODULE = "helm.sh/helm/v3"


def helm_ldflags(version: str, helm_go_mod: str) -> str:
    """helm's Makefile LDFLAGS: its version, and the Kubernetes version of its client-go."""
    found = re.search(r"^\s*k8s\.io/client-go\s+v0\.(\d+)\.", helm_go_mod, re.M)
    if not found:
        raise BuildError(f"no k8s.io/client-go requirement in {HELM_MODULE}@{version} go.mod")
    kube_minor = found.group(1)
    stamps = [
        f"-X {HELM_MODULE}/internal/version.version={version}",
        f"-X {HELM_MODULE}/internal/version.gitTreeState=clean",
    ]
    for pkg in ("pkg/lint/rules", "pkg/chartutil"):
        stamps += [
            f"-X {HELM_MODULE}/{pkg}.k8sVersionMajor=1",
            f"-X {HELM_MODULE}/{pkg}.k8sVersionMinor={kube_minor}",
        ]
    return "-s -w " + " ".join(stamps)


def _build_helm(out: Path, work: Path, log: Path) -> None:
    go_mod = _download_go_mod(HELM_MODULE, HELM_VERSION, work, log)
    with _progress(f"helm {HELM_VERSION}"):
        _go(
            [
                "install",
                "-trimpath",
                "-ldflags",
                helm_ldflags(HELM_VERSION, go_mod),
                f"{HELM_MODULE}/cmd/helm@{HELM_VERSION}",
            ],
            work,
            log,
            env={"GOBIN": str(out)},
        )


def ensure_helm() -> Path:
    """Path to the pinned helm binary, building it (once, cached) if missing."""
    return _cached(f"helm-{HELM_VERSION}", _build_helm) / "helm"


def helm_template(chart: Path, release: str, namespace: str, values: Mapping[str, str] | None = None) -> str:
    """`helm template` with the pinned helm: the chart's manifests as one YAML stream.

    Raises `subprocess.CalledProcessError` (with helm's message in `stderr`) when the chart
    refuses the values.
    """
    args = [str(ensure_helm()), "template", release, str(chart), "--namespace", namespace]
    for key, value in (values or {}).items():
        args += ["--set", f"{key}={value}"]
    return subprocess.run(args, check=True, capture_output=True, text=True).stdout


def main() -> None:
    started = time.monotonic()
    helm = ensure_helm()
    _log(f"{helm} ({helm.stat().st_size / 1e6:.0f} MB) ready in {time.monotonic() - started:.0f} s")


if __name__ == "__main__":
    main()
