"""Autoscaling, safe scale-down and the backlog alert on the real node (issue 13's proof).

Shares the session's `real_node` (tests/controlplane/fixtures.py) and the Cluster helper of
test_real_node.py; installs the operator from its image with the shipped manifests, like that
module, and runs its pools in a namespace of its own. What only this proves, with real pods:
- a backlog raises an autoscaled pool from minReplicas to maxReplicas and, once the queue is
  drained and the stabilisation window has passed, lowers it back (the measured times are
  printed as `[autoscale]` lines; no timed assertions);
- with three workers, two of them running held jobs, scaling to two removes the idle pod: the
  operator's pod-deletion-cost annotations are honoured by kube-controller-manager's
  ReplicaSet controller, and both held jobs finish exactly once;
- a real Prometheus (Debian's `prometheus`), configured the way the Prometheus Operator turns
  the shipped ServiceMonitor into a scrape job, scrapes the in-cluster operator through the
  shipped metrics Service and evaluates the shipped alert rules: the backlog alert fires with
  the pool's namespace and name while the backlog exists and resolves once it is drained.

Job bodies: workerpool_e2e.workers.HeldWorker (tests/e2e/app), which counts its starts and
finishes in the pool's Redis and runs until the test releases it. Must not change the shipped
objects; only the alert rule's durations are shortened for the test (see `alert_rules`).
"""

from __future__ import annotations

import contextlib
import json
import re
import shutil
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
import yaml

from tests.controlplane.harness import free_port
from tests.controlplane.node import RealNode
from tests.controlplane.nodeconfig import SMALL_NODE_LABEL
from tests.controlplane.waiting import wait_for
from tests.e2e.test_real_node import E2E_PACKAGE, OPERATOR_NS, ROOT, Cluster

NS = "autoscale"
MONITORING = ROOT / "manifests" / "monitoring"
BACKLOG_ALERT = "WorkerPoolBacklogGrowing"
# Short so the test stays short; the default (300 s) is for production.
STABILIZATION_SECONDS = 20

# Guards against hangs, not speed (see test_real_node.py).
pytestmark = pytest.mark.timeout(900)


def _ready(pod: dict[str, Any]) -> bool:
    conditions = pod.get("status", {}).get("conditions", [])
    return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)


def _workers(pool: str) -> str:
    return f"app.kubernetes.io/instance={pool},app.kubernetes.io/component=worker"


def report(request: pytest.FixtureRequest, line: str) -> None:
    """A measured figure, in the test output even without `-s` (past pytest's capture, which
    would otherwise swallow it, terminal writes included, unless the test fails)."""
    plugins = request.config.pluginmanager
    reporter, capture = plugins.get_plugin("terminalreporter"), plugins.get_plugin("capturemanager")
    with capture.global_and_fixture_disabled() if capture else contextlib.nullcontext():
        if reporter is not None:
            reporter.write_line(f"[autoscale] {line}")
        else:
            print(f"[autoscale] {line}")


