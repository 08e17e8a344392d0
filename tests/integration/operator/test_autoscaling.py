"""Autoscaling on a real API server with the kwok node, the operator process and a real
redis-server: the pool's Redis is external (a Secret with the URL of the test's database), so
the operator, running on this host, reads the same Redis the test fills.

A backlog pushed into the queue scales the workers up at the next evaluation; once drained,
they scale down only after the stabilisation window. The GitOps rule holds on the server: with
spec.autoscaling set, `kubectl scale` (what an HPA or KEDA does through the scale
subresource) is refused."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
import redis

from tests.integration.operator.conftest import Kube, pool_manifest

pytestmark = pytest.mark.integration

WINDOW = 4  # scaleDownStabilizationSeconds


def kombu_message(tag: str) -> str:
    """What kombu's Redis transport LPUSHes: the load reader reads only the delivery tag."""
    return json.dumps({"body": "", "headers": {}, "properties": {"delivery_tag": tag}})


def autoscaled_pool(kube: Kube, redis_url: str) -> None:
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
                "jobsPerWorker": 2,
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
