"""Scenario 6 (`--with-operator`): the operator against a real control plane.

Starts etcd + kube-apiserver + kube-controller-manager with `tests/controlplane/harness.py`,
applies the CRD from `manifests/`, and runs the operator exactly as its Deployment does: the
`workerpool operator --all-namespaces` console script with a liveness endpoint, talking to the
API server through KUBECONFIG. No plain Celery side: the figures are absolute.

"All children present" means every object `workerpool render` produces for the pool exists
(the operator's own definition of a pool's children, asked once through its CLI). Presence is
observed through raw watch streams on the three child kinds, each ADDED event stamped on
arrival, so the measurement adds no polling load to a 2-core machine. Measured: time from the
create call of one WorkerPool until its last child appears (pools applied one at a time), then,
with those pools deleted and a fresh operator, the time for many WorkerPools created back to
back to all converge, and the operator's RSS with exactly those pools.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import psutil
import yaml

from tests.benchmarks.config import Config
from tests.benchmarks.harness import REPO, BenchmarkError, progress
from tests.benchmarks.report import Row, ours_at_most, percentile
from tests.controlplane import harness as controlplane
from tests.controlplane.build import ensure_binaries
from tests.controlplane.harness import ControlPlane, free_port, start_control_plane
from tests.controlplane.waiting import WaitTimeout, wait_for

CRD_FILE = REPO / "manifests" / "crd" / "workerpool.dev_workerpools.yaml"
GROUP, VERSION, PLURAL = "workerpool.dev", "v1alpha1", "workerpools"
NAMESPACE = "bench-operator"
TEMPLATE = "bench-template"
MB = 1024 * 1024


def _pool(name: str) -> dict[str, Any]:
    """The smallest valid preview pool (the shape the operator's own tests use)."""
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "WorkerPool",
        "metadata": {"name": name, "namespace": NAMESPACE},
        "spec": {"image": "shop:1.0", "workerPackages": ["shop.jobs"]},
    }


def _child_suffixes() -> list[tuple[str, str]]:
    """(kind, name suffix) of every child of a pool, from `workerpool render`."""
    script = shutil.which("workerpool", path=str(Path(sys.executable).parent))
    if script is None:
        raise BenchmarkError("the `workerpool` console script is not installed in this venv")
    rendered = subprocess.run(
        [script, "render", "-"],
        input=yaml.safe_dump(_pool(TEMPLATE)),
        capture_output=True,
        text=True,
        check=False,
    )
    if rendered.returncode != 0:
        raise BenchmarkError(f"workerpool render failed: {rendered.stderr}")
    children = []
    for document in yaml.safe_load_all(rendered.stdout):
        name = str(document["metadata"]["name"])
        if document["kind"] == "WorkerPool" or not name.startswith(TEMPLATE):
            continue
        children.append((str(document["kind"]), name[len(TEMPLATE) :]))
    if not children:
        raise BenchmarkError("workerpool render produced no children for a pool")
    return children


class Watcher:
    """First-seen time (monotonic) of every object of some kinds in NAMESPACE."""

    #: kind -> (API class, namespaced list method) of the kinds a pool's children can be.
    LISTS: ClassVar[dict[str, tuple[str, str]]] = {
        "Secret": ("CoreV1Api", "list_namespaced_secret"),
        "Service": ("CoreV1Api", "list_namespaced_service"),
        "ConfigMap": ("CoreV1Api", "list_namespaced_config_map"),
        "PersistentVolumeClaim": ("CoreV1Api", "list_namespaced_persistent_volume_claim"),
        "Deployment": ("AppsV1Api", "list_namespaced_deployment"),
        "StatefulSet": ("AppsV1Api", "list_namespaced_stateful_set"),
    }

    def __init__(self, api: Any, kinds: set[str]) -> None:
        import kubernetes

        unknown = kinds - set(self.LISTS)
        if unknown:
            raise BenchmarkError(f"no watch for child kind(s) {sorted(unknown)}")
        self._lists = {
            kind: getattr(getattr(kubernetes.client, cls)(api), method)
            for kind, (cls, method) in self.LISTS.items()
            if kind in kinds
        }
        self.seen: dict[tuple[str, str], float] = {}
        self.errors: list[str] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._watch, args=(kind,), daemon=True) for kind in kinds
        ]

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        self._stop.set()

    def first_seen(self, kind: str, name: str) -> float | None:
        with self._lock:
            return self.seen.get((kind, name))

    def _watch(self, kind: str) -> None:
        resource_version = ""
        while not self._stop.is_set():
            try:
                for event in self._events(kind, resource_version):
                    resource_version = event["object"]["metadata"].get(
                        "resourceVersion", resource_version
                    )
                    if event["type"] == "ADDED":
                        name = event["object"]["metadata"]["name"]
                        with self._lock:
                            self.seen.setdefault((kind, name), time.monotonic())
            except Exception as error:  # the stream broke (timeout, restart): resume
                self.errors.append(f"{kind}: {error!r}")
                if self._stop.wait(0.2):
                    return

    def _events(self, kind: str, resource_version: str) -> Iterator[dict[str, Any]]:
        # Raw JSON lines (_preload_content=False, as kubernetes.watch does): deserialising
        # 1,600 objects into client models would cost seconds of this process's CPU.
        response = self._lists[kind](
            NAMESPACE,
            watch=True,
            timeout_seconds=3600,
            resource_version=resource_version or None,
            _preload_content=False,
        )
        buffer = b""
        try:
            for chunk in response.stream(None):
                buffer += chunk
                while b"\n" in buffer:
                    line, buffer = buffer.split(b"\n", 1)
                    if line.strip():
                        yield json.loads(line)
        finally:
            response.release_conn()


