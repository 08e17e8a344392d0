"""Autoscaling on a real API server with the kwok node, the operator process and a real
redis-server: the pool's Redis is external (a Secret with the URL of the test's database), so
the operator, running on this host, reads the same Redis the test fills.

A backlog pushed into the queue scales the workers up at the next evaluation; once drained,
they scale down only after the stabilisation window, and the ReplicaSet controller removes the
idle worker, not the busy ones (pod-deletion-cost written from the workers' reports). The
GitOps rule holds on the server: with spec.autoscaling set, `kubectl scale` (what an HPA or
KEDA does through the scale subresource) is refused."""

from __future__ import annotations

import json
import time
import urllib.request
from typing import Any

import pytest
import redis

from tests.integration.operator.conftest import Kube, pool_manifest

pytestmark = pytest.mark.integration

WINDOW = 4  # scaleDownStabilizationSeconds


def kombu_message(tag: str) -> str:
    """What kombu's Redis transport LPUSHes: the load reader reads only the delivery tag."""
    return json.dumps({"body": "", "headers": {}, "properties": {"delivery_tag": tag}})


def autoscaled_pool(kube: Kube, redis_url: str, jobs_per_worker: int = 2) -> None:
    assert kube.nodes_exist(), "these tests need the kwok node to run pods"
    kube.apply(
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "queue"},
            "stringData": {"url": redis_url},
        }
    )
    kube.apply(
        pool_manifest(
            "shop",
            redis={"external": {"secretName": "queue"}},
            autoscaling={
                "minReplicas": 1,
                "maxReplicas": 3,
                "jobsPerWorker": jobs_per_worker,
                "scaleDownStabilizationSeconds": WINDOW,
            },
        )
    )


def status(kube: Kube) -> dict[str, Any]:
    found: dict[str, Any] = kube.pool("shop").get("status") or {}
    return found


def worker_replicas(kube: Kube) -> int | None:
    deployment = kube.get("deployment", "shop-worker")
    return None if deployment is None else int(deployment["spec"]["replicas"])


def metrics(kube: Kube) -> str:
    url = f"http://127.0.0.1:{kube.operator.metrics_port}/metrics"
    with urllib.request.urlopen(url, timeout=5) as response:
        return str(response.read().decode())


def events(kube: Kube, reason: str) -> list[str]:
    selector = f"involvedObject.kind=WorkerPool,involvedObject.name=shop,reason={reason}"
    out = kube.run("get", "events", "--field-selector", selector, "-o", "json")
    return [str(e["message"]) for e in json.loads(out)["items"]]


def test_a_backlog_scales_up_and_a_drained_queue_scales_down_after_the_window(
    kube: Kube, redis_url: str
) -> None:
    autoscaled_pool(kube, redis_url)
    kube.wait(
        lambda: status(kube).get("load") is not None and worker_replicas(kube) == 1,
        timeout=30,
        message="the load in the status and 1 worker",
    )
    client = redis.Redis.from_url(redis_url)
    started = time.monotonic()
    client.lpush("default", *(kombu_message(f"t{i}") for i in range(4)))
    client.zadd("workerpool:schedule:default", {"due-1": time.time(), "due-2": time.time()})
    # 4 queued + 2 due = 6 jobs at 2 per worker: 3 workers, the maximum.
    kube.wait(lambda: worker_replicas(kube) == 3, timeout=30, message="3 workers")
    print(f"scale-up decision applied {time.monotonic() - started:.1f}s after the backlog")
    load = status(kube)["load"]
    assert load["backlog"] == 6
    assert load["queues"]["default"]["queued"] == 4
    assert load["queues"]["default"]["due"] == 2
    assert status(kube)["desiredReplicas"] == 3
    kube.wait(lambda: events(kube, "ScaledUp"), timeout=10, message="a ScaledUp Event")
    assert (
        "6 job(s) held, queued or due at 2 per worker want 3 worker(s)"
        in events(kube, "ScaledUp")[0]
    )
    # Shown by `kubectl get wp`.
    assert "BACKLOG" in kube.run("get", "wp", "shop")
    # ...and scraped from the operator, labelled by namespace, pool and queue.
    labels = f'namespace="{kube.namespace}",pool="shop"'
    assert f'workerpool_queue_backlog_jobs{{{labels},queue="default"}} 6.0' in metrics(kube)
    assert f"workerpool_workers_desired{{{labels}}} 3.0" in metrics(kube)

    client.delete("default", "workerpool:schedule:default")
    kube.wait(lambda: worker_replicas(kube) == 1, timeout=30, message="back to 1 worker")
    (message,) = events(kube, "ScaledDown")
    waited = int(message.split(", for ")[1].split("s:")[0])
    assert waited >= WINDOW  # never before the window
    assert message.endswith(": 3 -> 1")
    assert status(kube)["load"]["backlog"] == 0


