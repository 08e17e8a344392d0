"""End to end on a real node of this machine: the shipped manifests, samples and chart.

The `real_node` fixture (tests/controlplane/node.py) runs a kubelet on containerd beside a
control plane of its own, with the images built from the project's unmodified Dockerfiles
(tests/controlplane/images.py). This module installs the operator in the cluster from its
image with exactly the shipped RBAC (`kubectl apply --server-side -k manifests/`, later the
Helm chart), applies both samples and does what a user would: enqueue jobs from inside the
cluster, read results, watch cron and `perform_in` fire, scale, `kubectl top/logs/
port-forward`, delete a worker pod mid-job and the production Redis pod with jobs queued, then
delete the pools. What only this proves: images, commands, env wiring, probes, Secrets,
Services, DNS, the PVC and RBAC meet for real.

Tests run in file order and share one installation (module fixtures); each waits on
conditions with deadlines a healthy start needs, and worker containers must not have
restarted: a worker that wedges at start and only works after its liveness probe restarts it
fails here instead of passing late (seen on this node before every runtime Redis socket got a
timeout; issue 19).
The sample namespace carries nodeconfig.SMALL_NODE_LABEL so the
samples' 2.3 CPUs of requests fit a 2-CPU machine (see its comment).
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import shlex
import signal
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from tests.controlplane.harness import free_port
from tests.controlplane.node import RealNode
from tests.controlplane.nodeconfig import SMALL_NODE_LABEL
from tests.controlplane.waiting import wait_for

ROOT = Path(__file__).resolve().parents[2]
NS = "samples"
HELM_NS = "helm-sample"
PREVIEW = "examples-preview"
PRODUCTION = "examples-production"
OPERATOR_NS = "workerpool-system"
E2E_PACKAGE = "workerpool_e2e"  # tests/e2e/app, baked into workerpool-examples:latest

# Guards against hangs, not speed: the deadlines inside each test are the real bounds.
pytestmark = pytest.mark.timeout(600)


class Cluster:
    """kubectl against the real node's control plane, with readable failures."""

    def __init__(self, node: RealNode) -> None:
        self.node = node

    def kubectl(self, *args: str, timeout: float = 120, input: str | None = None) -> str:
        return self.node.kubectl(*args, timeout=timeout, input=input).stdout

    def try_kubectl(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return self.node.kubectl(*args, timeout=timeout, check=False)

    def json(self, *args: str) -> Any:
        return json.loads(self.kubectl(*args, "-o", "json"))

    def python_in(self, target: str, container: str, code: str, timeout: float = 240) -> Any:
        """Run `python -c code` in a pod (e.g. deploy/NAME-worker); parse its last line."""
        out = self.kubectl(
            "-n", NS, "exec", target, "-c", container, "--", "python", "-c", code,
            timeout=timeout,
        )  # fmt: skip
        return json.loads(out.strip().splitlines()[-1])

    def pods(self, selector: str) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = self.json("-n", NS, "get", "pods", "-l", selector)["items"]
        return [p for p in items if "deletionTimestamp" not in p["metadata"]]

    def ready_pods(self, selector: str) -> list[str]:
        return [p["metadata"]["name"] for p in self.pods(selector) if _ready(p)]

    def logs(self, *args: str) -> str:
        return self.kubectl("-n", NS, "logs", *args, timeout=60)

    def describe(self) -> str:
        """What a user would look at when a wait times out: objects, events, unready logs."""
        result = self.try_kubectl("-n", NS, "get", "wp,deploy,pods,pvc", "-o", "wide")
        events = self.try_kubectl("-n", NS, "get", "events", "--sort-by=.lastTimestamp")
        logs = []
        for pod in self.pods("app.kubernetes.io/instance"):
            if not _ready(pod):
                name = pod["metadata"]["name"]
                tail = self.try_kubectl("-n", NS, "logs", name, "--all-containers", "--tail=15")
                logs.append(f"--- {name}:\n{tail.stdout}{tail.stderr}")
        return f"{result.stdout}{result.stderr}\n{events.stdout[-2500:]}\n" + "\n".join(logs)


def _ready(pod: dict[str, Any]) -> bool:
    conditions = pod.get("status", {}).get("conditions", [])
    return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)


