"""Run etcd, kube-apiserver, kube-controller-manager (+ kube-scheduler, kwok) on 127.0.0.1.

Owns the lifecycle of one control plane: PKI and kubeconfigs in a temporary folder, free
ports, process start in their own process groups, readiness via `/readyz`/`/healthz` polled
against a deadline, and a stop that kills every process group it started - also from atexit
and SIGTERM, and via PR_SET_PDEATHSIG if this process dies without running any Python.
Must not build anything (see build.py) and must not know about pytest (see fixtures.py).
"""

from __future__ import annotations

import atexit
import base64
import contextlib
import ctypes
import http.client
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import IO

from tests.controlplane.build import Binaries, log_tail
from tests.controlplane.certs import CertificateAuthority, KeyPair, write_service_account_key

__all__ = ["ControlPlane", "ControlPlaneError", "KubectlError", "free_port", "start_control_plane"]

SERVICE_CIDR = "10.0.0.0/24"
# First address of SERVICE_CIDR: the `kubernetes` Service, which pods use to reach the API.
SERVICE_IP = "10.0.0.1"
ADMIN_USER = "workerpool-admin"
# Pods get IPs from here (kwok); must not overlap SERVICE_CIDR.
POD_CIDR = "10.244.0.1/16"
NODE_NAME = "kwok-node-0"
KWOK_ANNOTATION = "kwok.x-k8s.io/node"
STARTUP_TIMEOUT = 120.0
STOP_GRACE = 5.0
KEEP_ENV = "WORKERPOOL_KEEP_CLUSTER_DIR"
WORKDIR_PREFIX = "workerpool-kube-"
OWNER_FILE = "owner.pid"


class ControlPlaneError(RuntimeError):
    """A component failed to start or to become ready; the message has the log tails."""


class KubectlError(subprocess.CalledProcessError):
    """kubectl failed; unlike CalledProcessError, str() includes what kubectl printed."""

    def __str__(self) -> str:
        return f"{super().__str__()}\nstdout: {self.stdout}\nstderr: {self.stderr}"


def _die_with_parent() -> Callable[[], None] | None:
    """A preexec_fn asking Linux to SIGKILL the child when its parent dies (even by SIGKILL)."""
    if not sys.platform.startswith("linux"):
        return None
    prctl = ctypes.CDLL(None, use_errno=True).prctl  # resolved before fork, not in the child
    pr_set_pdeathsig = 1

    def preexec() -> None:
        prctl(pr_set_pdeathsig, signal.SIGKILL)

    return preexec


_PREEXEC = _die_with_parent()


