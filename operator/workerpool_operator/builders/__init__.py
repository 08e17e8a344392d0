"""Builders: one pure function per child object, `build_<kind>(pool, owner, ...) -> dict`.

This package decides WHAT should exist for a WorkerPool; the reconciler decides nothing and
applies these dicts as they are, and `workerpool render` prints them. Everything here is pure
(no kubernetes/kopf imports, no clock, no randomness): same input, same output.
"""

from __future__ import annotations

from typing import Final

from workerpool_operator.builders.beat import build_beat_deployment
from workerpool_operator.builders.budgets import (
    build_redis_budget,
    build_worker_budget,
    wants_worker_budget,
)
from workerpool_operator.builders.flower import build_flower_deployment, build_flower_service
from workerpool_operator.builders.pods import Digests
from workerpool_operator.builders.redis import (
    build_redis_deployment,
    build_redis_pvc,
    build_redis_service,
)
from workerpool_operator.builders.secrets import build_generated_secret, build_restored_secret
from workerpool_operator.builders.worker import build_worker_deployment
from workerpool_operator.model import Json, Owner, PoolSpec
from workerpool_operator.names import Component, child_name

__all__ = [
    "PRUNABLE_KINDS",
    "Digests",
    "build_children",
    "build_generated_secret",
    "build_restored_secret",
    "generated_secret_components",
    "prunable_children",
]

# Kinds a pool may stop needing (a component disabled, Redis made external, production made
# preview), with the components that can have one. A Redis PVC is deliberately absent:
# dropping persistence must not delete data (its retention policy decides, see redis.py).
PRUNABLE_KINDS: Final[dict[tuple[str, str], tuple[Component, ...]]] = {
    ("apps/v1", "Deployment"): ("worker", "beat", "flower", "redis"),
    ("v1", "Service"): ("flower", "redis"),
    ("v1", "Secret"): ("flower", "redis"),
    ("policy/v1", "PodDisruptionBudget"): ("worker", "redis"),
}


def build_children(pool: PoolSpec, owner: Owner, digests: Digests) -> list[Json]:
    """Every child to apply, dependencies first; generated Secrets are not included
    (they are created once, see `build_generated_secret`)."""
    children: list[Json] = []
    if pool.redis.managed:
        if pool.redis.persistence:
            children.append(build_redis_pvc(pool, owner))
        children.append(build_redis_service(pool, owner))
        children.append(build_redis_budget(pool, owner))
        children.append(build_redis_deployment(pool, owner, digests))
    if pool.flower.enabled:
        children.append(build_flower_service(pool, owner))
        children.append(build_flower_deployment(pool, owner, digests))
    if pool.beat.enabled:
        children.append(build_beat_deployment(pool, owner, digests))
    if wants_worker_budget(pool):
        children.append(build_worker_budget(pool, owner))
    children.append(build_worker_deployment(pool, owner, digests))
    return children


def generated_secret_components(pool: PoolSpec) -> tuple[Component, ...]:
    """Components whose Secret the operator generates (`<pool>-<component>`)."""
    wanted: list[Component] = []
    if pool.redis.managed:
        wanted.append("redis")
    if pool.flower.enabled and pool.flower.credentials_secret is None:
        wanted.append("flower")
    return tuple(wanted)


def prunable_children(pool_name: str) -> list[tuple[str, str, str]]:
    """(apiVersion, kind, name) of every prunable object a pool of this name can have."""
    return [
        (api_version, kind, child_name(pool_name, component))
        for (api_version, kind), components in PRUNABLE_KINDS.items()
        for component in components
    ]
