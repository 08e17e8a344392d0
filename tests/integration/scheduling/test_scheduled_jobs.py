"""perform_at with real worker and beat processes: the wiring the synthetic-time tier
(tests/integration/synthetic_time/test_schedule_set.py) cannot see. Scheduled jobs live in
Redis, not in a process, so they survive every process being killed and run once on new ones;
a worker's memory does not grow with the number of jobs waiting; the CLI reports on them.
Exactly-once with racing dispatchers, "never early" and 2,000-job runs are proven there with
synthetic times, in milliseconds.

The Celery failure this replaces (celery#2599): countdown/ETA messages wait unacked in worker
memory and Redis redelivers them once the delay outlives the visibility timeout, so they run
twice. Here workers run with a one-second visibility timeout and jobs scheduled days ahead.
Every wait is a condition with a deadline (`wait_for`), never a fixed sleep.
"""

from __future__ import annotations

import contextlib
import signal
import subprocess
import sys
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
from worker_runtime.core.keys import Keys
from worker_runtime.core.messages import build_message, new_job_id
from worker_runtime.core.queues import QUEUES
from worker_runtime.core.settings import Settings
from worker_runtime.jobs.worker import Worker
from worker_runtime.runtime import Runtime
from worker_runtime.store.schedule_set import SCHEDULED, ScheduleSet, schedule

pytestmark = pytest.mark.integration

#: Shorter than every delay below: an ETA message would be redelivered and run twice.
SHORT_VISIBILITY = {"WORKERPOOL_VISIBILITY_TIMEOUT": "1"}
KEYS = Keys()
#: kombu's Redis transport keeps delivered-but-unacked messages in this hash; only those can
#: ever be redelivered.
UNACKED = "unacked"


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


def dispatch_passes(client: redis.Redis) -> int:
    """Schedule-set passes made so far by every dispatcher on this Redis server: each pass
    runs ZRANGEBYSCORE once per queue inside the Lua script, and nothing else here uses it."""
    stats = client.info("commandstats").get("cmdstat_zrangebyscore", {"calls": 0})
    return int(stats["calls"]) // len(QUEUES)


def wait_for_passes(client: redis.Redis, passes: int) -> None:
    """Until live dispatchers have made `passes` more passes over the schedule set."""
    target = dispatch_passes(client) + passes
    wait_for(
        lambda: dispatch_passes(client) >= target,
        timeout=30,
        interval=0.05,
        message=lambda: f"{passes} dispatcher passes (at {dispatch_passes(client)}/{target})",
    )


def test_jobs_scheduled_days_ahead_survive_every_process_being_killed_and_run_once(
    rt_short_visibility: Runtime, spawn: Spawn
) -> None:
    """Days ahead without waiting days: the jobs are scheduled three days out, every worker
    and beat is killed, then "time passes" by rewriting their scores to now: for half of
    them while only a new beat runs (it must move them), for the rest once two new workers
    run too (three dispatchers race). Workers with a one-second visibility timeout run each
    job once."""
    client = rt_short_visibility.redis
    # Only modules without cron workers: the beat must push nothing but the scheduled jobs.
    plain = {"WORKER_PACKAGES": f"{JOBS}.recording", **SHORT_VISIBILITY}
    worker = ("worker", "--concurrency=2")
    procs = start_together(spawn, worker, worker, ("beat",), extra_env=plain)
    total = 200
    due = datetime.now(UTC) + timedelta(days=3)
    results = [Counted.perform_at(due + timedelta(milliseconds=n), n=n) for n in range(total)]

    assert {AsyncResult(r.id).status for r in results} == {SCHEDULED}
    wait_for_passes(client, 10)
    # Live dispatchers leave them alone, and no worker holds one (an ETA message would be
    # fetched into a worker and sit in kombu's unacked hash).
    assert scheduled_count(client) == total
    assert client.llen(Counted.queue) == 0
    assert client.hlen(UNACKED) == 0
    assert ScheduleSet(client, KEYS).per_worker()[Counted.task_name] == (total, due.timestamp())

    for proc in procs:
        proc.signal(signal.SIGKILL)
        proc.popen.wait(10)
    half = total // 2

    def fall_due(jobs: list[AsyncResult]) -> None:
        now = datetime.now(UTC).timestamp()
        client.zadd(KEYS.schedule(Counted.queue), {r.id: now for r in jobs}, xx=True)

    spawn("beat", extra_env=plain)
    fall_due(results[:half])
    wait_for(
        lambda: client.llen(Counted.queue) == half,
        timeout=30,
        message=lambda: f"the beat to dispatch {half} jobs (queued {client.llen(Counted.queue)})",
    )
    assert scheduled_count(client) == total - half
    start_together(spawn, worker, worker, extra_env=plain)
    fall_due(results[half:])

    # Done means: every job ran, nothing is queued, and nothing is delivered but unacked, so
    # Redis has nothing left that it could redeliver.
    wait_for(
        lambda: (
            client.llen("ran:counted") >= total
            and client.llen(Counted.queue) == 0
            and client.hlen(UNACKED) == 0
        ),
        timeout=60,
        interval=0.3,
        message=lambda: f"{total} runs, all acked (have {client.llen('ran:counted')})",
    )
    runs = counted_runs(client)
    assert duplicates_and_losses(runs, range(total)) == (0, 0)
    assert sorted(runs.elements()) == list(range(total))
    assert_schedule_drained(client)
    assert {AsyncResult(r.id).status for r in results} == {"SUCCESS"}


