"""Build kube-apiserver & co. from the Go module proxy and cache them by version.

`go install k8s.io/kubernetes/cmd/...@v` is refused because upstream's go.mod replaces the
k8s.io staging modules with local paths.  We generate a wrapper module that requires
k8s.io/kubernetes and replaces each staging module with its published v0.X.Y, the list
being read from upstream's go.mod at build time so it never goes stale.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

KUBERNETES_VERSION = "v1.35.3"
ETCD_VERSION = "v3.6.14"
KWOK_VERSION = "v0.8.0"

KUBE_BINARIES = ("kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubectl")
MANIFEST = "manifest.json"

# A build step fills `out` with binaries, working in `work`, logging to `log`.
BuildStep = Callable[[Path, Path, Path], None]


class BuildError(RuntimeError):
    """A binary could not be built; the message names the step and its log."""


@dataclass(frozen=True)
class Binaries:
    """Where each control-plane binary lives."""

    kube_apiserver: Path
    kube_controller_manager: Path
    kube_scheduler: Path
    kubectl: Path
    etcd: Path
    kwok: Path | None
    kwok_stages: tuple[Path, ...]


def cache_root() -> Path:
    base = os.environ.get("TENANT_ENFORCER_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")), "tenant-enforcer"
    )
    return Path(base)


def _log(msg: str) -> None:
    print(f"[build] {msg}", file=sys.stderr, flush=True)


@contextmanager
def _progress(what: str) -> Iterator[None]:
    """Print elapsed time every 30 s so a 7-minute compile does not look hung."""
    start = time.monotonic()
    done = threading.Event()

    def tick() -> None:
        while not done.wait(30):
            _log(f"{what}: still building, {time.monotonic() - start:.0f} s")

    _log(f"{what}: building")
    ticker = threading.Thread(target=tick, daemon=True)
    ticker.start()
    try:
        yield
    finally:
        done.set()
        _log(f"{what}: {time.monotonic() - start:.0f} s")


def _go(args: list[str], cwd: Path, log: Path, env: dict[str, str] | None = None) -> str:
    full_env = {**os.environ, "CGO_ENABLED": "0", "GOFLAGS": "-buildvcs=false", **(env or {})}
    with log.open("a") as fh:
        fh.write(f"\n$ go {' '.join(args)}\n")
        fh.flush()
        proc = subprocess.run(
            ["go", *args], cwd=cwd, env=full_env, stdout=subprocess.PIPE, stderr=fh, text=True
        )
    if proc.returncode != 0:
        raise BuildError(f"`go {' '.join(args[:3])} …` failed in {cwd}; see {log}")
    return proc.stdout


def staging_replacements(upstream_go_mod: str, version: str) -> dict[str, str]:
    """Map each `k8s.io/x => ./staging/...` replace of upstream's go.mod to its release."""
    minor = re.sub(r"^v1\.", "v0.", version)
    modules = re.findall(r"^\s*(k8s\.io/[\w.-]+)\s+=>\s+\./staging/", upstream_go_mod, re.M)
    return {m: minor for m in modules}


def _go_directive(go_mod: str) -> str:
    found = re.search(r"^go\s+(\S+)", go_mod, re.M)
    return found.group(1) if found else "1.25"


def _wrapper_module(
    work: Path,
    module: str,
    require: dict[str, str],
    replace: dict[str, str],
    go_version: str,
    tools: list[str],
    log: Path,
) -> None:
    lines = [f"module {module}", "", f"go {go_version}", "", "require ("]
    lines += [f"\t{m} {v}" for m, v in require.items()] + [")", ""]
    if replace:
        lines += ["replace ("] + [f"\t{m} => {m} {v}" for m, v in replace.items()] + [")"]
    (work / "go.mod").write_text("\n".join(lines) + "\n")
    # Blank imports of the main packages so `go mod tidy` resolves their dependencies;
    # the build tag keeps this file out of any real build.
    imports = "\n".join(f'\t_ "{t}"' for t in tools)
    (work / "tools.go").write_text(f"//go:build tools\n\npackage tools\n\nimport (\n{imports}\n)\n")
    _go(["mod", "tidy"], work, log)


def _ldflags_kubernetes(version: str) -> str:
    major, minor = version.lstrip("v").split(".")[:2]
    stamps = []
    for pkg in ("k8s.io/component-base/version", "k8s.io/client-go/pkg/version"):
        stamps += [
            f"-X {pkg}.gitVersion={version}",
            f"-X {pkg}.gitMajor={major}",
            f"-X {pkg}.gitMinor={minor}",
            f"-X {pkg}.gitTreeState=clean",
        ]
    return "-s -w " + " ".join(stamps)


def _download_go_mod(module: str, version: str, work: Path, log: Path) -> str:
    info = json.loads(_go(["mod", "download", "-json", f"{module}@{version}"], work, log))
    return Path(info["GoMod"]).read_text()