def _worker(pool: str) -> str:
    return f"app.kubernetes.io/instance={pool},app.kubernetes.io/component=worker"


def _restarts(cluster: Cluster, namespace: str, selector: str) -> dict[str, int]:
    """Restarted containers of the selected pods, by pod name."""
    items = cluster.json("-n", namespace, "get", "pods", "-l", selector)["items"]
    return {
        p["metadata"]["name"]: c["restartCount"]
        for p in items
        for c in p["status"].get("containerStatuses", [])
        if c["restartCount"]
    }


ENQUEUE = """
import json
from datetime import UTC, datetime
from worker_runtime.examples.data_processing_worker import DataProcessingWorker as W
{body}
"""


def settle(cluster: Cluster) -> None:
    """Wait until the patch's rollout is over: no old pod left, terminating or not.

    `kubectl logs/exec deploy/NAME` pick any pod of the Deployment, an old one included.
    """
    for name in cluster.kubectl("-n", NS, "get", "deploy", "-o", "name").split():
        cluster.kubectl("-n", NS, "rollout", "status", name, "--timeout=300s", timeout=320)

    def terminating() -> list[str]:
        items = cluster.json("-n", NS, "get", "pods")["items"]
        return [p["metadata"]["name"] for p in items if "deletionTimestamp" in p["metadata"]]

    wait_for(lambda: not terminating(), timeout=360, interval=1, message=lambda: str(terminating()))


@pytest.fixture(scope="module")
def cluster(real_node: RealNode) -> Cluster:
    return Cluster(real_node)


@pytest.fixture(scope="module")
def operator(cluster: Cluster) -> Cluster:
    """The operator from its image, installed exactly as the README says, shipped RBAC only."""
    cluster.kubectl("apply", "--server-side", "-k", str(ROOT / "manifests"))
    cluster.kubectl(
        "-n", OPERATOR_NS, "rollout", "status", "deploy/workerpool-operator", "--timeout=180s",
        timeout=200,
    )  # fmt: skip
    return cluster


@pytest.fixture(scope="module")
def samples(operator: Cluster) -> Cluster:
    """Both samples applied unchanged; the preview pool then also loads the e2e workers."""
    cluster = operator
    cluster.kubectl("create", "namespace", NS)
    cluster.kubectl("label", "namespace", NS, f"{SMALL_NODE_LABEL}=true")
    cluster.kubectl("-n", NS, "apply", "-k", str(ROOT / "manifests" / "samples"))
    # What a user does to add their own package: the slow and every-minute jobs below.
    packages = {"spec": {"workerPackages": ["worker_runtime.examples", E2E_PACKAGE]}}
    cluster.kubectl("-n", NS, "patch", "wp", PREVIEW, "--type=merge", "-p", json.dumps(packages))
    wait_for(
        lambda: cluster.try_kubectl(
            "-n", NS, "wait", "--for=condition=Ready", "wp", "--all", "--timeout=10s"
        ).returncode == 0,
        # What a healthy start needs on a loaded two-core node (images are local): a worker
        # that wedges and waits for its liveness probe to restart it does not make it in time.
        timeout=240,
        interval=1,
        message=cluster.describe,
    )  # fmt: skip
    settle(cluster)
    return cluster


def test_the_operator_runs_in_the_cluster_from_its_image(operator: Cluster) -> None:
    (pod,) = operator.json(
        "-n", OPERATOR_NS, "get", "pods", "-l", "app.kubernetes.io/name=workerpool-operator"
    )["items"]  # fmt: skip
    (status,) = pod["status"]["containerStatuses"]

    assert status["ready"] is True
    assert status["image"].endswith("workerpool-operator:0.1.0")
    assert pod["spec"]["serviceAccountName"] == "workerpool-operator"


