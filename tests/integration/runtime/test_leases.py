"""Leases: a live worker renews the visibility of the jobs it holds, so a job longer than the
lease runs once; a worker killed with SIGKILL stops renewing, and its job is back after the
lease (plus one restore sweep) instead of after an hour.

The lease here is 3 s (renewed every 1 s) to keep the test short; the default is 60 s.
"""

from __future__ import annotations

import json
import signal
import time
from itertools import pairwise

import pytest

from tests.controlplane.waiting import wait_for
from tests.integration.runtime.conftest import Spawn, ran
from tests.integration.runtime.jobs.recording import SleepyDefault
from worker_runtime.process.lease import UNACKED_INDEX
from worker_runtime.runtime import Runtime

pytestmark = pytest.mark.integration

LEASE = 3
SHORT_LEASE = {"WORKERPOOL_VISIBILITY_TIMEOUT": str(LEASE)}


def _tag_of(rt: Runtime, job_id: str) -> str | None:
    for tag, raw in rt.redis.hgetall("unacked").items():
        message, _exchange, _routing_key = json.loads(raw)
        if message["headers"]["id"] == job_id:
            return tag.decode() if isinstance(tag, bytes) else str(tag)
    return None


def test_a_job_three_times_longer_than_the_lease_runs_once_while_its_worker_lives(
    rt: Runtime, spawn: Spawn
) -> None:
    # Two workers: the idle one sweeps expired leases and would take the job if it expired.
    spawn("worker", "--concurrency=1", extra_env=SHORT_LEASE)
    spawn("worker", "--concurrency=1", extra_env=SHORT_LEASE)
    result = SleepyDefault.perform_async(tag="long", seconds=3 * LEASE)

    tag = wait_for(lambda: _tag_of(rt, result.id), timeout=60, message="the job to be delivered")
    assert tag is not None
    scores: list[float] = []

    def renewed_twice() -> bool:
        score = rt.redis.zscore(UNACKED_INDEX, tag)
        if score is not None and (not scores or score != scores[-1]):
            scores.append(score)
        return len(scores) >= 3

    wait_for(renewed_twice, timeout=30, interval=0.05, message="the lease to be renewed twice")
    intervals = [later - earlier for earlier, later in pairwise(scores)]
    print(f"lease {LEASE}s renewed every {', '.join(f'{i:.2f}' for i in intervals)} s")

    assert result.get(timeout=60) == "long"
    wait_for(lambda: rt.redis.zcard(UNACKED_INDEX) == 0, timeout=30, message="the ack")
    assert len(ran(rt.redis, "sleepy")) == 1, "the job ran twice: its lease expired"


def test_sigkill_of_the_whole_worker_brings_its_job_back_after_the_lease(
    rt: Runtime, spawn: Spawn
) -> None:
    doomed = spawn("worker", "--concurrency=1", extra_env=SHORT_LEASE)
    SleepyDefault.perform_async(tag="orphan", seconds=120.0)
    wait_for(lambda: ran(rt.redis, "sleepy"), timeout=60, message="the job to start")

    doomed.signal(signal.SIGKILL)  # main process and pool child: nobody left to notice
    doomed.popen.wait(timeout=30)
    killed_at = time.time()
    spawn("worker", "--concurrency=1", extra_env=SHORT_LEASE)  # returns once it consumes
    consuming_at = time.time()

    runs = wait_for(
        lambda: (lambda r: r if len(r) >= 2 else None)(ran(rt.redis, "sleepy")),
        timeout=60,
        message="the killed worker's job to run again",
    )
    assert runs is not None
    back_after = float(str(runs[1]["t"])) - killed_at
    print(f"lease {LEASE}s: job running again {back_after:.1f}s after SIGKILL of its worker")
    assert runs[1]["pid"] != runs[0]["pid"]
    # The last renewal came before the kill, so the lease lapses at most LEASE after it; the
    # new worker's restore sweep runs every LEASE here (app.py, `unacked_restore_interval`)
    # from when it consumes, and a restored message is fetched within a second. 2 s of slack.
    rerun_at = float(str(runs[1]["t"]))
    latest = max(killed_at + LEASE, consuming_at) + LEASE + 1 + 2
    assert rerun_at <= latest, (
        f"the job came back {back_after:.1f}s after the kill, {rerun_at - latest:.1f}s past "
        f"its bound (lease {LEASE}s, sweep every {LEASE}s, worker consuming "
        f"{consuming_at - killed_at:.1f}s after the kill)"
    )
