"""Scenarios 1 and 2: enqueue throughput from one producer process, no worker running.

`perform_async` in a loop and `perform_bulk` (one pipelined LPUSH per 1,000 jobs) against plain
Celery's `apply_async` loop. Both sides queue the same job (one keyword argument) onto
`default` with a result backend configured, so each returns a usable `AsyncResult`.
One `apply_async` loop per run serves as the baseline of both rows.
"""

from __future__ import annotations

from collections.abc import Callable, Collection

from tests.benchmarks import plain_celery
from tests.benchmarks.config import Config
from tests.benchmarks.harness import Bench, BenchmarkError, timed
from tests.benchmarks.jobs import Noop
from tests.benchmarks.report import Row, ratio_at_least

#: Jobs per timed slice: each run alternates slices of every contender (see `run`).
SLICE = 2_000


#: (label, enqueue jobs lo..hi-1, rate of each run)
Contender = tuple[str, Callable[[int, int], None], list[float]]


def perform_async(lo: int, hi: int) -> None:
    for i in range(lo, hi):
        Noop.perform_async(n=i)


def perform_bulk(lo: int, hi: int) -> None:
    Noop.perform_bulk([{"n": i} for i in range(lo, hi)])


def apply_async(lo: int, hi: int) -> None:
    for i in range(lo, hi):
        plain_celery.noop.apply_async(kwargs={"n": i})


def run(bench: Bench, config: Config, selected: Collection[str]) -> list[Row]:
    """Each run enqueues `enqueue_jobs` per contender, in slices that alternate contenders.

    The slices rotate who goes first, and each contender's rate is its job count over the sum
    of its slices' times: a load spike on a shared machine lands on all of them alike.
    """
    n = config.enqueue_jobs
    contenders: list[Contender] = [("celery", apply_async, [])]
    if "enqueue" in selected:
        contenders.append(("workerpool", perform_async, []))
    if "bulk" in selected:
        contenders.append(("workerpool", perform_bulk, []))

    # Connections, imports and Celery's lazy set-up happen once before anything is timed.
    bench.flush()
    Noop.perform_async(n=0)
    plain_celery.noop.apply_async(kwargs={"n": 0})

    for _ in range(config.runs):
        _timed_run(bench, contenders, n)
    bench.flush()
    return _rows(contenders, n, selected)


def _timed_run(bench: Bench, contenders: list[Contender], n: int) -> None:
    """One run: every contender enqueues `n` jobs, slice by slice, taking turns."""
    bench.flush()
    slices = [(start, min(n, start + SLICE)) for start in range(0, n, SLICE)]
    spent = [0.0] * len(contenders)
    for index, (lo, hi) in enumerate(slices):
        order = list(range(len(contenders)))
        shift = index % len(order)
        for k in order[shift:] + order[:shift]:
            spent[k] += timed(contenders[k][1], lo, hi)
    for (_, _, rates), seconds in zip(contenders, spent, strict=True):
        rates.append(n / seconds)
    _check_queued(bench, {"celery": n, "workerpool": n * (len(contenders) - 1)})


def _rows(contenders: list[Contender], n: int, selected: Collection[str]) -> list[Row]:
    baseline = contenders[0][2]
    by_action = {action.__name__: rates for _, action, rates in contenders}
    rows = []
    if "enqueue" in selected:
        rows.append(
            Row(
                "1 enqueue",
                f"perform_async vs apply_async, {n:,} jobs",
                "jobs/s",
                "higher",
                by_action["perform_async"],
                baseline,
                target=ratio_at_least(1.0),
            )
        )
    if "bulk" in selected:
        rows.append(
            Row(
                "2 bulk enqueue",
                f"perform_bulk vs apply_async loop, {n:,} jobs",
                "jobs/s",
                "higher",
                by_action["perform_bulk"],
                baseline,
                target=ratio_at_least(10.0),
                note=f"perform_bulk called with {SLICE:,} kwargs at a time (one pipelined "
                "round trip per call, 1,000 jobs per LPUSH)",
            )
        )
    return rows


def _check_queued(bench: Bench, expected: dict[str, int]) -> None:
    for system, count in expected.items():
        queued = int(bench.client(system).llen("default"))
        if queued != count:
            raise BenchmarkError(f"{system}: {queued} jobs queued, expected {count}")
