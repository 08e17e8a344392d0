"""The lease renewer is watched (issue 20): when the pod's duties process stops renewing
(frozen here with SIGSTOP; a dead thread ends it the same way), its supervisor kills it and
starts another before any lease lapses, so a running job is not taken back and run again by
another slot, and no false dead record follows.
"""

from __future__ import annotations

import contextlib
import os
import signal
from pathlib import Path

import pytest

from tests.controlplane.waiting import wait_for
from tests.integration.runtime.conftest import Spawn, ran
from tests.integration.runtime.jobs.recording import SleepyDefault
from worker_runtime.runtime import Runtime

pytestmark = pytest.mark.integration

#: A 6 s lease: renewed every 2 s, so the renewer counts as stopped after 4 s.
LEASE = {"WORKERPOOL_VISIBILITY_TIMEOUT": "6"}


def _children(pid: int) -> list[int]:
    return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


def test_a_frozen_renewer_is_replaced_before_a_running_job_is_taken_back(
    rt: Runtime, spawn: Spawn
) -> None:
    worker = spawn("worker", "--concurrency=2", extra_env=LEASE)
    # The supervisor forks the duties process before its slots: the oldest child.
    duties = min(_children(worker.popen.pid))
    result = SleepyDefault.perform_async(tag="long", seconds=15.0)
    wait_for(lambda: ran(rt.redis, "sleepy"), timeout=60, interval=0.05, message="the job")

    os.kill(duties, signal.SIGSTOP)
    try:
        # Lapsed leases come back with the next sweep (every 6 s here) to the idle slot.
        wait_for(lambda: result.state == "SUCCESS", timeout=90, message="the job to finish")
        runs = ran(rt.redis, "sleepy")
        assert len(runs) == 1, f"ran {len(runs)} times: {runs}"
        assert rt.redis.zcard("workerpool:dead") == 0
        assert "renewed no lease" in worker.output()
    finally:
        with contextlib.suppress(ProcessLookupError):  # the supervisor killed it already
            os.kill(duties, signal.SIGKILL)
