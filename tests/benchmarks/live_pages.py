"""Render times of the Busy, Queues (list and one queue), Cron and Dashboard pages at scale.

`python -m tests.benchmarks.live_pages [--jobs N] [--rounds R]`: a real redis-server and a
real `workerpool flower`; N jobs (default 100,000) wait in each of `default` and `low`, 50
pods of 8 busy slots report on Busy, 20 cron schedules are declared, and the minute and day
timelines are full. Each page is fetched R times over HTTP with the login; the median and
worst times are printed (target: under 200 ms a page), then the time to delete one waiting job
at the front and at the back of a queue, with and without the position a page passes. A
benchmark, not a test: it asserts nothing about speed.
"""

from __future__ import annotations

import argparse
import base64
import os
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import redis

from tests.controlplane.waiting import wait_for
from worker_runtime.core.keys import Keys
from worker_runtime.core.messages import build_message, new_job_id
from worker_runtime.local.embedded_redis import EmbeddedRedis, free_port
from worker_runtime.store import busy, cron_state, job_stats, queues
from worker_runtime.store.enqueue import push_many

PAGES = ("/dashboard", "/busy", "/queues", "/queues/default", "/queues/low", "/cron")
LOGIN = "bench:bench-pages"


def fill(client: redis.Redis, jobs: int) -> None:
    keys, now = Keys(), time.time()
    for queue in ("default", "low"):
        messages = [
            build_message(
                task_name="bench.Work",
                job_id=new_job_id(),
                queue=queue,
                args=(i, "x" * 40),
                kwargs={"n": i},
                enqueued_at=now - 60,
            )
            for i in range(jobs)
        ]
        push_many(client, queue, messages)
    for p in range(50):
        jobs_running = tuple(
            busy.RunningJob(s + 1, new_job_id(), "bench.Work", "(1, 'x')", "default", 0, now)
            for s in range(8)
        )
        report = busy.PodReport(f"pod-{p}", 8, ("critical", "default", "low"), "0", 1, now)
        busy.publish(client, keys, busy.PodReport(**{**report.__dict__, "jobs": jobs_running}), 600)
    cron_state.declare(
        client,
        keys,
        [
            cron_state.Schedule(f"bench.Cron{i}", "*/5 * * * *", "UTC", "default", "allow")
            for i in range(20)
        ],
    )
    for minute in range(60):
        client.hset(
            job_stats.minute_key(now - 60 * minute), mapping={"processed": 100, "failed": 3}
        )
    for day in range(30):
        client.hset(
            job_stats.day_key(now - 86_400 * day), mapping={"processed": 9000, "failed": 70}
        )


def fetch(url: str) -> float:
    request = urllib.request.Request(url)
    request.add_header("Authorization", "Basic " + base64.b64encode(LOGIN.encode()).decode())
    started = time.perf_counter()
    with urllib.request.urlopen(request, timeout=60) as answer:
        answer.read()
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=20)
    options = parser.parse_args()
    with EmbeddedRedis(databases=2) as server:
        url = server.url(0)
        client = redis.Redis.from_url(url)
        fill(client, options.jobs)
        port = free_port()
        env = {**os.environ, "CELERY_BROKER_URL": url, "CELERY_RESULT_BACKEND": url}
        env["FLOWER_BASIC_AUTH"] = LOGIN
        with Path(f"/tmp/bench-pages-{port}.log").open("wb") as log:
            flower = subprocess.Popen(
                [sys.executable, "-m", "worker_runtime", "flower", f"--port={port}"],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        try:
            base = f"http://127.0.0.1:{port}"
            wait_for(lambda: _up(base), timeout=60, message="flower to answer")
            print(
                f"{'PAGE':<18} {'MEDIAN ms':>10} {'WORST ms':>10}   "
                f"({options.jobs:,} jobs in each of default and low)"
            )
            for path in PAGES:
                fetch(base + path)  # warm: templates compiled, connections open
                times = [fetch(base + path) for _ in range(options.rounds)]
                print(
                    f"{path:<18} {1000 * statistics.median(times):>10.1f} "
                    f"{1000 * max(times):>10.1f}"
                )
            deletes(client)
        finally:
            flower.terminate()
            flower.wait(20)


def deletes(client: redis.Redis) -> None:
    """Deleting one waiting job: the page passes where it showed it; the CLI does not."""
    for label, back, hint in (
        ("delete, next job", False, False),
        ("delete, last job", True, False),
        ("delete, last (page)", True, True),
    ):
        position = int(client.llen("low")) - 1 if back else 0
        [job] = queues.browse(client, "low", position, 1)
        started = time.perf_counter()
        queues.delete(client, "low", job.id, position if hint else None)
        print(f"{label:<18} {1000 * (time.perf_counter() - started):>10.1f}")


def _up(base: str) -> bool:
    try:
        fetch(base + "/busy")
    except OSError:
        return False
    return True


if __name__ == "__main__":
    main()
