"""A job whose process dies (SIGKILL as from the OOM killer, a segfault, `os._exit`) counts as a
failed attempt: retries and backoff apply, the last one lands in the dead set with a reason
naming the exit code or signal, and the worker keeps running.

Before: `task_reject_on_worker_lost` requeued such a job without counting it; it looped forever.
"""

from __future__ import annotations

import pytest

from tests.controlplane.waiting import wait_for
from tests.integration.runtime.conftest import Spawn, ran
from tests.integration.runtime.jobs.recording import Echo, KillsItsProcess
from worker_runtime.runtime import Runtime
from worker_runtime.store.dead import DeadJob, DeadJobs

pytestmark = pytest.mark.integration

HOW = {
    "sigkill": "killed by SIGKILL: probably out of memory",
    "segv": "died from SIGSEGV",
    "exit": "exited with code 3",
}


@pytest.mark.parametrize("how", HOW)
def test_a_job_that_kills_its_process_uses_its_retries_then_is_dead_with_the_reason(
    how: str, rt: Runtime, spawn: Spawn
) -> None:
    worker = spawn("worker", "--concurrency=2")
    result = KillsItsProcess.perform_async(key=how, how=how)
    store = DeadJobs(rt.redis, rt.keys)

    dead = wait_for(
        lambda: store.get(result.id),
        timeout=90,
        message=lambda: f"the job in the dead set ({len(ran(rt.redis, 'kills'))} runs so far)",
    )
    assert isinstance(dead, DeadJob)
    assert dead.attempts == KillsItsProcess.max_retries + 1
    assert HOW[how] in dead.error, dead.error
    assert dead.error.startswith("WorkerLostJobError: ")
    # Nothing of the job is left to run again: not queued, not scheduled, not unacked.
    wait_for(
        lambda: rt.redis.hlen("unacked") == 0,
        timeout=30,
        message="the last delivery to be acked",
    )
    assert rt.redis.llen(KillsItsProcess.queue) == 0
    assert rt.redis.zcard(rt.keys.schedule(KillsItsProcess.queue)) == 0
    assert len(ran(rt.redis, "kills")) == KillsItsProcess.max_retries + 1
    assert result.state == "FAILURE"

    assert worker.popen.poll() is None, worker.output()[-3000:]
    assert Echo.perform_async(user_id=1, data={}).get(timeout=60)["status"] == "completed"


def test_a_lost_attempt_is_retried_through_the_schedule_set_with_backoff(
    rt: Runtime, spawn: Spawn
) -> None:
    spawn("worker", "--concurrency=1")
    result = KillsItsProcess.perform_async(key="backoff", how="sigkill")

    # The first run's loss puts attempt 2 in the schedule set (state RETRY), not straight back
    # on the queue as Celery's requeue did.
    due = wait_for(
        lambda: rt.redis.zscore(rt.keys.schedule(KillsItsProcess.queue), result.id),
        timeout=60,
        interval=0.02,
        message="the retry of the lost attempt in the schedule set",
    )
    assert due is not None
    first_run = float(str(ran(rt.redis, "kills")[0]["t"]))
    assert due > first_run, "the retry is due after the lost run, not at once"