def _build_kubernetes(out: Path, work: Path, log: Path) -> None:
    version = KUBERNETES_VERSION
    upstream = _download_go_mod("k8s.io/kubernetes", version, work, log)
    replace = staging_replacements(upstream, version)
    if not replace:
        raise BuildError("found no staging replace directives in k8s.io/kubernetes go.mod")
    tools = [f"k8s.io/kubernetes/cmd/{b}" for b in KUBE_BINARIES]
    with _progress(f"wrapper module for k8s.io/kubernetes {version} (go mod tidy)"):
        _wrapper_module(
            work,
            "tenant-enforcer.local/k8s-build",
            {"k8s.io/kubernetes": version},
            replace,
            _go_directive(upstream),
            tools,
            log,
        )
    for binary, pkg in zip(KUBE_BINARIES, tools, strict=True):
        with _progress(binary):
            _go(
                [
                    "build",
                    "-trimpath",
                    "-ldflags",
                    _ldflags_kubernetes(version),
                    "-o",
                    str(out / binary),
                    pkg,
                ],
                work,
                log,
            )


def _build_etcd(out: Path, work: Path, log: Path) -> None:
    module = "go.etcd.io/etcd/server/v3"
    upstream = _download_go_mod(module, ETCD_VERSION, work, log)
    with _progress(f"wrapper module for etcd {ETCD_VERSION} (go mod tidy)"):
        _wrapper_module(
            work,
            "tenant-enforcer.local/etcd-build",
            {module: ETCD_VERSION},
            {},
            _go_directive(upstream),
            [module],
            log,
        )
    with _progress("etcd"):
        _go(["build", "-trimpath", "-ldflags", "-s -w", "-o", str(out / "etcd"), module], work, log)


def _build_kwok(out: Path, work: Path, log: Path) -> None:
    with _progress("kwok"):
        _go(
            ["install", "-trimpath", "-ldflags", "-s -w", f"sigs.k8s.io/kwok/cmd/kwok@{KWOK_VERSION}"],
            work,
            log,
            env={"GOBIN": str(out)},
        )
    # kwok needs its stage definitions (node/pod lifecycles); they ship inside the module.
    info = json.loads(_go(["mod", "download", "-json", f"sigs.k8s.io/kwok@{KWOK_VERSION}"], work, log))
    # Nodes also need heartbeats, or the node-lifecycle controller taints them and evicts pods.
    for stage in ("node/fast", "node/heartbeat", "pod/fast"):
        src = Path(info["Dir"]) / "kustomize" / "stage" / stage
        for yaml_file in sorted(src.glob("*.yaml")):
            if yaml_file.name != "kustomization.yaml":
                shutil.copy(yaml_file, out / f"stage-{yaml_file.name}")


def _cached(name: str, builder: BuildStep) -> Path:
    """Return the cache dir for `name`, building it first if absent.

    The build fills a temporary sibling directory that is renamed into place only when
    every binary exists, so an interrupted build never leaves a directory we would trust.
    """
    root = cache_root()
    final = root / name
    if (final / MANIFEST).exists():
        return final
    root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{name}.", dir=root))
    tmp.chmod(0o755)  # mkdtemp's 0700 would hide the binaries from other users
    work = tmp / "work"
    work.mkdir()
    log = root / f"{name}.build.log"
    log.write_text("")
    _log(f"{name}: not cached, building into {final} (log: {log})")
    try:
        builder(tmp, work, log)
        shutil.rmtree(work)
        files = sorted(p.name for p in tmp.iterdir())
        (tmp / MANIFEST).write_text(json.dumps({"name": name, "files": files}, indent=1))
        if final.exists():  # a partial directory from an older layout: never trust it
            shutil.rmtree(final)
        os.replace(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return final


def _from_assets(name: str) -> Path | None:
    """Honour KUBEBUILDER_ASSETS (envtest's directory of binaries) when it has `name`."""
    assets = os.environ.get("KUBEBUILDER_ASSETS")
    if assets and (Path(assets) / name).is_file():
        return Path(assets) / name
    return None


def ensure_binaries(with_kwok: bool = False) -> Binaries:
    """Return paths to every binary, building (once, cached) whatever is missing."""
    kube_dir: Path | None = None

    def kube(name: str) -> Path:
        nonlocal kube_dir
        found = _from_assets(name)
        if found:
            return found
        if kube_dir is None:
            kube_dir = _cached(f"k8s-{KUBERNETES_VERSION}", _build_kubernetes)
        return kube_dir / name

    etcd = _from_assets("etcd") or _cached(f"etcd-{ETCD_VERSION}", _build_etcd) / "etcd"
    kwok: Path | None = None
    stages: tuple[Path, ...] = ()
    if with_kwok:
        kwok_dir = _cached(f"kwok-{KWOK_VERSION}", _build_kwok)
        kwok = kwok_dir / "kwok"
        stages = tuple(sorted(kwok_dir.glob("stage-*.yaml")))
    return Binaries(
        kube_apiserver=kube("kube-apiserver"),
        kube_controller_manager=kube("kube-controller-manager"),
        kube_scheduler=kube("kube-scheduler"),
        kubectl=kube("kubectl"),
        etcd=etcd,
        kwok=kwok,
        kwok_stages=stages,
    )


def main() -> None:
    started = time.monotonic()
    bins = ensure_binaries(with_kwok=True)
    for path in (
        bins.kube_apiserver,
        bins.kube_controller_manager,
        bins.kube_scheduler,
        bins.kubectl,
        bins.etcd,
        bins.kwok,
    ):
        if path is not None:
            _log(f"{path} ({path.stat().st_size / 1e6:.0f} MB)")
    _log(f"all binaries ready in {time.monotonic() - started:.0f} s")


if __name__ == "__main__":
    main()