def test_every_sample_pod_is_ready_through_its_probes(samples: Cluster) -> None:
    pods = samples.pods("app.kubernetes.io/instance")
    components = {
        (p["metadata"]["labels"]["app.kubernetes.io/instance"],
         p["metadata"]["labels"]["app.kubernetes.io/component"])
        for p in pods
    }  # fmt: skip

    assert components == {
        (pool, component)
        for pool in (PREVIEW, PRODUCTION)
        for component in ("worker", "beat", "flower", "redis")
    }
    assert all(_ready(p) for p in pods), samples.describe()
    # Ready after a restart would hide a worker that wedged at start until its liveness probe
    # killed it (as test_real_node_autoscale.py checks for its pools).
    assert _restarts(samples, NS, "app.kubernetes.io/instance") == {}, samples.describe()
    for pod in pods:
        for container in pod["spec"]["containers"]:
            assert "readinessProbe" in container, (pod["metadata"]["name"], container["name"])


def test_the_production_redis_runs_on_its_bound_claim(samples: Cluster) -> None:
    (pod,) = samples.pods(
        f"app.kubernetes.io/instance={PRODUCTION},app.kubernetes.io/component=redis"
    )
    (claim,) = [
        v["persistentVolumeClaim"]["claimName"]
        for v in pod["spec"]["volumes"]
        if "persistentVolumeClaim" in v
    ]
    pvc = samples.json("-n", NS, "get", "pvc", claim)

    assert pvc["status"]["phase"] == "Bound"
    assert pvc["spec"]["storageClassName"] == "local-path"
    assert _ready(pod)


def test_a_job_enqueued_in_the_cluster_runs_and_its_result_is_read_back(samples: Cluster) -> None:
    body = "print(json.dumps(W.perform_async(4242, {'from': 'e2e'}).get(timeout=120)))"

    result = samples.python_in(
        f"deploy/{PREVIEW}-worker", "celery-worker", ENQUEUE.format(body=body)
    )

    assert result["user_id"] == 4242
    assert result["status"] == "completed"
    assert result["options"] == {"from": "e2e"}
    logs = samples.logs(f"deploy/{PREVIEW}-worker", "-c", "celery-worker")
    assert "Starting data processing for user 4242" in logs


def test_a_job_scheduled_with_perform_in_runs_after_its_delay(samples: Cluster) -> None:
    body = (
        "enqueued = datetime.now(UTC)\n"
        "result = W.perform_in(15, 77, {}).get(timeout=180)\n"
        "print(json.dumps({'enqueued': enqueued.isoformat(), **result}))"
    )

    result = samples.python_in(
        f"deploy/{PRODUCTION}-worker", "celery-worker", ENQUEUE.format(body=body)
    )

    delay = datetime.fromisoformat(result["processed_at"]) - datetime.fromisoformat(
        result["enqueued"]
    )
    assert result["user_id"] == 77
    assert delay.total_seconds() >= 15


def test_scaling_the_pool_gives_three_ready_workers(samples: Cluster) -> None:
    samples.kubectl("-n", NS, "scale", f"wp/{PREVIEW}", "--replicas=3")

    wait_for(
        lambda: len(samples.ready_pods(_worker(PREVIEW))) == 3,
        timeout=240,
        interval=1,
        message=samples.describe,
    )
    deployment = samples.json("-n", NS, "get", "deploy", f"{PREVIEW}-worker")
    assert deployment["spec"]["replicas"] == 3


def test_kubectl_top_prints_the_pods_usage(samples: Cluster) -> None:
    workers = {p["metadata"]["name"] for p in samples.pods(_worker(PREVIEW))}

    def top() -> str:
        result = samples.try_kubectl("-n", NS, "top", "pods", "--no-headers")
        listed = {line.split()[0] for line in result.stdout.splitlines() if line.strip()}
        return result.stdout if result.returncode == 0 and listed >= workers else ""

    # metrics-server lists a pod after its first scrapes of the kubelet (every 15 s).
    out = wait_for(top, timeout=180, interval=2, message="kubectl top pods with every worker")

    rows = [line.split() for line in out.splitlines()]
    assert all(row[1].endswith("m") and row[2].endswith("Mi") for row in rows), out


def _port_open(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _flower_get(port: int, credentials: tuple[str, str] | None, path: str = "/") -> tuple[int, str]:
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}")
    if credentials is not None:
        token = base64.b64encode(":".join(credentials).encode()).decode()
        request.add_header("Authorization", f"Basic {token}")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return int(response.status), response.read().decode()
    except urllib.error.HTTPError as error:
        error.close()
        return error.code, ""