class BatchedClient:
    """Stands in for the Redis client of `schedule_set.schedule` (perform_at's write path) so
    that its own MULTI block joins an outer pipeline: 20,000 jobs in ten round trips, written
    by the real code rather than a copy of its key layout."""

    def __init__(self, outer: Pipeline) -> None:
        self._outer = outer

    @contextlib.contextmanager
    def pipeline(self, **_options: bool) -> Iterator[BatchedClient]:
        """`transaction=` and friends do not apply: the outer pipeline decides."""
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


def peak_rss(pid: int, client: redis.Redis, samples: int = 3) -> int:
    """Largest resident set size of `pid` over a few samples, one dispatcher pass apart."""
    values = []
    for _ in range(samples):
        values.append(int(psutil.Process(pid).memory_info().rss))
        wait_for_passes(client, 1)
    return max(values)


def test_worker_memory_does_not_grow_with_twenty_thousand_scheduled_jobs(
    rt: Runtime, spawn: Spawn
) -> None:
    client = rt.redis
    worker = spawn("worker", "--concurrency=2")
    pid = worker.popen.pid
    # Let start-up allocations settle over many passes; the baseline is the largest sample.
    wait_for_passes(client, 10)
    before = peak_rss(pid, client)
    total = 20_000
    due = datetime.now(UTC) + timedelta(minutes=10)

    for first in range(0, total, 2000):
        with client.pipeline(transaction=False) as pipe:
            batch = BatchedClient(pipe)
            for n in range(first, first + 2000):
                schedule_job(batch, Counted, due + timedelta(milliseconds=n), n=n)
            pipe.execute()
    assert scheduled_count(client) == total

    # Many passes of the worker's dispatcher over the full set.
    wait_for_passes(client, 20)
    after = peak_rss(pid, client)
    growth_mb = (after - before) / 2**20
    assert worker.popen.poll() is None
    assert growth_mb < 20, f"worker RSS {before / 2**20:.1f} MB -> {after / 2**20:.1f} MB"
    assert client.llen(Counted.queue) == 0
    assert scheduled_count(client) == total
    assert ScheduleSet(client, KEYS).per_worker()[Counted.task_name][0] == total


@pytest.mark.usefixtures("rt")  # perform_at writes through the test's runtime
def test_scheduled_cli_shows_counts_per_queue_and_per_worker_with_next_due(
    env: dict[str, str],
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

    def stamp(when: datetime) -> list[str]:
        return f"{when:%Y-%m-%d %H:%M:%S} UTC".split()

    assert lines["critical"][1:5] == ["2", *stamp(first_critical)]
    assert lines["default"][1:5] == ["3", *stamp(first_default)]
    assert lines["low"][1:3] == ["0", "-"]
    assert lines[Counted.task_name][1:5] == ["3", *stamp(first_default)]
    assert lines[SleepyCritical.task_name][1:5] == ["2", *stamp(first_critical)]
    # Relative to now, never a signed count of seconds: "in 4m50s".
    assert lines["default"][5] == "in"
    assert lines["default"][6].startswith(("4m", "5m")), lines["default"]
