"""The schedule set against real Redis with synthetic times: a job moves onto its queue at its
due time, never before, exactly once however many dispatchers race, and nothing about it lives
in a process.

Jobs are written by the real `perform_at`; "time passes" by calling `move_due(now)` (or giving
the dispatcher thread a synthetic clock) with chosen instants.
"""

from __future__ import annotations

import random
import threading
from collections import Counter
from datetime import datetime

import pytest
import redis
from celery.result import AsyncResult

from tests.controlplane.waiting import wait_for
from tests.integration.synthetic_time.conftest import KEYS, at
from tests.integration.synthetic_time.workers import Eventually, Succeeds, Urgent
from worker_runtime.core.messages import decode_message
from worker_runtime.core.queues import QUEUES
from worker_runtime.runtime import Runtime
from worker_runtime.scheduling.dispatcher import Dispatcher
from worker_runtime.store.schedule_set import BATCH, SCHEDULED, ScheduleSet

pytestmark = pytest.mark.integration


def epoch(when: datetime) -> float:
    return when.timestamp()


def queued_numbers(client: redis.Redis, queue: str = "default") -> list[int]:
    """The `n` argument of every job on `queue`, in the order workers will take them."""
    return [
        int(decode_message(raw)["kwargs"]["n"]) for raw in reversed(client.lrange(queue, 0, -1))
    ]


def scheduled_count(client: redis.Redis) -> int:
    return sum(int(client.zcard(KEYS.schedule(queue))) for queue in QUEUES)


def assert_drained(client: redis.Redis) -> None:
    assert scheduled_count(client) == 0
    assert client.hlen(KEYS.payloads) == 0


def test_a_job_days_ahead_waits_in_redis_and_moves_at_its_due_time_not_a_millisecond_before(
    rt: Runtime, other_client: redis.Redis
) -> None:
    due = at(minutes=3 * 24 * 60)
    result = Succeeds.perform_at(due, n=42)

    assert AsyncResult(result.id, app=rt.app).status == SCHEDULED
    assert rt.redis.zscore(KEYS.schedule("default"), result.id) == pytest.approx(epoch(due))
    assert rt.redis.llen("default") == 0
    # Any process may move it: here a dispatcher on another connection, as after a restart.
    elsewhere = ScheduleSet(other_client, KEYS)
    assert elsewhere.move_due(epoch(due) - 0.001) == 0
    assert rt.redis.llen("default") == 0
    assert elsewhere.move_due(epoch(due)) == 1
    assert elsewhere.move_due(epoch(due) + 3600) == 0

    [raw] = rt.redis.lrange("default", 0, -1)
    job = decode_message(raw)
    assert (job["id"], job["task"], job["kwargs"], job["retries"]) == (
        result.id, Succeeds.task_name, {"n": 42}, 0
    )  # fmt: skip
    assert_drained(rt.redis)


def test_due_jobs_reach_each_queue_in_due_order_and_only_once_due(rt: Runtime) -> None:
    client = rt.redis
    workers = {"critical": Urgent, "default": Succeeds, "low": Eventually}
    # Ten jobs per queue, due one second apart, written in shuffled order.
    order = [(queue, n) for queue in workers for n in range(10)]
    random.Random(7).shuffle(order)
    for queue, n in order:
        workers[queue].perform_at(at(seconds=n), n=n)
    schedule_set = ScheduleSet(client, KEYS)

    for second in range(10):
        now = epoch(at(seconds=second, milliseconds=999))
        assert schedule_set.move_due(now) == 3
        for queue in workers:
            assert queued_numbers(client, queue) == list(range(second + 1)), (queue, second)
    assert_drained(client)


def test_one_pass_moves_every_due_job_even_beyond_one_script_batch(rt: Runtime) -> None:
    total = 2 * BATCH + 1
    for n in range(total):
        Succeeds.perform_at(at(milliseconds=n), n=n)

    assert ScheduleSet(rt.redis, KEYS).move_due(epoch(at(seconds=60))) == total
    assert queued_numbers(rt.redis) == list(range(total))
    assert_drained(rt.redis)


