"""Scenario 6 (`--with-operator`): the operator against a real control plane.

Starts etcd + kube-apiserver + kube-controller-manager with `tests/controlplane/harness.py`,
applies the CRD from `manifests/`, and runs the operator as its image and Deployment do
(operator_env.py): `workerpool operator` with the Deployment's args and env, from a venv holding
only `workerpool[operator]`, talking to the API server through KUBECONFIG. No plain Celery side:
the figures are absolute.

"All children present" means every object `workerpool render` produces for the pool exists
(the operator's own definition of a pool's children, asked once through its CLI). Presence is
observed through raw watch streams on the child kinds, each ADDED event stamped on arrival (and
each worker Deployment's replicas when they change), so the measurement adds no polling load to
a 2-core machine. Measured: time from the create call of one WorkerPool until its last child
appears (pools applied one at a time); then, with those pools deleted and a fresh operator, the
time for many WorkerPools created back to back to all converge. Those pools autoscale on a real
Redis each (operator_load.py): the operator's Redis commands per evaluation, CPU and RSS with
exactly those pools, and how soon a backlog in one of them raises its workers.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import yaml

from tests.benchmarks import operator_load
from tests.benchmarks.config import Config
from tests.benchmarks.harness import REPO, BenchmarkError, progress
from tests.benchmarks.operator_env import OperatorProcess
from tests.benchmarks.report import Row, ours_at_most, percentile
from tests.controlplane import harness as controlplane
from tests.controlplane.build import ensure_binaries
from tests.controlplane.harness import ControlPlane, start_control_plane
from tests.controlplane.waiting import WaitTimeout, wait_for

CRD_FILE = REPO / "manifests" / "crd" / "workerpool.dev_workerpools.yaml"
GROUP, VERSION, PLURAL = "workerpool.dev", "v1alpha1", "workerpools"
NAMESPACE = "bench-operator"
TEMPLATE = "bench-template"
MB = 1024 * 1024
#: The operator's resync period: the Deployment does not set --resync-seconds.
RESYNC_SECONDS = 10.0


def _pool(name: str) -> dict[str, Any]:
    """The smallest valid preview pool (the shape the operator's own tests use)."""
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "WorkerPool",
        "metadata": {"name": name, "namespace": NAMESPACE},
        "spec": {"image": "shop:1.0", "workerPackages": ["shop.jobs"]},
    }


