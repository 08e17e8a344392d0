"""perform_in / perform_at against real workers: the schedule set in Redis, moved onto the
queues by every worker's dispatcher with one atomic Lua script.

The Celery failure this replaces (celery#2599): countdown/ETA messages wait unacked in worker
memory and Redis redelivers them once the delay outlives the visibility timeout, so they run
twice. Here delays far longer than a one-second visibility timeout must run exactly once,
with two dispatchers racing for the same due jobs.
"""

from __future__ import annotations

import contextlib
import random
import signal
import statistics
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import psutil
import pytest
import redis
from celery.result import AsyncResult
from redis.client import Pipeline

import worker_runtime
from tests.controlplane.waiting import wait_for
from tests.integration.conftest import JOBS, Spawn, ran
from tests.integration.runtime.jobs.recording import Counted, SleepyCritical
from tests.integration.scheduling.conftest import start_together
from worker_runtime.keys import Keys
from worker_runtime.messages import build_message, new_job_id
from worker_runtime.queues import QUEUES
from worker_runtime.runtime import Runtime
from worker_runtime.schedule_set import ScheduleSet, schedule
from worker_runtime.settings import Settings
from worker_runtime.worker import Worker

pytestmark = pytest.mark.integration

#: Shorter than every delay below: an ETA message would be redelivered and run twice.
SHORT_VISIBILITY = {"WORKERPOOL_VISIBILITY_TIMEOUT": "1"}
KEYS = Keys()


@pytest.fixture
def rt_short_visibility(env: dict[str, str]) -> Iterator[Runtime]:
    """The test's runtime with a one-second visibility timeout, like its workers'."""
    runtime = worker_runtime.configure(Settings.from_env({**env, **SHORT_VISIBILITY}))
    assert runtime.settings.visibility_timeout == 1
    yield runtime
    runtime.close()


def counted_runs(client: redis.Redis) -> Counter[int]:
    """How many times each `Counted(n)` ran."""
    return Counter(int(entry["n"]) for entry in ran(client, "counted"))  # type: ignore[call-overload]


def duplicates_and_losses(runs: Counter[int], expected: range) -> tuple[int, int]:
    duplicates = sum(count - 1 for n, count in runs.items() if count > 1)
    losses = sum(1 for n in expected if runs[n] == 0)
    return duplicates, losses


def scheduled_count(client: redis.Redis) -> int:
    return sum(int(client.zcard(KEYS.schedule(queue))) for queue in QUEUES)


def assert_schedule_drained(client: redis.Redis) -> None:
    assert scheduled_count(client) == 0
    assert client.hlen(KEYS.payloads) == 0


def test_two_thousand_delayed_jobs_run_exactly_once_with_two_racing_dispatchers(
    rt_short_visibility: Runtime, spawn: Spawn
) -> None:
    client = rt_short_visibility.redis
    worker = ("worker", "--concurrency=3")
    start_together(spawn, worker, worker, extra_env=SHORT_VISIBILITY)
    total = 2000
    rng = random.Random(2599)

    for n in range(total):
        Counted.perform_in(rng.uniform(2.0, 5.0), n=n)

    assert scheduled_count(client) > 0, "jobs should wait in the schedule set, not the queue"
    wait_for(
        lambda: client.llen("ran:counted") >= total,
        timeout=120,
        interval=0.5,
        message=lambda: f"{total} runs (have {client.llen('ran:counted')})",
    )
    # Deliberately let time pass: a redelivered or doubly-dispatched job would run now.
    time.sleep(2)

    runs = counted_runs(client)
    duplicates, losses = duplicates_and_losses(runs, range(total))
    print(f"\n{total} delayed jobs, 2 dispatchers: duplicates={duplicates} losses={losses}")
    assert (duplicates, losses) == (0, 0)
    assert sorted(runs.elements()) == list(range(total))
    assert_schedule_drained(client)