def _flower_status(port: int, credentials: tuple[str, str] | None) -> int:
    return _flower_get(port, credentials)[0]


@contextlib.contextmanager
def _background(cluster: Cluster, *args: str) -> Iterator[subprocess.Popen[bytes]]:
    plane = cluster.node.plane
    command = [str(plane.kubectl), f"--kubeconfig={plane.kubeconfig}", *args]
    process = subprocess.Popen(
        command,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        yield process
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=30)


def test_flower_through_port_forward_wants_the_generated_credentials(samples: Cluster) -> None:
    secret = samples.json("-n", NS, "get", "secret", f"{PREVIEW}-flower")["data"]
    user, password = (base64.b64decode(secret[k]).decode() for k in ("username", "password"))
    port = free_port()

    with _background(samples, "-n", NS, "port-forward", f"svc/{PREVIEW}-flower", f"{port}:5555"):
        wait_for(lambda: _port_open(port), timeout=60, message=f"port-forward on {port}")

        assert _flower_status(port, None) == 401
        assert _flower_status(port, (user, "wrong")) == 401
        assert _flower_status(port, (user, password)) == 200


def test_the_job_pages_through_port_forward_show_a_running_and_a_dead_job(
    samples: Cluster,
) -> None:
    """The pages are rendered by the Flower pod from the pool's Redis (the browser tests drive
    them in Chromium locally): here, what a worker pod runs and a dead job's traceback."""
    secret = samples.json("-n", NS, "get", "secret", f"{PREVIEW}-flower")["data"]
    login = tuple(base64.b64decode(secret[k]).decode() for k in ("username", "password"))
    assert len(login) == 2
    tag = f"pages-{os.getpid()}"
    enqueue = (
        "from workerpool_e2e.workers import DoomedWorker, HeldWorker\n"
        f"held = HeldWorker.perform_async({tag!r}, 120, 'e2e:release:{tag}').id\n"
        f"doomed = DoomedWorker.perform_async({tag!r}).id\n"
        "print(json.dumps([held, doomed]))"
    )
    held, doomed = samples.python_in(
        f"deploy/{PREVIEW}-beat", "celery-beat", ENQUEUE.format(body=enqueue)
    )
    port = free_port()
    try:
        with _background(
            samples, "-n", NS, "port-forward", f"svc/{PREVIEW}-flower", f"{port}:5555"
        ):
            wait_for(lambda: _port_open(port), timeout=60, message=f"port-forward on {port}")

            def page(path: str) -> str:
                status, body = _flower_get(port, (login[0], login[1]), path)
                return body if status == 200 else ""

            busy = wait_for(
                lambda: (lambda body: body if held in body else None)(page("/busy")),
                timeout=60, interval=1, message=f"HeldWorker {held} on the Busy page",
            )  # fmt: skip
            assert busy is not None
            assert "HeldWorker" in busy
            assert f"{PREVIEW}-worker-" in busy  # the pod that runs it
            dead = wait_for(
                lambda: (lambda body: body if "RuntimeError" in body else None)(
                    page(f"/dead/{doomed}")
                ),
                timeout=60, interval=1, message=f"DoomedWorker {doomed} on its Dead page",
            )  # fmt: skip
            assert dead is not None
            assert f"doomed job {tag} failed on purpose" in dead
            assert "Traceback (most recent call last)" in dead
    finally:
        samples.python_in(
            f"deploy/{PREVIEW}-beat",
            "celery-beat",
            ENQUEUE.format(
                body=f"from worker_runtime import runtime\n"
                f"runtime.current().redis.set('e2e:release:{tag}', 1)\nprint('1')"
            ),
        )


def test_a_cron_worker_fires_from_the_beat_pod(samples: Cluster) -> None:
    def fired() -> bool:
        logs = samples.try_kubectl(
            "-n", NS, "logs", "-l", _worker(PREVIEW), "-c", "celery-worker", "--tail=-1",
            "--prefix",
        )  # fmt: skip
        return "minute cron fired" in logs.stdout

    # Every minute; the test modules before this one usually took longer than that.
    wait_for(fired, timeout=150, interval=3, message="MinuteCronWorker's log line")
    beat = samples.logs(f"deploy/{PREVIEW}-beat")
    assert "MinuteCronWorker" in beat


