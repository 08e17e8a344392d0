"""Parse a WorkerPool's spec into a resolved `PoolSpec`, applying the environment profile.

The API server's schema is the first line of defence; this parser is the second, because
`workerpool render` reads files no API server has seen and because a cluster may run an older
CRD. It re-checks what the builders rely on and the rules only the merged result can break
(a request above a profile's limit), raising `SpecError` with the field path and a fix.
Pure: takes plain mappings, returns frozen dataclasses; must not import kubernetes or kopf.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, cast

from workerpool_operator import profiles
from workerpool_operator.errors import SpecError
from workerpool_operator.fields import Fields
from workerpool_operator.joblimits import job_limits
from workerpool_operator.model import (
    AutoscalingSpec,
    BeatSpec,
    Environment,
    FlowerSpec,
    PodSettings,
    PoolSpec,
    RedisSpec,
    VolumeRetention,
)
from workerpool_operator.quantity import parse_quantity
from workerpool_operator.sizing import check_fits, check_redis_memory, resources_of
from workerpool_operator.values import check_image, check_queues, check_timezone

__all__ = ["RESERVED_ENV", "SpecError", "parse_pool"]

# Set by the operator on every app container; a user value would silently break the wiring.
RESERVED_ENV = frozenset(
    {
        "CELERY_BROKER_URL",
        "CELERY_RESULT_BACKEND",
        "REDIS_PASSWORD",
        "WORKER_PACKAGES",
        "WORKERPOOL_TIMEZONE",
        "WORKERPOOL_LOG_FORMAT",
        "WORKERPOOL_STATE_DIR",
        "FLOWER_BASIC_AUTH",
    }
)
_POOL_NAME = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
_MAX_POOL_NAME = 50  # "<pool>-flower" must stay a valid Service name (63 chars)
_PACKAGE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")
_LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


def parse_pool(name: str, namespace: str, spec: Mapping[str, Any] | None) -> PoolSpec:
    """Resolve `spec` of WorkerPool `namespace/name`; raises SpecError on the first problem."""
    if not _POOL_NAME.match(name) or len(name) > _MAX_POOL_NAME:
        raise SpecError(
            "metadata.name",
            f"{name!r} must be a DNS label of at most {_MAX_POOL_NAME} characters starting "
            "with a letter (it prefixes Service names such as NAME-flower)",
        )
    if spec is None:
        raise SpecError("spec", "is required")
    if not isinstance(spec, Mapping):
        raise SpecError("spec", f"must be an object, got {type(spec).__name__}")
    top = Fields(spec, "spec")
    environment = cast(Environment, top.enum("environment", ("preview", "production"), "preview"))
    profile = profiles.PROFILES[environment]

    packages = top.str_list("workerPackages", pattern=_PACKAGE, required=True)
    queues = (
        check_queues("spec.queues", top.str_list("queues"))
        if top.has("queues")
        else profiles.DEFAULT_QUEUES
    )
    for field_name, values in (("workerPackages", packages), ("queues", queues)):
        if len(set(values)) != len(values):
            raise SpecError(f"spec.{field_name}", "contains duplicates")

    concurrency = top.integer("concurrency", 1, 256, profile.concurrency)
    autoscaling = _autoscaling(top, concurrency)
    resources = resources_of(top, "resources", profile.worker)
    check_fits(concurrency, resources)
    return PoolSpec(
        name=name,
        namespace=namespace,
        environment=environment,
        image=check_image("spec.image", top.string("image")),
        image_pull_policy=top.optional_enum("imagePullPolicy", ("Always", "IfNotPresent", "Never")),
        worker_packages=packages,
        # With autoscaling, the decision replaces it each pass (autoscale.py); render and a
        # first pass start from the minimum.
        replicas=(
            autoscaling.min_replicas
            if autoscaling is not None
            else top.integer("replicas", 0, 1000, profile.replicas)
        ),
        concurrency=concurrency,
        queues=queues,
        resources=resources,
        env=_env(top),
        env_from=_env_from(top),
        timezone=check_timezone(
            "spec.timezone", top.string_or("timezone", profiles.DEFAULT_TIMEZONE)
        ),
        log_level=top.enum("logLevel", _LOG_LEVELS, profiles.DEFAULT_LOG_LEVEL),
        log_format=top.enum("logFormat", ("text", "json"), profiles.DEFAULT_LOG_FORMAT),
        termination_grace_period_seconds=top.integer(
            "terminationGracePeriodSeconds", 0, 86400, profiles.DEFAULT_WORKER_GRACE_SECONDS
        ),
        beat=_beat(top.child("beat"), profile),
        flower=_flower(top.child("flower"), profile),
        redis=_redis(top.child("redis"), profile),
        pod=_pod(top),
        autoscaling=autoscaling,
        job_limits=job_limits(top.child("jobLimits"), resources.limits.get("memory")),
    )


def _autoscaling(top: Fields, concurrency: int) -> AutoscalingSpec | None:
    """Mirror of the CRD's CEL rules: one owner of the worker count, and min <= max."""
    if not top.has("autoscaling"):
        return None
    if top.has("replicas"):
        raise SpecError(
            "spec.autoscaling",
            "spec.replicas and spec.autoscaling are mutually exclusive; remove replicas to let "
            "the operator scale, or autoscaling to set replicas (Git, kubectl scale, an HPA or "
            "KEDA)",
        )
    auto = top.child("autoscaling")
    if not auto.has("maxReplicas"):
        raise SpecError(f"{auto.path}.maxReplicas", "is required")
    maximum = auto.integer("maxReplicas", 1, 1000, 1)
    minimum = auto.integer("minReplicas", 0, 1000, 1)
    if minimum > maximum:
        raise SpecError(
            f"{auto.path}.minReplicas", f"{minimum} must not exceed maxReplicas ({maximum})"
        )
    return AutoscalingSpec(
        min_replicas=minimum,
        max_replicas=maximum,
        jobs_per_worker=auto.integer("jobsPerWorker", 1, 10000, concurrency),
        scale_down_stabilization_seconds=auto.integer(
            "scaleDownStabilizationSeconds", 0, 86400, 300
        ),
    )


