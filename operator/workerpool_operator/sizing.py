"""Resources of a pool's containers: the profile's requests and limits merged with the spec's,
and the checks only the merged result can fail (a request above a limit, more worker
processes than the memory limit holds, a Redis too small for its `maxmemory` margin).

Split from spec.py, which calls it; raises `SpecError` naming the field the user wrote.
Pure; must not import kubernetes or kopf.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

from workerpool_operator import profiles
from workerpool_operator.errors import SpecError
from workerpool_operator.fields import Fields
from workerpool_operator.model import Resources
from workerpool_operator.quantity import parse_quantity

_RESOURCE_NAMES: Final = ("cpu", "memory", "ephemeral-storage")
# The least memory one worker process (a forked Celery child running a job) can live in; the
# CRD's CEL rule on spec.concurrency uses the same 32Mi.
MEMORY_PER_PROCESS: Final = 32 * 2**20


def check_redis_memory(redis: Fields, resources: Resources) -> None:
    """Redis gets `maxmemory` below its memory limit (builders/redis.py); a limit too small to
    leave it room for a queue is refused rather than run as a Redis that is full at once."""
    limit = parse_quantity(resources.limits["memory"])
    if limit < profiles.MIN_REDIS_MEMORY_LIMIT:
        raise SpecError(
            f"{redis.path}.resources.limits.memory",
            f"{resources.limits['memory']} leaves Redis no room for jobs; give it at least "
            f"{profiles.MIN_REDIS_MEMORY_LIMIT // 2**20}Mi",
        )


def resources_of(parent: Fields, key: str, profile: Resources) -> Resources:
    """Merge each of requests/limits x cpu/memory/... over the profile, then check the result."""
    raw = parent.child(key)
    requests = _merged(raw.child("requests"), profile.requests)
    limits = _merged(raw.child("limits"), profile.limits)
    for resource in _RESOURCE_NAMES:
        if resource not in requests or resource not in limits:
            continue
        if parse_quantity(requests[resource]) > parse_quantity(limits[resource]):
            raise _over_limit(raw, resource, requests[resource], limits[resource])
    return Resources(requests=requests, limits=limits)


def _merged(given: Fields, base: Mapping[str, str]) -> dict[str, str]:
    """Mirror of the CRD's CEL rules: every explicit request and limit is above zero."""
    values = dict(base)
    for resource in _RESOURCE_NAMES:
        if given.has(resource):
            values[resource] = given.quantity(resource, "0")
            if parse_quantity(values[resource]) <= 0:
                raise SpecError(f"{given.path}.{resource}", "must be greater than zero")
    return values


def check_fits(concurrency: int, resources: Resources) -> None:
    """Mirror of the CRD's CEL rule: each worker process gets its share of the memory limit."""
    limit = resources.limits["memory"]
    if concurrency * MEMORY_PER_PROCESS > parse_quantity(limit):
        raise SpecError(
            "spec.concurrency",
            f"{concurrency} processes do not fit the worker's memory limit {limit} (each needs at "
            f"least {MEMORY_PER_PROCESS // 2**20}Mi); raise spec.resources.limits.memory or "
            "lower spec.concurrency",
        )


def _over_limit(raw: Fields, resource: str, request: str, limit: str) -> SpecError:
    """Blame the value the user wrote: a limit set below the profile's request is a problem
    of the limit, not of a request the user never wrote."""
    requests, limits = f"{raw.path}.requests.{resource}", f"{raw.path}.limits.{resource}"
    if raw.child("limits").has(resource) and not raw.child("requests").has(resource):
        return SpecError(
            limits,
            f"{limit} is below the request {request} of the environment profile; raise it, "
            f"or set {requests} as well",
        )
    return SpecError(
        requests,
        f"{request} exceeds the limit {limit} (explicit or from the environment profile); "
        f"raise {limits} as well",
    )