def test_two_thousand_jobs_move_exactly_once_with_two_dispatchers_racing(
    rt: Runtime, other_client: redis.Redis
) -> None:
    """Two dispatchers on two connections, in two threads, call the script with the same
    synthetic instant every 10 ms of a 3.5 s window. Between steps (the barrier's action)
    the queue must hold exactly the jobs due so far: none early, none twice, none lost."""
    client = rt.redis
    total = 2000
    rng = random.Random(2599)
    due = {n: at(seconds=rng.uniform(0.5, 3.5)) for n in range(total)}
    for n, when in due.items():
        Succeeds.perform_at(when, n=n)
    assert scheduled_count(client) == total

    instants = [at(milliseconds=10 * step) for step in range(1, 361)]
    steps_started = [0]
    moved = [0, 0]
    errors: list[BaseException] = []

    def check_previous_step() -> None:
        done = steps_started[0]
        if done:
            expected = sum(1 for when in due.values() if when <= instants[done - 1])
            assert client.llen("default") == expected, f"after {instants[done - 1]}"
        steps_started[0] += 1

    barrier = threading.Barrier(2, action=check_previous_step)

    def race(index: int, connection: redis.Redis) -> None:
        schedule_set = ScheduleSet(connection, KEYS)
        try:
            for now in instants:
                barrier.wait(timeout=30)
                moved[index] += schedule_set.move_due(epoch(now))
        except BaseException as error:  # surfaced below; a silent thread would hide it
            errors.append(error)
            barrier.abort()

    threads = [
        threading.Thread(target=race, args=(0, client)),
        threading.Thread(target=race, args=(1, other_client)),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)

    assert errors == []
    assert steps_started[0] == len(instants)
    assert sum(moved) == total
    assert min(moved) > 0, f"one dispatcher moved everything: {moved}"
    runs = Counter(queued_numbers(client))
    assert runs == Counter(range(total)), "a job was moved twice or lost"
    assert_drained(client)


def test_a_job_id_without_its_payload_is_dropped_instead_of_blocking_the_set(
    rt: Runtime,
) -> None:
    client = rt.redis
    Succeeds.perform_at(at(seconds=2), n=2)
    client.zadd(KEYS.schedule("default"), {"orphan": epoch(at(seconds=1))})

    assert ScheduleSet(client, KEYS).move_due(epoch(at(seconds=5))) == 2
    assert queued_numbers(client) == [2]
    assert_drained(client)


def test_the_dispatcher_thread_moves_jobs_when_its_clock_reaches_their_due_time(
    rt: Runtime,
) -> None:
    Succeeds.perform_at(at(seconds=10), n=1)
    now = epoch(at(seconds=9))
    passes = [0]

    def clock() -> float:
        passes[0] += 1
        return now

    dispatcher = Dispatcher(ScheduleSet(rt.redis, KEYS), interval=0.01, clock=clock)
    dispatcher.start()
    try:
        wait_for(lambda: passes[0] >= 5, timeout=10, message="five dispatcher passes")
        assert rt.redis.zcard(KEYS.schedule("default")) == 1, "moved before it was due"
        now = epoch(at(seconds=10))
        wait_for(lambda: rt.redis.llen("default") == 1, timeout=10, message="the job to move")
    finally:
        dispatcher.stop()
    assert queued_numbers(rt.redis) == [1]
    assert_drained(rt.redis)


def test_summary_and_per_worker_report_counts_and_the_earliest_due_time(rt: Runtime) -> None:
    for n in range(3):
        Succeeds.perform_at(at(minutes=5 + n), n=n)
    for n in range(2):
        Urgent.perform_at(at(minutes=120 + n), n=n)
    schedule_set = ScheduleSet(rt.redis, KEYS)

    summary = {entry.queue: (entry.count, entry.next_due) for entry in schedule_set.summary()}
    assert summary == {
        "critical": (2, epoch(at(minutes=120))),
        "default": (3, epoch(at(minutes=5))),
        "low": (0, None),
    }
    assert schedule_set.per_worker() == {
        Succeeds.task_name: (3, epoch(at(minutes=5))),
        Urgent.task_name: (2, epoch(at(minutes=120))),
    }
    assert schedule_set.per_worker(limit=1)[Succeeds.task_name] == (1, epoch(at(minutes=5)))


def test_a_pass_reports_the_earliest_due_time_left_across_queues(rt: Runtime) -> None:
    schedule_set = ScheduleSet(rt.redis, KEYS)
    assert schedule_set.dispatch(epoch(at())).next_due is None

    Succeeds.perform_at(at(seconds=5), n=1)
    Succeeds.perform_at(at(minutes=5), n=2)
    Urgent.perform_at(at(seconds=30), n=3)

    first = schedule_set.dispatch(epoch(at(seconds=1)))
    assert first.moved == 0
    assert first.next_due == pytest.approx(epoch(at(seconds=5)))
    second = schedule_set.dispatch(epoch(at(seconds=5)))
    assert second.moved == 1
    assert second.next_due == pytest.approx(epoch(at(seconds=30)))
    third = schedule_set.dispatch(epoch(at(minutes=10)))
    assert third.moved == 2
    assert third.next_due is None