def test_the_scale_subresource_is_refused_while_the_operator_scales(
    kube: Kube, redis_url: str
) -> None:
    autoscaled_pool(kube, redis_url)
    code, out = kube.try_run("scale", "wp/shop", "--replicas=2")
    assert code != 0
    assert "spec.replicas and spec.autoscaling are mutually exclusive" in out


def worker_pods(kube: Kube) -> dict[str, dict[str, Any]]:
    """Live worker pods (not being deleted) by name."""
    selector = "app.kubernetes.io/instance=shop,app.kubernetes.io/component=worker"
    out = kube.run("get", "pods", "-l", selector, "-o", "json")
    return {
        p["metadata"]["name"]: p
        for p in json.loads(out)["items"]
        if not p["metadata"].get("deletionTimestamp")
    }


def pod_report(running: int) -> str:
    """A worker's own report (worker_runtime/process/load_report.py), valid for the whole test."""
    queues = {"default": {"reserved": running, "running": running}} if running else {}
    return json.dumps({"expires": time.time() + 600, "ttl": 15, "queues": queues})


def test_a_scale_down_removes_the_idle_worker_and_keeps_the_busy_ones(
    kube: Kube, redis_url: str
) -> None:
    autoscaled_pool(kube, redis_url, jobs_per_worker=1)
    client = redis.Redis.from_url(redis_url)
    client.lpush("default", *(kombu_message(f"t{i}") for i in range(3)))
    pods = kube.wait(
        lambda: len(found := worker_pods(kube)) == 3 and found,
        timeout=60,
        message="3 worker pods",
    )
    # The idle one is the oldest: without costs the ReplicaSet controller prefers deleting
    # younger pods, so only the costs make it go first.
    by_age = sorted(pods, key=lambda n: (pods[n]["metadata"]["creationTimestamp"], n))
    idle, busy = by_age[0], sorted(by_age[1:])
    # Two workers took a job each and run it; the third is idle. The queue is empty.
    client.delete("default")
    client.hset(
        "workerpool:load:pods",
        mapping={busy[0]: pod_report(1), busy[1]: pod_report(1), idle: pod_report(0)},
    )

    def cost(name: str) -> str | None:
        annotations = worker_pods(kube)[name]["metadata"].get("annotations") or {}
        return annotations.get("controller.kubernetes.io/pod-deletion-cost")

    kube.wait(
        lambda: [cost(busy[0]), cost(busy[1]), cost(idle)] == ["1000", "1000", "0"],
        timeout=30,
        message="deletion costs on the worker pods",
    )
    # 2 running jobs at 1 per worker: 2 workers after the window; the idle one goes.
    kube.wait(lambda: worker_replicas(kube) == 2, timeout=30, message="2 workers")
    kube.wait(
        lambda: sorted(worker_pods(kube)) == busy,
        timeout=60,
        message="only the busy workers left",
    )
    assert status(kube)["load"]["running"] == 2
