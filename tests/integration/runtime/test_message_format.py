"""Our hand-built messages are Celery's own, byte for byte where it matters, both ways round.

`build_message` is what lets the runtime LPUSH jobs (one round trip, or one per batch) and hold
them in the schedule set. That only works while the result is exactly what Celery's
`apply_async` writes to Redis, so the comparison is made against Celery itself, and real workers
run jobs pushed either way.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.integration.runtime.conftest import JOBS, Spawn, ran
from tests.integration.runtime.jobs.recording import Counted, Echo, SleepyCritical
from worker_runtime import Worker, WorkerRegistry
from worker_runtime.core.messages import build_message, new_job_id
from worker_runtime.runtime import Runtime

pytestmark = pytest.mark.integration

#: Fields that differ between two publications of the same job for legitimate reasons: the
#: reply queue names the publishing app instance, the delivery tag is unique per publication.
_PER_PUBLICATION = ("reply_to", "delivery_tag")


def _comparable(raw: bytes | str) -> dict[str, Any]:
    envelope: dict[str, Any] = json.loads(raw)
    for name in _PER_PUBLICATION:
        assert envelope["properties"].pop(name, "missing") != "missing", name
    return envelope


@pytest.mark.parametrize(
    ("worker", "args", "kwargs", "retries"),
    [
        (Echo, (5,), {"data": {"k": [1, 2.5, None, True], "s": "é"}}, 0),
        (SleepyCritical, (), {"tag": "x", "seconds": 0.5}, 0),
        (Counted, (7,), {}, 2),
    ],
    ids=["args-and-kwargs", "critical-queue", "a-retry"],
)
def test_built_message_equals_what_celery_apply_async_writes_to_redis(
    rt: Runtime,
    worker: type[Worker],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    retries: int,
) -> None:
    WorkerRegistry.initialize([JOBS], app=rt.app)
    job_id = new_job_id()

    rt.app.tasks[worker.task_name].apply_async(
        args=args, kwargs=kwargs, task_id=job_id, retries=retries
    )
    [celerys] = rt.redis.lrange(worker.queue, 0, -1)
    ours = build_message(
        task_name=worker.task_name,
        job_id=job_id,
        queue=worker.queue,
        args=args,
        kwargs=kwargs,
        retries=retries,
    )

    expected, actual = _comparable(celerys), _comparable(ours)
    assert actual["headers"] == expected["headers"]
    assert actual["properties"] == expected["properties"]
    assert actual == expected  # body (base64 of the same JSON) and content type/encoding


def test_a_worker_runs_jobs_sent_by_celery_itself_and_by_perform_async(
    rt: Runtime, spawn: Spawn
) -> None:
    spawn("worker", "--concurrency=2")

    by_celery = rt.app.send_task(
        Echo.task_name, kwargs={"user_id": 1, "data": {"via": "celery"}}, queue=Echo.queue
    )
    by_us = Echo.perform_async(user_id=2, data={"via": "perform_async"})

    assert by_celery.get(timeout=60) == {
        "user_id": 1,
        "data": {"via": "celery"},
        "status": "completed",
    }
    assert by_us.get(timeout=60) == {
        "user_id": 2,
        "data": {"via": "perform_async"},
        "status": "completed",
    }
    assert sorted(int(str(run["user_id"])) for run in ran(rt.redis, "echo")) == [1, 2]