def test_a_worker_pod_deleted_mid_job_still_completes_the_job(samples: Cluster) -> None:
    tag = f"delete-{os.getpid()}"
    enqueue = (
        "from workerpool_e2e.workers import SlowWorker\n"
        f"print(json.dumps(SlowWorker.perform_async(20, {tag!r}).id))"
    )
    job_id = samples.python_in(
        f"deploy/{PREVIEW}-beat", "celery-beat", ENQUEUE.format(body=enqueue)
    )

    def running_in() -> str | None:
        for name in samples.ready_pods(_worker(PREVIEW)):
            if f"slow job {tag} started" in samples.logs(name, "-c", "celery-worker"):
                return name
        return None

    pod = wait_for(running_in, timeout=60, interval=1, message=f"slow job {tag} to start")
    assert pod is not None
    samples.kubectl("-n", NS, "delete", "pod", pod, "--wait=false")

    fetch = (
        "from celery.result import AsyncResult\n"
        "from worker_runtime import runtime\n"
        f"r = AsyncResult({job_id!r}, app=runtime.current().app)\n"
        "print(json.dumps(r.get(timeout=240)))"
    )
    result = samples.python_in(f"deploy/{PREVIEW}-beat", "celery-beat", ENQUEUE.format(body=fetch))
    assert result["tag"] == tag


@pytest.mark.timeout(900)
def test_queued_jobs_survive_a_restart_of_the_production_redis(samples: Cluster) -> None:
    redis = f"app.kubernetes.io/instance={PRODUCTION},app.kubernetes.io/component=redis"
    samples.kubectl("-n", NS, "scale", f"wp/{PRODUCTION}", "--replicas=0")

    def any_worker() -> list[str]:  # terminating ones too: they may still take jobs
        items = samples.json("-n", NS, "get", "pods", "-l", _worker(PRODUCTION))["items"]
        return [p["metadata"]["name"] for p in items]

    # Idle workers should leave at once on SIGTERM (warm shutdown), but one sometimes stays
    # in "Warm shutdown" with no job until the 300 s grace period ends; this test is about
    # Redis, so the grace period is cut to 1 s (no job runs: nothing can be lost).
    wait_for(
        lambda: not samples.pods(_worker(PRODUCTION)),
        timeout=120,
        interval=1,
        message=samples.describe,
    )  # every worker pod is being deleted: scaled down
    samples.kubectl(
        "-n", NS, "delete", "pod", "-l", _worker(PRODUCTION), "--grace-period=1", "--wait=false"
    )  # fmt: skip
    wait_for(lambda: not any_worker(), timeout=120, interval=1, message=samples.describe)
    enqueue = "print(json.dumps([W.perform_async(i, {'aof': True}).id for i in range(5)]))"
    ids = samples.python_in(
        f"deploy/{PRODUCTION}-beat", "celery-beat", ENQUEUE.format(body=enqueue)
    )

    def queued() -> int:
        # The pod's REDISCLI_AUTH holds the password; `default` is the queue's list.
        out = samples.kubectl(
            "-n", NS, "exec", f"deploy/{PRODUCTION}-redis", "--", "redis-cli", "llen", "default"
        )  # fmt: skip
        return int(out.strip())

    # At least our 5: the pool's cron job (every 10 minutes) may have joined them.
    before = queued()
    assert before >= 5
    (old,) = samples.ready_pods(redis)
    samples.kubectl("-n", NS, "delete", "pod", old)
    wait_for(
        lambda: [p for p in samples.ready_pods(redis) if p != old],
        timeout=180, interval=1, message=samples.describe,
    )  # fmt: skip
    assert queued() == before

    samples.kubectl("-n", NS, "scale", f"wp/{PRODUCTION}", "--replicas=1")
    # Read back from the new worker: the beat container restarts when its Redis goes away.
    (worker,) = wait_for(
        lambda: samples.ready_pods(_worker(PRODUCTION)),
        timeout=240, interval=1, message=samples.describe,
    )  # fmt: skip
    fetch = (
        "from celery.result import AsyncResult\n"
        "from worker_runtime import runtime\n"
        "app = runtime.current().app\n"
        f"print(json.dumps([AsyncResult(i, app=app).get(timeout=120) for i in {ids!r}]))"
    )
    results = samples.python_in(worker, "celery-worker", ENQUEUE.format(body=fetch), timeout=180)
    assert sorted(r["user_id"] for r in results) == [0, 1, 2, 3, 4]
    assert _restarts(samples, NS, _worker(PRODUCTION)) == {}, samples.describe()


