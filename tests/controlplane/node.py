"""A real node beside the test control plane: containerd + runc + CNI, kubelet, kube-proxy.

Owns the node's life: host packages, binaries and images are ensured first (hostsetup.py,
build.py, images.py), then the host state is recorded (hoststate.py), the control plane is
started on the node's bridge address (harness.py), and containerd (private root, state and
socket), the kubelet (a real Node), kube-proxy (iptables), CoreDNS, metrics-server and
local-path-provisioner are started and awaited. `stop()` kills every process and pod, then
restores the host from the snapshot - also from atexit and SIGTERM, and at the next start if
this process died without either (the snapshot is kept on disk until restored).

One real node per machine at a time (fixed bridge, cgroup and DNS address): a file lock makes
a second start wait. Must not know pytest (fixtures.py) and must not send traffic anywhere but
loopback and the addresses of its own bridge.
"""

from __future__ import annotations

import atexit
import base64
import contextlib
import dataclasses
import fcntl
import json
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import IO, Any

from tests.controlplane import nodeconfig as cfg
from tests.controlplane.build import Binaries, NodeBinaries, ensure_node_binaries
from tests.controlplane.harness import (
    _PREEXEC,
    Component,
    ControlPlane,
    ControlPlaneError,
    _kubeconfig,
    free_port,
    start_control_plane,
)
from tests.controlplane.hostsetup import ensure_host_packages
from tests.controlplane.hoststate import HostState, snapshot
from tests.controlplane.images import PAUSE_IMAGE, PYTHON_STANDIN, Images, ensure_images
from tests.controlplane.waiting import wait_for

__all__ = ["NodeError", "Prepared", "RealNode", "prepare", "start_real_node"]

Log = Callable[[str], None]
STARTUP_TIMEOUT = 180.0
LOCK_TIMEOUT = 1800.0


class NodeError(RuntimeError):
    """The real node could not start; the message has the component log tails."""


# The lock and the host snapshot guard host-wide things (bridge, cgroup, sysctls), so they live
# in one place per machine, not in the binary cache: a run with another XDG_CACHE_HOME (a cold
# run, a second clone) must still wait for, and recover after, this one. /run is cleared at
# boot, exactly when the host state it records is gone too.
_HOST_DIR = Path("/run/workerpool-node")


def _state_file() -> Path:
    return _HOST_DIR / "host-state.json"


def _lock_file() -> Path:
    return _HOST_DIR / "node.lock"