class Pool:
    """One WorkerPool of this module's namespace, with its Redis and worker pods at hand."""

    def __init__(self, cluster: Cluster, name: str) -> None:
        self.cluster = cluster
        self.name = name

    def kubectl(self, *args: str, timeout: float = 120) -> str:
        return self.cluster.kubectl("-n", NS, *args, timeout=timeout)

    def status(self) -> dict[str, Any]:
        found: dict[str, Any] = self.cluster.json("-n", NS, "get", "wp", self.name)
        return found.get("status") or {}

    def pods(self) -> list[dict[str, Any]]:
        """Worker pods not being deleted."""
        listed = self.cluster.json("-n", NS, "get", "pods", "-l", _workers(self.name))
        return [p for p in listed["items"] if "deletionTimestamp" not in p["metadata"]]

    def ready_pods(self) -> list[str]:
        return sorted(p["metadata"]["name"] for p in self.pods() if _ready(p))

    def python(self, code: str) -> Any:
        """Run `code` in a worker container (the image has the workers); parse its last line."""
        out = self.kubectl(
            "exec", f"deploy/{self.name}-worker", "-c", "celery-worker", "--",
            "python", "-c", code, timeout=240,
        )  # fmt: skip
        return json.loads(out.strip().splitlines()[-1])

    def redis(self, *command: str) -> list[str]:
        """A redis-cli command in the pool's Redis pod (its REDISCLI_AUTH holds the password)."""
        out = self.kubectl("exec", f"deploy/{self.name}-redis", "--", "redis-cli", *command)
        return out.splitlines()

    def counts(self, kind: str, tags: list[str]) -> list[int]:
        """HeldWorker's `e2e:KIND:TAG` counters; 0 for a key never written."""
        values = self.redis("mget", *(f"e2e:{kind}:{tag}" for tag in tags))
        return [int(v) if v.strip() else 0 for v in values]

    def enqueue_held(self, tags: list[str], seconds: float, release: str = "") -> float:
        """Queue one HeldWorker job per tag; the pod's clock when the last one was queued."""
        code = (
            "import json, time\n"
            "from workerpool_e2e.workers import HeldWorker\n"
            f"for tag in {tags!r}:\n"
            f"    HeldWorker.perform_async(tag, {seconds!r}, {release!r})\n"
            "print(json.dumps(time.time()))"
        )
        return float(self.python(code))

    def describe(self) -> str:
        got = self.cluster.try_kubectl("-n", NS, "get", "wp,deploy,pods", "-o", "wide")
        events = self.cluster.try_kubectl("-n", NS, "get", "events", "--sort-by=.lastTimestamp")
        return f"{got.stdout}{got.stderr}\n{events.stdout[-2500:]}\n{self.status()}"


@pytest.fixture(scope="module")
def cluster(real_node: RealNode) -> Iterator[Cluster]:
    """The operator from its image with the shipped manifests, and this module's namespace.

    --force-conflicts: after test_real_node.py's Helm test the CRD is still there, owned by
    Helm's field manager (Helm keeps CRDs on uninstall); the values are the same."""
    cluster = Cluster(real_node)
    cluster.kubectl("apply", "--server-side", "--force-conflicts", "-k", str(ROOT / "manifests"))
    cluster.kubectl(
        "-n", OPERATOR_NS, "rollout", "status", "deploy/workerpool-operator", "--timeout=180s",
        timeout=200,
    )  # fmt: skip
    cluster.kubectl("create", "namespace", NS)
    cluster.kubectl("label", "namespace", NS, f"{SMALL_NODE_LABEL}=true")
    try:
        yield cluster
    finally:
        # Pools first, while the operator runs to remove their finalizers.
        cluster.try_kubectl("-n", NS, "delete", "wp", "--all", "--wait=true", timeout=300)
        cluster.try_kubectl("delete", "namespace", NS, "--wait=false")


@contextlib.contextmanager
def pool(cluster: Cluster, name: str, **spec: Any) -> Iterator[Pool]:
    """A pool of HeldWorker workers, one job per process, without beat and Flower (not needed
    here: fewer pods to start on a 2-CPU machine); deleted afterwards."""
    body = {
        "apiVersion": "workerpool.dev/v1alpha1",
        "kind": "WorkerPool",
        "metadata": {"name": name, "namespace": NS},
        "spec": {
            "environment": "preview",
            "image": "workerpool-examples:latest",
            "imagePullPolicy": "IfNotPresent",
            "workerPackages": [E2E_PACKAGE],
            "concurrency": 1,
            # An idle worker sometimes stays in warm shutdown until its grace period ends
            # (test_real_node.py's docstring); a deleted idle pod should not linger for 300 s.
            "terminationGracePeriodSeconds": 60,
            "beat": {"enabled": False},
            "flower": {"enabled": False},
            **spec,
        },
    }
    cluster.kubectl("apply", "-f", "-", input=json.dumps(body))
    found = Pool(cluster, name)
    try:
        wait_for(
            lambda: cluster.try_kubectl(
                "-n", NS, "wait", "--for=condition=Ready", f"wp/{name}", "--timeout=10s"
            ).returncode == 0,
            timeout=300, interval=1, message=found.describe,
        )  # fmt: skip
        yield found
    finally:
        cluster.try_kubectl("-n", NS, "delete", "wp", name, "--wait=false")


