"""The job pages' render time with 100,000 scheduled jobs, 100,000 retries and 100,000 dead jobs
(`python -m tests.benchmarks.pages [--jobs N] [--runs N]`). Not a test: it prints a table.

A real `workerpool flower` against an embedded Redis filled with the three sets; each page is
fetched `--runs` times over HTTP with basic auth (server render plus transfer on localhost)
and the median and worst times are printed beside the 200 ms target. The sets are filled with
pipelined writes of the exact keys `schedule_set.schedule` and `DeadJobs.add` write (one call
per job would take minutes); a filtered page that matches nothing is the worst case of a
filter (it looks at SCAN_BUDGET entries before offering to continue).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from dataclasses import asdict

import redis
import requests

from tests.controlplane.waiting import wait_for
from worker_runtime.core.keys import Keys
from worker_runtime.core.messages import build_message
from worker_runtime.local.embedded_redis import EmbeddedRedis, free_port
from worker_runtime.store.dead import DeadJob

TARGET_MS = 200.0
AUTH = ("bench", "bench-pages")
TASK = "bench.SendEmailWorker"


def fill(client: redis.Redis, keys: Keys, jobs: int) -> None:
    now = time.time()
    batch = 5_000
    for start in range(0, jobs, batch):
        with client.pipeline(transaction=False) as pipe:
            for n in range(start, min(jobs, start + batch)):
                for kind, index in (("s", keys.scheduled_index), ("r", keys.retries_index)):
                    job_id = f"{kind}-{n:06d}"
                    message = build_message(
                        task_name=TASK,
                        job_id=job_id,
                        queue="default",
                        args=[f"user{n}@example.com"],
                        kwargs={"n": n},
                        retries=0 if kind == "s" else 1 + n % 5,
                    )
                    due = now + 3600 + n
                    pipe.hset(keys.payloads, job_id, message)
                    pipe.zadd(keys.schedule("default"), {job_id: due})
                    pipe.zadd(index, {job_id: due})
                dead_id = f"d-{n:06d}"
                record = DeadJob(
                    dead_id,
                    TASK,
                    "default",
                    [n],
                    {},
                    f"ValueError: {n}",
                    "Traceback ...",
                    3,
                    now - n,
                    now - n,
                )
                pipe.hset(keys.dead_records, dead_id, json.dumps(asdict(record)))
                pipe.zadd(keys.dead, {dead_id: record.failed_at})
            pipe.execute()


def measure(url: str, runs: int) -> tuple[float, float]:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        answer = requests.get(url, auth=AUTH, timeout=60)
        times.append((time.perf_counter() - started) * 1000)
        if answer.status_code != 200:
            raise SystemExit(f"{url}: HTTP {answer.status_code}")
    return statistics.median(times), max(times)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.benchmarks.pages")
    parser.add_argument("--jobs", type=int, default=100_000, help="jobs in each set")
    parser.add_argument("--runs", type=int, default=7)
    options = parser.parse_args(argv)
    with EmbeddedRedis() as server:
        url = server.url(0)
        client = redis.Redis.from_url(url)
        keys = Keys()
        started = time.perf_counter()
        fill(client, keys, options.jobs)
        print(
            f"filled 3 x {options.jobs:,} jobs in {time.perf_counter() - started:.1f}s",
            file=sys.stderr,
        )
        port = free_port()
        env = {
            **os.environ,
            "CELERY_BROKER_URL": url,
            "CELERY_RESULT_BACKEND": url,
            "FLOWER_BASIC_AUTH": ":".join(AUTH),
        }
        flower = subprocess.Popen(
            [sys.executable, "-m", "worker_runtime", "flower", f"--port={port}"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        base = f"http://127.0.0.1:{port}"
        try:
            wait_for(lambda: _answers(f"{base}/dead"), timeout=60, message="flower to answer")
            last = options.jobs - 50
            pages = [
                "/scheduled",
                f"/scheduled?offset={last}",
                "/scheduled?class=NoSuchWorker",
                "/retries",
                f"/retries?offset={last}",
                "/retries?q=no-such-text",
                "/dead",
                f"/dead?offset={last}",
                "/dead?q=no-such-text",
                "/dead/d-000042",
            ]
            print(f"{'PAGE':<40} {'MEDIAN ms':>10} {'WORST ms':>9}  TARGET {TARGET_MS:.0f} ms")
            for path in pages:
                median, worst = measure(base + path, options.runs)
                verdict = "ok" if median < TARGET_MS else "OVER"
                print(f"{path:<40} {median:>10.1f} {worst:>9.1f}  {verdict}")
        finally:
            flower.terminate()
            flower.wait(30)


def _answers(url: str) -> bool:
    try:
        return requests.get(url, auth=AUTH, timeout=5).status_code == 200
    except requests.ConnectionError:
        return False


if __name__ == "__main__":
    main()