def free_port() -> int:
    """A port free right now; a rare race with another process is caught by `start` retries."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class Component:
    """One started child process with its log."""

    name: str
    process: subprocess.Popen[bytes]
    log: Path

    def alive(self) -> bool:
        return self.process.poll() is None

    def kill_group(self, sig: int) -> None:
        # start_new_session=True made the child a group leader, so its pid is the group id.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, sig)


def _kubeconfig(server: str, ca: bytes, user: str, pair: KeyPair) -> str:
    def b64(data: bytes) -> str:
        return base64.b64encode(data).decode()

    # JSON is valid YAML; certificates are embedded so the file works wherever it is copied.
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": "workerpool-test",
                "cluster": {"server": server, "certificate-authority-data": b64(ca)},
            }
        ],
        "users": [
            {
                "name": user,
                "user": {
                    "client-certificate-data": b64(pair.cert.read_bytes()),
                    "client-key-data": b64(pair.key.read_bytes()),
                },
            }
        ],
        "contexts": [
            {"name": "workerpool-test", "context": {"cluster": "workerpool-test", "user": user}}
        ],
        "current-context": "workerpool-test",
    }
    return json.dumps(config, indent=2)


class ControlPlane:
    """A running control plane. Create it with `start_control_plane`; call `stop()` (idempotent)."""

    def __init__(self, binaries: Binaries, workdir: Path) -> None:
        self.binaries = binaries
        self.version = binaries.version
        self.kubectl = binaries.kubectl
        self.workdir = workdir
        self.kubeconfig = workdir / "admin.kubeconfig"
        self.server = ""
        self.components: list[Component] = []
        self.startup_seconds = 0.0
        self.nodes: list[str] = []  # names of the fake (kwok) nodes, empty without kwok
        self._api_port = 0
        self._pki = workdir / "pki"
        # Where the API server listens: loopback, or the real node's bridge address (node.py),
        # which pods reach through the `kubernetes` Service.
        self.address = "127.0.0.1"
        self.ca: CertificateAuthority | None = None  # issues certificates of node components
        self.fake_node = True  # kwok plays the node; False when a real kubelet registers
        self._lock = threading.Lock()
        self._stopped = False
        self._open_logs: list[IO[bytes]] = []

    # ----------------------------------------------------------------- public helpers

    def kubectl_run(
        self,
        *args: str,
        input: str | None = None,  # same name as subprocess.run's
        check: bool = True,
        timeout: float = 120.0,
    ) -> subprocess.CompletedProcess[str]:
        """Run kubectl against this cluster and capture its output as text."""
        # Own discovery cache: kubectl would otherwise leave one folder per random port
        # under ~/.kube/cache.
        cache = f"--cache-dir={self.workdir / 'kubectl-cache'}"
        command = [str(self.kubectl), f"--kubeconfig={self.kubeconfig}", cache, *args]
        result = subprocess.run(
            command, input=input, capture_output=True, text=True, timeout=timeout, check=False
        )
        if check and result.returncode != 0:
            raise KubectlError(result.returncode, command, result.stdout, result.stderr)
        return result

    def pids(self) -> list[int]:
        return [c.process.pid for c in self.components if c.alive()]

    def logs_tail(self, lines: int = 25) -> str:
        """Tails of every component log, for error messages."""
        parts = [f"--- {c.name} ({c.log}):\n{log_tail(c.log, lines)}" for c in self.components]
        return "\n".join(parts) or "(no component was started)"

    def stop(self, keep_workdir: bool = False) -> None:
        """Terminate every process group, then SIGKILL stragglers; remove the folder."""
        with self._lock:
            if self._stopped:
                return
            self._stopped = True
        # One by one, users before what they use: an apiserver whose etcd is already gone
        # hangs in its graceful shutdown, while this order stops everything in ~1.5 s.
        for component in reversed(self.components):
            component.kill_group(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                component.process.wait(timeout=STOP_GRACE)
            # Also reaps anything the component forked into its group.
            component.kill_group(signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                component.process.wait(timeout=5)
        for handle in self._open_logs:
            handle.close()
        _LIVE.discard(self)
        if not (keep_workdir or os.environ.get(KEEP_ENV)):
            shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> ControlPlane:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # ----------------------------------------------------------------- start-up

    def _spawn(self, name: str, argv: Sequence[str]) -> Component:
        log_path = self.workdir / f"{name}.log"
        handle = log_path.open("ab")
        self._open_logs.append(handle)
        process = subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=handle,
            stderr=subprocess.STDOUT,
            cwd=self.workdir,
            start_new_session=True,
            preexec_fn=_PREEXEC,  # only calls prctl: fork-safe
        )
        component = Component(name, process, log_path)
        self.components.append(component)
        return component

    def _ssl_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=str(self._pki / "ca.crt"))
        context.load_cert_chain(str(self._pki / "admin.crt"), str(self._pki / "admin.key"))
        return context

    def _request(self, port: int, method: str, path: str, body: object = None) -> tuple[int, str]:
        host = self.address if port == self._api_port else "127.0.0.1"
        connection = http.client.HTTPSConnection(host, port, context=self._ssl_context(), timeout=5)
        try:
            payload = None if body is None else json.dumps(body)
            headers = {"Content-Type": "application/json"} if payload else {}
            connection.request(method, path, body=payload, headers=headers)
            response = connection.getresponse()
            return response.status, response.read().decode(errors="replace")
        finally:
            connection.close()

    def _wait_ready(self, what: str, deadline: float, check: Callable[[], bool]) -> None:
        """Poll `check` until true; fail at once if any component exited."""
        last = "not polled yet"
        while True:
            dead = [c for c in self.components if not c.alive()]
            if dead:
                names = ", ".join(f"{c.name} (exit {c.process.returncode})" for c in dead)
                raise ControlPlaneError(f"{names} exited while waiting for {what}")
            try:
                if check():
                    return
                last = "check returned false"
            except (OSError, http.client.HTTPException) as error:
                last = repr(error)
            if time.monotonic() > deadline:
                raise ControlPlaneError(f"{what} not ready after {STARTUP_TIMEOUT:g}s ({last})")
            time.sleep(0.1)

    def _healthy(self, port: int, path: str) -> Callable[[], bool]:
        return lambda: self._request(port, "GET", path)[0] == 200

    def _start(self, with_nodes: bool) -> None:
        started = time.monotonic()
        address = self.address
        deadline = started + STARTUP_TIMEOUT
        pki = self._pki
        pki.mkdir(parents=True, exist_ok=True)
        ca = CertificateAuthority(pki)
        self.ca = ca
        local = ("127.0.0.1", "localhost")
        etcd_tls = ca.issue("etcd", "etcd", hosts=local)
        etcd_client = ca.issue("apiserver-etcd-client", "kube-apiserver-etcd-client")
        apiserver_tls = ca.issue(
            "apiserver",
            "kube-apiserver",
            hosts=(
                *local,
                *([address] if address not in local else []),
                SERVICE_IP,
                "kubernetes",
                "kubernetes.default",
                "kubernetes.default.svc",
                "kubernetes.default.svc.cluster.local",
            ),
            client=False,
        )
        # system:masters bypasses RBAC: the admin (tests, kubectl) may do anything; RBAC
        # applies to every other identity (service accounts of the operator, `--as=...`).
        admin = ca.issue("admin", ADMIN_USER, organizations=("system:masters",))
        # Front-proxy (aggregation) identity: without it the controllers' delegated
        # authentication logs an error per request about a missing requestheader CA.
        front_proxy = ca.issue("front-proxy-client", "front-proxy-client")
        sa = write_service_account_key(pki)

        etcd_port, etcd_peer, api_port = free_port(), free_port(), free_port()
        etcd_url, peer_url = f"https://127.0.0.1:{etcd_port}", f"https://127.0.0.1:{etcd_peer}"
        self.server = f"https://{address}:{api_port}"
        self._api_port = api_port
        self.kubeconfig.write_text(_kubeconfig(self.server, ca.cert_pem, ADMIN_USER, admin))

        self._spawn(
            "etcd",
            [
                str(self.binaries.etcd),
                "--name=etcd0",
                f"--data-dir={self.workdir / 'etcd'}",
                f"--listen-client-urls={etcd_url}",
                f"--advertise-client-urls={etcd_url}",
                f"--listen-peer-urls={peer_url}",
                f"--initial-advertise-peer-urls={peer_url}",
                f"--initial-cluster=etcd0={peer_url}",
                f"--cert-file={etcd_tls.cert}",
                f"--key-file={etcd_tls.key}",
                f"--trusted-ca-file={ca.pair.cert}",
                "--client-cert-auth",
                f"--peer-cert-file={etcd_tls.cert}",
                f"--peer-key-file={etcd_tls.key}",
                f"--peer-trusted-ca-file={ca.pair.cert}",
                "--peer-client-cert-auth",
                # Throw-away data: durability costs fsync latency on every write for nothing.
                "--unsafe-no-fsync",
                "--log-level=warn",
            ],
        )
        if address == "127.0.0.1":
            # The endpoint reconciler refuses a loopback advertise address, and no pod
            # could use the `kubernetes` Service endpoints anyway.
            node_flags = ["--endpoint-reconciler-type=none", "--authorization-mode=RBAC"]
        else:
            # A real node: the reconciler publishes ADDRESS as the `kubernetes` endpoint, the
            # Node authorizer lets the kubelet read what its pods need, the API server reaches
            # the kubelet (logs, exec, port-forward) at the node's InternalIP without DNS,
            # and aggregated APIs (metrics-server) are reached at their endpoint address.
            kubelet_client = ca.issue(
                "apiserver-kubelet-client",
                "kube-apiserver-kubelet-client",
                organizations=("system:masters",),
            )
            node_flags = [
                "--authorization-mode=Node,RBAC",
                f"--kubelet-client-certificate={kubelet_client.cert}",
                f"--kubelet-client-key={kubelet_client.key}",
                "--kubelet-preferred-address-types=InternalIP",
                "--enable-aggregator-routing=true",
            ]
        self._spawn(
            "kube-apiserver",
            [
                str(self.binaries.kube_apiserver),
                f"--advertise-address={address}",
                *node_flags,
                f"--bind-address={address}",
                f"--secure-port={api_port}",
                f"--cert-dir={self.workdir / 'apiserver'}",
                f"--tls-cert-file={apiserver_tls.cert}",
                f"--tls-private-key-file={apiserver_tls.key}",
                f"--client-ca-file={ca.pair.cert}",
                f"--etcd-servers={etcd_url}",
                f"--etcd-cafile={ca.pair.cert}",
                f"--etcd-certfile={etcd_client.cert}",
                f"--etcd-keyfile={etcd_client.key}",
                "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
                f"--service-account-key-file={sa.cert}",
                f"--service-account-signing-key-file={sa.key}",
                f"--service-cluster-ip-range={SERVICE_CIDR}",
                # RBAC (plus Node with a real kubelet): RBAC manifests of the chart and the
                # operator are enforced as in production.
                "--allow-privileged=true",
                f"--requestheader-client-ca-file={ca.pair.cert}",
                "--requestheader-allowed-names=front-proxy-client",
                "--requestheader-username-headers=X-Remote-User",
                "--requestheader-group-headers=X-Remote-Group",
                "--requestheader-extra-headers-prefix=X-Remote-Extra-",
                f"--proxy-client-cert-file={front_proxy.cert}",
                f"--proxy-client-key-file={front_proxy.key}",
                "--profiling=false",
                # The default admission plugins are kept: none of them needs a node, and the
                # ServiceAccount plugin works because the controller manager creates the
                # `default` ServiceAccount of every namespace.
            ],
        )
        self._wait_ready("kube-apiserver /readyz", deadline, self._healthy(api_port, "/readyz"))

        # The rest only needs the API: start all of it, then wait for all of it.
        probes = [self._start_controller(ca, sa, "kube-controller-manager")]
        with_nodes = with_nodes and self.has_nodes
        if with_nodes:
            probes.append(self._start_controller(ca, sa, "kube-scheduler"))
            if self.fake_node:
                self._start_kwok(ca)
        for what, check in probes:
            self._wait_ready(what, deadline, check)
        # End-to-end proof that the controllers act: the serviceaccount controller creates
        # default/default once its informers have synced.
        self._wait_ready(
            "ServiceAccount default/default (controller manager running)",
            deadline,
            self._healthy(api_port, "/api/v1/namespaces/default/serviceaccounts/default"),
        )
        if with_nodes and self.fake_node:
            self._wait_ready(f"node {NODE_NAME} Ready (kwok running)", deadline, self._node_ready)
            self.nodes = [NODE_NAME]
        self.startup_seconds = time.monotonic() - started

    @property
    def has_nodes(self) -> bool:
        """Whether the binaries to simulate nodes (scheduler, kwok and its stages) exist."""
        b = self.binaries
        return b.kube_scheduler is not None and b.kwok is not None and b.kwok_stages is not None

    def _start_controller(
        self, ca: CertificateAuthority, sa: KeyPair, name: str
    ) -> tuple[str, Callable[[], bool]]:
        user = f"system:{name}"  # the identities the bootstrap RBAC policy grants rights to
        # The controller manager runs every controller under its own identity instead of one
        # service account per controller (--use-service-account-credentials): minting ~40
        # tokens one by one before any controller starts cost ~5 s per cluster start. That
        # identity alone may not create pods or delete arbitrary objects, hence
        # system:masters; the scheduler keeps its RBAC-limited identity.
        groups = ("system:masters",) if name == "kube-controller-manager" else ()
        kubeconfig = self.workdir / f"{name}.kubeconfig"
        client_cert = ca.issue(f"{name}-client", user, organizations=groups)
        kubeconfig.write_text(_kubeconfig(self.server, ca.cert_pem, user, client_cert))
        serving = ca.issue(f"{name}-serving", name, hosts=("127.0.0.1", "localhost"))
        port = free_port()
        common = [
            f"--kubeconfig={kubeconfig}",
            f"--authentication-kubeconfig={kubeconfig}",
            f"--authorization-kubeconfig={kubeconfig}",
            "--bind-address=127.0.0.1",
            f"--secure-port={port}",
            f"--tls-cert-file={serving.cert}",
            f"--tls-private-key-file={serving.key}",
            f"--client-ca-file={ca.pair.cert}",
            # One instance: waiting for a lease would only delay the start.
            "--leader-elect=false",
        ]
        if name == "kube-controller-manager":
            binary = self.binaries.kube_controller_manager
            extra = [
                # All default controllers; among them garbagecollector, deployment,
                # replicaset, namespace and serviceaccount, which the tests rely on.
                "--controllers=*",
                "--use-service-account-credentials=false",
                f"--service-account-private-key-file={sa.key}",
                f"--root-ca-file={ca.pair.cert}",
                f"--cluster-signing-cert-file={ca.pair.cert}",
                f"--cluster-signing-key-file={ca.pair.key}",
                f"--service-cluster-ip-range={SERVICE_CIDR}",
                "--cluster-name=workerpool-test",
                # Default is /usr/libexec/kubernetes/..., which it would create on the host.
                f"--flex-volume-plugin-dir={self.workdir / 'flexvolume'}",
            ]
        else:
            assert self.binaries.kube_scheduler is not None
            binary, extra = self.binaries.kube_scheduler, []
        self._spawn(name, [str(binary), *common, *extra])
        return f"{name} /healthz", self._healthy(port, "/healthz")

    def _start_kwok(self, ca: CertificateAuthority) -> None:
        """kwok plays the kubelet of a fake node: pods bound to it become Running and Ready."""
        assert self.binaries.kwok is not None
        assert self.binaries.kwok_stages is not None
        # kwok writes node and pod status, leases and deletes pods: kubelet-like rights that
        # no bootstrap role bundles, so it gets admin rights, like in kwokctl clusters.
        kubeconfig = self.workdir / "kwok.kubeconfig"
        identity = ca.issue("kwok-client", "kwok", organizations=("system:masters",))
        kubeconfig.write_text(_kubeconfig(self.server, ca.cert_pem, "kwok", identity))
        self._spawn(
            "kwok",
            [
                str(self.binaries.kwok),
                f"--kubeconfig={kubeconfig}",
                f"--config={self.binaries.kwok_stages}",
                # Only nodes this harness creates; a test may add unmanaged nodes of its own.
                "--manage-all-nodes=false",
                f"--manage-nodes-with-annotation-selector={KWOK_ANNOTATION}=fake",
                "--node-lease-duration-seconds=40",
                f"--cidr={POD_CIDR}",
            ],
        )
        node = {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {
                "name": NODE_NAME,
                "annotations": {KWOK_ANNOTATION: "fake", "node.alpha.kubernetes.io/ttl": "0"},
                "labels": {
                    "kubernetes.io/arch": "amd64",
                    "kubernetes.io/hostname": NODE_NAME,
                    "kubernetes.io/os": "linux",
                    "type": "kwok",
                },
            },
            # Big enough that resource requests of tests never leave pods Pending.
            "status": {
                "allocatable": {"cpu": "64", "memory": "256Gi", "pods": "250"},
                "capacity": {"cpu": "64", "memory": "256Gi", "pods": "250"},
                "nodeInfo": {"architecture": "amd64", "operatingSystem": "linux"},
            },
        }
        status, body = self._request(self._api_port, "POST", "/api/v1/nodes", node)
        if status != 201:
            raise ControlPlaneError(f"creating node {NODE_NAME} failed: {status} {body}")

    def _node_ready(self) -> bool:
        status, body = self._request(self._api_port, "GET", f"/api/v1/nodes/{NODE_NAME}")
        conditions = (
            json.loads(body).get("status", {}).get("conditions", []) if status == 200 else []
        )
        return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)


# Control planes not stopped yet; atexit and the SIGTERM handler stop them.
_LIVE: set[ControlPlane] = set()


def _stop_all() -> None:
    for plane in list(_LIVE):
        plane.stop()


atexit.register(_stop_all)


def _on_sigterm(signum: int, _frame: FrameType | None) -> None:
    # The default action would kill Python without atexit: stop the children first, then die
    # by the same signal so the parent sees the usual exit status.
    _stop_all()
    signal.signal(signum, signal.SIG_DFL)
    os.kill(os.getpid(), signum)


def _install_sigterm_handler() -> None:
    if threading.current_thread() is not threading.main_thread():
        return
    if signal.getsignal(signal.SIGTERM) in (signal.SIG_DFL, None):
        signal.signal(signal.SIGTERM, _on_sigterm)


def _remove_orphaned_workdirs() -> None:
    """Delete folders of control planes whose Python process died (SIGKILL, OOM, ...)."""
    for folder in Path(tempfile.gettempdir()).glob(f"{WORKDIR_PREFIX}*"):
        try:
            owner = int((folder / OWNER_FILE).read_text())
            os.kill(owner, 0)
        except ProcessLookupError:
            shutil.rmtree(folder, ignore_errors=True)
        except (OSError, ValueError):
            continue  # not ours to judge: no owner file, or owned by another user


def start_control_plane(
    binaries: Binaries,
    *,
    with_nodes: bool = True,
    attempts: int = 3,
    address: str = "127.0.0.1",
    fake_node: bool = True,
) -> ControlPlane:
    """Start and wait until ready; raises ControlPlaneError with the logs on failure.

    `address`: where the API server listens; a real node passes its bridge address (node.py),
    with `fake_node=False` (a scheduler but no kwok: the real kubelet registers the node).
    """
    _install_sigterm_handler()
    _remove_orphaned_workdirs()
    errors: list[str] = []
    for _ in range(attempts):
        workdir = Path(tempfile.mkdtemp(prefix=WORKDIR_PREFIX))
        (workdir / OWNER_FILE).write_text(str(os.getpid()))
        plane = ControlPlane(binaries, workdir)
        plane.address, plane.fake_node = address, fake_node
        _LIVE.add(plane)
        try:
            plane._start(with_nodes)
        except BaseException as error:
            logs = plane.logs_tail()
            # The logs stay for a post-mortem; the next start of any control plane removes
            # them once this process has exited.
            plane.stop(keep_workdir=True)
            if not isinstance(error, ControlPlaneError):
                raise
            errors.append(f"{error} (full logs in {workdir})\n{logs}")
            # A port taken between free_port() and bind is the one failure worth retrying.
            if "address already in use" not in logs:
                break
        else:
            return plane
    raise ControlPlaneError(
        f"control plane {binaries.version} ({binaries.source}) did not start:\n"
        + "\n\n".join(errors)
    )
