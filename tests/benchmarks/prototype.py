"""`python -m tests.benchmarks --prototype`: drain layouts for a pod of concurrency 2, side by side.

Owns the measurement behind the drain design note in tests/benchmarks/PROFILE.md, not a
product feature: the same no-op drain as scenario 3, over layouts of two job slots, each on
its own Redis database, in alternating rounds. `workerpool worker --concurrency 2` as a pod runs
it (since the supervisor design landed: one supervisor forking two solo-pool job slots, each
consumer running its job inline); two independent `--concurrency 1` workers (two supervisors of
one slot each); and plain Celery with the same guarantees. The layouts measured before the
design landed (one consumer feeding a prefork pool, two `--pool solo` workers) are in
PROFILE.md; `--pool` is gone.
"""

from __future__ import annotations

import statistics
import sys
from dataclasses import dataclass, field

from tests.benchmarks import plain_celery
from tests.benchmarks.harness import (
    CELERY_DB,
    LOGLEVEL,
    OURS,
    OURS_DB,
    Bench,
    WorkerProcess,
    prefill,
    progress,
    release,
    wait_drained,
)

WARM_UP = 200


@dataclass
class Layout:
    label: str
    db: int
    task: str
    workers: list[WorkerProcess]
    runs: list[tuple[float, float]] = field(default_factory=list)

    rss_mb: float = 0.0

    def cpu_seconds(self) -> float:
        return sum(worker.cpu_seconds() for worker in self.workers)

    def rss(self) -> int:
        return sum(worker.rss() for worker in self.workers)


def _single_slot_workers(bench: Bench, db: int, *extra: str) -> list[WorkerProcess]:
    env = {**bench.ours_env(), "CELERY_BROKER_URL": bench.url(db)}
    env["CELERY_RESULT_BACKEND"] = bench.url(db)
    argv = [sys.executable, "-m", "worker_runtime", "worker", "--concurrency=1", *extra]
    return [
        bench._spawn(OURS, argv, env, db, f"--loglevel={LOGLEVEL}", f"--hostname=slot{i}@%h")
        for i in range(2)
    ]


def _drain(bench: Bench, layout: Layout, n: int) -> tuple[float, float]:
    client = bench.db_client(layout.db)
    client.flushdb()
    prefill(client, "default", layout.task, ({"n": i} for i in range(n)))
    before = layout.cpu_seconds()
    began = release(client, "default")
    ended = wait_drained(client, plain_celery.QUEUES, layout.workers[0], timeout=60 + n / 20)
    return n / (ended - began), (layout.cpu_seconds() - before) / n * 1000


def run(n: int, rounds: int) -> None:
    with Bench() as bench:
        layouts = [
            Layout("ours, --concurrency 2", OURS_DB, "bench.noop", [bench.start_ours(2)]),
            Layout("ours, 2 x --concurrency 1", 5, "bench.noop", _single_slot_workers(bench, 5)),
            Layout(
                "celery same guarantees -c 2",
                CELERY_DB,
                "plain.noop",
                [bench.start_celery(plain_celery.GUARANTEES, 2)],
            ),
        ]
        for layout in layouts:
            _drain(bench, layout, WARM_UP)
        for index in range(rounds):
            progress(f"prototype round {index + 1}/{rounds}")
            shift = index % len(layouts)
            for layout in layouts[shift:] + layouts[:shift]:
                layout.runs.append(_drain(bench, layout, n))
        for layout in layouts:
            # RSS sums each process's resident pages, so pages a fork shares count twice:
            # an upper bound for the prefork layouts, close for the independent ones.
            layout.rss_mb = layout.rss() / 2**20
    baseline = statistics.median(rate for rate, _ in layouts[-1].runs)
    print(
        f"{n:,} no-op jobs x {rounds} rounds; median jobs/s, ratio to plain Celery, CPU/job, "
        "RSS of all the layout's processes after the drain"
    )
    for layout in layouts:
        rate = statistics.median(rate for rate, _ in layout.runs)
        cpu = statistics.median(cpu for _, cpu in layout.runs)
        print(
            f"  {layout.label:<30} {rate:7.0f} jobs/s  {rate / baseline:4.2f}x  {cpu:5.2f} ms  "
            f"{layout.rss_mb:4.0f} MB  "
            f"(rounds: {', '.join(f'{r:.0f}' for r, _ in layout.runs)})"
        )
