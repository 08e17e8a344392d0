"""Reading why pods fail from their container statuses, as the kubelet reports them."""

from __future__ import annotations

from typing import Any

import pytest
from workerpool_operator.diagnosis import diagnose


def pod(name: str, *statuses: dict[str, Any], init: bool = False) -> dict[str, Any]:
    key = "initContainerStatuses" if init else "containerStatuses"
    return {"metadata": {"name": name}, "status": {key: list(statuses)}}


def container(state: dict[str, Any], last: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"name": "celery-worker", "ready": False, "state": state, "lastState": last or {}}


RUNNING = container({"running": {"startedAt": "2030-01-01T00:00:00Z"}})


@pytest.mark.parametrize(
    ("state", "last", "reason", "detail"),
    [
        ({"waiting": {"reason": "ImagePullBackOff",
                      "message": 'Back-off pulling image "shop:nope"'}},
         None, "ImagePullBackOff", 'Back-off pulling image "shop:nope"'),
        ({"waiting": {"reason": "ErrImagePull", "message": "shop:nope: not found"}},
         None, "ErrImagePull", "shop:nope: not found"),
        ({"waiting": {"reason": "CreateContainerConfigError",
                      "message": 'secret "shop-redis" not found'}},
         None, "CreateContainerConfigError", 'secret "shop-redis" not found'),
        ({"waiting": {"reason": "CrashLoopBackOff", "message": "back-off 10s"}},
         {"terminated": {"exitCode": 1, "message": "Error: --queues: queue 'urgent' is bad\n"}},
         "CrashLoopBackOff", "exit code 1: Error: --queues: queue 'urgent' is bad"),
        ({"waiting": {"reason": "CrashLoopBackOff", "message": "back-off 10s"}},
         {"terminated": {"exitCode": 137}}, "CrashLoopBackOff", "exit code 137"),
        ({"waiting": {"reason": "CrashLoopBackOff", "message": "back-off 10s"}},
         {"terminated": {"exitCode": 137, "reason": "OOMKilled", "message": "[info] starting\n"}},
         "CrashLoopBackOff",
         "exit code 137 (OOMKilled: over its memory limit): [info] starting"),
        ({"terminated": {"exitCode": 2, "reason": "Error", "message": "usage\nError: bad\n"}},
         None, "Error", "exit code 2: Error: bad"),
    ],
)  # fmt: skip
def test_a_failing_container_is_named_with_its_last_error(
    state: dict[str, Any], last: dict[str, Any] | None, reason: str, detail: str
) -> None:
    problem = diagnose(
        "worker", [pod("shop-worker-b", RUNNING), pod("shop-worker-a", container(state, last))]
    )
    assert problem is not None
    assert problem.reason == reason
    assert problem.message == (
        f"worker: container celery-worker of pod shop-worker-a {reason}: {detail}"
    )
    assert not problem.permanent  # the timer keeps looking; an image may be pushed later


def test_healthy_starting_and_cleanly_finished_containers_are_no_failure() -> None:
    pods = [
        pod("a", RUNNING),
        pod("b", container({"waiting": {"reason": "ContainerCreating"}})),
        pod("c", container({"terminated": {"exitCode": 0, "reason": "Completed"}})),
        {"metadata": {"name": "d"}, "status": {"phase": "Pending"}},
    ]
    assert diagnose("beat", pods) is None


def test_an_init_container_failure_counts_too() -> None:
    failing = container({"waiting": {"reason": "ErrImagePull", "message": "nope"}})
    problem = diagnose("redis", [pod("r", failing, init=True)])
    assert problem is not None
    assert problem.message.startswith("redis: container celery-worker of pod r ErrImagePull")


def test_a_long_error_is_shortened() -> None:
    last = {"terminated": {"exitCode": 1, "message": "E" * 1000}}
    state = {"waiting": {"reason": "CrashLoopBackOff"}}
    problem = diagnose("worker", [pod("p", container(state, last))])
    assert problem is not None
    assert len(problem.message) < 400
    assert problem.message.endswith("...")
