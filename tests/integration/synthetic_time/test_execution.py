"""Running a job in the test process with the real Celery task and real Redis: a failure
waits in the schedule set for its backoff, the last one lands in the dead set, and a
forbid-overlap hold is released exactly when the job is over.

Each attempt is `run_job` under a Celery request context, as a worker runs it; between
attempts "time passes" by moving the schedule set at the retry's own due time, so a job with
two retries goes through all three attempts in milliseconds.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import redis
from celery import Task
from celery.exceptions import Retry

from tests.integration.synthetic_time.conftest import KEYS, T0
from tests.integration.synthetic_time.workers import (
    Fails,
    FailsWithBackoff,
    ForbidCronJob,
    Succeeds,
)
from worker_runtime.core.backoff import backoff_ceiling
from worker_runtime.core.messages import decode_message
from worker_runtime.execution.attempt import make_task, run_job
from worker_runtime.jobs.worker import Worker
from worker_runtime.runtime import Runtime
from worker_runtime.scheduling.cron_dispatch import CronDispatcher
from worker_runtime.store.dead import DeadJobs
from worker_runtime.store.schedule_set import ScheduleSet

pytestmark = pytest.mark.integration


TaskFor = Callable[[type[Worker]], Task]


@pytest.fixture
def task_for(rt: Runtime) -> TaskFor:
    """task_for(Worker) -> the Celery task a worker process registers for it."""
    return lambda worker: make_task(rt.app, worker)


def attempt(task: Task, worker: type[Worker], job: dict[str, Any]) -> Any:
    """Run one delivery of `job` (a decoded message) as a worker does."""
    task.push_request(id=job["id"], retries=job["retries"])
    try:
        return run_job(task, worker, tuple(job["args"]), job["kwargs"])
    finally:
        task.pop_request()


def first_delivery(job_id: str, **kwargs: Any) -> dict[str, Any]:
    return {"id": job_id, "retries": 0, "args": [], "kwargs": kwargs}


def retry_due(client: redis.Redis, worker: type[Worker], job_id: str) -> float:
    due = client.zscore(KEYS.schedule(worker.queue), job_id)
    assert due is not None, "the retry is not in the schedule set"
    return float(due)


def test_a_failed_attempt_waits_in_the_schedule_set_until_its_backoff_has_passed(
    rt: Runtime, task_for: TaskFor
) -> None:
    client = rt.redis
    before = time.time()
    with pytest.raises(Retry):
        attempt(task_for(Fails), Fails, first_delivery("job-1", n=1))
    after = time.time()

    due = retry_due(client, Fails, "job-1")
    # No backoff: one second after the failure (read between the clock readings around it).
    assert before + 1 <= due <= after + 1
    assert client.llen(Fails.queue) == 0, "a retry must not sit on the queue (or in a worker)"
    schedule_set = ScheduleSet(client, KEYS)
    assert schedule_set.move_due(due - 0.001) == 0
    assert schedule_set.move_due(due) == 1
    retry = decode_message(client.rpop(Fails.queue))  # type: ignore[arg-type]
    assert (retry["id"], retry["retries"], retry["kwargs"]) == ("job-1", 1, {"n": 1})


def test_a_job_failing_every_time_makes_one_attempt_per_retry_then_lands_in_the_dead_set(
    rt: Runtime, task_for: TaskFor
) -> None:
    client = rt.redis
    task = task_for(Fails)
    schedule_set = ScheduleSet(client, KEYS)
    job = first_delivery("job-7", n=7)
    for retries in range(1, Fails.max_retries + 1):
        with pytest.raises(Retry):
            attempt(task, Fails, job)
        assert schedule_set.move_due(retry_due(client, Fails, "job-7")) == 1
        job = decode_message(client.rpop(Fails.queue))  # type: ignore[arg-type]
        assert job["retries"] == retries
    with pytest.raises(ValueError, match="boom 7"):
        attempt(task, Fails, job)

    [dead] = DeadJobs(client, KEYS).list()
    assert (dead.id, dead.task, dead.kwargs, dead.attempts) == (
        "job-7", Fails.task_name, {"n": 7}, 3
    )  # fmt: skip
    assert dead.error == "ValueError: boom 7"
    assert "boom 7" in dead.traceback
    assert dead.started_at <= dead.failed_at
    assert client.zcard(KEYS.schedule(Fails.queue)) == 0
    assert client.llen(Fails.queue) == 0


def test_retry_delays_grow_with_each_attempt_within_the_jittered_backoff(
    rt: Runtime, task_for: TaskFor
) -> None:
    client = rt.redis
    task = task_for(FailsWithBackoff)
    for retries in range(FailsWithBackoff.max_retries):
        job = {**first_delivery(f"job-{retries}", n=retries), "retries": retries}
        before = time.time()
        with pytest.raises(Retry):
            attempt(task, FailsWithBackoff, job)
        after = time.time()
        ceiling = backoff_ceiling(retries + 1, FailsWithBackoff.retry_backoff_max)
        due = retry_due(client, FailsWithBackoff, f"job-{retries}")
        assert before + ceiling / 2 <= due <= after + ceiling, (retries, due - before)


def test_a_successful_job_returns_its_result_and_leaves_nothing_behind(
    rt: Runtime, task_for: TaskFor
) -> None:
    assert attempt(task_for(Succeeds), Succeeds, first_delivery("job-3", n=3)) == 3
    assert rt.redis.zcard(KEYS.schedule(Succeeds.queue)) == 0
    assert DeadJobs(rt.redis, KEYS).count() == 0


def fire_forbid_job(client: redis.Redis) -> dict[str, Any]:
    """Fire one tick of the forbid-overlap schedule and take its job off the queue."""
    dispatcher = CronDispatcher(client, KEYS, [ForbidCronJob], ZoneInfo("UTC"), start=T0)
    [fired] = dispatcher.run_due(T0.replace(minute=1))
    assert fired.outcome == 1
    return decode_message(client.rpop(ForbidCronJob.queue))  # type: ignore[arg-type]


def test_a_forbid_overlap_hold_is_released_when_its_job_succeeds(
    rt: Runtime, task_for: TaskFor
) -> None:
    job = fire_forbid_job(rt.redis)
    running = KEYS.running(ForbidCronJob.task_name)
    assert rt.redis.get(running) == job["id"].encode()

    assert attempt(task_for(ForbidCronJob), ForbidCronJob, job) == "done"
    assert not rt.redis.exists(running)


def test_a_forbid_overlap_hold_lasts_through_retries_and_is_released_when_the_job_dies(
    rt: Runtime, task_for: TaskFor
) -> None:
    client = rt.redis
    task = task_for(ForbidCronJob)
    job = {**fire_forbid_job(client), "kwargs": {"fail": True}}
    running = KEYS.running(ForbidCronJob.task_name)

    with pytest.raises(Retry):
        attempt(task, ForbidCronJob, job)
    assert client.get(running) == job["id"].encode(), "released while a retry was pending"
    with pytest.raises(RuntimeError):
        attempt(task, ForbidCronJob, {**job, "retries": 1})
    assert not client.exists(running)
    assert DeadJobs(client, KEYS).count() == 1
