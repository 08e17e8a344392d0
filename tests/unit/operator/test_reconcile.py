"""One reconcile pass against an in-memory cluster: idempotence, generated Secrets, problems
reported as Stalled, ownership and pruning."""

from __future__ import annotations

import base64
import itertools
from typing import Any

import pytest
from workerpool_operator.errors import ApiRejected
from workerpool_operator.reconcile import Outcome, reconcile

from tests.unit.operator.conftest import spec_of
from tests.unit.operator.fakes import FakeCluster

NOW = "2030-01-01T00:00:00Z"


@pytest.fixture
def cluster() -> FakeCluster:
    return FakeCluster()


def run(cluster: FakeCluster) -> Outcome:
    passwords = (f"password-{i}" for i in itertools.count())
    return reconcile(cluster, "apps", "shop", now=lambda: NOW, password=lambda: next(passwords))


def condition(cluster: FakeCluster, kind: str) -> dict[str, Any]:
    return next(c for c in cluster.pool["status"]["conditions"] if c["type"] == kind)


def secret(cluster: FakeCluster, name: str, data: dict[str, str], owned: bool = False) -> None:
    meta: dict[str, Any] = {"name": name, "namespace": "apps"}
    if owned:
        meta["ownerReferences"] = [{"uid": "pool-uid", "controller": True}]
    encoded = {k: base64.b64encode(v.encode()).decode() for k, v in data.items()}
    cluster.put({"apiVersion": "v1", "kind": "Secret", "metadata": meta, "data": encoded})


def test_a_first_pass_creates_everything_and_reports_progress(cluster: FakeCluster) -> None:
    cluster.add_pool(spec_of())
    outcome = run(cluster)
    assert outcome.problem is None
    assert outcome.status_changed
    assert {k[3] for k in cluster.created} == {"shop-redis", "shop-flower"}
    assert {(k[1], k[3]) for k in cluster.applied} == {
        ("Service", "shop-redis"), ("Deployment", "shop-redis"), ("Service", "shop-flower"),
        ("Deployment", "shop-flower"), ("Deployment", "shop-beat"), ("Deployment", "shop-worker"),
        ("PodDisruptionBudget", "shop-redis"),
    }  # fmt: skip
    assert condition(cluster, "Reconciling")["status"] == "True"
    assert cluster.pool["status"]["selector"].endswith("app.kubernetes.io/name=workerpool")


def test_a_second_pass_changes_nothing(cluster: FakeCluster) -> None:
    cluster.add_pool(spec_of())
    run(cluster)
    before = {k: v["metadata"]["generation"] for k, v in cluster.objects.items()}
    outcome = run(cluster)
    assert not outcome.status_changed
    assert cluster.status_writes == 1
    assert len(cluster.created) == 2  # generated Secrets are created once
    assert {k: v["metadata"]["generation"] for k, v in cluster.objects.items()} == before


def test_an_existing_generated_secret_is_never_regenerated(cluster: FakeCluster) -> None:
    cluster.add_pool(spec_of())
    secret(cluster, "shop-redis", {"password": "kept"}, owned=True)
    run(cluster)
    stored = cluster.find("Secret", "shop-redis")
    assert stored is not None
    assert base64.b64decode(stored["data"]["password"]) == b"kept"


def test_a_missing_credentials_secret_stalls_without_applying(cluster: FakeCluster) -> None:
    cluster.add_pool(spec_of(flower={"credentialsSecret": "ops-flower"}))
    outcome = run(cluster)
    assert outcome.problem is not None
    assert not outcome.problem.permanent
    assert cluster.applied == []
    stalled = condition(cluster, "Stalled")
    assert (stalled["status"], stalled["reason"]) == ("True", "SecretNotFound")
    assert stalled["message"] == (
        "Secret apps/ops-flower (from spec.flower.credentialsSecret) does not exist; "
        "create it, or fix the reference"
    )


def test_the_pool_recovers_when_the_secret_appears(cluster: FakeCluster) -> None:
    cluster.add_pool(spec_of(flower={"credentialsSecret": "ops-flower"}))
    run(cluster)
    secret(cluster, "ops-flower", {"username": "ops", "password": "pw"})
    assert run(cluster).problem is None
    assert condition(cluster, "Stalled")["status"] == "False"