def test_due_jobs_reach_a_worker_within_the_dispatch_lag_bound(rt: Runtime, spawn: Spawn) -> None:
    client = rt.redis
    spawn("worker", "--concurrency=4")
    total = 300
    base = datetime.now(UTC) + timedelta(seconds=2)
    # Spread over three seconds, so the lag measures dispatch rather than a burst backlog.
    due = {n: base + timedelta(seconds=3 * n / total) for n in range(total)}

    for n, when in due.items():
        Counted.perform_at(when, n=n)

    wait_for(
        lambda: client.llen("ran:counted") >= total,
        timeout=60,
        interval=0.5,
        message=lambda: f"{total} runs (have {client.llen('ran:counted')})",
    )
    entries = ran(client, "counted")
    assert sorted(int(e["n"]) for e in entries) == list(range(total))  # type: ignore[call-overload]
    lags = sorted(float(e["t"]) - due[int(e["n"])].timestamp() for e in entries)  # type: ignore[arg-type,call-overload]
    p50 = statistics.median(lags)
    p99 = lags[int(0.99 * (len(lags) - 1))]
    print(f"\ndispatch lag over {total} jobs: p50={p50:.3f}s p99={p99:.3f}s max={lags[-1]:.3f}s")
    assert lags[0] >= -0.05, f"a job ran {-lags[0]:.3f}s before it was due"
    assert p99 < 2.5


def test_a_job_due_in_three_days_runs_once_despite_a_one_second_visibility_timeout(
    rt_short_visibility: Runtime, spawn: Spawn
) -> None:
    """Days ahead without waiting days: the job is scheduled three days out, then "time
    passes" by rewriting its score in the schedule set to now. What is under test (that the
    job waits in Redis, not in a worker, and is dispatched once) is the same for any delay."""
    client = rt_short_visibility.redis
    worker = ("worker", "--concurrency=2")
    start_together(spawn, worker, worker, extra_env=SHORT_VISIBILITY)
    due = datetime.now(UTC) + timedelta(days=3)

    result = Counted.perform_at(due, n=42)

    assert AsyncResult(result.id).status == "SCHEDULED"
    score = client.zscore(KEYS.schedule(Counted.queue), result.id)
    assert score == pytest.approx(due.timestamp())
    # Deliberately let dispatch passes happen: a job three days out must stay put.
    time.sleep(1.5)
    assert client.llen("ran:counted") == 0
    assert AsyncResult(result.id).status == "SCHEDULED"

    client.zadd(KEYS.schedule(Counted.queue), {result.id: time.time()}, xx=True)

    assert result.get(timeout=30) == 42
    assert AsyncResult(result.id).status == "SUCCESS"
    # Longer than the visibility timeout: a redelivery would show as a second run.
    time.sleep(3)
    assert counted_runs(client) == Counter({42: 1})
    assert_schedule_drained(client)


def test_scheduled_jobs_survive_every_worker_and_beat_being_killed(
    rt: Runtime, spawn: Spawn
) -> None:
    """Nothing about a scheduled job lives in a process: kill every dispatcher before the
    jobs are due, and a beat started later moves them all, once; a new worker runs them."""
    client = rt.redis
    # Only modules without cron workers: this beat must push nothing but the scheduled jobs.
    plain = {"WORKER_PACKAGES": f"{JOBS}.recording"}
    worker = ("worker", "--concurrency=2")
    procs = start_together(spawn, worker, worker, ("beat",), extra_env=plain)
    total = 200
    due = datetime.now(UTC) + timedelta(seconds=3)
    for n in range(total):
        Counted.perform_at(due, n=n)

    for proc in procs:
        proc.signal(signal.SIGKILL)
        proc.popen.wait(10)
    # Deliberately let the due time pass with no worker and no beat (no dispatcher) alive.
    time.sleep(max(0.0, due.timestamp() - time.time()) + 1)
    assert client.llen("ran:counted") == 0
    assert client.llen(Counted.queue) == 0
    assert scheduled_count(client) == total
    assert ScheduleSet(client, KEYS).per_worker()[Counted.task_name][0] == total

    spawn("beat", extra_env=plain)
    wait_for(
        lambda: client.llen(Counted.queue) == total,
        timeout=30,
        message=lambda: f"the beat to dispatch {total} jobs (queued {client.llen(Counted.queue)})",
    )
    assert_schedule_drained(client)
    spawn("worker", "--concurrency=2", extra_env=plain)

    wait_for(
        lambda: client.llen("ran:counted") >= total,
        timeout=60,
        interval=0.5,
        message=lambda: f"{total} runs after restart (have {client.llen('ran:counted')})",
    )
    time.sleep(1)
    runs = counted_runs(client)
    assert duplicates_and_losses(runs, range(total)) == (0, 0)
    assert sorted(runs.elements()) == list(range(total))


