"""Retries wait in the Redis schedule set with a growing, bounded backoff; the last failure goes
to the dead store, which the `workerpool dead` commands list, retry and purge."""

from __future__ import annotations

import subprocess
import sys
import time
from itertools import pairwise

import pytest
from celery.result import AsyncResult

from tests.controlplane.waiting import wait_for
from tests.integration.runtime.conftest import Spawn, ran
from tests.integration.runtime.jobs.recording import AlwaysFails, Flaky, ReturnsASet
from worker_runtime.core.backoff import backoff_ceiling
from worker_runtime.runtime import Runtime
from worker_runtime.store.dead import DeadJobs

pytestmark = pytest.mark.integration

#: Time a due retry may take to start: dispatcher pass (0.1 s here), fetch, fork pool hand-off.
SLACK = 1.0


def workerpool(env: dict[str, str], *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "worker_runtime", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, f"workerpool {' '.join(args)}:\n{done.stdout}{done.stderr}"
    return done.stdout


def _next_retry_due(rt: Runtime, result: AsyncResult, queue: str, seen: list[float]) -> float:
    """Due time of the job's next retry, once it waits in the schedule set in state RETRY."""

    def waiting_for_retry() -> float | None:
        due = rt.redis.zscore(rt.keys.schedule(queue), result.id)
        fresh = due is not None and due not in seen
        return due if fresh and result.state == "RETRY" else None

    due = wait_for(
        waiting_for_retry,
        timeout=60,
        interval=0.05,
        message=lambda: f"retry {len(seen) + 1} in the schedule set (state {result.state})",
    )
    assert due is not None
    return due


def test_a_flaky_job_is_retried_with_growing_backoff_from_the_schedule_set_and_succeeds(
    rt: Runtime, spawn: Spawn
) -> None:
    spawn("worker", "--concurrency=2")

    result = Flaky.perform_async(key="k", fail_times=2)

    # Between attempts the job is in RETRY and waits in the schedule set (scored by its due
    # time), not in the worker as a Celery ETA message (celery#2599).
    dues: list[float] = []
    for _retry in (1, 2):
        dues.append(_next_retry_due(rt, result, Flaky.queue, seen=dues))
    assert result.get(timeout=60) == "ok after 3"
    assert result.state == "SUCCESS"

    runs = ran(rt.redis, "flaky")
    assert [run["attempt"] for run in runs] == [1, 2, 3]
    started = [float(str(run["t"])) for run in runs]
    delays = [due - start for due, start in zip(dues, started, strict=False)]
    gaps = [later - earlier for earlier, later in pairwise(started)]
    assert delays[0] < delays[1], f"backoff did not grow: {delays}"
    for retry, (delay, gap) in enumerate(zip(delays, gaps, strict=True), start=1):
        ceiling = backoff_ceiling(retry, Flaky.retry_backoff_max)
        # The delay is drawn after the attempt fails, a few ms after it started.
        assert ceiling / 2 <= delay <= ceiling + 0.1, f"retry {retry} was due after {delay:.2f}s"
        assert delay <= gap <= ceiling + SLACK, f"retry {retry} ran {gap:.2f}s later"
    print(
        f"retry delays {[round(d, 2) for d in delays]} s, "
        f"attempts {[round(g, 2) for g in gaps]} s apart"
    )


def test_a_job_that_always_fails_is_dead_after_its_retries_and_the_cli_lists_retries_and_purges_it(
    rt: Runtime, spawn: Spawn, env: dict[str, str]
) -> None:
    spawn("worker", "--concurrency=2")
    store = DeadJobs(rt.redis, rt.keys)
    queued_at = time.time()

    result = AlwaysFails.perform_async("k")

    [dead] = wait_for(store.list, timeout=60, message="the job to reach the dead store")
    assert (dead.id, dead.task, dead.queue) == (result.id, AlwaysFails.task_name, "default")
    assert (dead.args, dead.kwargs) == (["k"], {})
    assert dead.error == "ValueError: boom k"
    assert "Traceback (most recent call last)" in dead.traceback
    assert "ValueError: boom k" in dead.traceback
    assert dead.attempts == AlwaysFails.max_retries + 1 == 3
    assert queued_at <= dead.started_at <= dead.failed_at <= time.time()
    wait_for(lambda: result.state == "FAILURE", timeout=30, message="the FAILURE state")
    # Nothing left anywhere that could run it a fourth time.
    wait_for(lambda: rt.redis.hlen("unacked") == 0, timeout=30, message="the last ack")
    assert rt.redis.zcard(rt.keys.schedule("default")) == 0
    assert rt.redis.llen("default") == 0
    assert len(ran(rt.redis, "fails")) == 3

    listing = workerpool(env, "dead", "list")
    assert listing.splitlines()[-1] == "(1 shown of 1 dead job(s))"
    row = next(line for line in listing.splitlines() if line.startswith(result.id))
    assert row.split()[1:4] == [AlwaysFails.task_name, '"k"', "3"], row
    assert row.endswith("ValueError: boom k"), row

    assert workerpool(env, "dead", "retry", result.id).strip() == "requeued 1 job(s)"
    wait_for(
        lambda: len(ran(rt.redis, "fails")) > 3,
        timeout=60,
        message="the retried dead job to run again",
    )
    # A fresh retry budget: three more attempts, then dead again under the same id.
    wait_for(
        lambda: len(ran(rt.redis, "fails")) == 6 and store.get(result.id) is not None,
        timeout=60,
        message=lambda: f"death after 6 runs (ran {len(ran(rt.redis, 'fails'))})",
    )

    assert workerpool(env, "dead", "purge", "--yes").strip() == "purged 1 dead job(s)"
    assert store.count() == 0
    assert workerpool(env, "dead", "list").splitlines() == [
        "no dead jobs here",
        "(0 shown of 0 dead job(s))",
    ]


def test_a_return_value_json_cannot_store_fails_visibly_in_the_dead_set(
    rt: Runtime, spawn: Spawn
) -> None:
    spawn("worker", "--concurrency=1")
    result = ReturnsASet.perform_async(key="k")
    store = DeadJobs(rt.redis, rt.keys)

    dead = wait_for(lambda: store.get(result.id), timeout=60, message="the job's dead record")
    assert dead is not None
    assert dead.error.startswith("JobResultError: ")
    assert "returned a set, which the JSON result backend cannot store" in dead.error
    wait_for(lambda: result.state == "FAILURE", timeout=30, message="the FAILURE state")
    assert len(ran(rt.redis, "returns_set")) == 1
