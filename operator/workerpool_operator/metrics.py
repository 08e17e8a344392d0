"""Prometheus metrics of every pool, from what the last reconcile pass read and wrote.

Served by the operator (`workerpool operator --metrics-port`), which already reads each pool's
load (load.py); the pools need no exporter. Every series is labelled by namespace and pool (and
queue or task): never by pod, whose names come and go and would explode the series count.
A custom collector, not long-lived Gauge objects: a deleted pool (or queue) disappears from the
next scrape instead of freezing at its last value. Metric names are listed in the README and
used by the alert rules in charts/ and manifests/ (tests check every rule's metric exists here).
Holds the last snapshot per pool; must not read Redis or the API itself.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Final

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector, CollectorRegistry

from workerpool_operator.load import Load

POOL: Final = ("namespace", "pool")
QUEUE: Final = ("namespace", "pool", "queue")
TASK: Final = ("namespace", "pool", "task")

#: name -> (help, per-queue attribute of load.QueueLoad)
QUEUE_GAUGES: Final = {
    "workerpool_queue_backlog_jobs": ("Jobs queued or due within 30 s, not taken yet.", "backlog"),
    "workerpool_queue_queued_jobs": ("Jobs in the queue list.", "queued"),
    "workerpool_queue_reserved_jobs": ("Jobs taken by workers, not acknowledged.", "reserved"),
    "workerpool_queue_running_jobs": ("Jobs running now (workers' reports).", "running"),
    "workerpool_queue_due_jobs": ("Scheduled jobs due within 30 s.", "due"),
    "workerpool_queue_oldest_job_age_seconds": (
        "Wait of the oldest queued job (lower bound, to one evaluation).",
        "oldest_age_seconds",
    ),
}


@dataclass(frozen=True)
class Snapshot:
    status: Mapping[str, Any]
    load: Load | None


class PoolMetrics(Collector):
    """The latest snapshot of each pool; thread-safe (kopf's handler threads update it)."""

    def __init__(self) -> None:
        self._pools: dict[tuple[str, str], Snapshot] = {}
        self._lock = threading.Lock()

    def update(
        self, namespace: str, name: str, status: Mapping[str, Any] | None, load: Load | None
    ) -> None:
        with self._lock:
            if status is None:  # the pool is gone or going
                self._pools.pop((namespace, name), None)
            else:
                self._pools[(namespace, name)] = Snapshot(status, load)

    def collect(self) -> Iterator[Metric]:
        with self._lock:
            pools = dict(self._pools)
        return iter(families(pools))


def families(pools: Mapping[tuple[str, str], Snapshot]) -> list[Metric]:
    queue_gauges = {
        name: GaugeMetricFamily(name, help_text, labels=QUEUE)
        for name, (help_text, _) in QUEUE_GAUGES.items()
    }
    dead = GaugeMetricFamily("workerpool_dead_jobs", "Jobs in the dead set.", labels=POOL)
    readable = GaugeMetricFamily(
        "workerpool_load_readable", "1 if the last pass read the pool's Redis.", labels=POOL
    )
    desired = GaugeMetricFamily("workerpool_workers_desired", "Worker pods wanted.", labels=POOL)
    ready = GaugeMetricFamily("workerpool_workers_ready", "Worker pods ready.", labels=POOL)
    stalled = GaugeMetricFamily(
        "workerpool_stalled", "1 while the pool's Stalled condition is True.", labels=POOL
    )
    jobs = CounterMetricFamily(
        "workerpool_jobs",
        "Finished job attempts by outcome: processed (all), failed, retried, dead.",
        labels=(*TASK, "outcome"),
    )
    durations = HistogramMetricFamily(
        "workerpool_job_duration_seconds", "Duration of job attempts.", labels=TASK
    )
    for (namespace, pool), snapshot in sorted(pools.items()):
        labels = [namespace, pool]
        status = snapshot.status
        desired.add_metric(labels, float(status.get("desiredReplicas", 0)))
        ready.add_metric(labels, float(status.get("readyReplicas", 0)))
        is_stalled = any(
            c.get("type") == "Stalled" and c.get("status") == "True"
            for c in status.get("conditions") or []
        )
        stalled.add_metric(labels, 1.0 if is_stalled else 0.0)
        load = snapshot.load
        readable.add_metric(labels, 0.0 if load is None else 1.0)
        if load is None:
            continue
        dead.add_metric(labels, float(load.dead))
        for queue, figures in sorted(load.queues.items()):
            for name, (_, attribute) in QUEUE_GAUGES.items():
                queue_gauges[name].add_metric([*labels, queue], float(getattr(figures, attribute)))
        for (task, outcome), count in sorted(load.jobs.items()):
            jobs.add_metric([*labels, task, outcome], float(count))
        for task, histogram in sorted(load.durations.items()):
            durations.add_metric(
                [*labels, task],
                [(bound, float(count)) for bound, count in histogram.buckets],
                histogram.sum,
            )
    return [*queue_gauges.values(), dead, readable, desired, ready, stalled, jobs, durations]


def serve(metrics: PoolMetrics, port: int, address: str = "0.0.0.0") -> None:
    """Serve /metrics from a daemon thread (prometheus_client's own WSGI server)."""
    from prometheus_client import start_http_server

    registry = CollectorRegistry(auto_describe=False)
    registry.register(metrics)
    try:
        start_http_server(port, address, registry=registry)
    except OSError as error:
        raise RuntimeError(f"--metrics-port {port}: cannot listen ({error.strerror})") from error