def test_a_secret_without_the_needed_key_stalls(cluster: FakeCluster) -> None:
    cluster.add_pool(spec_of(redis={"external": {"secretName": "redis-url"}}))
    secret(cluster, "redis-url", {"uri": "redis://elsewhere"})
    run(cluster)
    stalled = condition(cluster, "Stalled")
    assert stalled["reason"] == "SecretKeyMissing"
    assert "has no key url; add it" in stalled["message"]


def test_optional_references_may_be_missing(cluster: FakeCluster) -> None:
    cluster.add_pool(spec_of(envFrom=[{"secretRef": {"name": "extra", "optional": True}}]))
    assert run(cluster).problem is None


def test_every_missing_reference_is_listed(cluster: FakeCluster) -> None:
    cluster.add_pool(
        spec_of(envFrom=[{"secretRef": {"name": "a"}}, {"configMapRef": {"name": "b"}}])
    )
    run(cluster)
    message = condition(cluster, "Stalled")["message"]
    assert "Secret apps/a (from spec.envFrom[0].secretRef)" in message
    assert "ConfigMap apps/b (from spec.envFrom[1].configMapRef)" in message


def test_an_object_someone_else_owns_is_never_taken_over(cluster: FakeCluster) -> None:
    cluster.add_pool(spec_of())
    meta = {"name": "shop-worker", "namespace": "apps"}
    cluster.put({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": meta, "spec": {}})
    outcome = run(cluster)
    assert outcome.problem is not None
    assert outcome.problem.reason == "NameConflict"
    assert cluster.applied == []
    assert (
        "Deployment apps/shop-worker exists and is not controlled by WorkerPool shop"
        in (condition(cluster, "Stalled")["message"])
    )


def test_disabling_a_component_prunes_only_what_the_pool_owns(cluster: FakeCluster) -> None:
    cluster.add_pool(spec_of())
    run(cluster)
    cluster.pool["spec"]["flower"] = {"enabled": False}
    cluster.pool["spec"]["beat"] = {"enabled": False}
    beat = cluster.find("Deployment", "shop-beat")
    assert beat is not None
    beat["metadata"]["ownerReferences"] = [{"uid": "someone-else", "controller": True}]
    run(cluster)
    assert {(k[1], k[3]) for k in cluster.deleted} == {
        ("Deployment", "shop-flower"), ("Service", "shop-flower"), ("Secret", "shop-flower"),
    }  # fmt: skip
    assert cluster.find("Deployment", "shop-beat") is not None


def test_an_invalid_spec_is_stalled_permanently(cluster: FakeCluster) -> None:
    cluster.add_pool(spec_of(resources={"requests": {"memory": "4Gi"}}))
    outcome = run(cluster)
    assert outcome.problem is not None
    assert outcome.problem.permanent
    stalled = condition(cluster, "Stalled")
    assert stalled["reason"] == "InvalidSpec"
    assert "spec.resources.requests.memory: 4Gi exceeds the limit 512Mi" in stalled["message"]


def test_a_rejected_apply_is_stalled_with_the_servers_reason(cluster: FakeCluster) -> None:
    cluster.add_pool(spec_of())
    cluster.reject["Deployment"] = ApiRejected(
        "ApplyRejected", "Deployment apps/shop-redis was rejected"
    )
    outcome = run(cluster)
    assert outcome.problem is not None
    assert outcome.problem.permanent
    assert condition(cluster, "Stalled")["reason"] == "ApplyRejected"


def test_a_pool_being_deleted_is_left_to_the_garbage_collector(cluster: FakeCluster) -> None:
    cluster.add_pool(spec_of())
    cluster.pool["metadata"]["deletionTimestamp"] = NOW
    assert run(cluster) == Outcome(None, None, False)
    assert cluster.applied == []
    assert cluster.created == []


def test_a_pool_that_is_gone_is_ignored(cluster: FakeCluster) -> None:
    assert run(cluster) == Outcome(None, None, False)
