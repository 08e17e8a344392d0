"""Scenario 6, second half: the operator with many pools whose load it really reads.

Every pool uses `spec.redis.external` (the CRD's option for a Redis the operator does not run)
pointing at its own database of ONE real redis-server started here, and autoscales. One server
with a database per pool, not a server per pool: keys of different databases are as separate as
on separate servers for the load commands (all per database), the operator still holds one
connection per pool (one client per pool, as with 200 servers), and one process instead of 200
adds no scheduling noise to a 2-core machine. It also makes the server's `INFO` a count of every
command and read of every pool's evaluation.

Measured over a steady window, with no backlog anywhere:
- Redis commands and round trips per pool evaluation: deltas of `INFO commandstats` and of
  `total_reads_processed` (one read per request the server receives: a pipelined batch is one),
  divided by the evaluations, counted as `HLEN` calls (one per evaluation, load.commands);
- the operator's CPU (seconds per minute) and its RSS.
Then the scale-up decision latency, one pool at a time: jobs pushed into one autoscaled pool's
queue (the rest idle), until the operator raises that pool's worker Deployment replicas, as seen
by the raw Deployment watch. Must not format figures (report.py does).
"""

from __future__ import annotations

import json
import random
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import redis

from tests.benchmarks.harness import BenchmarkError, progress
from tests.benchmarks.operator_env import OperatorProcess
from tests.controlplane.waiting import wait_for
from worker_runtime.local.embedded_redis import EmbeddedRedis

QUEUE = "default"  # a queue every pool consumes by default
MIN_REPLICAS, MAX_REPLICAS = 1, 4
#: Jobs pushed per scale-up trial: demand above MIN_REPLICAS x jobsPerWorker (= concurrency).
BACKLOG_JOBS = 20
MB = 1024 * 1024


def secret_name(pool: str) -> str:
    return f"{pool}-redis-url"


def pool_with_load(name: str, namespace: str, group_version: str) -> dict[str, Any]:
    """A pool on an external Redis (its URL in a Secret) that autoscales on its load."""
    return {
        "apiVersion": group_version,
        "kind": "WorkerPool",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "image": "shop:1.0",
            "workerPackages": ["shop.jobs"],
            "redis": {"external": {"secretName": secret_name(name)}},
            "autoscaling": {"minReplicas": MIN_REPLICAS, "maxReplicas": MAX_REPLICAS},
        },
    }


def start_redis(pools: int) -> EmbeddedRedis:
    return EmbeddedRedis(databases=pools).start()


@dataclass(frozen=True)
class Counters:
    calls: dict[str, int]  # command -> calls
    reads: int  # total_reads_processed

    @classmethod
    def read(cls, client: redis.Redis) -> Counters:
        info = client.info("all")
        calls = {
            key.removeprefix("cmdstat_"): int(value["calls"])
            for key, value in info.items()
            if key.startswith("cmdstat_")
        }
        return cls(calls, int(info["total_reads_processed"]))

    def minus(self, before: Counters) -> Counters:
        calls = {k: v - before.calls.get(k, 0) for k, v in self.calls.items()}
        return Counters({k: v for k, v in calls.items() if v}, self.reads - before.reads)


@dataclass(frozen=True)
class Steady:
    seconds: float
    evaluations: int
    commands_per_evaluation: float
    round_trips_per_evaluation: float
    commands: dict[str, int]
    cpu_seconds_per_minute: float
    rss_mb: float
    rss_max_mb: float


def steady(operator: OperatorProcess, server: EmbeddedRedis, seconds: float) -> Steady:
    """The operator's cost over `seconds` of routine evaluations (no backlog anywhere)."""
    client = redis.Redis.from_url(server.url(0), max_connections=1)
    try:
        before, cpu_before, began = Counters.read(client), operator.cpu_seconds(), time.monotonic()
        samples = []
        while (elapsed := time.monotonic() - began) < seconds:
            samples.append(operator.rss())
            time.sleep(min(5.0, seconds - elapsed))
        cpu = operator.cpu_seconds() - cpu_before
        delta = Counters.read(client).minus(before)
        elapsed = time.monotonic() - began
        samples.append(operator.rss())
    finally:
        client.close()
    # This process's own INFO is one command and one read of the delta.
    delta.calls["info"] = delta.calls.get("info", 0) - 1
    commands = {k: v for k, v in delta.calls.items() if v and k != "info"}
    evaluations = commands.get("hlen", 0)
    if evaluations == 0:
        raise BenchmarkError(f"no pool evaluation read Redis in {elapsed:.0f} s: {commands}")
    return Steady(
        seconds=elapsed,
        evaluations=evaluations,
        commands_per_evaluation=sum(commands.values()) / evaluations,
        round_trips_per_evaluation=(delta.reads - 1) / evaluations,
        commands=commands,
        cpu_seconds_per_minute=cpu / elapsed * 60,
        rss_mb=samples[-1] / MB,
        rss_max_mb=max(samples) / MB,
    )


def kombu_message() -> str:
    """The fields of a kombu message the load figure reads (its delivery tag)."""
    tag = str(uuid.uuid4())
    return json.dumps({"body": "", "headers": {}, "properties": {"delivery_tag": tag}})


def scale_up_latencies(
    server: EmbeddedRedis,
    databases: dict[str, int],
    pools: list[str],
    raised: Callable[[str], float | None],
    resync_seconds: float,
) -> list[float]:
    """For each of `pools` in turn: push a backlog into its queue at a random moment of the
    resync period, then wait until `raised(pool)` gives when its worker replicas went up."""
    rng = random.Random(13)  # the same moments in every run
    latencies = []
    for pool in pools:
        time.sleep(rng.uniform(0, resync_seconds))
        client = redis.Redis.from_url(server.url(databases[pool]), max_connections=1)
        try:
            client.lpush(QUEUE, *[kombu_message() for _ in range(BACKLOG_JOBS)])
            pushed = time.monotonic()
        finally:
            client.close()
        seen = wait_for(
            lambda pool=pool: raised(pool),  # type: ignore[misc]
            timeout=6 * resync_seconds,
            interval=0.02,
            message=f"the operator to raise {pool}'s worker replicas",
        )
        assert seen is not None  # wait_for returns only a truthy value
        latencies.append(seen - pushed)
        progress(f"  scale-up of {pool}: {seen - pushed:.1f} s after the backlog appeared")
    return latencies
