"""The metrics exposition: pool, queue and task labels, never pods; gone pools disappear."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, generate_latest
from workerpool_operator.load import Durations, Load, PodLoad, QueueLoad
from workerpool_operator.metrics import PoolMetrics

STATUS = {
    "desiredReplicas": 3,
    "readyReplicas": 2,
    "conditions": [{"type": "Stalled", "status": "False"}],
}
LOAD = Load(
    queues={"default": QueueLoad(7, 2, 1, 3, 42.0), "low": QueueLoad(0, 0, 0, 0, 0.0)},
    pods={"shop-worker-abc12": PodLoad(2, 1)},
    unacked=2,
    dead=5,
    jobs={("shop.Mail", "processed"): 9, ("shop.Mail", "dead"): 1},
    durations={"shop.Mail": Durations((("0.1", 4), ("+Inf", 9)), 12.5)},
)


def scrape(metrics: PoolMetrics) -> str:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(metrics)
    return generate_latest(registry).decode()


def test_queue_figures_dead_set_workers_and_task_counters_are_exposed() -> None:
    metrics = PoolMetrics()
    metrics.update("apps", "shop", STATUS, LOAD)
    text = scrape(metrics)
    pool, default, task = 'namespace="apps",pool="shop"', 'queue="default"', 'task="shop.Mail"'
    for line in (
        'workerpool_queue_backlog_jobs{namespace="apps",pool="shop",queue="default"} 10.0',
        'workerpool_queue_queued_jobs{namespace="apps",pool="shop",queue="default"} 7.0',
        'workerpool_queue_reserved_jobs{namespace="apps",pool="shop",queue="default"} 2.0',
        'workerpool_queue_running_jobs{namespace="apps",pool="shop",queue="default"} 1.0',
        'workerpool_queue_due_jobs{namespace="apps",pool="shop",queue="default"} 3.0',
        f"workerpool_queue_oldest_job_age_seconds{{{pool},{default}}} 42.0",
        'workerpool_queue_backlog_jobs{namespace="apps",pool="shop",queue="low"} 0.0',
        'workerpool_dead_jobs{namespace="apps",pool="shop"} 5.0',
        'workerpool_workers_desired{namespace="apps",pool="shop"} 3.0',
        'workerpool_workers_ready{namespace="apps",pool="shop"} 2.0',
        'workerpool_stalled{namespace="apps",pool="shop"} 0.0',
        'workerpool_load_readable{namespace="apps",pool="shop"} 1.0',
        f'workerpool_jobs_total{{namespace="apps",outcome="processed",pool="shop",{task}}} 9.0',
        f'workerpool_job_duration_seconds_bucket{{le="0.1",{pool},{task}}} 4.0',
        'workerpool_job_duration_seconds_count{namespace="apps",pool="shop",task="shop.Mail"} 9.0',
        'workerpool_job_duration_seconds_sum{namespace="apps",pool="shop",task="shop.Mail"} 12.5',
    ):
        assert line in text
    assert "shop-worker-abc12" not in text  # never a pod label


def test_a_stalled_pool_without_a_reading_still_reports_its_state() -> None:
    metrics = PoolMetrics()
    stalled = {**STATUS, "conditions": [{"type": "Stalled", "status": "True"}]}
    metrics.update("apps", "shop", stalled, None)
    text = scrape(metrics)
    assert 'workerpool_stalled{namespace="apps",pool="shop"} 1.0' in text
    assert 'workerpool_load_readable{namespace="apps",pool="shop"} 0.0' in text
    assert "workerpool_queue_backlog_jobs{" not in text


def test_a_deleted_pool_disappears_from_the_next_scrape() -> None:
    metrics = PoolMetrics()
    metrics.update("apps", "shop", STATUS, LOAD)
    metrics.update("apps", "shop", None, None)
    assert 'pool="shop"' not in scrape(metrics)
