"""What a pass refuses to do: roll out an invalid edit, adopt a foreign Secret, replace the
password of a running Redis; and what it reads from failing pods."""

from __future__ import annotations

import base64
from typing import Any

import pytest
from workerpool_operator import names

from tests.unit.operator.conftest import spec_of
from tests.unit.operator.fakes import FakeCluster
from tests.unit.operator.test_reconcile import condition, run, secret


@pytest.fixture
def cluster() -> FakeCluster:
    return FakeCluster()


def generations(cluster: FakeCluster) -> dict[tuple[str, str, str, str], int]:
    return {
        k: v["metadata"]["generation"] for k, v in cluster.objects.items() if k[1] != "WorkerPool"
    }


@pytest.mark.parametrize(
    ("edit", "field"),
    [({"queues": ["urgent"]}, "spec.queues[0]"), ({"timezone": "Mars/Olympus"}, "spec.timezone"),
     ({"image": "my image:1.0"}, "spec.image")],
)  # fmt: skip
def test_a_running_pool_edited_to_an_invalid_spec_keeps_its_children_and_stalls(
    cluster: FakeCluster, edit: dict[str, Any], field: str
) -> None:
    cluster.add_pool(spec_of())
    run(cluster)
    before = generations(cluster)
    applied = len(cluster.applied)
    cluster.pool["spec"].update(edit)

    outcome = run(cluster)

    assert outcome.problem is not None
    assert outcome.problem.permanent
    stalled = condition(cluster, "Stalled")
    assert (stalled["status"], stalled["reason"]) == ("True", "InvalidSpec")
    assert stalled["message"].startswith(f"invalid WorkerPool: {field}: ")
    assert len(cluster.applied) == applied  # nothing rolled out
    assert generations(cluster) == before
    assert cluster.pool["status"]["components"]  # the running children are still reported


def test_a_foreign_secret_under_a_generated_name_is_a_name_conflict(cluster: FakeCluster) -> None:
    cluster.add_pool(spec_of())
    secret(cluster, "shop-redis", {"password": "someone-elses"})
    outcome = run(cluster)
    assert outcome.problem is not None
    assert outcome.problem.reason == "NameConflict"
    assert "Secret apps/shop-redis exists and is not controlled by WorkerPool shop" in (
        outcome.problem.message
    )
    foreign = cluster.find("Secret", "shop-redis")
    assert foreign is not None
    assert "ownerReferences" not in foreign["metadata"]  # never adopted
    assert cluster.find("Deployment", "shop-worker") is None


def test_a_deleted_redis_secret_is_not_regenerated_while_redis_runs(cluster: FakeCluster) -> None:
    cluster.add_pool(spec_of())
    run(cluster)
    redis = cluster.find("Deployment", "shop-redis")
    del cluster.objects[("v1", "Secret", "apps", "shop-redis")]

    outcome = run(cluster)

    assert outcome.problem is not None
    assert (outcome.problem.reason, outcome.problem.permanent) == ("RedisSecretMissing", False)
    assert "kubectl -n apps exec deploy/shop-redis -c redis -- printenv REDIS_PASSWORD" in (
        outcome.problem.message
    )
    assert cluster.find("Secret", "shop-redis") is None
    assert cluster.find("Deployment", "shop-redis") == redis  # untouched, still serving


def test_a_restored_redis_secret_is_adopted_without_a_rollout(cluster: FakeCluster) -> None:
    cluster.add_pool(spec_of())
    run(cluster)
    original = cluster.objects.pop(("v1", "Secret", "apps", "shop-redis"))
    run(cluster)
    before = generations(cluster)
    password = base64.b64decode(original["data"]["password"]).decode()
    secret(cluster, "shop-redis", {"password": password})
    restored = cluster.find("Secret", "shop-redis")
    assert restored is not None
    restored["metadata"]["labels"] = {names.LABEL_MANAGED_BY: names.OPERATOR}

    outcome = run(cluster)

    assert outcome.problem is None
    adopted = cluster.find("Secret", "shop-redis")
    assert adopted is not None
    assert adopted["metadata"]["ownerReferences"][0]["uid"] == "pool-uid"
    assert adopted["data"] == original["data"]
    deployments = {k: g for k, g in generations(cluster).items() if k[1] == "Deployment"}
    assert deployments == {k: g for k, g in before.items() if k[1] == "Deployment"}


def test_a_deleted_redis_secret_is_generated_when_no_redis_runs(cluster: FakeCluster) -> None:
    cluster.add_pool(spec_of())
    run(cluster)
    del cluster.objects[("v1", "Secret", "apps", "shop-redis")]
    del cluster.objects[("apps/v1", "Deployment", "apps", "shop-redis")]  # the user gave up
    assert run(cluster).problem is None
    assert cluster.find("Secret", "shop-redis") is not None


def test_a_deleted_flower_secret_is_regenerated(cluster: FakeCluster) -> None:
    # Only login credentials: a new password loses nothing.
    cluster.add_pool(spec_of())
    run(cluster)
    del cluster.objects[("v1", "Secret", "apps", "shop-flower")]
    assert run(cluster).problem is None
    assert cluster.find("Secret", "shop-flower") is not None


def crash_looping_pod(component: str, message: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": f"shop-{component}-7d9f", "namespace": "apps",
                     "labels": names.labels("shop", component)},  # type: ignore[arg-type]
        "status": {"containerStatuses": [{
            "name": names.CONTAINERS[component],  # type: ignore[index]
            "ready": False, "restartCount": 3,
            "state": {"waiting": {"reason": "CrashLoopBackOff", "message": "back-off 40s"}},
            "lastState": {"terminated": {"exitCode": 1, "reason": "Error", "message": message}},
        }]},
    }  # fmt: skip


def test_a_crash_looping_worker_stalls_the_pool_with_its_last_error(cluster: FakeCluster) -> None:
    cluster.add_pool(spec_of())
    run(cluster)
    error = (
        "Traceback (most recent call last):\n  ...\nModuleNotFoundError: No module named 'shop'\n"
    )
    cluster.put(crash_looping_pod("worker", error))

    outcome = run(cluster)

    assert outcome.problem is None  # nothing wrong with this pass: no kopf retry storm
    stalled = condition(cluster, "Stalled")
    assert (stalled["status"], stalled["reason"]) == ("True", "CrashLoopBackOff")
    assert stalled["message"] == (
        "worker: container celery-worker of pod shop-worker-7d9f CrashLoopBackOff: "
        "exit code 1: ModuleNotFoundError: No module named 'shop'"
    )
    assert cluster.pool["status"]["components"]["worker"]["message"] == stalled["message"]


@pytest.mark.parametrize(("url", "stalled"), [("redis://:pw@r:6379/0", False), ("r:6379", True)])
def test_an_external_redis_url_the_runtime_refuses_stalls_without_quoting_it(
    cluster: FakeCluster, url: str, stalled: bool
) -> None:
    cluster.add_pool(spec_of(redis={"external": {"secretName": "redis-url"}}))
    secret(cluster, "redis-url", {"url": url})
    outcome = run(cluster)
    if not stalled:
        assert outcome.problem is None
        return
    assert outcome.problem is not None
    assert outcome.problem.reason == "SecretValueInvalid"
    assert outcome.problem.message == (
        "Secret apps/redis-url (from spec.redis.external.secretName) key url is not a Redis URL "
        "(redis://, rediss://, unix://), which the workers need; fix the Secret"
    )
    assert cluster.find("Deployment", "shop-worker") is None