class OperatorProcess:
    """`workerpool operator --all-namespaces` as its Deployment runs it."""

    def __init__(self, kubeconfig: Path, log: Path) -> None:
        script = shutil.which("workerpool", path=str(Path(sys.executable).parent))
        assert script is not None
        self.port = free_port()
        self.log = log
        with log.open("wb") as out:
            self.popen = subprocess.Popen(
                [
                    script,
                    "operator",
                    "--all-namespaces",
                    "--liveness",
                    f"http://127.0.0.1:{self.port}/healthz",
                ],
                env={**os.environ, "KUBECONFIG": str(kubeconfig), "PYTHONUNBUFFERED": "1"},
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        wait_for(
            self._healthy, timeout=60, interval=0.1, message=lambda: f"operator: {self.tail()}"
        )

    def _healthy(self) -> bool:
        if self.popen.poll() is not None:
            raise BenchmarkError(f"operator exited with {self.popen.returncode}: {self.tail()}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/healthz", timeout=1):
                return True
        except OSError:
            return False

    def rss(self) -> int:
        main = psutil.Process(self.popen.pid)
        return sum(p.memory_info().rss for p in [main, *main.children(recursive=True)])

    def tail(self, chars: int = 3000) -> str:
        return self.log.read_text(errors="replace")[-chars:] if self.log.exists() else ""

    def stop(self) -> None:
        if self.popen.poll() is None:
            os.killpg(self.popen.pid, signal.SIGTERM)
            try:
                self.popen.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(self.popen.pid, signal.SIGKILL)
                self.popen.wait()


def _install_crd(plane: ControlPlane) -> None:
    plane.kubectl_run("apply", "--server-side", "-f", str(CRD_FILE))

    def served() -> bool:
        return plane.kubectl_run("get", PLURAL, "-A", check=False).returncode == 0

    wait_for(served, timeout=60, message="the WorkerPool CRD to be served")


def _converged(watcher: Watcher, pools: list[str], children: list[tuple[str, str]]) -> float | None:
    """Monotonic time the last child of `pools` appeared, or None while one is missing."""
    last = 0.0
    for pool in pools:
        for kind, suffix in children:
            seen = watcher.first_seen(kind, f"{pool}{suffix}")
            if seen is None:
                return None
            last = max(last, seen)
    return last


def _names(list_call: Any, *args: str) -> list[str]:
    """Names returned by a namespaced list call (raw JSON: no model deserialisation)."""
    response = list_call(*args, _preload_content=False)
    return [item["metadata"]["name"] for item in json.loads(response.data)["items"]]


def _measure(plane: ControlPlane, config: Config, log_dir: Path) -> list[Row]:
    import kubernetes

    children = _child_suffixes()
    api = kubernetes.config.new_client_from_config(  # type: ignore[no-untyped-call]
        config_file=str(plane.kubeconfig)
    )
    core = kubernetes.client.CoreV1Api(api)
    apps = kubernetes.client.AppsV1Api(api)
    custom = kubernetes.client.CustomObjectsApi(api)
    core.create_namespace(
        kubernetes.client.V1Namespace(metadata=kubernetes.client.V1ObjectMeta(name=NAMESPACE))
    )
    watcher = Watcher(api, {kind for kind, _ in children})
    watcher.start()
    operator = OperatorProcess(plane.kubeconfig, log_dir / "operator-1.log")
    try:

        def wait_converged(pools: list[str], timeout: float) -> float:
            try:
                last = wait_for(
                    lambda: _converged(watcher, pools, children),
                    timeout=timeout,
                    interval=0.01,
                    message=f"children of {len(pools)} pool(s)",
                )
                assert last is not None  # wait_for returns only a truthy value
                return last
            except WaitTimeout as error:
                raise BenchmarkError(
                    f"{error}\nwatch errors: {watcher.errors[-3:]}\n"
                    f"operator log:\n{operator.tail()}"
                ) from None

        latencies = []
        latency_pools = [f"lat-{i}" for i in range(config.operator_latency_pools)]
        for name in latency_pools:
            began = time.monotonic()
            custom.create_namespaced_custom_object(GROUP, VERSION, NAMESPACE, PLURAL, _pool(name))
            latencies.append(wait_converged([name], timeout=60) - began)
        progress(f"  one at a time: p50 {percentile(latencies, 50):.2f} s")

        # The RSS target is "at 200 pools": remove the latency pools (the operator releases
        # their finalizers, the garbage collector their children) and start a fresh operator,
        # so the burst below meets exactly 200 pools and no leftovers of the first phase.
        for name in latency_pools:
            custom.delete_namespaced_custom_object(GROUP, VERSION, NAMESPACE, PLURAL, name)

        def gone() -> bool:
            pools = _names(custom.list_namespaced_custom_object, GROUP, VERSION, NAMESPACE, PLURAL)
            return not pools and not _names(apps.list_namespaced_deployment, NAMESPACE)

        wait_for(
            gone,
            timeout=120,
            interval=0.2,
            message="the latency pools and their children to be deleted",
        )
        operator.stop()
        operator = OperatorProcess(plane.kubeconfig, log_dir / "operator-2.log")
        idle_rss = operator.rss()

        bulk = [f"bulk-{i}" for i in range(config.operator_bulk_pools)]
        began = time.monotonic()
        for name in bulk:
            custom.create_namespaced_custom_object(GROUP, VERSION, NAMESPACE, PLURAL, _pool(name))
        created = time.monotonic() - began
        converged = wait_converged(bulk, timeout=600) - began
        progress(f"  {len(bulk)} pools: created in {created:.1f} s, converged in {converged:.1f} s")
        # RSS once the operator is done with the burst (status updates trail the children).
        time.sleep(5)
        rss = operator.rss() / MB
    finally:
        watcher.stop()
        operator.stop()
        api.close()
    n = config.operator_latency_pools
    return [
        Row(
            "6 operator",
            f"apply -> all {len(children)} children present, p50 of {n} pools",
            "s",
            "lower",
            [percentile(latencies, 50)],
            [],
            target=ours_at_most(1.0, "s"),
            note="pools applied one at a time; 1 run",
        ),
        Row(
            "6 operator",
            f"same, p95 of {n} pools",
            "s",
            "lower",
            [percentile(latencies, 95)],
            [],
        ),
        Row(
            "6 operator",
            f"{len(bulk)} pools created back to back -> all children present",
            "s",
            "lower",
            [converged],
            [],
            target=ours_at_most(60, "s"),
            note=f"creating them took {created:.1f} s of that",
        ),
        Row(
            "6 operator",
            f"operator RSS with {len(bulk)} pools",
            "MB",
            "lower",
            [rss],
            [],
            target=ours_at_most(120, "MB"),
            note=f"5 s after convergence; {idle_rss / MB:.0f} MB idle before the first pool",
        ),
    ]


#: Every pool has two Services (Flower, Redis). The harness's service range is a /24 (254
#: addresses), full at ~125 pools; this /20 (4,094) holds 200 with room and, like the /24,
#: starts at SERVICE_IP and stays clear of the pod range (10.244.0.0/16).
SERVICE_CIDR = "10.0.0.0/20"


def run(config: Config) -> list[Row]:
    binaries = ensure_binaries(lambda line: progress(f"  {line}"))
    # The harness reads its module constant when it starts the API server and the controller
    # manager; widened for this control plane only, then put back.
    default_cidr = controlplane.SERVICE_CIDR
    controlplane.SERVICE_CIDR = SERVICE_CIDR
    try:
        plane = start_control_plane(binaries)
    finally:
        controlplane.SERVICE_CIDR = default_cidr
    log_dir = plane.workdir
    try:
        progress(f"  control plane at {plane.server}")
        _install_crd(plane)
        return _measure(plane, config, log_dir)
    finally:
        plane.stop()