FAILURES_NS = "failures"


def _stalled(cluster: Cluster, pool: str) -> dict[str, Any] | None:
    """The pool's Stalled condition while it is True."""
    status = cluster.json("-n", FAILURES_NS, "get", "wp", pool).get("status") or {}
    for condition in status.get("conditions") or []:
        if condition.get("type") == "Stalled" and condition.get("status") == "True":
            return dict(condition)
    return None


@pytest.mark.parametrize(
    ("change", "reasons", "words"),
    [
        # The worker exits at start, again and again: a crash loop whose last words (the
        # container log, through FallbackToLogsOnError) name the package.
        (
            {"workerPackages": ["no_such_workers"]},
            {"Error", "CrashLoopBackOff"},
            "no_such_workers",
        ),
        # No registry answers here: the pull fails as it would for a mistyped tag.
        (
            {"image": "workerpool-missing:0.0.0"},
            {"ErrImagePull", "ImagePullBackOff"},
            "workerpool-missing:0.0.0",
        ),
        # A crash loop the program cannot explain: the kernel kills the worker for its memory
        # limit while it imports Celery; its log ends mid start-up, so the reason must come
        # from the kubelet's termination reason. One slot in 32Mi: the least admission lets
        # through (32Mi a process), far below what importing Celery takes.
        (
            {
                "concurrency": 1,
                "resources": {"requests": {"memory": "32Mi"}, "limits": {"memory": "32Mi"}},
            },
            {"OOMKilled", "CrashLoopBackOff"},
            "OOMKilled: over its memory limit",
        ),
    ],
    ids=["package-that-fails-to-import", "image-that-does-not-exist", "worker-out-of-memory"],
)
def test_a_failing_worker_is_named_in_the_pools_status_within_a_minute_or_two(
    samples: Cluster, change: dict[str, Any], reasons: set[str], words: str
) -> None:
    cluster = samples
    if cluster.try_kubectl("get", "namespace", FAILURES_NS).returncode != 0:
        cluster.kubectl("create", "namespace", FAILURES_NS)
        cluster.kubectl("label", "namespace", FAILURES_NS, f"{SMALL_NODE_LABEL}=true")
    pool = {
        "apiVersion": "workerpool.dev/v1alpha1",
        "kind": "WorkerPool",
        "metadata": {"name": "broken", "namespace": FAILURES_NS},
        "spec": {
            "environment": "preview",
            "image": "workerpool-examples:latest",
            "imagePullPolicy": "IfNotPresent",
            "workerPackages": ["worker_runtime.examples"],
            **change,
        },
    }
    cluster.kubectl("apply", "-f", "-", input=json.dumps(pool))
    try:
        condition = wait_for(
            lambda: (c := _stalled(cluster, "broken")) and words in c.get("message", "") and c,
            timeout=150,
            interval=1,
            message=lambda: str(cluster.json("-n", FAILURES_NS, "get", "wp", "broken")["status"]),
        )
        assert condition
        assert condition["reason"] in reasons, condition
        # Worker, beat and Flower share the image and the packages: whichever fails first.
        component, _, rest = condition["message"].partition(": container ")
        assert component in {"worker", "beat", "flower"}, condition
        assert f" of pod broken-{component}-" in rest, condition
    finally:
        cluster.kubectl("-n", FAILURES_NS, "delete", "wp", "broken", "--wait=true", timeout=180)


