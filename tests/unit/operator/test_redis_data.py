"""Issue 23 against the in-memory cluster: a pass refuses a Redis change that would lose its
jobs until the pool confirms it, adopts a claim a deleted pool of its name retained, and the
teardown of a deleted pool stops the workers before anything else goes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from workerpool_operator import names
from workerpool_operator.dataloss import CONFIRM_ANNOTATION
from workerpool_operator.load import Load, Reading
from workerpool_operator.reconcile import reconcile
from workerpool_operator.teardown import MARGIN_SECONDS, retire

from tests.unit.operator.conftest import spec_of
from tests.unit.operator.fakes import FakeCluster
from tests.unit.operator.test_reconcile import condition, run
from tests.unit.operator.test_reconcile_load import FakeLoads

REDIS = ("apps/v1", "Deployment", "apps", "shop-redis")
CLAIM = ("v1", "PersistentVolumeClaim", "apps", "shop-redis")


@pytest.fixture
def cluster() -> FakeCluster:
    return FakeCluster()


def redis_template(cluster: FakeCluster) -> dict[str, Any]:
    template: dict[str, Any] = cluster.objects[REDIS]["spec"]["template"]
    return template


def redis_ready(cluster: FakeCluster) -> None:
    """As the Deployment controller reports a Redis pod that serves (and holds the jobs)."""
    cluster.objects[REDIS]["status"] = {"readyReplicas": 1}


def confirm(cluster: FakeCluster) -> None:
    cluster.pool["metadata"].setdefault("annotations", {})[CONFIRM_ANNOTATION] = "true"


@pytest.mark.parametrize(
    ("edit", "says"),
    [
        ({"redis": {"resources": {"limits": {"memory": "512Mi"}}}}, "empty in-memory volume"),
        ({"redis": {"image": "redis:7.2-alpine"}}, "(image changed)"),
        ({"environment": "production"}, "new, empty volume (persistence enabled)"),
    ],
)
def test_a_redis_change_that_loses_the_queue_is_refused_and_redis_kept(
    cluster: FakeCluster, edit: dict[str, Any], says: str
) -> None:
    cluster.add_pool(spec_of())
    run(cluster)
    redis_ready(cluster)
    before = redis_template(cluster)
    applied = len(cluster.applied)
    cluster.pool["spec"].update(edit)

    outcome = run(cluster)

    assert outcome.problem is not None
    assert outcome.problem.reason == "RedisDataLoss"
    stalled = condition(cluster, "Stalled")
    assert (stalled["status"], stalled["reason"]) == ("True", "RedisDataLoss")
    assert says in stalled["message"]
    assert f"kubectl -n apps annotate wp/shop {CONFIRM_ANNOTATION}=true" in stalled["message"]
    assert redis_template(cluster) == before
    assert len(cluster.applied) == applied  # nothing else rolled out either
    assert CLAIM not in cluster.objects


def test_a_confirmed_loss_is_applied_once_and_the_confirmation_removed(
    cluster: FakeCluster,
) -> None:
    cluster.add_pool(spec_of())
    run(cluster)
    redis_ready(cluster)
    cluster.pool["spec"]["environment"] = "production"
    confirm(cluster)

    outcome = run(cluster)

    assert outcome.problem is None
    volumes = redis_template(cluster)["spec"]["volumes"]
    assert volumes == [{"name": "data", "persistentVolumeClaim": {"claimName": "shop-redis"}}]
    assert CONFIRM_ANNOTATION not in cluster.pool["metadata"]["annotations"]
    cluster.pool["spec"]["environment"] = "preview"  # the next loss needs its own confirmation
    assert run(cluster).problem is not None


def test_a_production_redis_may_change_on_its_volume(cluster: FakeCluster) -> None:
    cluster.add_pool(spec_of(environment="production"))
    run(cluster)
    redis_ready(cluster)
    cluster.pool["spec"]["redis"] = {"image": "redis:7.2-alpine"}
    assert run(cluster).problem is None  # the append-only file on the claim is reloaded
    assert redis_template(cluster)["spec"]["containers"][0]["image"] == "redis:7.2-alpine"


def test_a_redis_that_serves_nothing_may_be_fixed(cluster: FakeCluster) -> None:
    cluster.add_pool(spec_of(redis={"image": "redis:does-not-exist"}))
    run(cluster)  # its pod never becomes ready: no readyReplicas
    cluster.pool["spec"]["redis"] = {"image": "redis:7.4-alpine"}
    assert run(cluster).problem is None
    assert redis_template(cluster)["spec"]["containers"][0]["image"] == "redis:7.4-alpine"


def test_a_claim_retained_by_a_deleted_pool_is_adopted_by_its_namesake(
    cluster: FakeCluster,
) -> None:
    cluster.put({
        "apiVersion": "v1", "kind": "PersistentVolumeClaim",
        "metadata": {"name": "shop-redis", "namespace": "apps",
                     "labels": names.labels("shop", "redis")},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "8Gi"}}},
    })  # fmt: skip
    uid = cluster.objects[CLAIM]["metadata"]["uid"]
    cluster.add_pool(spec_of(environment="production"))
    assert run(cluster).problem is None
    assert cluster.objects[CLAIM]["metadata"]["uid"] == uid  # the same claim, with its data


def test_a_foreign_claim_under_the_redis_name_is_still_a_conflict(cluster: FakeCluster) -> None:
    cluster.put({
        "apiVersion": "v1", "kind": "PersistentVolumeClaim",
        "metadata": {"name": "shop-redis", "namespace": "apps"}, "spec": {},
    })  # fmt: skip
    cluster.add_pool(spec_of(environment="production"))
    outcome = run(cluster)
    assert outcome.problem is not None
    assert outcome.problem.reason == "NameConflict"


def test_refused_pods_are_named_in_the_status_with_the_quota(cluster: FakeCluster) -> None:
    """Issue 24: a ResourceQuota refusal left the pool Progressing with no reason."""
    cluster.add_pool(spec_of())
    run(cluster)
    refusal = (
        'pods "shop-worker-5d8f-x2k" is forbidden: exceeded quota: team-pods, requested: '
        "pods=1, used: pods=4, limited: pods=4"
    )
    worker = cluster.objects[("apps/v1", "Deployment", "apps", "shop-worker")]
    worker["status"] = {"observedGeneration": 1, "conditions": [
        {"type": "ReplicaFailure", "status": "True", "reason": "FailedCreate",
         "message": refusal},
    ]}  # fmt: skip

    run(cluster)

    stalled = condition(cluster, "Stalled")
    assert (stalled["status"], stalled["reason"]) == ("True", "QuotaExceeded")
    assert stalled["message"] == f"worker: pods refused by a ResourceQuota: {refusal}"


# -- teardown -------------------------------------------------------------------------------

DELETED_AT = datetime(2030, 1, 1, tzinfo=UTC)


def deleting_pool(cluster: FakeCluster, grace: int = 60) -> None:
    cluster.add_pool(spec_of(terminationGracePeriodSeconds=grace))
    run(cluster)
    cluster.pool["metadata"]["deletionTimestamp"] = "2030-01-01T00:00:00Z"


def worker_pod(cluster: FakeCluster, name: str) -> None:
    cluster.put({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": "apps", "labels": names.labels("shop", "worker")},
    })  # fmt: skip


def test_teardown_stops_the_workers_and_waits_for_their_pods(cluster: FakeCluster) -> None:
    deleting_pool(cluster)
    worker_pod(cluster, "shop-worker-1")

    waiting = retire(cluster, "apps", "shop", DELETED_AT + timedelta(seconds=5))

    assert waiting is not None
    assert "shop-worker-1" in waiting
    assert cluster.scaled == [("shop-worker", 0)]
    assert REDIS in cluster.objects  # nothing else goes yet
    assert not cluster.deleted
    del cluster.objects[("v1", "Pod", "apps", "shop-worker-1")]
    assert retire(cluster, "apps", "shop", DELETED_AT + timedelta(seconds=6)) is None
    assert cluster.scaled == [("shop-worker", 0)]  # scaled once


def test_teardown_waits_no_longer_than_the_workers_grace(cluster: FakeCluster) -> None:
    deleting_pool(cluster, grace=60)
    worker_pod(cluster, "shop-worker-1")
    late = DELETED_AT + timedelta(seconds=60 + MARGIN_SECONDS)
    assert retire(cluster, "apps", "shop", late - timedelta(seconds=1)) is not None
    assert retire(cluster, "apps", "shop", late) is None


def test_a_pass_leaves_a_pool_being_deleted_alone(cluster: FakeCluster) -> None:
    deleting_pool(cluster)
    retire(cluster, "apps", "shop", DELETED_AT)
    run(cluster)  # the resync timer or a child event during the teardown
    worker = cluster.objects[("apps/v1", "Deployment", "apps", "shop-worker")]
    assert worker["spec"]["replicas"] == 0


@pytest.mark.parametrize(
    ("used", "says"),
    [(201326592, "is full: new jobs are refused (100%"), (190000000, "is nearly full (94%")],
)
def test_a_redis_near_its_maxmemory_is_reported(used: int, says: str) -> None:
    cluster = FakeCluster()
    cluster.add_pool(spec_of())
    loads = FakeLoads()
    empty = Load(queues={}, pods={}, unacked=0, dead=0)
    loads.reading = Reading(empty, "", 15, (used, 192 * 2**20))
    reconcile(cluster, "apps", "shop", now=lambda: "2030-01-01T00:00:00Z", loads=loads)
    stalled = condition(cluster, "Stalled")
    assert (stalled["status"], stalled["reason"]) == ("True", "RedisMemoryFull")
    assert f"Redis apps/shop-redis {says} of its maxmemory 192Mi" in stalled["message"]


def test_a_redis_with_room_is_not_reported() -> None:
    cluster = FakeCluster()
    cluster.add_pool(spec_of())
    loads = FakeLoads()
    empty = Load(queues={}, pods={}, unacked=0, dead=0)
    loads.reading = Reading(empty, "", 15, (2**20, 2**30))
    reconcile(cluster, "apps", "shop", now=lambda: "2030-01-01T00:00:00Z", loads=loads)
    assert condition(cluster, "Stalled")["status"] == "False"
