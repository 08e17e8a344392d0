"""Scenario 4: how long a critical job waits behind a backlog of 10 ms `low` jobs.

A worker (concurrency 2) is consuming a backlog of `low` jobs when one `critical` job is
queued; the critical job records `time.time()` when it starts, and latency = start - the time
just before the enqueue call (same host, same clock). Several probes per run, spaced out, while
the backlog lasts. Ours runs with its defaults (strict priority, prefetch 1); plain Celery with
its defaults, consuming `-Q critical,default,low` in kombu's default round-robin order with
four prefetched messages per process, which is what most users run.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from tests.benchmarks import plain_celery
from tests.benchmarks.config import Config
from tests.benchmarks.harness import (
    CELERY,
    OURS,
    Bench,
    BenchmarkError,
    WorkerProcess,
    prefill,
    release,
)
from tests.benchmarks.jobs import CriticalMarker
from tests.benchmarks.names import CRITICAL_STARTS
from tests.benchmarks.report import Row, median, ours_at_most
from tests.controlplane.waiting import wait_for

CONCURRENCY = 2
LOW_JOB_SECONDS = 0.01
#: Pause between probes, so each one finds the worker in its steady backlog state.
PROBE_SPACING = 0.3


def _probe(
    bench: Bench, system: str, worker: WorkerProcess, enqueue: Callable[[int], object], probe: int
) -> float:
    client = bench.client(system)
    queued_at = time.time()
    enqueue(probe)

    def started() -> bool:
        worker.check_alive()
        return int(client.llen(CRITICAL_STARTS)) > probe

    wait_for(started, timeout=30, interval=0.002, message=f"{worker.name}: critical probe")
    raw = client.lindex(CRITICAL_STARTS, probe)
    if not isinstance(raw, bytes):
        raise BenchmarkError(f"{worker.name}: probe {probe} recorded nothing")
    tag, stamp = raw.decode().split()
    if int(tag) != probe:
        raise BenchmarkError(f"{worker.name}: probe {tag} started instead of {probe}")
    return float(stamp) - queued_at


def _measure(
    bench: Bench,
    config: Config,
    system: str,
    start: Callable[[], WorkerProcess],
    task: str,
    enqueue: Callable[[int], object],
) -> list[float]:
    """One run: the latencies of `priority_probes` probes against a fresh worker."""
    bench.flush()
    client = bench.client(system)
    worker = start()
    n = config.priority_backlog
    prefill(client, "low", task, ({"n": i} for i in range(n)))
    release(client, "low")
    # "A worker running": wait until it is busy with the backlog before the first probe.
    wait_for(lambda: int(client.llen("low")) < n - 8, timeout=30, interval=0.01)
    latencies = []
    for probe in range(config.priority_probes):
        latencies.append(_probe(bench, system, worker, enqueue, probe))
        time.sleep(PROBE_SPACING)
    if int(client.llen("low")) == 0:
        raise BenchmarkError(f"{worker.name}: backlog ran out before the last probe")
    # The backlog is abandoned, not drained: kill rather than wait for a warm shutdown.
    worker.kill()
    bench.flush()
    return latencies


def run(bench: Bench, config: Config) -> list[Row]:
    ours: list[list[float]] = []
    celery: list[list[float]] = []
    for _ in range(config.runs):
        ours.append(
            _measure(
                bench,
                config,
                OURS,
                lambda: bench.start_ours(CONCURRENCY),
                "bench.low10ms",
                lambda probe: CriticalMarker.perform_async(probe=probe),
            )
        )
        celery.append(
            _measure(
                bench,
                config,
                CELERY,
                lambda: bench.start_celery(plain_celery.DEFAULTS, CONCURRENCY),
                "plain.low10ms",
                lambda probe: plain_celery.critical.apply_async(kwargs={"probe": probe}),
            )
        )
    probes = config.priority_probes
    limit = LOW_JOB_SECONDS + 0.05
    return [
        Row(
            "4 priority",
            f"critical job start behind {config.priority_backlog:,} x 10 ms low jobs, median",
            "s",
            "lower",
            [_median(run) for run in ours],
            [_median(run) for run in celery],
            celery_config="defaults",
            note=f"{probes} probe(s) per run: per-run median (or worst), then median over runs",
        ),
        Row(
            "4 priority",
            f"same, worst of {probes} probe(s)",
            "s",
            "lower",
            [max(run) for run in ours],
            [max(run) for run in celery],
            celery_config="defaults",
            target=ours_at_most(limit, "s", f"<= {limit * 1000:.0f} ms"),
        ),
    ]


def _median(values: list[float]) -> float:
    result = median(values)
    assert result is not None
    return result