class RealNode:
    """The running node and its control plane; `stop()` (idempotent) undoes everything."""

    def __init__(self, plane: ControlPlane, state: HostState, lock: IO[str], log: Log) -> None:
        self.plane = plane
        self.state = state
        self.name = cfg.NODE_NAME
        self.workdir = plane.workdir / "node"
        self.workdir.mkdir()
        self.socket = self.workdir / "containerd.sock"
        self.components: list[Component] = []
        self.timings: dict[str, float] = {}
        self.problems: list[str] = []
        self._lock = lock
        self._log = log
        self._open_logs: list[IO[bytes]] = []
        self._stopped = False
        self._guard = threading.Lock()

    # ------------------------------------------------------------ helpers

    def kubectl(self, *args: str, **kwargs: Any) -> subprocess.CompletedProcess[str]:
        return self.plane.kubectl_run(*args, **kwargs)

    def ctr(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["ctr", "--address", str(self.socket), "--namespace", "k8s.io", *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def logs_tail(self, lines: int = 25) -> str:
        node = "\n".join(f"--- {c.name} ({c.log}):\n{_tail(c.log, lines)}" for c in self.components)
        return f"{node}\n{self.plane.logs_tail(lines)}"

    def _spawn(self, name: str, argv: list[str], env: dict[str, str] | None = None) -> Component:
        log_path = self.workdir / f"{name}.log"
        handle = log_path.open("ab")
        self._open_logs.append(handle)
        process = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=handle,
            stderr=subprocess.STDOUT,
            cwd=self.workdir,
            env={**os.environ, **(env or {})},
            start_new_session=True,
            preexec_fn=_PREEXEC,
        )
        component = Component(name, process, log_path)
        self.components.append(component)
        return component

    def _wait(self, what: str, predicate: Callable[[], object], timeout: float = 120) -> None:
        def check() -> object:
            dead = [c for c in self.components if not c.alive()]
            if dead:
                raise NodeError(f"{dead[0].name} exited while waiting for {what}")
            return predicate()

        started = time.monotonic()
        wait_for(
            check,
            timeout=timeout,
            interval=0.2,
            message=what,
            ignore=(OSError, subprocess.SubprocessError),
        )
        self.timings[what] = round(time.monotonic() - started, 1)

    def _identity(self, name: str, user: str, groups: tuple[str, ...] = ()) -> Path:
        assert self.plane.ca is not None
        pair = self.plane.ca.issue(f"{name}-client", user, organizations=groups)
        path = self.workdir / f"{name}.kubeconfig"
        path.write_text(_kubeconfig(self.plane.server, self.plane.ca.cert_pem, user, pair))
        return path

    # ------------------------------------------------------------ start

    def start(self, binaries: NodeBinaries, images: Images) -> None:
        self._start_containerd(images)
        self._start_kubelet(binaries)
        self._start_kube_proxy(binaries)
        self._start_addons(binaries)

    def _start_containerd(self, images: Images) -> None:
        cni_conf = self.workdir / "cni"
        cni_conf.mkdir()
        (cni_conf / "10-workerpool.conflist").write_text(cfg.cni_config(self.workdir / "ipam"))
        config = self.workdir / "containerd.toml"
        config.write_text(
            cfg.containerd_config(
                self.workdir / "containerd-root",
                self.workdir / "containerd-state",
                self.socket,
                cni_conf,
                PAUSE_IMAGE,
            )
        )
        started = time.monotonic()
        component = self._spawn("containerd", ["containerd", "--config", str(config)])
        # Its shims (and through them every container) inherit this cgroup, so stop() finds
        # them even though they leave containerd's process group.
        self.state.adopt(component.process.pid, "runtime")
        self._wait("containerd socket", lambda: self.ctr("version").returncode == 0)
        for name, archive in images.archives.items():
            result = self.ctr("images", "import", str(archive))
            if result.returncode != 0:
                raise NodeError(f"ctr import of {name} failed: {result.stderr.strip()}")
            # podman writes the full name as the archive's ref name; make sure it stuck.
            if name not in self.ctr("images", "ls", "-q").stdout.split():
                raise NodeError(f"{archive} did not import as {name}: {result.stdout}")
        self.timings["containerd + image import"] = round(time.monotonic() - started, 1)

    def _start_kubelet(self, binaries: NodeBinaries) -> None:
        assert self.plane.ca is not None
        ca = self.plane.ca
        serving = ca.issue("kubelet-serving", self.name, hosts=(cfg.NODE_ADDRESS, self.name))
        kubeconfig = self._identity("kubelet", f"system:node:{self.name}", ("system:nodes",))
        resolv = self.workdir / "resolv.conf"
        # Pods get the cluster DNS; nothing outside the cluster is resolvable (or reachable).
        resolv.write_text("# no upstream resolver: pods reach only the cluster\n")
        self.kubelet_port, healthz = free_port(), free_port()
        config = self.workdir / "kubelet.json"
        config.write_text(
            cfg.kubelet_config(
                socket=self.socket,
                ca=ca.pair.cert,
                tls=(serving.cert, serving.key),
                port=self.kubelet_port,
                healthz_port=healthz,
                resolv_conf=resolv,
                pod_logs=self.workdir / "pod-logs",
            )
        )
        root = self.workdir / "kubelet"
        self._spawn(
            "kubelet",
            [
                str(binaries.kubelet),
                f"--config={config}",
                f"--kubeconfig={kubeconfig}",
                f"--root-dir={root}",
                f"--cert-dir={root / 'pki'}",
                f"--hostname-override={self.name}",
                f"--node-ip={cfg.NODE_ADDRESS}",
                "--v=1",
            ],
        )
        self._wait(f"node {self.name} Ready", self._node_ready, timeout=STARTUP_TIMEOUT)

    def _node_ready(self) -> bool:
        result = self.kubectl("get", "node", self.name, "-o", "json", check=False)
        if result.returncode != 0:
            return False
        conditions = json.loads(result.stdout).get("status", {}).get("conditions", [])
        return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)

    def _start_kube_proxy(self, binaries: NodeBinaries) -> None:
        kubeconfig = self._identity("kube-proxy", "system:kube-proxy")
        healthz = free_port()
        config = self.workdir / "kube-proxy.json"
        config.write_text(cfg.kube_proxy_config(kubeconfig, free_port(), healthz))
        self._spawn("kube-proxy", [str(binaries.kube_proxy), f"--config={config}", "--v=1"])
        self._wait("kube-proxy healthz", lambda: _http_ok(f"http://127.0.0.1:{healthz}/healthz"))

    def _start_addons(self, binaries: NodeBinaries) -> None:
        assert self.plane.ca is not None
        ca = self.plane.ca
        # The add-ons get admin identities: they are test infrastructure, and their own RBAC
        # manifests would only add objects to keep in sync (the operator's RBAC is what the
        # tests hold to least privilege).
        admins = ("system:masters",)
        metrics_port = free_port()
        storage = self.workdir / "local-path"
        storage.mkdir()
        objects = cfg.addon_objects(
            dns_port=53,
            metrics_port=metrics_port,
            ca_bundle=base64.b64encode(ca.cert_pem).decode(),
            helper_image=PYTHON_STANDIN,
            storage=storage,
        )
        document = json.dumps({"apiVersion": "v1", "kind": "List", "items": objects})
        self.kubectl("apply", "--server-side", "-f", "-", input=document)

        dns_kubeconfig = self._identity("coredns", "coredns", admins)
        corefile = self.workdir / "Corefile"
        ready = free_port()
        corefile.write_text(cfg.corefile(dns_kubeconfig, ready_port=ready))
        self._spawn("coredns", [str(binaries.coredns), "-conf", str(corefile)])

        serving = ca.issue(
            "metrics-server-serving",
            "metrics-server",
            hosts=(cfg.NODE_ADDRESS, "metrics-server.kube-system.svc"),
        )
        metrics_kubeconfig = self._identity("metrics-server", "metrics-server", admins)
        self._spawn(
            "metrics-server",
            [
                str(binaries.metrics_server),
                f"--bind-address={cfg.NODE_ADDRESS}",
                f"--secure-port={metrics_port}",
                f"--cert-dir={self.workdir / 'metrics-server'}",
                f"--tls-cert-file={serving.cert}",
                f"--tls-private-key-file={serving.key}",
                f"--kubeconfig={metrics_kubeconfig}",
                f"--authentication-kubeconfig={metrics_kubeconfig}",
                f"--authorization-kubeconfig={metrics_kubeconfig}",
                # The kubelet's serving certificate is ours, but metrics-server would need
                # the CA as a file per node; the address is the node's own bridge.
                "--kubelet-insecure-tls",
                "--kubelet-preferred-address-types=InternalIP",
                "--kubelet-use-node-status-port",
                # Must exceed its kubelet request timeout (10 s).
                "--metric-resolution=15s",
            ],
        )
        local_path_kubeconfig = self._identity("local-path", "local-path-provisioner", admins)
        self._spawn(
            "local-path-provisioner",
            [
                str(binaries.local_path),
                "start",
                f"--kubeconfig={local_path_kubeconfig}",
                "--namespace=local-path-storage",
                "--service-account-name=local-path-provisioner",
                f"--helper-image={PYTHON_STANDIN}",
                "--configmap-name=local-path-config",
            ],
        )
        self._wait("CoreDNS ready", lambda: _http_ok(f"http://127.0.0.1:{ready}/ready"))
        self._wait(
            "metrics-server APIService Available",
            lambda: '"Available"' in self._apiservice_status(),
        )

    def _apiservice_status(self) -> str:
        result = self.kubectl(
            "get", "apiservice", "v1beta1.metrics.k8s.io", "-o",
            "jsonpath={range .status.conditions[?(@.status==\"True\")]}\"{.type}\"{end}",
            check=False,
        )  # fmt: skip
        return result.stdout

    # ------------------------------------------------------------ stop

    def stop(self, keep_logs: bool = False) -> list[str]:
        """Kill the node's processes and pods, restore the host, stop the control plane."""
        with self._guard:
            if self._stopped:
                return self.problems
            self._stopped = True
        try:
            for component in reversed(self.components):
                component.kill_group(signal.SIGTERM)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    component.process.wait(timeout=5)
                component.kill_group(signal.SIGKILL)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    component.process.wait(timeout=5)
            for handle in self._open_logs:
                handle.close()
            self.problems = self.state.restore([self.plane.workdir])
            if not self.problems:
                _state_file().unlink(missing_ok=True)
        finally:
            _LIVE.discard(self)
            self.plane.stop(keep_workdir=keep_logs or bool(self.problems))
            fcntl.flock(self._lock, fcntl.LOCK_UN)
            self._lock.close()
        return self.problems


