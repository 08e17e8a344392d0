"""Issue 23 on a real API server (kwok pods, the real garbage collector and disruption
controller): an edit that would empty a preview Redis is refused until confirmed, an eviction
cannot take Redis, deleting a pool stops its workers before Redis goes, and a production
pool leaves its volume claim behind. Issue 24: a pod quota refusal is named in the status."""

from __future__ import annotations

import json
from typing import Any

import kubernetes.client
import pytest
from kubernetes.client.exceptions import ApiException

from tests.integration.operator.conftest import Kube, pool_manifest
from tests.integration.operator.test_guards import ready_pool
from tests.integration.operator.test_invalid import wait_stalled

pytestmark = pytest.mark.integration

HASH = "workerpool.dev/config-hash"
CONFIRM = "workerpool.dev/confirm-redis-data-loss"
HOLD = "workerpool.test/hold"  # a finalizer that keeps a worker pod Terminating


def redis_template(kube: Kube) -> dict[str, Any]:
    template: dict[str, Any] = kube.must_get("deployment", "shop-redis")["spec"]["template"]
    return template


def pods(kube: Kube, component: str) -> list[dict[str, Any]]:
    selector = f"app.kubernetes.io/instance=shop,app.kubernetes.io/component={component}"
    found: list[dict[str, Any]] = json.loads(kube.run("get", "pods", "-l", selector, "-o", "json"))[
        "items"
    ]
    return found


def test_a_preview_redis_edit_is_refused_until_the_loss_is_confirmed(kube: Kube) -> None:
    ready_pool(kube)
    before = redis_template(kube)
    memory = {"redis": {"resources": {"limits": {"memory": "512Mi"}}}}

    kube.run("patch", "wp/shop", "--type=merge", "-p", json.dumps({"spec": memory}))
    condition = wait_stalled(kube, "shop", "RedisDataLoss")
    assert "would restart it on an empty in-memory volume" in condition["message"]
    assert f"annotate wp/shop {CONFIRM}=true" in condition["message"]
    kube.wait(
        lambda: "RedisDataLoss"
        in kube.run("get", "events", "--field-selector", "involvedObject.name=shop"),
        timeout=15,
        message="a RedisDataLoss Event on the pool",
    )
    assert redis_template(kube) == before  # the old Redis keeps running with its jobs

    kube.run("annotate", "wp/shop", f"{CONFIRM}=true")
    kube.wait(
        lambda: redis_template(kube)["metadata"]["annotations"][HASH]
        != before["metadata"]["annotations"][HASH],
        timeout=15,
        message="the confirmed Redis change to be applied",
    )
    command = redis_template(kube)["spec"]["containers"][0]["command"]
    assert command[command.index("--maxmemory") + 1] == str(384 * 2**20)
    kube.wait(
        lambda: CONFIRM not in (kube.pool("shop")["metadata"].get("annotations") or {}),
        timeout=15,
        message="the one-shot confirmation to be removed",
    )


def test_an_eviction_cannot_take_redis(kube: Kube, k8s_api: kubernetes.client.ApiClient) -> None:
    """What `kubectl drain` does to each pod: the Eviction API, refused by the budget."""
    ready_pool(kube)
    budget = kube.must_get("poddisruptionbudget", "shop-redis")
    assert budget["spec"]["maxUnavailable"] == 0
    (redis,) = pods(kube, "redis")
    name = redis["metadata"]["name"]
    eviction = kubernetes.client.V1Eviction(
        metadata=kubernetes.client.V1ObjectMeta(name=name, namespace=kube.namespace)
    )
    core = kubernetes.client.CoreV1Api(k8s_api)
    with pytest.raises(ApiException) as refused:
        core.create_namespaced_pod_eviction(name, kube.namespace, eviction)
    assert refused.value.status == 429
    assert "disruption budget" in str(refused.value.body).lower()
    assert kube.get("pod", name) is not None


