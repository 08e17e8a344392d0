"""The beat Deployment `<pool>-beat`: container `celery-beat` running `workerpool beat`.

Always exactly one replica with the Recreate strategy: the dispatcher is exactly-once on
Redis and tolerates two, but a rollout never needs two running. Pure; no I/O.
"""

from __future__ import annotations

from typing import Final

from workerpool_operator.builders import pods
from workerpool_operator.model import Json, Owner, PoolSpec

# Beat runs no jobs, so it needs no long warm shutdown.
BEAT_GRACE_SECONDS: Final = 30


def build_beat_deployment(pool: PoolSpec, owner: Owner, digests: pods.Digests) -> Json:
    command = ["workerpool", "beat", "--loglevel", pool.log_level]
    container = pods.app_container(pool, "beat", command, pool.beat.resources)
    container.update(pods.health_probes("beat"))
    return pods.deployment(
        pool,
        owner,
        "beat",
        replicas=1,
        strategy={"type": "Recreate"},
        pod_spec=pods.app_pod_spec(pool, container, BEAT_GRACE_SECONDS),
        digests=digests,
    )
