"""The managed Redis: Deployment and Service `<pool>-redis`, plus a PVC in production.

One replica with the Recreate strategy (a ReadWriteOnce volume cannot be attached to two
pods). With persistence the data lives on the PVC with the append-only file on, so queued and
scheduled jobs survive a restart; without it, in an emptyDir with persistence off.
Memory fails safe: `maxmemory` a margin below the container's limit with `noeviction`, so a
full Redis refuses writes ("OOM command not allowed") instead of evicting jobs or being
OOM-killed. The claim has no owner reference unless the pool asks for `whenDeleted: Delete`:
deleting the pool must not delete the disk holding its jobs.
Pure; must not import kubernetes or kopf.
"""

from __future__ import annotations

from typing import Final

from workerpool_operator import names, profiles
from workerpool_operator.builders import pods
from workerpool_operator.model import Json, Owner, PoolSpec
from workerpool_operator.quantity import parse_quantity
from workerpool_operator.references import REDIS_PASSWORD_KEY

# The official image's `redis` user; set explicitly because we bypass its entrypoint (which
# would otherwise start as root to chown /data).
REDIS_UID: Final = 999
DATA_VOLUME: Final = "data"


def redis_maxmemory(pool: PoolSpec) -> int:
    """Bytes Redis may hold: a margin below the container's memory limit (profiles.py)."""
    limit = parse_quantity(pool.redis.resources.limits["memory"])
    return int(limit * profiles.REDIS_MAXMEMORY_PERCENT / 100)


def redis_command(pool: PoolSpec) -> list[str]:
    command = [
        "redis-server",
        "--port", str(names.REDIS_PORT),
        "--requirepass", "$(REDIS_PASSWORD)",
        "--dir", "/data",
        "--maxmemory", str(redis_maxmemory(pool)),
        # Never drop a key to make room: every key is a job, a schedule or a result.
        "--maxmemory-policy", "noeviction",
    ]  # fmt: skip
    if pool.redis.persistence:
        return [*command, "--appendonly", "yes"]
    # No volume worth writing to: no snapshots, no AOF.
    return [*command, "--appendonly", "no", "--save", ""]


def _ping(period: int, failures: int) -> Json:
    # redis-cli reads REDISCLI_AUTH, so the probe needs no password on its command line.
    return {
        "exec": {"command": ["sh", "-c", "redis-cli ping | grep -q PONG"]},
        "periodSeconds": period,
        "timeoutSeconds": 5,
        "failureThreshold": failures,
    }


def build_redis_deployment(pool: PoolSpec, owner: Owner, digests: pods.Digests) -> Json:
    secret = names.child_name(pool.name, "redis")
    container: Json = {
        "name": names.CONTAINERS["redis"],
        "image": pool.redis.image,
        "command": redis_command(pool),
        "env": [
            pods.secret_env("REDIS_PASSWORD", secret, REDIS_PASSWORD_KEY),
            {"name": "REDISCLI_AUTH", "value": "$(REDIS_PASSWORD)"},
        ],
        "ports": [{"name": "redis", "containerPort": names.REDIS_PORT, "protocol": "TCP"}],
        "resources": pool.redis.resources.to_k8s(),
        "securityContext": pods.container_security_context(),
        "volumeMounts": [{"name": DATA_VOLUME, "mountPath": "/data"}],
        "terminationMessagePolicy": pods.TERMINATION_MESSAGE_POLICY,
        # Loading a large append-only file takes time; liveness waits for the first PONG.
        "startupProbe": _ping(period=5, failures=60),
        "readinessProbe": _ping(period=5, failures=3),
        "livenessProbe": _ping(period=10, failures=6),
    }
    volume: Json = (
        {"name": DATA_VOLUME, "persistentVolumeClaim": {"claimName": secret}}
        if pool.redis.persistence
        else {"name": DATA_VOLUME, "emptyDir": {}}
    )
    pod_spec: Json = {
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "terminationGracePeriodSeconds": 30,
        "securityContext": pods.pod_security_context(REDIS_UID, REDIS_UID, REDIS_UID),
        **pods.scheduling(pool.pod),
        "containers": [container],
        "volumes": [volume],
    }
    return pods.deployment(
        pool,
        owner,
        "redis",
        replicas=1,
        strategy={"type": "Recreate"},
        pod_spec=pod_spec,
        digests=digests,
    )


def build_redis_service(pool: PoolSpec, owner: Owner) -> Json:
    return pods.cluster_ip_service(pool, owner, "redis", "redis", names.REDIS_PORT)


def build_redis_pvc(pool: PoolSpec, owner: Owner) -> Json:
    spec: Json = {
        "accessModes": ["ReadWriteOnce"],
        "resources": {"requests": {"storage": pool.redis.storage_size}},
    }
    if pool.redis.storage_class is not None:
        spec["storageClassName"] = pool.redis.storage_class
    metadata = pods.metadata(pool, owner, "redis")
    if pool.redis.volume_when_deleted == "Retain":
        # No owner: the garbage collector leaves the claim (and its disk) when the pool goes;
        # a pool of the same name adopts it again (reconcile.py). Server-side apply removes a
        # reference an earlier apply set, so `Delete` back to `Retain` takes effect too.
        del metadata["ownerReferences"]
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": metadata,
        "spec": spec,
    }
