"""Status computation: kstatus conditions from observed Deployments."""

from __future__ import annotations

from typing import Any

from workerpool_operator.names import Component
from workerpool_operator.status import (
    DeploymentObservation,
    Problem,
    compute_status,
    observe_deployment,
)

NOW = "2030-01-01T00:00:00Z"
LATER = "2030-01-01T00:05:00Z"


def obs(
    component: Component, desired: int = 1, ready: int | None = None, **kw: Any
) -> DeploymentObservation:
    ready = desired if ready is None else ready
    values: dict[str, Any] = dict(
        component=component, desired=desired, generation=2, observed_generation=2,
        replicas=desired, ready=ready, updated=desired, available=ready, deadline_exceeded=None,
    )  # fmt: skip
    values.update(kw)
    return DeploymentObservation(**values)


ALL_READY = [obs("redis"), obs("flower"), obs("beat"), obs("worker", 3)]


def status(observations: list[DeploymentObservation], problem: Problem | None = None,
           previous: dict[str, Any] | None = None, now: str = NOW) -> dict[str, Any]:  # fmt: skip
    return compute_status(
        pool_name="shop",
        generation=7,
        environment="production",
        desired_replicas=3,
        observations=observations,
        problem=problem,
        previous=previous,
        now=now,
    )


def conditions(result: dict[str, Any]) -> dict[str, tuple[str, str]]:
    return {c["type"]: (c["status"], c["reason"]) for c in result["conditions"]}


def test_all_components_ready_means_ready_and_nothing_else() -> None:
    result = status(ALL_READY)
    assert conditions(result) == {
        "Ready": ("True", "Available"),
        "Reconciling": ("False", "Available"),
        "Stalled": ("False", "Available"),
    }
    assert result["observedGeneration"] == 7
    assert (result["replicas"], result["readyReplicas"], result["desiredReplicas"]) == (3, 3, 3)
    assert result["selector"] == (
        "app.kubernetes.io/component=worker,app.kubernetes.io/instance=shop,"
        "app.kubernetes.io/name=workerpool"
    )
    assert result["components"]["worker"] == {
        "desiredReplicas": 3, "readyReplicas": 3, "updatedReplicas": 3, "ready": True,
    }  # fmt: skip
    assert all(c["observedGeneration"] == 7 for c in result["conditions"])


def test_pods_that_are_not_ready_mean_reconciling_with_the_waiting_components() -> None:
    result = status([obs("redis", ready=0), obs("flower"), obs("beat"), obs("worker", 3, ready=1)])
    assert conditions(result)["Ready"] == ("False", "Progressing")
    assert conditions(result)["Reconciling"] == ("True", "Progressing")
    assert conditions(result)["Stalled"][0] == "False"
    message = next(c["message"] for c in result["conditions"] if c["type"] == "Reconciling")
    assert message == "waiting for worker (1/3 ready), redis (0/1 ready)"
    assert result["components"]["worker"]["message"] == "1/3 ready"
    assert result["readyReplicas"] == 1


def test_a_rollout_is_not_ready_until_old_pods_are_gone() -> None:
    rolling = obs("worker", 3, replicas=4, updated=2)
    assert not rolling.is_ready
    assert rolling.summary() == "rolling out: 2/3 updated, 3 ready"


def test_an_unobserved_deployment_change_is_not_ready() -> None:
    assert not obs("worker", observed_generation=1).is_ready


def test_a_problem_means_stalled_with_its_reason() -> None:
    problem = Problem(
        "SecretNotFound", "Secret apps/x (from spec.flower.credentialsSecret) does not exist"
    )
    result = status(ALL_READY, problem)
    assert conditions(result) == {
        "Ready": ("False", "SecretNotFound"),
        "Reconciling": ("False", "Stalled"),
        "Stalled": ("True", "SecretNotFound"),
    }
    assert all(
        c["message"] == problem.message or c["type"] == "Reconciling" for c in result["conditions"]
    )


def test_a_deployment_past_its_progress_deadline_is_stalled() -> None:
    stuck = obs("worker", 3, ready=0, deadline_exceeded='ReplicaSet "x" has timed out progressing.')
    result = status([obs("redis"), stuck])
    assert conditions(result)["Stalled"] == ("True", "ProgressDeadlineExceeded")


def test_transition_times_change_only_when_a_condition_flips() -> None:
    first = status(ALL_READY, now=NOW)
    same = status(ALL_READY, previous=first, now=LATER)
    assert same == first
    flipped = status([obs("worker", 3, ready=0)], previous=first, now=LATER)
    times = {c["type"]: c["lastTransitionTime"] for c in flipped["conditions"]}
    assert times == {"Ready": LATER, "Reconciling": LATER, "Stalled": NOW}


def test_without_a_worker_deployment_the_pool_is_progressing() -> None:
    result = status([])
    assert conditions(result)["Reconciling"] == ("True", "Progressing")
    assert (result["replicas"], result["readyReplicas"]) == (0, 0)


def test_an_invalid_spec_still_reports_the_existing_worker_replicas() -> None:
    result = compute_status(
        pool_name="shop", generation=3, environment=None, desired_replicas=None,
        observations=[obs("worker", 2)], problem=Problem("InvalidSpec", "bad", permanent=True),
        previous=None, now=NOW,
    )  # fmt: skip
    assert result["desiredReplicas"] == 2
    assert "environment" not in result


def test_observing_a_deployment_reads_its_status() -> None:
    deployment = {
        "metadata": {"generation": 4},
        "spec": {"replicas": 3},
        "status": {
            "observedGeneration": 4, "replicas": 3, "readyReplicas": 2, "updatedReplicas": 3,
            "availableReplicas": 2,
            "conditions": [{"type": "Progressing", "status": "False",
                            "reason": "ProgressDeadlineExceeded", "message": "timed out"}],
        },
    }  # fmt: skip
    seen = observe_deployment("worker", deployment)
    assert (seen.desired, seen.ready, seen.available, seen.deadline_exceeded) == (
        3,
        2,
        2,
        "timed out",
    )
    fresh = observe_deployment("beat", {"metadata": {"generation": 1}, "spec": {"replicas": 1}})
    assert (fresh.ready, fresh.observed_generation, fresh.is_ready) == (0, 0, False)