def test_deleting_a_pool_stops_the_workers_before_redis_goes(kube: Kube) -> None:
    ready_pool(kube)
    (worker,) = pods(kube, "worker")
    pod = worker["metadata"]["name"]
    # A worker still finishing its jobs: its pod stays Terminating until the hold is removed.
    kube.run(
        "patch", "pod", pod, "--type=merge", "-p", json.dumps({"metadata": {"finalizers": [HOLD]}})
    )

    kube.run("delete", "wp/shop", "--wait=false")

    def worker_stopping() -> bool:
        deployment = kube.get("deployment", "shop-worker")
        terminating = kube.get("pod", pod)
        return (
            deployment is not None
            and deployment["spec"]["replicas"] == 0
            and terminating is not None
            and "deletionTimestamp" in terminating["metadata"]
        )

    kube.wait(worker_stopping, timeout=15, message="the workers to be stopped first")
    for kind, name in (("deployment", "shop-redis"), ("service", "shop-redis"),
                       ("deployment", "shop-beat"), ("workerpool", "shop")):  # fmt: skip
        assert kube.get(kind, name) is not None, f"{kind}/{name} went before the workers"

    kube.run("patch", "pod", pod, "--type=merge", "-p", '{"metadata": {"finalizers": null}}')
    kube.wait(
        lambda: kube.get("workerpool", "shop") is None
        and kube.get("deployment", "shop-redis") is None,
        timeout=30,
        message="the pool and its Redis to go once the workers are gone",
    )


def test_a_production_pool_leaves_its_claim_for_its_namesake(kube: Kube) -> None:
    kube.apply(pool_manifest("shop", environment="production"))
    claim = kube.wait(
        lambda: kube.get("persistentvolumeclaim", "shop-redis"), timeout=30, message="the claim"
    )
    assert "ownerReferences" not in claim["metadata"]

    kube.run("delete", "wp/shop", "--wait=false")
    kube.wait(
        lambda: kube.get("workerpool", "shop") is None
        and kube.get("deployment", "shop-redis") is None,
        timeout=60,
        message="the pool and its children to go",
    )
    kept = kube.must_get("persistentvolumeclaim", "shop-redis")
    assert kept["metadata"]["uid"] == claim["metadata"]["uid"]
    assert "deletionTimestamp" not in kept["metadata"]

    kube.apply(pool_manifest("shop", environment="production"))  # adopts it, jobs and all
    volumes = kube.wait(
        lambda: (kube.get("deployment", "shop-redis") or {})
        .get("spec", {})
        .get("template", {})
        .get("spec", {})
        .get("volumes"),
        timeout=30,
        message="the new pool's Redis",
    )
    assert volumes == [{"name": "data", "persistentVolumeClaim": {"claimName": "shop-redis"}}]
    assert (
        kube.must_get("persistentvolumeclaim", "shop-redis")["metadata"]["uid"]
        == (claim["metadata"]["uid"])
    )


def test_a_pod_quota_refusal_is_named_in_the_status(kube: Kube) -> None:
    """Issue 24: pods refused by a ResourceQuota left the pool Progressing, with no reason."""
    kube.apply({"apiVersion": "v1", "kind": "ResourceQuota",
                "metadata": {"name": "team-pods"}, "spec": {"hard": {"pods": "2"}}})  # fmt: skip
    kube.wait(
        lambda: (kube.must_get("resourcequota", "team-pods").get("status") or {}).get("hard"),
        timeout=30,
        message="the quota controller to count the namespace's pods",
    )
    kube.apply(pool_manifest("shop"))
    condition = wait_stalled(kube, "shop", "QuotaExceeded")
    assert "pods refused by a ResourceQuota" in condition["message"]
    assert "exceeded quota: team-pods" in condition["message"]


def test_an_exabyte_quantity_is_accepted_and_parsed(kube: Kube) -> None:
    """Issue 24: `1Ei` passed the CRD and was then refused as "not a quantity"."""
    huge = {"requests": {"memory": "1Ei"}, "limits": {"memory": "1Ei"}}
    kube.apply(pool_manifest("shop", resources=huge))
    worker = kube.wait(
        lambda: kube.get("deployment", "shop-worker"), timeout=30, message="the worker"
    )
    (container,) = worker["spec"]["template"]["spec"]["containers"]
    assert container["resources"]["limits"]["memory"] == "1Ei"
