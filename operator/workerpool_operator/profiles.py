"""Environment profiles: the defaults behind every field a WorkerPool leaves out.

The worker's numbers are the profiles the README and the CRD's descriptions promise (preview:
1 replica, concurrency 8, 200m CPU / 512Mi; production: 3 replicas, concurrency 8, 500m CPU /
1Gi). Defaults that depend on the profile live here, NOT in the CRD schema: a schema default would
make an omitted field indistinguishable from an explicit one. Pure data; no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from workerpool_operator.model import Environment, Resources

DEFAULT_QUEUES: Final = ("critical", "default", "low")
DEFAULT_REDIS_IMAGE: Final = "redis:7.4-alpine"
DEFAULT_TIMEZONE: Final = "UTC"
DEFAULT_LOG_LEVEL: Final = "INFO"
DEFAULT_LOG_FORMAT: Final = "text"
# A warm shutdown lets running jobs finish; 5 minutes covers typical jobs.
DEFAULT_WORKER_GRACE_SECONDS: Final = 300
DEFAULT_UID: Final = 10001
# Redis keeps a quarter of its memory limit for what `maxmemory` does not count (the
# append-only file rewrite's copy-on-write fork, client buffers, fragmentation), so a full
# Redis refuses writes (noeviction) instead of being OOM-killed (builders/redis.py).
REDIS_MAXMEMORY_PERCENT: Final = 75
MIN_REDIS_MEMORY_LIMIT: Final = 32 * 2**20


@dataclass(frozen=True)
class Profile:
    replicas: int
    concurrency: int
    worker: Resources
    beat: Resources
    flower: Resources
    redis: Resources
    redis_persistence: bool
    redis_storage_size: str


def _res(cpu: str, memory: str, cpu_limit: str, memory_limit: str) -> Resources:
    return Resources(
        requests={"cpu": cpu, "memory": memory},
        limits={"cpu": cpu_limit, "memory": memory_limit},
    )


# Memory limit == request for workers: a pool that needs more memory than it reserved should
# fail visibly (OOMKilled) instead of being evicted at random under node pressure.
# CPU limits are above the requests because job load is bursty.
_BEAT = _res("50m", "128Mi", "500m", "256Mi")
_FLOWER = _res("50m", "256Mi", "500m", "512Mi")

PROFILES: Final[dict[Environment, Profile]] = {
    "preview": Profile(
        replicas=1,
        concurrency=8,
        worker=_res("200m", "512Mi", "1", "512Mi"),
        beat=_BEAT,
        flower=_FLOWER,
        redis=_res("50m", "128Mi", "500m", "256Mi"),
        # Preview environments are disposable: queued jobs may be lost with the Redis pod.
        redis_persistence=False,
        redis_storage_size="1Gi",
    ),
    "production": Profile(
        replicas=3,
        concurrency=8,
        worker=_res("500m", "1Gi", "2", "1Gi"),
        beat=_BEAT,
        flower=_FLOWER,
        redis=_res("250m", "512Mi", "1", "1Gi"),
        # Queued and scheduled jobs must survive a Redis restart: PVC + append-only file.
        redis_persistence=True,
        redis_storage_size="8Gi",
    ),
}