def _tail(path: Path, lines: int) -> str:
    from tests.controlplane.build import log_tail

    return log_tail(path, lines)


def _http_ok(url: str) -> bool:
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return bool(response.status == 200)
    except urllib.error.HTTPError as error:
        error.close()  # holds the response's socket (a ResourceWarning otherwise)
        return False


def _acquire_lock(log: Log) -> IO[str]:
    path = _lock_file()
    path.parent.mkdir(parents=True, exist_ok=True)
    handle = path.open("a")
    deadline = time.monotonic() + LOCK_TIMEOUT
    announced = False
    try:
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return handle
            except BlockingIOError:
                if time.monotonic() > deadline:
                    message = f"another real node holds {path} for over {LOCK_TIMEOUT:g}s"
                    raise NodeError(message) from None
                if not announced:
                    log(f"waiting for another real node on this machine to stop ({path})")
                    announced = True
                time.sleep(1)
    except BaseException:  # also a test timeout interrupting the wait
        handle.close()
        raise


def _recover(log: Log) -> None:
    """Undo what a previous node left behind when its process died without stopping it."""
    path = _state_file()
    if not path.exists():
        return
    data = json.loads(path.read_text())
    workdirs = [Path(p) for p in data.pop("workdirs")]
    data["netns"], data["log_links"] = set(data["netns"]), set(data["log_links"])
    state = HostState(**data)
    log(f"restoring the host after a real node that did not stop ({path})")
    problems = state.restore(workdirs)
    if problems:
        raise NodeError(f"cannot clean up after a previous real node: {problems}")
    path.unlink()


