"""At-least-once delivery: a worker killed mid-backlog loses no job, and SIGTERM lets the running
job finish.

Late acks keep every started job's message unacked in Redis until the job ends; after the
visibility timeout (2 s here) another worker gets it back. Duplicates are allowed (jobs must be
idempotent), losses are not.
"""

from __future__ import annotations

import os
import signal
import time

import pytest

from tests.controlplane.waiting import wait_for
from tests.integration.runtime.conftest import Spawn, ran
from tests.integration.runtime.jobs.recording import Counted, SleepyDefault
from worker_runtime.runtime import Runtime

pytestmark = pytest.mark.integration

JOBS = 200
QUICK_REDELIVERY = {"WORKERPOOL_VISIBILITY_TIMEOUT": "2"}


def _done(rt: Runtime) -> list[int]:
    return [int(str(run["n"])) for run in ran(rt.redis, "counted")]


def test_sigkill_of_a_busy_worker_loses_none_of_200_jobs(rt: Runtime, spawn: Spawn) -> None:
    first = spawn("worker", "--concurrency=4", extra_env=QUICK_REDELIVERY)
    Counted.perform_bulk({"n": n, "seconds": 0.05} for n in range(JOBS))
    wait_for(
        lambda: len(_done(rt)) >= 40,
        timeout=120,
        interval=0.05,
        message="the first worker to finish some jobs",
    )

    first.signal(signal.SIGKILL)  # the whole process group: main process and pool children
    first.popen.wait(timeout=30)
    killed_at = time.time()
    done_by_first = len(_done(rt))
    assert done_by_first < JOBS, "the backlog drained before the kill; nothing was tested"
    unacked = int(rt.redis.hlen("unacked"))

    spawn("worker", "--concurrency=4", extra_env=QUICK_REDELIVERY)
    # The killed jobs come back after the visibility timeout plus one restore sweep (about
    # 2 + 2 s here); kombu's default sweep period alone is 100 s, which would time this out.
    wait_for(
        lambda: set(_done(rt)) == set(range(JOBS)),
        timeout=60,
        message=lambda: f"every job to run ({len(set(_done(rt)))} of {JOBS} distinct so far)",
    )
    finished_at = time.time()

    done = _done(rt)
    duplicates = len(done) - len(set(done))
    # The second worker's steady rate: its runs before the redelivered ones came back.
    after_kill = sorted(float(str(run["t"])) for run in ran(rt.redis, "counted")[done_by_first:])
    steady = after_kill[: len(after_kill) - unacked]
    print(
        f"killed with {unacked} unacked after {done_by_first} jobs; "
        f"second worker ran {(len(steady) - 1) / (steady[-1] - steady[0]):.0f} jobs/s "
        f"(c=4, 0.05 s jobs); all {JOBS} done {finished_at - killed_at:.1f} s after the kill; "
        f"{duplicates} duplicate(s)"
    )
    assert duplicates <= unacked, f"{duplicates} duplicates but only {unacked} jobs were unacked"


def test_sigterm_lets_the_running_job_finish_and_the_worker_exit_zero(
    rt: Runtime, spawn: Spawn
) -> None:
    worker = spawn("worker", "--concurrency=2")
    result = SleepyDefault.perform_async(tag="warm", seconds=2.0)
    wait_for(
        lambda: ran(rt.redis, "sleepy"),
        timeout=60,
        interval=0.05,
        message="the 2 s job to start",
    )

    # As Kubernetes does: SIGTERM to the main process only, not to its pool children.
    os.kill(worker.popen.pid, signal.SIGTERM)

    assert worker.popen.wait(timeout=60) == 0, worker.output()[-3000:]
    assert result.state == "SUCCESS"
    assert result.get(timeout=5) == "warm"
    assert len(ran(rt.redis, "sleepy")) == 1
    assert rt.redis.hlen("unacked") == 0, "the job's message was not acked"
    assert rt.redis.llen("default") == 0, "the job was put back for another run"