# --- Prometheus ---------------------------------------------------------------------------


def operator_targets(cluster: Cluster) -> list[dict[str, Any]]:
    """The shipped ServiceMonitor's targets, found the way the Prometheus Operator's scrape
    job finds them: Services of the monitor's namespace with its matchLabels, their
    EndpointSlices' ready addresses on the monitor's port name, with the target labels it adds
    (namespace, service, pod, endpoint, job). Done here with kubectl because Debian builds
    Prometheus without Kubernetes service discovery; `static_configs` entries."""
    monitor = yaml.safe_load((MONITORING / "servicemonitor.yaml").read_text())
    (endpoint,) = monitor["spec"]["endpoints"]
    selector = ",".join(f"{k}={v}" for k, v in monitor["spec"]["selector"]["matchLabels"].items())
    targets: list[dict[str, Any]] = []
    for service in cluster.json("-n", OPERATOR_NS, "get", "svc", "-l", selector)["items"]:
        name = service["metadata"]["name"]
        slices = cluster.json(
            "-n", OPERATOR_NS, "get", "endpointslices", "-l", f"kubernetes.io/service-name={name}"
        )["items"]  # fmt: skip
        for found in slices:
            ports = [
                p["port"] for p in found.get("ports") or [] if p.get("name") == endpoint["port"]
            ]
            for address in found.get("endpoints") or []:
                if not (address.get("conditions") or {}).get("ready"):
                    continue
                labels = {
                    "namespace": OPERATOR_NS,
                    "service": name,
                    "pod": (address.get("targetRef") or {}).get("name", ""),
                    "endpoint": endpoint["port"],
                    "job": name,
                }
                targets.extend(
                    {"targets": [f"{ip}:{port}"], "labels": labels}
                    for ip in address["addresses"]
                    for port in ports
                )
    return targets


def scrape_config(targets: list[dict[str, Any]], interval: str) -> dict[str, Any]:
    """The shipped ServiceMonitor's scrape job: its path and honorLabels. Only the interval is
    the test's: 30 s would make the test minutes longer."""
    monitor = yaml.safe_load((MONITORING / "servicemonitor.yaml").read_text())
    (endpoint,) = monitor["spec"]["endpoints"]
    return {
        "job_name": f"serviceMonitor/{OPERATOR_NS}/{monitor['metadata']['name']}/0",
        "honor_labels": bool(endpoint.get("honorLabels", False)),
        "metrics_path": endpoint.get("path", "/metrics"),
        "scrape_interval": interval,
        "static_configs": targets,
    }


def alert_rules() -> dict[str, Any]:
    """The shipped PrometheusRule's groups, with the backlog alert's durations shortened:
    `for: 15m` -> 10s and the `[10m]` growth window -> [5m] (still longer than the whole
    backlog here, so "grown" means "grown since before the jobs were queued"). Nothing else
    changes: the expression, labels and the other rules are the shipped ones."""
    rule_object = yaml.safe_load((MONITORING / "prometheusrule.yaml").read_text())
    groups: list[dict[str, Any]] = rule_object["spec"]["groups"]
    (rule,) = [r for g in groups for r in g["rules"] if r.get("alert") == BACKLOG_ALERT]
    # The shipped durations this rewrites; a changed rule must be looked at again here.
    assert rule["for"] == "15m", rule
    assert "[10m]" in rule["expr"], rule
    rule["for"] = "10s"
    rule["expr"] = rule["expr"].replace("[10m]", "[5m]")
    return {"groups": groups}