def _save_state(state: HostState, workdir: Path) -> None:
    data = dataclasses.asdict(state)
    data["netns"], data["log_links"] = sorted(state.netns), sorted(state.log_links)
    data["workdirs"] = [str(workdir)]
    _state_file().write_text(json.dumps(data))


@dataclasses.dataclass(frozen=True)
class Prepared:
    """What a node start needs from disk: binaries and image archives, and what they cost."""

    binaries: NodeBinaries
    images: Images
    timings: dict[str, float]


def prepare(log: Log = print) -> Prepared:
    """Install missing host packages, build missing binaries and changed images.

    Minutes the first time; about a second when everything is cached. Raises HostSetupError,
    BuildError or ImageError naming what failed.
    """
    timings: dict[str, float] = {}
    started = time.monotonic()
    timings["host packages"] = round(ensure_host_packages(log), 1)
    node_binaries = ensure_node_binaries(log)
    timings.update(node_binaries.timings)
    images = ensure_images(node_binaries.pause_source, log)
    timings.update({f"image {k}": v for k, v in images.timings.items()})
    timings["prepare"] = round(time.monotonic() - started, 1)
    return Prepared(node_binaries, images, timings)


def start_real_node(
    binaries: Binaries, log: Log = print, prepared: Prepared | None = None
) -> RealNode:
    """Prepare (unless given), start and wait; raises NodeError (with log tails) on failure."""
    if prepared is None:
        prepared = prepare(log)
    node_binaries, images, timings = prepared.binaries, prepared.images, prepared.timings
    prepared_at = time.monotonic()

    lock = _acquire_lock(log)
    try:
        _recover(log)
        state = snapshot(cfg.BRIDGE, cfg.POD_SUBNET, cfg.CGROUP)
        state.create_bridge(cfg.NODE_ADDRESS, cfg.POD_PREFIX)
        state.create_cgroups()
    except BaseException:
        lock.close()
        raise
    try:
        plane = start_control_plane(binaries, address=cfg.NODE_ADDRESS, fake_node=False, attempts=1)
    except BaseException as error:
        state.restore([])
        lock.close()
        if isinstance(error, ControlPlaneError):
            raise NodeError(str(error)) from error
        raise
    _install_sigterm_handler()  # after the harness installed its own, which it wraps
    node = RealNode(plane, state, lock, log)
    _save_state(state, plane.workdir)
    _LIVE.add(node)
    try:
        node.start(node_binaries, images)
    except BaseException as error:
        logs = node.logs_tail()
        # The logs stay for a post-mortem (the next harness start removes the folder).
        problems = node.stop(keep_logs=True)
        if isinstance(error, (NodeError, AssertionError)):
            raise NodeError(f"real node did not start: {error}\n{logs}\n{problems}") from error
        raise
    node.timings.update(timings)
    node.timings["node start"] = round(time.monotonic() - prepared_at, 1)
    return node


# Nodes not stopped yet. Registered after harness.py's atexit hook, so it runs first:
# the node must go before its control plane.
_LIVE: set[RealNode] = set()


def _stop_all() -> None:
    for node in list(_LIVE):
        node.stop()


atexit.register(_stop_all)


def _install_sigterm_handler() -> None:
    if threading.current_thread() is not threading.main_thread():
        return
    previous = signal.getsignal(signal.SIGTERM)

    def on_sigterm(signum: int, frame: FrameType | None) -> None:
        _stop_all()
        if callable(previous):
            previous(signum, frame)
        signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)

    signal.signal(signal.SIGTERM, on_sigterm)
