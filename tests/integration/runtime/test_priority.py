"""Strict priority across critical, default and low, proven with a real worker and a backlog.

A worker with one process must start the next critical job before any waiting default job and
any default job before any waiting low job, whatever order they were queued in. Each failure
mode has a test that catches it: FIFO or one shared queue (default would start first), kombu's
round-robin queue order (defaults interleave with criticals) and prefetching more than one job
per process (prefetched low or default jobs start first).
"""

from __future__ import annotations

import time

import pytest

from tests.controlplane.waiting import wait_for
from tests.integration.runtime.conftest import Spawn, ran
from tests.integration.runtime.jobs.recording import Sleepy, SleepyCritical, SleepyDefault
from worker_runtime.runtime import Runtime

pytestmark = pytest.mark.integration

#: How long the holding low job keeps the only worker process busy.
GATE_SECONDS = 2.0


def _started_in_order(rt: Runtime) -> list[dict[str, object]]:
    # Each Sleepy run records when it starts; with one worker process list order is start order.
    return sorted(ran(rt.redis, "sleepy"), key=lambda run: float(str(run["started"])))


def _tags(runs: list[dict[str, object]]) -> list[str]:
    return [str(run["tag"]) for run in runs]


def test_critical_then_default_start_before_the_rest_of_a_low_backlog(
    rt: Runtime, spawn: Spawn
) -> None:
    spawn("worker", "--concurrency=1")
    # A longer low job in the backlog holds the only process while the test queues the
    # others, so both are in Redis before the worker next fetches (two LPUSHes are not atomic).
    Sleepy.perform_bulk({"tag": f"low-{i}", "seconds": 0.03} for i in range(5))
    Sleepy.perform_async(tag="low-hold", seconds=GATE_SECONDS)
    Sleepy.perform_bulk({"tag": f"low-{i}", "seconds": 0.03} for i in range(5, 200))
    wait_for(
        lambda: "low-hold" in _tags(ran(rt.redis, "sleepy")),
        timeout=60,
        interval=0.02,
        message="the worker to start the holding low job",
    )

    # Default first, then critical: FIFO or a single queue would run default first.
    SleepyDefault.perform_async(tag="default")
    SleepyCritical.perform_async(tag="critical")
    queued_at = time.time()
    wait_for(
        lambda: "default" in _tags(ran(rt.redis, "sleepy")),
        timeout=60,
        message="the default job to start",
    )

    runs = _started_in_order(rt)
    tags = _tags(runs)
    hold = tags.index("low-hold")
    assert queued_at < float(str(runs[hold]["started"])) + GATE_SECONDS, "queued too late"
    assert tags[:hold] == [f"low-{i}" for i in range(5)]
    assert tags[hold + 1 : hold + 3] == ["critical", "default"], f"start order: {tags[: hold + 10]}"


def test_no_default_job_starts_while_critical_jobs_wait(rt: Runtime, spawn: Spawn) -> None:
    spawn("worker", "--concurrency=1")
    SleepyDefault.perform_bulk({"tag": f"default-{i}", "seconds": 0.05} for i in range(20))
    wait_for(
        lambda: len(ran(rt.redis, "sleepy")) >= 1,
        timeout=60,
        interval=0.02,
        message="the worker to start a default job",
    )

    queued_at = time.time()
    SleepyCritical.perform_bulk({"tag": f"critical-{i}", "seconds": 0.05} for i in range(20))
    wait_for(
        lambda: len(ran(rt.redis, "sleepy")) == 40,
        timeout=60,
        message=lambda: f"all 40 jobs to start (started {len(ran(rt.redis, 'sleepy'))})",
    )

    runs = _started_in_order(rt)
    tags = _tags(runs)
    first = next(i for i, tag in enumerate(tags) if tag.startswith("critical-"))
    assert tags[first : first + 20] == [f"critical-{i}" for i in range(20)], tags[: first + 20]
    assert len(tags) > first + 20, "no default job was left waiting behind the critical ones"
    late_defaults = [
        tag
        for run, tag in zip(runs[:first], tags[:first], strict=True)
        if float(str(run["started"])) >= queued_at
    ]
    assert len(late_defaults) <= 1, f"default jobs started while critical waited: {late_defaults}"
