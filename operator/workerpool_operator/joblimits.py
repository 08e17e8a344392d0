"""`spec.jobLimits`: the worker's time limits and slot recycling, read and checked.

The rules the CRD's schema states again (its CEL rule, for `kubectl apply`), here so `render`
and a pool applied without the schema get the same one-line errors: the soft limit below the
hard one, a memory ceiling of at least 1Mi and below the container's memory limit (above it,
the cgroup's OOM killer ends the pod before the slot is recycled). Pure; must not import
kubernetes or kopf.
"""

from __future__ import annotations

import math

from workerpool_operator.errors import SpecError
from workerpool_operator.fields import Fields
from workerpool_operator.model import JobLimits
from workerpool_operator.quantity import parse_quantity

_WEEK = 7 * 24 * 3600
_MIN_MEMORY_KIB = 1024


def job_limits(raw: Fields, memory_limit: str | None) -> JobLimits:
    hard = raw.integer("timeLimitSeconds", 1, _WEEK, 0)
    soft = raw.integer("softTimeLimitSeconds", 1, _WEEK, 0)
    if hard and soft and soft >= hard:
        raise SpecError(
            f"{raw.path}.softTimeLimitSeconds", f"{soft} must be below timeLimitSeconds ({hard})"
        )
    memory_kib = 0
    if raw.has("maxMemoryPerChild"):
        given = raw.quantity("maxMemoryPerChild", "0")
        memory_kib = math.ceil(parse_quantity(given) / 1024)
        where = f"{raw.path}.maxMemoryPerChild"
        if memory_kib < _MIN_MEMORY_KIB:
            raise SpecError(where, f"{given} is below 1Mi: every job would recycle its slot")
        if memory_limit is not None and parse_quantity(given) >= parse_quantity(memory_limit):
            raise SpecError(
                where,
                f"{given} must be below the worker's memory limit ({memory_limit}): the "
                "cgroup would OOM-kill the pod before the slot is recycled",
            )
    return JobLimits(
        time_limit=hard,
        soft_time_limit=soft,
        max_tasks_per_child=raw.integer("maxTasksPerChild", 1, 10_000_000, 0),
        max_memory_per_child_kib=memory_kib,
    )