def _beat(beat: Fields, profile: profiles.Profile) -> BeatSpec:
    return BeatSpec(
        enabled=beat.boolean("enabled", True),
        resources=resources_of(beat, "resources", profile.beat),
    )


def _flower(flower: Fields, profile: profiles.Profile) -> FlowerSpec:
    return FlowerSpec(
        enabled=flower.boolean("enabled", True),
        resources=resources_of(flower, "resources", profile.flower),
        credentials_secret=flower.optional_string("credentialsSecret"),
    )


def _redis(redis: Fields, profile: profiles.Profile) -> RedisSpec:
    external = redis.child("external")
    external_secret = external.optional_string("secretName")
    persistence = redis.child("persistence")
    if redis.has("external"):
        if external_secret is None:
            raise SpecError(f"{external.path}.secretName", "is required for an external Redis")
        for managed_only in ("image", "resources", "persistence"):
            if redis.has(managed_only):
                raise SpecError(
                    f"{redis.path}.{managed_only}",
                    "configures the managed Redis and cannot be combined with spec.redis.external",
                )
    size = persistence.quantity("size", profile.redis_storage_size)
    if parse_quantity(size) <= 0:
        raise SpecError(f"{persistence.path}.size", f"{size} must be greater than zero")
    resources = resources_of(redis, "resources", profile.redis)
    if external_secret is None:
        check_redis_memory(redis, resources)
    return RedisSpec(
        external_secret=external_secret,
        external_key=external.string_or("key", "url"),
        image=check_image(
            f"{redis.path}.image", redis.string_or("image", profiles.DEFAULT_REDIS_IMAGE)
        ),
        resources=resources,
        persistence=persistence.boolean("enabled", profile.redis_persistence),
        storage_size=size,
        storage_class=persistence.optional_string("storageClassName"),
        volume_when_deleted=cast(
            VolumeRetention, persistence.enum("whenDeleted", ("Retain", "Delete"), "Retain")
        ),
    )


def _pod(top: Fields) -> PodSettings:
    security = top.child("securityContext")
    return PodSettings(
        node_selector=top.str_map("nodeSelector"),
        tolerations=tuple(top.object_list("tolerations")),
        affinity=top.optional_object("affinity"),
        annotations=top.str_map("podAnnotations"),
        service_account_name=top.optional_string("serviceAccountName"),
        automount_service_account_token=top.boolean("automountServiceAccountToken", False),
        image_pull_secrets=tuple(
            Fields(entry, f"spec.imagePullSecrets[{i}]").string("name")
            for i, entry in enumerate(top.object_list("imagePullSecrets"))
        ),
        run_as_user=security.integer("runAsUser", 1, 2**31 - 1, profiles.DEFAULT_UID),
        run_as_group=security.integer("runAsGroup", 0, 2**31 - 1, profiles.DEFAULT_UID),
        fs_group=security.integer("fsGroup", 0, 2**31 - 1, profiles.DEFAULT_UID),
    )


def _env(top: Fields) -> tuple[Mapping[str, Any], ...]:
    entries = top.object_list("env")
    for i, entry in enumerate(entries):
        path = f"spec.env[{i}]"
        name = Fields(entry, path).string("name")
        if name in RESERVED_ENV:
            raise SpecError(
                f"{path}.name",
                f"{name} is set by the operator; configure it through spec (redis, "
                "workerPackages, timezone, logFormat, flower) instead",
            )
        if entry.get("value") and "valueFrom" in entry:
            raise SpecError(path, "value and valueFrom are mutually exclusive")
        _value_from(entry, path)
    return tuple(entries)


_VALUE_SOURCES = ("secretKeyRef", "configMapKeyRef", "fieldRef", "resourceFieldRef")


def _value_from(entry: Mapping[str, Any], path: str) -> None:
    """Mirror of the CRD's CEL rule: a valueFrom names exactly one source."""
    source = entry.get("valueFrom")
    if source is None:
        return
    if not isinstance(source, Mapping) or sum(key in source for key in _VALUE_SOURCES) != 1:
        raise SpecError(f"{path}.valueFrom", f"needs exactly one of {', '.join(_VALUE_SOURCES)}")


def _env_from(top: Fields) -> tuple[Mapping[str, Any], ...]:
    entries = top.object_list("envFrom")
    for i, entry in enumerate(entries):
        sources = [key for key in ("secretRef", "configMapRef") if key in entry]
        if len(sources) != 1:
            raise SpecError(
                f"spec.envFrom[{i}]", "each entry needs exactly one of secretRef or configMapRef"
            )
        Fields(entry, f"spec.envFrom[{i}]").child(sources[0]).string("name")
    return tuple(entries)
