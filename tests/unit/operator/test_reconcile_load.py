"""A pass reads the pool's load (through the `Loads` protocol), writes it to the status and,
with spec.autoscaling, sizes the worker Deployment by the decision."""

from __future__ import annotations

import base64
import itertools
from typing import Any

import pytest
from workerpool_operator.load import Load, QueueLoad, Reading
from workerpool_operator.reconcile import Outcome, reconcile

from tests.unit.operator.conftest import spec_of
from tests.unit.operator.fakes import FakeCluster

NOW = "2030-01-01T00:00:00Z"


class FakeLoads:
    """Hands out a prepared reading and records what it was asked."""

    def __init__(self) -> None:
        self.reading = Reading(None, "cannot read the pool's Redis: ConnectionError")
        self.asked: list[tuple[tuple[str, str], str, tuple[str, ...]]] = []
        self.forgotten: list[tuple[str, str]] = []

    def read(self, pool: tuple[str, str], url: str, queues: tuple[str, ...]) -> Reading:
        self.asked.append((pool, url, queues))
        return self.reading

    def forget(self, pool: tuple[str, str]) -> None:
        self.forgotten.append(pool)

    def queued(self, jobs: int) -> None:
        queues = {"default": QueueLoad(jobs, 0, 0, 0, 0.0)}
        self.reading = Reading(Load(queues=queues, pods={}, unacked=0, dead=1), "", 14)


@pytest.fixture
def loads() -> FakeLoads:
    return FakeLoads()


def run(cluster: FakeCluster, loads: FakeLoads, now: str = NOW) -> Outcome:
    passwords = (f"password-{i}" for i in itertools.count())
    return reconcile(
        cluster, "apps", "shop", now=lambda: now, password=lambda: next(passwords), loads=loads
    )


def worker_replicas(cluster: FakeCluster) -> int:
    deployment = cluster.find("Deployment", "shop-worker")
    assert deployment is not None
    return int(deployment["spec"]["replicas"])


def test_the_managed_redis_is_read_through_its_service_with_the_generated_password(
    loads: FakeLoads,
) -> None:
    cluster = FakeCluster()
    cluster.add_pool(spec_of())
    loads.queued(3)
    outcome = run(cluster, loads)
    (pool, url, queues), *_ = loads.asked
    assert pool == ("apps", "shop")
    assert url == "redis://:password-0@shop-redis.apps.svc:6379/0"
    assert queues == ("critical", "default", "low")
    assert outcome.status is not None
    assert outcome.status["load"]["backlog"] == 3
    assert outcome.status["load"]["dead"] == 1
    assert "autoscaling" not in outcome.status  # fixed replicas: load shown, nothing decided


def test_an_external_redis_is_read_at_its_secrets_url(loads: FakeLoads) -> None:
    cluster = FakeCluster()
    url = "redis://:pw@redis.example:6380/2"
    cluster.put(
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "queue", "namespace": "apps"},
            "data": {"url": base64.b64encode(url.encode()).decode()},
        }
    )
    cluster.add_pool(spec_of(redis={"external": {"secretName": "queue"}}))
    run(cluster, loads)
    assert loads.asked[0][1] == url


def test_an_unreadable_load_leaves_it_out_of_the_status(loads: FakeLoads) -> None:
    cluster = FakeCluster()
    cluster.add_pool(spec_of())
    outcome = run(cluster, loads)
    assert outcome.status is not None
    assert "load" not in outcome.status


def test_autoscaling_sizes_the_worker_deployment_and_reports_the_change(
    loads: FakeLoads,
) -> None:
    cluster = FakeCluster()
    cluster.add_pool(spec_of(autoscaling={"minReplicas": 1, "maxReplicas": 4, "jobsPerWorker": 2}))
    loads.queued(0)
    first = run(cluster, loads)
    assert worker_replicas(cluster) == 1
    assert first.status is not None
    assert first.status["desiredReplicas"] == 1
    loads.queued(7)
    up = run(cluster, loads)
    assert worker_replicas(cluster) == 4
    assert up.scaled is not None
    assert up.scaled.reason == "ScaledUp"
    status: dict[str, Any] = cluster.pool["status"]
    assert status["autoscaling"]["reason"] == "ScaledUp"
    assert status["desiredReplicas"] == 4
    steady = run(cluster, loads)
    assert steady.scaled is None
    assert cluster.pool["status"]["autoscaling"]["reason"] == "Steady"
    assert not run(cluster, loads).status_changed  # an unchanged load writes nothing


def test_without_a_reading_the_autoscaled_count_is_kept(loads: FakeLoads) -> None:
    cluster = FakeCluster()
    cluster.add_pool(spec_of(autoscaling={"maxReplicas": 4}))
    loads.queued(100)
    run(cluster, loads)
    assert worker_replicas(cluster) == 4
    loads.reading = Reading(None, "cannot read the pool's Redis: TimeoutError")
    run(cluster, loads)
    assert worker_replicas(cluster) == 4
    assert cluster.pool["status"]["autoscaling"]["reason"] == "LoadUnavailable"


def test_a_deleted_pool_is_forgotten(loads: FakeLoads) -> None:
    cluster = FakeCluster()
    run(cluster, loads)
    assert loads.forgotten == [("apps", "shop")]


def test_worker_pods_get_their_deletion_cost_before_a_scale_down(loads: FakeLoads) -> None:
    from workerpool_operator.load import PodLoad

    cluster = FakeCluster()
    cluster.add_pool(spec_of(autoscaling={"maxReplicas": 4, "scaleDownStabilizationSeconds": 0}))
    loads.queued(100)
    run(cluster, loads)
    pods = {"shop-worker-1": PodLoad(1, 1), "shop-worker-2": PodLoad(0, 0)}
    loads.reading = Reading(Load(queues={}, pods=pods, unacked=0, dead=0), "", 14)
    run(cluster, loads)
    assert cluster.annotated == [
        ("shop-worker-1", {"controller.kubernetes.io/pod-deletion-cost": "1000"}),
        ("shop-worker-2", {"controller.kubernetes.io/pod-deletion-cost": "0"}),
    ]
    assert worker_replicas(cluster) == 1
    run(cluster, loads)
    assert len(cluster.annotated) == 2  # unchanged reports: no PATCH