class Prometheus:
    def __init__(self, port: int) -> None:
        self.url = f"http://127.0.0.1:{port}"

    def get(self, path: str) -> Any:
        with urllib.request.urlopen(self.url + path, timeout=10) as response:
            return json.load(response)

    def query(self, expr: str) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = self.get(f"/api/v1/query?query={quote(expr)}")["data"][
            "result"
        ]
        return found

    def alerts(self, name: str) -> list[dict[str, Any]]:
        """Active (pending or firing) alerts of that name; a resolved alert is not listed."""
        listed: list[dict[str, Any]] = self.get("/api/v1/alerts")["data"]["alerts"]
        return [a for a in listed if a["labels"].get("alertname") == name]


def _prometheus_ready(prometheus: Prometheus) -> bool:
    try:
        up = prometheus.query(f'up{{namespace="{OPERATOR_NS}"}}')
    except OSError:
        return False
    return any(sample["value"][1] == "1" for sample in up)


@pytest.fixture(scope="module")
def prometheus(cluster: Cluster) -> Iterator[Prometheus]:
    """Debian's Prometheus on a free loopback port with its own temporary storage, finding
    the operator through the shipped metrics Service (applied here alone: the rest of
    manifests/monitoring needs the Prometheus Operator's CRDs); stopped and removed after."""
    binary = shutil.which("prometheus")
    assert binary is not None, "Debian's prometheus package is missing (hostsetup.py installs it)"
    service = str(MONITORING / "service.yaml")
    cluster.kubectl("apply", "-f", service)
    # The operator pod's address; it stays for the module (one operator pod, not restarted).
    targets = wait_for(
        lambda: operator_targets(cluster), timeout=60, interval=1,
        message="a ready endpoint of the operator's metrics Service",
    )  # fmt: skip
    home = Path(tempfile.mkdtemp(prefix="workerpool-prometheus-"))
    (home / "rules.yaml").write_text(yaml.safe_dump(alert_rules()))
    config = {
        "global": {"scrape_interval": "2s", "evaluation_interval": "2s"},
        "rule_files": [str(home / "rules.yaml")],
        "scrape_configs": [scrape_config(targets, "2s")],
    }
    (home / "prometheus.yml").write_text(yaml.safe_dump(config))
    port = free_port()
    log = (home / "prometheus.log").open("wb")
    process = subprocess.Popen(
        [
            binary,
            f"--config.file={home / 'prometheus.yml'}",
            f"--storage.tsdb.path={home / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    found = Prometheus(port)
    try:

        def tail() -> str:
            text = (home / "prometheus.log").read_text(errors="replace")
            return "Prometheus scraping the operator; log tail:\n" + text[-3000:]

        wait_for(
            lambda: process.poll() is not None or _prometheus_ready(found),
            timeout=120, interval=1, message=tail,
        )  # fmt: skip
        assert process.poll() is None, tail()
        yield found
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=30)
        log.close()
        shutil.rmtree(home, ignore_errors=True)
        cluster.try_kubectl("delete", "-f", service, "--wait=false")


# --- Tests --------------------------------------------------------------------------------

BURST_JOBS = 48
BURST_SECONDS = 3.0


def test_a_backlog_scales_the_pool_to_max_and_back_and_the_backlog_alert_fires_and_resolves(
    cluster: Cluster, prometheus: Prometheus, request: pytest.FixtureRequest
) -> None:
    """(Issue 13, item 5: min -> max -> min, and the alert.) 48 jobs of 3 s, one per worker
    process, are 144 worker-seconds: enough backlog for the 10 s `for:` and for new pods to
    start (the backlog lasted about 40 s with 40 jobs), little enough to drain in about a
    minute at three workers."""
    low, high = 1, 3
    autoscaling = {
        "minReplicas": low,
        "maxReplicas": high,
        "jobsPerWorker": 1,
        "scaleDownStabilizationSeconds": STABILIZATION_SECONDS,
    }
    with pool(cluster, "burst", autoscaling=autoscaling) as burst:
        assert len(burst.ready_pods()) == low
        # The starting line: the operator reads the pool's Redis (until its first reading the
        # pool has no load series), and Prometheus holds a backlog of 0 for it, the baseline
        # the alert's growth is measured from.
        baseline = f'sum(workerpool_queue_backlog_jobs{{namespace="{NS}",pool="burst"}}) == 0'
        wait_for(
            lambda: "load" in burst.status() and prometheus.query(baseline),
            timeout=120, interval=1, message=lambda: f"a load reading: {burst.status()}",
        )  # fmt: skip
        tags = [f"burst-{i}" for i in range(BURST_JOBS)]
        queued_at = burst.enqueue_held(tags, BURST_SECONDS)

        seen: dict[str, float] = {}
        firing: list[dict[str, Any]] = []

        def note(milestone: str, reached: bool) -> None:
            if reached and milestone not in seen:
                seen[milestone] = time.time()

        def observe() -> bool:
            """One look at the pool, its Deployment, its pods and Prometheus' alerts."""
            status = burst.status()
            load = status.get("load") or {}
            deployment = cluster.json("-n", NS, "get", "deploy", "burst-worker")
            replicas = deployment["spec"]["replicas"]
            ready = len(burst.ready_pods())
            alerts = [
                a
                for a in prometheus.alerts(BACKLOG_ALERT)
                if a["labels"].get("pool") == "burst" and a["labels"].get("namespace") == NS
            ]
            note("raised", replicas == high)
            note("ready", "raised" in seen and ready == high)
            if any(a["state"] == "firing" for a in alerts) and "firing" not in seen:
                firing.extend(a for a in alerts if a["state"] == "firing")
                note("firing", True)
            note("resolved", "firing" in seen and not alerts)
            note("emptied", "ready" in seen and load.get("backlog") == 0)
            drained = load.get("backlog") == 0 and load.get("reserved") == 0
            note("drained", "ready" in seen and drained)
            note("lowered", "drained" in seen and replicas == low)
            note("down", "lowered" in seen and len(burst.pods()) == low)
            return {"raised", "ready", "firing", "resolved", "drained", "down"} <= seen.keys()

        wait_for(
            observe,
            timeout=600,
            interval=1,
            message=lambda: f"min -> max -> min and the alert (seen: {seen})\n{burst.describe()}",
        )
        # The moment the last job finished (the workers' clock is this host's).
        done = max(float(v) for v in burst.redis("mget", *(f"e2e:finished_at:{t}" for t in tags)))

        def after(start: float, *milestones: str) -> str:
            return ", ".join(f"{m} {seen[m] - start:+.1f} s" for m in milestones)

        # Each milestone is the first poll (about every 2 s) that saw it.
        report(request, f"scale-up {low}->{high}, from the backlog queued: "
               + after(queued_at, "raised", "ready"))  # fmt: skip
        report(request, f"scale-down {high}->{low} (window {STABILIZATION_SECONDS} s), from the "
               f"last job's end: operator saw the drain {seen['drained'] - done:+.1f} s, "
               + after(done, "lowered", "down"))  # fmt: skip
        report(request, f"{BACKLOG_ALERT}: " + after(queued_at, "firing")
               + f" from the backlog queued; resolved {seen['resolved'] - seen['emptied']:+.1f} s"
               " from the operator seeing the queue empty")  # fmt: skip

        # Every job ran exactly once (none lost to a scale-down, none redelivered).
        assert burst.counts("started", tags) == [1] * BURST_JOBS
        assert burst.counts("finished", tags) == [1] * BURST_JOBS
        # The alert fired on this pool's backlog: its value is the backlog the rule saw.
        (alert,) = firing
        assert float(alert["value"]) > 0, alert
        assert alert["labels"]["severity"] == "warning"
        assert "runbook" in alert["annotations"]
        # The decisions were announced as Events on the pool.
        events = cluster.json(
            "-n", NS, "get", "events", "--field-selector",
            "involvedObject.kind=WorkerPool,involvedObject.name=burst",
        )["items"]  # fmt: skip
        reasons = {e["reason"] for e in events}
        assert {"ScaledUp", "ScaledDown"} <= reasons, reasons
        # Each scale-down waited out the window ("..., for 21s: 3 -> 1").
        for event in events:
            if event["reason"] == "ScaledDown":
                waited = re.search(r", for (\d+)s: \d+ -> \d+", event["message"])
                assert waited, event["message"]
                assert int(waited.group(1)) >= STABILIZATION_SECONDS, event["message"]


def _cost(pod: dict[str, Any]) -> str | None:
    annotations = pod["metadata"].get("annotations") or {}
    value = annotations.get("controller.kubernetes.io/pod-deletion-cost")
    return None if value is None else str(value)


def test_scaling_three_workers_to_two_removes_the_idle_one_and_held_jobs_finish_once(
    cluster: Cluster,
) -> None:
    """(Issue 13, item 5: safe scale-down.) The idle pod is made the oldest on purpose: with
    no deletion cost the ReplicaSet controller removes the pod ready for the shortest time
    (compared in powers of two of seconds, then by age), a busy one here, so this test fails
    if the costs are missing or ignored."""
    with pool(cluster, "keep", replicas=1) as keep:
        (oldest,) = keep.ready_pods()
        # The oldest pod takes a first held job, so the two long ones go to new pods.
        keep.enqueue_held(["first"], 300, release="e2e:release:first")
        wait_for(lambda: keep.counts("started", ["first"]) == [1], timeout=60, interval=1)
        keep.kubectl("scale", "wp/keep", "--replicas=3")
        wait_for(lambda: len(keep.ready_pods()) == 3, timeout=240, interval=1,
                 message=keep.describe)  # fmt: skip
        long = ["long-1", "long-2"]
        keep.enqueue_held(long, 300, release="e2e:release:long")
        wait_for(lambda: keep.counts("started", long) == [1, 1], timeout=120, interval=1,
                 message=keep.describe)  # fmt: skip
        keep.redis("set", "e2e:release:first", "1")
        wait_for(lambda: keep.counts("finished", ["first"]) == [1], timeout=60, interval=1)
        busy = sorted(set(keep.ready_pods()) - {oldest})

        def costs() -> dict[str, str | None]:
            return {p["metadata"]["name"]: _cost(p) for p in keep.pods()}

        # The operator writes a pod's cost when its report (every 5 s) changed, at its next
        # evaluation (10 s resync): wait for the values, then scale.
        wanted = {oldest: "0", **dict.fromkeys(busy, "1000")}
        wait_for(lambda: costs() == wanted, timeout=90, interval=1,
                 message=lambda: f"deletion costs {wanted} (now {costs()})")  # fmt: skip
        load = keep.status()["load"]["pods"]
        assert {p: load[p]["running"] for p in wanted} == {oldest: 0, **dict.fromkeys(busy, 1)}

        keep.kubectl("scale", "wp/keep", "--replicas=2")
        wait_for(lambda: len(keep.pods()) == 2, timeout=120, interval=1, message=keep.describe)

        assert sorted(p["metadata"]["name"] for p in keep.pods()) == busy
        keep.redis("set", "e2e:release:long", "1")
        wait_for(lambda: keep.counts("finished", long) == [1, 1], timeout=120, interval=1,
                 message=keep.describe)  # fmt: skip
        assert keep.counts("started", long) == [1, 1]
        survivors = keep.pods()
        assert sorted(p["metadata"]["name"] for p in survivors) == busy
        restarts = [c["restartCount"] for p in survivors for c in p["status"]["containerStatuses"]]
        assert restarts == [0] * len(restarts)
