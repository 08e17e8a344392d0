"""A dispatcher on the real clock moves a job when it falls due, not at its next interval: it
sleeps until the earliest due job it saw, and a job scheduled sooner than that wakes it.

Each dispatcher here has a one-minute interval, so a job moved within the deadline proves the
early wake-up (with a fixed-interval poll it would wait the whole minute). Each test has its
own key prefix: pub/sub channels are server-wide, not per database.
"""

from __future__ import annotations

import itertools
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
import redis

from tests.controlplane.waiting import wait_for
from worker_runtime.core.keys import Keys
from worker_runtime.core.messages import build_message, new_job_id
from worker_runtime.runtime import Runtime
from worker_runtime.scheduling.dispatcher import Dispatcher
from worker_runtime.store.schedule_set import WAKE_WITHIN, Pass, ScheduleSet, schedule

pytestmark = pytest.mark.integration

INTERVAL = 60.0
#: Far below INTERVAL: a job that moves within it was not moved by an interval's pass.
DEADLINE = 20.0


@pytest.fixture
def keys() -> Keys:
    return Keys(prefix=f"test-{uuid.uuid4().hex[:12]}")


def _schedule_in(rt: Runtime, keys: Keys, seconds: float) -> str:
    job_id = new_job_id()
    message = build_message(
        task_name="tests.never.runs", job_id=job_id, queue="default", args=(), kwargs={}
    )
    due = datetime.now(UTC) + timedelta(seconds=seconds)
    schedule(
        rt.redis, keys, queue="default", job_id=job_id, message=message, due=due, result_ttl=60
    )
    return job_id


@pytest.fixture
def dispatcher(rt: Runtime, keys: Keys) -> Iterator[Dispatcher]:
    running = Dispatcher(ScheduleSet(rt.redis, keys), interval=INTERVAL)
    yield running
    running.stop()


def _subscribed(client: redis.Redis, keys: Keys) -> bool:
    counts = dict(client.pubsub_numsub(keys.schedule_wake))
    return int(counts.get(keys.schedule_wake.encode(), 0)) >= 1


def test_a_dispatcher_sleeps_until_the_earliest_due_job_not_its_whole_interval(
    rt: Runtime, keys: Keys, dispatcher: Dispatcher
) -> None:
    # Due later than the wake threshold, so no wake message: the pass's own plan must do it.
    _schedule_in(rt, keys, WAKE_WITHIN + 1.0)
    dispatcher.start()
    wait_for(lambda: rt.redis.llen("default") == 1, timeout=DEADLINE, message="the job to move")
    assert rt.redis.zcard(keys.schedule("default")) == 0


def test_a_job_scheduled_due_sooner_wakes_a_sleeping_dispatcher(
    rt: Runtime, keys: Keys, dispatcher: Dispatcher
) -> None:
    dispatcher.start()
    # Its first pass found nothing and it now sleeps for the interval, listening.
    wait_for(lambda: _subscribed(rt.redis, keys), timeout=DEADLINE, message="subscription")
    _schedule_in(rt, keys, 0.2)
    wait_for(lambda: rt.redis.llen("default") == 1, timeout=DEADLINE, message="the job to move")


class _CountedPasses(ScheduleSet):
    """The real schedule set, noting when each pass ran."""

    def __init__(self, client: redis.Redis, keys: Keys) -> None:
        super().__init__(client, keys)
        self.passes: list[float] = []

    def dispatch(self, now: float) -> Pass:
        self.passes.append(time.monotonic())
        return super().dispatch(now)


def test_with_nothing_due_soon_a_dispatcher_passes_no_more_than_once_per_interval(
    rt: Runtime, keys: Keys
) -> None:
    """No harder on Redis than a fixed-interval poll while nothing is due: the early wake-ups
    only ever shorten a sleep for a job that is due."""
    interval = 0.3
    _schedule_in(rt, keys, 3600)  # due much later than the interval
    counted = _CountedPasses(rt.redis, keys)
    running = Dispatcher(counted, interval=interval)
    running.start()
    try:
        wait_for(lambda: len(counted.passes) >= 5, timeout=DEADLINE, message="five passes")
    finally:
        running.stop()
    gaps = [later - earlier for earlier, later in itertools.pairwise(counted.passes)]
    # A loaded machine only lengthens the gaps; 5% slack for the wait's own rounding.
    assert min(gaps) >= interval * 0.95, gaps
