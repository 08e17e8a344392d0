"""PodDisruptionBudgets: `<pool>-redis` always (managed Redis), `<pool>-worker` in production.

Redis gets `maxUnavailable: 0`: an eviction (`kubectl drain`, a node upgrade, the cluster
autoscaler) would restart it, and a preview Redis keeps its queue only in memory, so the drain
waits until an admin moves it on purpose (README "Your jobs' data"). Production workers may
be evicted one at a time: each finishes its running jobs in its grace period while the others
keep consuming. Beat and Flower hold nothing and get no budget. Pure; no I/O.
"""

from __future__ import annotations

from workerpool_operator import names
from workerpool_operator.builders import pods
from workerpool_operator.model import Json, Owner, PoolSpec
from workerpool_operator.names import Component


def wants_worker_budget(pool: PoolSpec) -> bool:
    return pool.environment == "production"


def build_redis_budget(pool: PoolSpec, owner: Owner) -> Json:
    return _budget(pool, owner, "redis", max_unavailable=0)


def build_worker_budget(pool: PoolSpec, owner: Owner) -> Json:
    return _budget(pool, owner, "worker", max_unavailable=1)


def _budget(pool: PoolSpec, owner: Owner, component: Component, max_unavailable: int) -> Json:
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": pods.metadata(pool, owner, component),
        "spec": {
            "maxUnavailable": max_unavailable,
            "selector": {"matchLabels": names.selector_labels(pool.name, component)},
            # A pod that is not ready (crash-looping, a worker stuck starting) may still be
            # evicted: the budget protects running work, not a broken pod from a drain.
            "unhealthyPodEvictionPolicy": "AlwaysAllow",
        },
    }
