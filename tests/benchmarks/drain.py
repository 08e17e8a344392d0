"""Scenario 3: one worker (concurrency 2) drains a backlog of no-op jobs.

Four contenders, each a worker on its own Redis database: ours with its defaults; plain
Celery with the same guarantees (target: 2x its rate, issue 14); plain Celery with the same
guarantees and the two result settings ours also turns on (`task_track_started`: one more
result write per job; `result_extended`: larger result documents), which separates the cost
of those features from the cost of our code; and plain Celery with its own defaults (target:
at least its rate). Worker CPU per job has a target too: at most 1 ms. All start once and are
warmed up; then short rounds alternate between them (rotating who goes first), so a machine
whose load changes by the minute hits all alike.
A round: the backlog is prefilled in a side list while the worker idles in BRPOP, appears on
`default` at once (RENAME), and the clock runs until nothing is queued or unacked. With late
acks that means every job finished and its result was stored; with early acks (Celery's
defaults) at most two no-ops may still be running. Worker CPU per job (main process plus
pool children) is reported beside the rate: it barely moves with the machine's load.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from tests.benchmarks import plain_celery
from tests.benchmarks.config import Config
from tests.benchmarks.harness import (
    CELERY_DB,
    OURS,
    OURS_DB,
    Bench,
    BenchmarkError,
    WorkerProcess,
    prefill,
    release,
    wait_drained,
)
from tests.benchmarks.report import Row, ours_at_most, ratio_at_least
from tests.controlplane.waiting import WaitTimeout, wait_for

CONCURRENCY = 2
WARM_UP_JOBS = 100
#: Each plain contender needs its own database so no two workers share a queue.
CELERY_DEFAULTS_DB = 3
CELERY_FEATURES_DB = 4


@dataclass
class Contender:
    label: str
    db: int
    task: str
    worker: WorkerProcess
    rates: list[float] = field(default_factory=list)
    cpu_ms: list[float] = field(default_factory=list)


def _results_stored(bench: Bench, db: int) -> int:
    return sum(1 for _ in bench.db_client(db).scan_iter("celery-task-meta-*", count=1000))


def _round(bench: Bench, contender: Contender, n: int) -> tuple[float, float]:
    """Drain `n` jobs once; return (jobs/s, worker CPU ms per job)."""
    client = bench.db_client(contender.db)
    client.flushdb()
    prefill(client, "default", contender.task, ({"n": i} for i in range(n)))
    cpu_before = contender.worker.cpu_seconds()
    began = release(client, "default")
    # Generous: even at 20 jobs/s the round ends; a wedged worker fails the benchmark.
    ended = wait_drained(client, plain_celery.QUEUES, contender.worker, timeout=60 + n / 20)
    cpu = contender.worker.cpu_seconds() - cpu_before
    # Every job must have succeeded, or a fast failure would pass for throughput. With early
    # acks the last jobs may still be running when the queue empties: give them a moment.
    try:
        wait_for(lambda: _results_stored(bench, contender.db) >= n, timeout=10, interval=0.1)
    except WaitTimeout:
        stored = _results_stored(bench, contender.db)
        raise BenchmarkError(
            f"{contender.worker.name}: {stored} results stored, expected {n}"
        ) from None
    return n / (ended - began), cpu / n * 1000


def run(bench: Bench, config: Config) -> list[Row]:
    n = config.drain_jobs
    bench.flush()
    contenders = [
        Contender(OURS, OURS_DB, "bench.noop", bench.start_ours(CONCURRENCY)),
        Contender(
            plain_celery.GUARANTEES,
            CELERY_DB,
            "plain.noop",
            bench.start_celery(plain_celery.GUARANTEES, CONCURRENCY),
        ),
        Contender(
            plain_celery.FEATURES,
            CELERY_FEATURES_DB,
            "plain.noop",
            bench.start_celery(plain_celery.FEATURES, CONCURRENCY, db=CELERY_FEATURES_DB),
        ),
        Contender(
            plain_celery.DEFAULTS,
            CELERY_DEFAULTS_DB,
            "plain.noop",
            bench.start_celery(plain_celery.DEFAULTS, CONCURRENCY, db=CELERY_DEFAULTS_DB),
        ),
    ]
    # First jobs pay for lazy set-up (connections, first fork's imports); not measured.
    for contender in contenders:
        _round(bench, contender, WARM_UP_JOBS)
    for index in range(config.drain_rounds):
        shift = index % len(contenders)
        for contender in contenders[shift:] + contenders[:shift]:
            rate, cpu_ms = _round(bench, contender, n)
            contender.rates.append(rate)
            contender.cpu_ms.append(cpu_ms)
    for contender in contenders:
        contender.worker.stop()
    bench.flush()
    ours, same, features, defaults = contenders
    what = f"{n:,} no-op jobs x {config.drain_rounds} rounds, 1 worker x2"
    guarantees = "late ack, prefetch 1, -E, priority"
    with_features = guarantees + " + track_started, result_extended"
    return [
        Row(
            "3 drain",
            f"{what}, same guarantees",
            "jobs/s",
            "higher",
            ours.rates,
            same.rates,
            celery_config=guarantees,
            target=ratio_at_least(2.0),
        ),
        Row(
            "3 drain",
            "same guarantees and result features",
            "jobs/s",
            "higher",
            ours.rates,
            features.rates,
            celery_config=with_features,
        ),
        Row(
            "3 drain",
            "Celery defaults",
            "jobs/s",
            "higher",
            ours.rates,
            defaults.rates,
            celery_config="defaults",
            target=ratio_at_least(1.0),
        ),
        Row(
            "3 drain",
            "worker CPU per job, same guarantees",
            "ms",
            "lower",
            ours.cpu_ms,
            same.cpu_ms,
            celery_config=guarantees,
            target=ours_at_most(1.0, "ms"),
            note="every worker process (main + pool children or job slots), per job; "
            "Redis's own CPU not included",
        ),
        Row(
            "3 drain",
            "worker CPU per job, same guarantees and result features",
            "ms",
            "lower",
            ours.cpu_ms,
            features.cpu_ms,
            celery_config=with_features,
        ),
    ]
