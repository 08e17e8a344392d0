"""Flower: Deployment `<pool>-flower` (container `flower`) and its ClusterIP Service on 5555.

Basic auth is always on; the credentials come from a Secret (`username`/`password`) and are
joined into FLOWER_BASIC_AUTH by dependent variable expansion, so they never appear in the
pod spec. Reach it with `kubectl port-forward svc/<pool>-flower 5555`. Pure; no I/O.
"""

from __future__ import annotations

from typing import Final

from workerpool_operator import names
from workerpool_operator.builders import pods
from workerpool_operator.model import Json, Owner, PoolSpec
from workerpool_operator.references import (
    FLOWER_PASSWORD_KEY,
    FLOWER_USERNAME_KEY,
    flower_reference,
)

FLOWER_GRACE_SECONDS: Final = 30
# Not FLOWER_*: Flower reads every FLOWER_<OPTION> variable as an option.
_USER_VAR: Final = "WORKERPOOL_FLOWER_USERNAME"
_PASSWORD_VAR: Final = "WORKERPOOL_FLOWER_PASSWORD"


def _credentials_env(pool: PoolSpec) -> list[Json]:
    secret = flower_reference(pool).name
    return [
        pods.secret_env(_USER_VAR, secret, FLOWER_USERNAME_KEY),
        pods.secret_env(_PASSWORD_VAR, secret, FLOWER_PASSWORD_KEY),
        {"name": "FLOWER_BASIC_AUTH", "value": f"$({_USER_VAR}):$({_PASSWORD_VAR})"},
    ]


def _healthcheck(period: int, failures: int) -> Json:
    # /healthcheck is the one Flower page served without authentication.
    return {
        "httpGet": {"path": "/healthcheck", "port": "http"},
        "periodSeconds": period,
        "timeoutSeconds": 5,
        "failureThreshold": failures,
    }


def build_flower_deployment(pool: PoolSpec, owner: Owner, digests: pods.Digests) -> Json:
    command = ["workerpool", "flower", "--port", str(names.FLOWER_PORT), "--address", "0.0.0.0"]
    container = pods.app_container(pool, "flower", command, pool.flower.resources)
    container["env"] = [*container["env"], *_credentials_env(pool)]
    container["ports"] = [{"name": "http", "containerPort": names.FLOWER_PORT, "protocol": "TCP"}]
    container["startupProbe"] = _healthcheck(period=2, failures=60)
    container["readinessProbe"] = _healthcheck(period=10, failures=3)
    container["livenessProbe"] = _healthcheck(period=20, failures=3)
    return pods.deployment(
        pool,
        owner,
        "flower",
        replicas=1,
        strategy={"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}},
        pod_spec=pods.app_pod_spec(pool, container, FLOWER_GRACE_SECONDS),
        digests=digests,
    )


def build_flower_service(pool: PoolSpec, owner: Owner) -> Json:
    return pods.cluster_ip_service(pool, owner, "flower", "http", names.FLOWER_PORT)