def test_deleting_the_pools_removes_every_child_but_the_production_claim(samples: Cluster) -> None:
    claims = samples.kubectl("-n", NS, "get", "pvc", "-o", "name").split()
    assert len(claims) == 1, claims  # the production Redis's
    samples.kubectl("-n", NS, "delete", "wp", "--all", "--wait=false")

    def leftovers() -> list[str]:
        names = samples.kubectl(
            "-n", NS, "get", "deploy,rs,pods,svc,secret,configmap,pvc,pdb,endpointslices",
            "-o", "name",
        ).split()  # fmt: skip
        # The namespace's own: its CA bundle ConfigMap.
        return [n for n in names if n != "configmap/kube-root-ca.crt"]

    # Retained by default (`spec.redis.persistence.whenDeleted: Retain`): the queued and
    # scheduled jobs outlive the pool until the admin deletes the claim, as the README says.
    wait_for(
        lambda: leftovers() == claims, timeout=240, interval=1, message=lambda: str(leftovers())
    )
    samples.kubectl("-n", NS, "delete", *claims, "--wait=true", timeout=120)
    # The claim's volume goes too (local-path deletes the folder with a helper pod).
    wait_for(
        lambda: not samples.kubectl("get", "pv", "-o", "name").strip(),
        timeout=120, interval=1, message="PersistentVolumes of the deleted pools",
    )  # fmt: skip


@pytest.mark.timeout(900)
def test_the_helm_chart_installs_an_operator_that_runs_a_pool(operator: Cluster) -> None:
    cluster = operator
    # Pools first, while their operator still runs to remove its finalizers: deleting the
    # operator and the CRD together with pools left would strand them.
    cluster.kubectl("delete", "wp", "--all", "--all-namespaces", "--wait=true", timeout=300)
    cluster.kubectl("delete", "-k", str(ROOT / "manifests"), "--wait=true", timeout=300)
    plane = cluster.node.plane
    env = {**os.environ, "KUBECONFIG": str(plane.kubeconfig), "PYTHONPATH": str(ROOT)}
    helm = [sys.executable, "-m", "tests.integration.bundle.helm_cli"]
    # The README's release name: the chart's names then match the kustomize install's.
    chart = str(ROOT / "charts" / "workerpool-operator")
    install = [*helm, "install", "workerpool-operator", chart, "-n", OPERATOR_NS]
    install.append("--create-namespace")
    done = subprocess.run(install, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f"{shlex.join(install)}\n{done.stdout}\n{done.stderr}"
    try:
        cluster.kubectl(
            "-n", OPERATOR_NS, "rollout", "status", "deploy/workerpool-operator",
            "--timeout=180s", timeout=200,
        )  # fmt: skip
        cluster.kubectl("create", "namespace", HELM_NS)
        cluster.kubectl("label", "namespace", HELM_NS, f"{SMALL_NODE_LABEL}=true")
        cluster.kubectl(
            "-n", HELM_NS, "apply", "-f", str(ROOT / "manifests/samples/workerpool-preview.yaml")
        )
        wait_for(
            lambda: cluster.try_kubectl(
                "-n", HELM_NS, "wait", "--for=condition=Ready", f"wp/{PREVIEW}", "--timeout=10s"
            ).returncode == 0,
            timeout=300, interval=1, message=cluster.describe,
        )  # fmt: skip
        body = "print(json.dumps(W.perform_async(9, {}).get(timeout=120)))"
        out = cluster.kubectl(
            "-n", HELM_NS, "exec", f"deploy/{PREVIEW}-worker", "-c", "celery-worker", "--",
            "python", "-c", ENQUEUE.format(body=body), timeout=180,
        )  # fmt: skip
        result = json.loads(out.strip().splitlines()[-1])
        assert result["user_id"] == 9
        assert _restarts(cluster, HELM_NS, _worker(PREVIEW)) == {}, cluster.describe()
        cluster.kubectl("-n", HELM_NS, "delete", "wp", PREVIEW, "--wait=true", timeout=200)
    finally:
        subprocess.run(
            [*helm, "uninstall", "workerpool-operator", "-n", OPERATOR_NS],
            env=env,
            capture_output=True,
            timeout=300,
            check=False,
        )