def _child_suffixes(template: dict[str, Any]) -> list[tuple[str, str]]:
    """(kind, name suffix) of every child of a pool like `template`, from `workerpool render`."""
    script = shutil.which("workerpool", path=str(Path(sys.executable).parent))
    if script is None:
        raise BenchmarkError("the `workerpool` console script is not installed in this venv")
    rendered = subprocess.run(
        [script, "render", "-"],
        input=yaml.safe_dump(template),
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
        "PodDisruptionBudget": ("PolicyV1Api", "list_namespaced_pod_disruption_budget"),
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
        #: (Deployment name, spec.replicas) -> when a Deployment was first seen with them.
        self.replicas: dict[tuple[str, int], float] = {}
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

    def raised(self, deployment: str, above: int) -> float | None:
        """When the Deployment was first seen with more than `above` replicas."""
        with self._lock:
            times = [
                t for (name, n), t in self.replicas.items() if name == deployment and n > above
            ]
        return min(times, default=None)

    def _watch(self, kind: str) -> None:
        resource_version = ""
        while not self._stop.is_set():
            try:
                for event in self._events(kind, resource_version):
                    resource_version = event["object"]["metadata"].get(
                        "resourceVersion", resource_version
                    )
                    name = event["object"]["metadata"]["name"]
                    now = time.monotonic()
                    with self._lock:
                        if event["type"] == "ADDED":
                            self.seen.setdefault((kind, name), now)
                        if kind == "Deployment" and event["type"] in ("ADDED", "MODIFIED"):
                            replicas = int(event["object"]["spec"].get("replicas", 1))
                            self.replicas.setdefault((name, replicas), now)
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


def _loads_read(custom: Any, pools: set[str]) -> bool:
    """Every pool of `pools` has a load in its status: the operator read its Redis."""
    response = custom.list_namespaced_custom_object(
        GROUP, VERSION, NAMESPACE, PLURAL, _preload_content=False
    )
    read = {
        item["metadata"]["name"]
        for item in json.loads(response.data)["items"]
        if (item.get("status") or {}).get("load") is not None
    }
    return pools <= read


def _measure(plane: ControlPlane, config: Config, log_dir: Path) -> list[Row]:
    import kubernetes

    group_version = f"{GROUP}/{VERSION}"
    children = _child_suffixes(_pool(TEMPLATE))
    load_children = _child_suffixes(
        operator_load.pool_with_load(TEMPLATE, NAMESPACE, group_version)
    )
    api = kubernetes.config.new_client_from_config(  # type: ignore[no-untyped-call]
        config_file=str(plane.kubeconfig)
    )
    core = kubernetes.client.CoreV1Api(api)
    apps = kubernetes.client.AppsV1Api(api)
    custom = kubernetes.client.CustomObjectsApi(api)
    core.create_namespace(
        kubernetes.client.V1Namespace(metadata=kubernetes.client.V1ObjectMeta(name=NAMESPACE))
    )
    watcher = Watcher(api, {kind for kind, _ in children + load_children})
    watcher.start()
    bulk = [f"bulk-{i}" for i in range(config.operator_bulk_pools)]
    server = operator_load.start_redis(len(bulk))
    operator = OperatorProcess(plane.kubeconfig, log_dir / "operator-1.log")
    try:

        def wait_converged(
            pools: list[str], timeout: float, kinds: list[tuple[str, str]] = children
        ) -> float:
            try:
                last = wait_for(
                    lambda: _converged(watcher, pools, kinds),
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

        # Database i of the one server is pool i's Redis; the Secrets exist before the pools.
        databases = {name: i for i, name in enumerate(bulk)}
        for name in bulk:
            secret = kubernetes.client.V1Secret(
                metadata=kubernetes.client.V1ObjectMeta(name=operator_load.secret_name(name)),
                string_data={"url": server.url(databases[name])},
            )
            core.create_namespaced_secret(NAMESPACE, secret)
        began = time.monotonic()
        for name in bulk:
            body = operator_load.pool_with_load(name, NAMESPACE, group_version)
            custom.create_namespaced_custom_object(GROUP, VERSION, NAMESPACE, PLURAL, body)
        created = time.monotonic() - began
        converged = wait_converged(bulk, timeout=600, kinds=load_children) - began
        progress(f"  {len(bulk)} pools: created in {created:.1f} s, converged in {converged:.1f} s")
        wait_for(
            lambda: _loads_read(custom, set(bulk)),
            timeout=120,
            interval=1,
            message=lambda: f"every pool's load in its status; operator log:\n{operator.tail()}",
        )
        # Status updates and the first reads trail the children: the window starts after them.
        time.sleep(RESYNC_SECONDS)
        steady = operator_load.steady(operator, server, config.operator_window_seconds)
        progress(
            f"  steady {steady.seconds:.0f} s: {steady.evaluations} evaluations, "
            f"{steady.commands_per_evaluation:.1f} commands / "
            f"{steady.round_trips_per_evaluation:.2f} round trips each ({steady.commands}), "
            f"CPU {steady.cpu_seconds_per_minute:.1f} s/min, RSS {steady.rss_mb:.0f} MB"
        )
        step = max(1, len(bulk) // config.operator_scaleup_pools)
        scaled = operator_load.scale_up_latencies(
            server,
            databases,
            bulk[::step][: config.operator_scaleup_pools],
            lambda pool: watcher.raised(f"{pool}-worker", operator_load.MIN_REPLICAS),
            RESYNC_SECONDS,
        )
        deployment_env = operator.deployment_env
    finally:
        watcher.stop()
        operator.stop()
        server.stop()
        api.close()
    n = config.operator_latency_pools
    shape = f"{len(bulk)} pools (external Redis, autoscaled)"
    env = ", ".join(f"{k}={v}" for k, v in sorted(deployment_env.items()))
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
            f"{shape} created back to back -> all {len(load_children)} children present",
            "s",
            "lower",
            [converged],
            [],
            target=ours_at_most(60, "s"),
            note=f"creating them took {created:.1f} s of that",
        ),
        Row(
            "6 operator",
            "Redis commands per pool evaluation",
            "commands",
            "lower",
            [steady.commands_per_evaluation],
            [],
            note=f"INFO commandstats over {steady.seconds:.0f} s: {steady.evaluations} "
            f"evaluations of {len(bulk)} pools (resync {RESYNC_SECONDS:g} s + child events); "
            + ", ".join(f"{k} {v}" for k, v in sorted(steady.commands.items())),
        ),
        Row(
            "6 operator",
            "Redis round trips per pool evaluation",
            "round trips",
            "lower",
            [steady.round_trips_per_evaluation],
            [],
            note="total_reads_processed delta (one per request; a pipeline is one)",
        ),
        Row(
            "6 operator",
            f"operator CPU with {shape}",
            "s/min",
            "lower",
            [steady.cpu_seconds_per_minute],
            [],
            note="steady window, no backlog; every pass also applies the pool's children",
        ),
        Row(
            "6 operator",
            f"operator RSS with {shape}",
            "MB",
            "lower",
            [steady.rss_mb],
            [],
            target=ours_at_most(120, "MB"),
            note=f"end of the steady window (max {steady.rss_max_mb:.0f} MB in it); "
            f"{idle_rss / MB:.0f} MB idle before the first pool; Deployment env: {env or '-'}",
        ),
        Row(
            "6 operator",
            f"scale-up decision: backlog in one pool's Redis -> workers raised, "
            f"worst of {len(scaled)} pools",
            "s",
            "lower",
            [max(scaled)],
            [],
            target=ours_at_most(15, "s"),
            note=f"p50 {percentile(scaled, 50):.1f} s; {operator_load.BACKLOG_JOBS} jobs pushed at "
            f"a random moment of the {RESYNC_SECONDS:g} s resync, {len(bulk)} pools evaluated",
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
