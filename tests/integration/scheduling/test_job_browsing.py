"""Scheduled jobs, retries and dead jobs as the CLI and the pages see and act on them, on a real
Redis (store/scheduled_jobs.py, store/dead.py, store/browse.py): windows, filters, run now,
delete (for good), kill, and the dead set's retry, delete and purge.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest
from celery.result import AsyncResult

from tests.integration.runtime.jobs.recording import Counted, Echo
from worker_runtime.core.messages import build_message, new_job_id
from worker_runtime.runtime import Runtime
from worker_runtime.store import history
from worker_runtime.store.browse import UnknownJobError
from worker_runtime.store.dead import DeadJob, DeadJobs
from worker_runtime.store.schedule_set import ScheduleSet, schedule
from worker_runtime.store.scheduled_jobs import ScheduledJobs

pytestmark = pytest.mark.integration

FAR = 10**10  # a dispatcher pass "at the end of time" moves everything still waiting


def _retry(rt: Runtime, retries: int, error: str = "ValueError: boom", key: str = "k") -> str:
    """A retry exactly as a failing attempt leaves it: its message and its failure record."""
    job_id = new_job_id()
    history.record(
        rt.redis,
        rt.keys,
        job_id,
        history.FailedAttempt(retries, error, f"Traceback ...\n{error}\n", time.time()),
    )
    schedule(
        rt.redis,
        rt.keys,
        queue="default",
        job_id=job_id,
        message=build_message(
            task_name=Echo.task_name,
            job_id=job_id,
            queue="default",
            args=[],
            kwargs={"user_id": 1, "data": {"key": key}},
            retries=retries,
        ),
        due=datetime.now(UTC) + timedelta(hours=1),
        result_ttl=60,
        retry=True,
    )
    return job_id


def test_scheduled_and_retries_are_separate_lists_soonest_first(rt: Runtime) -> None:
    later = Counted.perform_in(600, n=2)
    sooner = Counted.perform_in(300, n=1)
    retry = _retry(rt, retries=2)

    scheduled = ScheduledJobs(rt.redis, rt.keys, "scheduled").window()
    retries = ScheduledJobs(rt.redis, rt.keys, "retry").window()

    assert [job.id for job in scheduled.items] == [sooner.id, later.id]
    assert [job.kwargs for job in scheduled.items] == [{"n": 1}, {"n": 2}]
    assert scheduled.items[0].task == Counted.task_name
    assert scheduled.items[0].retries == 0
    assert [(job.id, job.retries, job.last_error) for job in retries.items] == [
        (retry, 2, "ValueError: boom")
    ]


def test_a_window_reads_a_range_of_ranks_and_says_where_the_next_starts(rt: Runtime) -> None:
    ids = [Counted.perform_in(100 + n, n=n).id for n in range(7)]
    store = ScheduledJobs(rt.redis, rt.keys, "scheduled")

    first = store.window(0, 3)
    last = store.window(6, 3)

    assert [job.id for job in first.items] == ids[:3]
    assert (first.total, first.next_offset) == (7, 3)
    assert [job.id for job in store.window(3, 3).items] == ids[3:6]
    assert ([job.id for job in last.items], last.next_offset) == (ids[6:], None)


def test_filters_match_the_worker_name_or_any_text_ignoring_case(rt: Runtime) -> None:
    counted = [Counted.perform_in(100 + n, n=n).id for n in range(3)]
    echo = Echo.perform_in(50, user_id=7, data={"email": "Ada@Example.com"})
    store = ScheduledJobs(rt.redis, rt.keys, "scheduled")

    assert [j.id for j in store.window(task="Counted").items] == counted
    assert [j.id for j in store.window(task=Echo.task_name).items] == [echo.id]
    assert [j.id for j in store.window(text="ada@example").items] == [echo.id]
    assert [j.id for j in store.window(task="Counted", text="ada@").items] == []
    assert store.window(text="nothing like it").items == []
    # Retries match on their last error too.
    retry = _retry(rt, retries=1, error="ConnectionError: smtp down")
    assert [j.id for j in ScheduledJobs(rt.redis, rt.keys, "retry").window(text="SMTP").items] == [
        retry
    ]


def test_a_filtered_window_continues_where_it_stopped(rt: Runtime) -> None:
    ids = [Counted.perform_in(100 + n, n=n).id for n in range(6)]
    store = ScheduledJobs(rt.redis, rt.keys, "scheduled")

    first = store.window(0, 2, task="Counted")
    assert first.next_offset is not None
    second = store.window(first.next_offset, 2, task="Counted")

    assert [j.id for j in first.items + second.items] == ids[:4]


def test_run_now_queues_the_job_once_and_no_dispatcher_moves_it_again(rt: Runtime) -> None:
    job = Counted.perform_in(3600, n=1)
    store = ScheduledJobs(rt.redis, rt.keys, "scheduled")

    assert store.run_now([job.id]) == [job.id]

    assert rt.redis.llen("default") == 1
    assert store.count() == 0
    assert ScheduleSet(rt.redis, rt.keys).move_due(FAR) == 0
    assert rt.redis.llen("default") == 1
    with pytest.raises(UnknownJobError, match=job.id):
        store.run_now([job.id])


def test_a_deleted_job_never_runs_and_its_status_says_revoked(rt: Runtime) -> None:
    keep, gone = Counted.perform_in(3600, n=1), Counted.perform_in(3600, n=2)
    store = ScheduledJobs(rt.redis, rt.keys, "scheduled")

    assert store.delete([gone.id]) == [gone.id]

    assert ScheduleSet(rt.redis, rt.keys).move_due(FAR) == 1
    queued = rt.redis.lrange("default", 0, -1)
    assert len(queued) == 1
    assert keep.id.encode() in queued[0]
    assert AsyncResult(gone.id, app=rt.app).status == "REVOKED"


def test_deleting_a_job_the_dispatchers_already_moved_is_an_error_not_a_promise(
    rt: Runtime,
) -> None:
    job = Counted.perform_at(datetime.now(UTC) + timedelta(seconds=30), n=1)
    ScheduleSet(rt.redis, rt.keys).move_due(FAR)
    store = ScheduledJobs(rt.redis, rt.keys, "scheduled")

    with pytest.raises(UnknownJobError, match=f"not a waiting scheduled job: {job.id}"):
        store.delete([job.id])


def test_a_scheduled_job_cannot_be_acted_on_as_a_retry_nor_the_reverse(rt: Runtime) -> None:
    scheduled = Counted.perform_in(3600, n=1)
    retry = _retry(rt, retries=1)

    with pytest.raises(UnknownJobError):
        ScheduledJobs(rt.redis, rt.keys, "retry").delete([scheduled.id])
    with pytest.raises(UnknownJobError):
        ScheduledJobs(rt.redis, rt.keys, "scheduled").run_now([retry])
    assert ScheduleSet(rt.redis, rt.keys).move_due(FAR) == 2


def test_killing_a_retry_moves_it_to_the_dead_set_with_the_reason_and_last_error(
    rt: Runtime,
) -> None:
    retry = _retry(rt, retries=3, error="TimeoutError: slow api", key="order-7")
    dead = DeadJobs(rt.redis, rt.keys)

    ScheduledJobs(rt.redis, rt.keys, "retry").kill([retry], "bad data", dead)

    record = dead.show(retry)
    assert record.error == "Killed: bad data (last error: TimeoutError: slow api)"
    assert record.kwargs == {"user_id": 1, "data": {"key": "order-7"}}
    assert record.attempts == 3
    assert "TimeoutError: slow api" in record.traceback
    assert ScheduleSet(rt.redis, rt.keys).move_due(FAR) == 0


def _dead(rt: Runtime, n: int) -> list[str]:
    store = DeadJobs(rt.redis, rt.keys)
    ids = [f"dead-{i}" for i in range(n)]
    for i, job_id in enumerate(ids):
        store.add(
            DeadJob(job_id, Echo.task_name, "default", [i], {}, f"ValueError: {i}", "tb", 3, i, i)
        )
    return ids


def test_the_dead_set_reads_newest_first_in_windows_and_filters(rt: Runtime) -> None:
    ids = _dead(rt, 5)
    store = DeadJobs(rt.redis, rt.keys)

    assert [job.id for job in store.window(0, 2).items] == ["dead-4", "dead-3"]
    assert store.window(0, 2).next_offset == 2
    assert [job.id for job in store.window(4, 2).items] == ["dead-0"]
    found = store.window(match=lambda job: job.error.endswith(": 1"))
    assert [job.id for job in found.items] == [ids[1]]


def test_retrying_a_dead_job_twice_queues_it_once(rt: Runtime) -> None:
    _dead(rt, 1)
    store = DeadJobs(rt.redis, rt.keys)

    assert store.retry("dead-0") is True
    assert store.retry("dead-0") is False
    assert rt.redis.llen("default") == 1


def test_deleting_unknown_dead_ids_is_an_error_after_the_known_ones_go(rt: Runtime) -> None:
    _dead(rt, 2)
    store = DeadJobs(rt.redis, rt.keys)

    with pytest.raises(UnknownJobError, match="not in the dead set: nope"):
        store.delete(["dead-0", "nope"])
    assert [job.id for job in store.window().items] == ["dead-1"]
    assert store.purge() == 1
    assert store.count() == 0