class BatchedClient:
    """Stands in for the Redis client of `enqueue.schedule` (perform_at's write path) so that
    its own MULTI block joins an outer pipeline: 20,000 jobs in ten round trips, written by
    the real code rather than a copy of its key layout."""

    def __init__(self, outer: Pipeline) -> None:
        self._outer = outer

    @contextlib.contextmanager
    def pipeline(self, transaction: bool = True) -> Iterator[BatchedClient]:
        yield self

    def execute(self) -> None:
        """The outer pipeline executes the batch."""

    def __getattr__(self, name: str) -> Any:
        return getattr(self._outer, name)


def schedule_job(client: BatchedClient, worker: type[Worker], due: datetime, **kwargs: Any) -> None:
    """What `worker.perform_at(due, **kwargs)` writes, into the batch."""
    job_id = new_job_id()
    message = build_message(
        task_name=worker.task_name, job_id=job_id, queue=worker.queue, args=(), kwargs=kwargs
    )
    rt = worker_runtime.current()
    schedule(
        cast(redis.Redis, client),
        rt.keys,
        queue=worker.queue,
        job_id=job_id,
        message=message,
        due=due,
        result_ttl=rt.settings.result_expires,
    )


def peak_rss(pid: int, samples: int = 3) -> int:
    """Largest resident set size of `pid` over a few samples 0.2 s apart."""
    values = []
    for _ in range(samples):
        values.append(int(psutil.Process(pid).memory_info().rss))
        time.sleep(0.2)
    return max(values)


def test_worker_memory_does_not_grow_with_twenty_thousand_scheduled_jobs(
    rt: Runtime, spawn: Spawn
) -> None:
    client = rt.redis
    worker = spawn("worker", "--concurrency=2")
    pid = worker.popen.pid
    # Let start-up allocations settle; take the largest of a few samples as the baseline.
    time.sleep(2)
    before = peak_rss(pid)
    total = 20_000
    due = datetime.now(UTC) + timedelta(minutes=10)

    started = time.monotonic()
    for first in range(0, total, 2000):
        with client.pipeline(transaction=False) as pipe:
            batch = BatchedClient(pipe)
            for n in range(first, first + 2000):
                schedule_job(batch, Counted, due + timedelta(milliseconds=n), n=n)
            pipe.execute()
    print(f"\nscheduled {total} jobs in {time.monotonic() - started:.1f}s")
    assert scheduled_count(client) == total

    # Deliberately let the worker's dispatcher make many passes (every 0.1 s) over the set.
    time.sleep(3)
    after = peak_rss(pid)
    growth_mb = (after - before) / 2**20
    print(f"worker RSS {before / 2**20:.1f} MB -> {after / 2**20:.1f} MB ({growth_mb:+.1f} MB)")
    assert worker.popen.poll() is None
    assert growth_mb < 20
    assert client.llen(Counted.queue) == 0
    assert scheduled_count(client) == total
    assert ScheduleSet(client, KEYS).per_worker()[Counted.task_name][0] == total


def test_scheduled_cli_shows_counts_per_queue_and_per_worker_with_next_due(
    rt: Runtime, env: dict[str, str]
) -> None:
    now = datetime.now(UTC)
    first_default = now + timedelta(minutes=5)
    for n in range(3):
        Counted.perform_at(first_default + timedelta(minutes=n), n=n)
    first_critical = now + timedelta(hours=2)
    for n in range(2):
        SleepyCritical.perform_at(first_critical + timedelta(minutes=n), tag=f"t{n}")

    out = subprocess.run(
        [sys.executable, "-m", "worker_runtime", "scheduled"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout

    lines = {line.split()[0]: line.split() for line in out.splitlines() if line.strip()}
    stamp = "{:%Y-%m-%dT%H:%M:%S}+00:00".format
    assert lines["critical"][1:3] == ["2", stamp(first_critical)]
    assert lines["default"][1:3] == ["3", stamp(first_default)]
    assert lines["low"][1:3] == ["0", "-"]
    assert lines[Counted.task_name][1:3] == ["3", stamp(first_default)]
    assert lines[SleepyCritical.task_name][1:3] == ["2", stamp(first_critical)]
    in_seconds = int(lines["default"][4].removeprefix("+").removesuffix("s)"))
    assert 240 <= in_seconds <= 300
