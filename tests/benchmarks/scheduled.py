"""Scenario 5: delayed jobs. Worker memory while they wait, and lag when they fall due.

RSS: a fresh worker's resident memory (main process plus pool children) once it is steady,
then again once many jobs scheduled 10 minutes out are in place. Ours go through `perform_in`
into the Redis schedule set, which workers never load. Plain Celery's `countdown` jobs are
ETA messages that the worker fetches and holds until they are due, so "in place" means the
queue list is empty and the worker's RSS has stopped growing. Redis's own memory growth is
reported beside it, since that is where our jobs wait instead.

Lag: jobs due at evenly spread instants over a short window, each carrying its due time and
recording (start - due) when it runs; p50/p99 per run. Ours via `perform_at` (each
dispatcher sleeps until the earliest due job, at most its 0.2 s interval); plain Celery via
`apply_async(eta=...)`.
Plain Celery runs with its defaults in both parts.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

from tests.benchmarks import plain_celery
from tests.benchmarks.config import Config
from tests.benchmarks.harness import (
    CELERY,
    OURS,
    UNACKED,
    Bench,
    BenchmarkError,
    WorkerProcess,
    progress,
    wait_stable_rss,
)
from tests.benchmarks.jobs import DueRecorder, Noop
from tests.benchmarks.names import DUE_LAGS
from tests.benchmarks.report import Row, ours_at_most, percentile
from tests.controlplane.waiting import wait_for
from worker_runtime import current

CONCURRENCY = 2
DELAY = 600.0
MB = 1024 * 1024
#: Seconds between the enqueue and the first due time: enqueueing must finish before jobs fall
#: due, or the lag would include the producer's own slowness.
LAG_LEAD = 3.0


def _used_memory(bench: Bench) -> int:
    return int(bench.ours.info("memory")["used_memory"])


def _rss_ours(bench: Bench, n: int) -> tuple[float, float]:
    """(worker RSS growth, Redis memory growth) in MB for `n` jobs scheduled with perform_in."""
    bench.flush()
    worker = bench.start_ours(CONCURRENCY)
    before = wait_stable_rss(worker)
    redis_before = _used_memory(bench)
    _perform_in_threads(n)
    # Several dispatcher passes now scan a full schedule set; wait_stable_rss waits them out.
    after = wait_stable_rss(worker)
    redis_after = _used_memory(bench)
    waiting = int(bench.ours.zcard(current().keys.schedule("default")))
    worker.stop()
    if waiting != n:
        raise BenchmarkError(f"{waiting} jobs in the schedule set, expected {n}")
    return (after - before) / MB, (redis_after - redis_before) / MB


def _perform_in_threads(n: int, threads: int = 4) -> None:
    """`perform_in` n times from a few producer threads (a web app's request threads).

    Only to put 100,000 jobs in place faster (each call is one round trip); not measured.
    """

    def schedule(lo: int, hi: int) -> None:
        for i in range(lo, hi):
            Noop.perform_in(DELAY, n=i)

    step = -(-n // threads)
    with ThreadPoolExecutor(threads) as pool:
        for done in [pool.submit(schedule, lo, min(n, lo + step)) for lo in range(0, n, step)]:
            done.result()


def _rss_celery(bench: Bench, n: int) -> tuple[float, float]:
    """(worker RSS growth, Redis memory growth) in MB for `n` countdown jobs held by a worker."""
    bench.flush()
    worker = bench.start_celery(plain_celery.DEFAULTS, CONCURRENCY)
    before = wait_stable_rss(worker)
    redis_before = _used_memory(bench)
    for i in range(n):
        plain_celery.noop.apply_async(kwargs={"n": i}, countdown=DELAY)

    def received() -> bool:
        worker.check_alive()
        return int(bench.celery.llen("default")) == 0

    wait_for(received, timeout=120 + n / 20, message=f"{worker.name} to fetch every ETA job")
    after = wait_stable_rss(worker)
    redis_after = _used_memory(bench)
    held = int(bench.celery.hlen(UNACKED))
    # Warm shutdown would hand thousands of ETA jobs back to Redis first; nothing needs them.
    worker.kill()
    if held != n:
        raise BenchmarkError(f"{worker.name} holds {held} ETA jobs, expected {n}")
    return (after - before) / MB, (redis_after - redis_before) / MB


def _lags(
    bench: Bench,
    config: Config,
    system: str,
    start: Callable[[], WorkerProcess],
    schedule: Callable[[float], object],
) -> list[float]:
    bench.flush()
    client = bench.client(system)
    worker = start()
    n, window = config.lag_jobs, config.lag_window
    first_due = time.time() + LAG_LEAD
    for i in range(n):
        schedule(first_due + window * i / max(1, n - 1))
    if time.time() > first_due:
        raise BenchmarkError(f"enqueueing {n} jobs took longer than the {LAG_LEAD:g} s lead")

    def all_ran() -> bool:
        worker.check_alive()
        return int(client.llen(DUE_LAGS)) >= n

    wait_for(all_ran, timeout=LAG_LEAD + window + 120, interval=0.1, message="due jobs to run")
    lags = [float(raw) for raw in client.lrange(DUE_LAGS, 0, -1)]
    worker.stop()
    return lags


def _schedule_ours(due: float) -> None:
    DueRecorder.perform_at(datetime.fromtimestamp(due, UTC), due=due)


def _schedule_celery(due: float) -> None:
    plain_celery.due.apply_async(kwargs={"due": due}, eta=datetime.fromtimestamp(due, UTC))


def run_rss(bench: Bench, config: Config) -> list[Row]:
    paired = config.scheduled_celery
    large = config.scheduled_ours
    ours: list[float] = []
    ours_large: list[float] = []
    celery: list[float] = []
    ours_redis: list[float] = []
    celery_redis: list[float] = []
    for run in range(config.runs):
        progress(f"  RSS run {run + 1}/{config.runs}")
        growth, redis_growth = _rss_ours(bench, paired)
        ours.append(growth)
        ours_redis.append(redis_growth)
        growth, redis_growth = _rss_celery(bench, paired)
        celery.append(growth)
        celery_redis.append(redis_growth)
        # Ours at full size once: it puts 100,000 jobs in place (~30 s) to show a flat line.
        if large != paired and run == 0:
            began = time.monotonic()
            ours_large.append(_rss_ours(bench, large)[0])
            progress(f"  ours with {large:,} scheduled: {time.monotonic() - began:.0f} s")
    bench.flush()
    target = ours_at_most(20, "MB")
    rows = [
        Row(
            "5 scheduled",
            f"worker RSS growth, {paired:,} jobs 10 min out",
            "MB",
            "lower",
            ours,
            celery,
            celery_config="defaults, countdown",
            target=target if large == paired else None,
            signed=True,
            compare="difference",
        )
    ]
    if large != paired:
        per_job = (rows[0].celery or 0.0) / paired
        rows.append(
            Row(
                "5 scheduled",
                f"worker RSS growth, {large:,} jobs 10 min out",
                "MB",
                "lower",
                ours_large,
                [],
                target=target,
                signed=True,
                compare="difference",
                note=f"first run only; plain Celery not run at {large:,} (see header), "
                f"linear estimate from {paired:,}: ~{per_job * large:,.0f} MB",
            )
        )
    rows.append(
        Row(
            "5 scheduled",
            f"Redis memory growth, {paired:,} jobs 10 min out",
            "MB",
            "lower",
            ours_redis,
            celery_redis,
            celery_config="defaults, countdown",
            signed=True,
            compare="difference",
            note="where the waiting jobs live: our schedule set vs Celery's unacked hash",
        )
    )
    return rows


def run_lag(bench: Bench, config: Config) -> list[Row]:
    p50: dict[str, list[float]] = {OURS: [], CELERY: []}
    p99: dict[str, list[float]] = {OURS: [], CELERY: []}
    contenders: list[tuple[str, Callable[[], WorkerProcess], Callable[[float], object]]] = [
        (OURS, lambda: bench.start_ours(CONCURRENCY), _schedule_ours),
        (
            CELERY,
            lambda: bench.start_celery(plain_celery.DEFAULTS, CONCURRENCY),
            _schedule_celery,
        ),
    ]
    for run in range(config.runs):
        progress(f"  lag run {run + 1}/{config.runs}")
        for system, start, schedule in contenders:
            lags = _lags(bench, config, system, start, schedule)
            p50[system].append(percentile(lags, 50))
            p99[system].append(percentile(lags, 99))
    bench.flush()
    what = f"{config.lag_jobs:,} jobs due within {config.lag_window:g} s"
    return [
        Row(
            "5 scheduled",
            f"due-job lag p50, {what}",
            "s",
            "lower",
            p50[OURS],
            p50[CELERY],
            celery_config="defaults, eta",
            signed=True,
        ),
        Row(
            "5 scheduled",
            f"due-job lag p99, {what}",
            "s",
            "lower",
            p99[OURS],
            p99[CELERY],
            celery_config="defaults, eta",
            target=ours_at_most(0.05, "s", "<= 50 ms"),
            signed=True,
        ),
    ]


def run(bench: Bench, config: Config, selected: Collection[str]) -> list[Row]:
    rows = []
    if "scheduled" in selected:
        rows += run_rss(bench, config)
    if "lag" in selected:
        rows += run_lag(bench, config)
    return rows
