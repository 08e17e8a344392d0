"""The worker Deployment `<pool>-worker`: container `celery-worker` running `workerpool worker`.

Its replicas are the pool's (the scale subresource); a rolling update never takes a worker
down before its replacement is up, and the grace period covers a warm shutdown (running jobs
finish after SIGTERM). Pure; must not import kubernetes or kopf.
"""

from __future__ import annotations

from workerpool_operator.builders import pods
from workerpool_operator.model import Json, Owner, PoolSpec


def worker_command(pool: PoolSpec) -> list[str]:
    limits = pool.job_limits
    options = (
        ("--time-limit", limits.time_limit),
        ("--soft-time-limit", limits.soft_time_limit),
        ("--max-tasks-per-child", limits.max_tasks_per_child),
        ("--max-memory-per-child", limits.max_memory_per_child_kib),
    )
    return [
        "workerpool",
        "worker",
        "--concurrency",
        str(pool.concurrency),
        "--queues",
        ",".join(pool.queues),
        "--loglevel",
        pool.log_level,
        # spec.jobLimits: only what is set, so a pool without them renders as before.
        *(part for option, value in options if value for part in (option, str(value))),
    ]


def build_worker_deployment(pool: PoolSpec, owner: Owner, digests: pods.Digests) -> Json:
    container = pods.app_container(pool, "worker", worker_command(pool), pool.resources)
    container.update(pods.health_probes("worker"))
    return pods.deployment(
        pool,
        owner,
        "worker",
        replicas=pool.replicas,
        # maxUnavailable 0: capacity never drops during a rollout, old pods drain their jobs
        # while new ones already consume.
        strategy={
            "type": "RollingUpdate",
            "rollingUpdate": {"maxUnavailable": 0, "maxSurge": "25%"},
        },
        pod_spec=pods.app_pod_spec(pool, container, pool.termination_grace_period_seconds),
        digests=digests,
    )
