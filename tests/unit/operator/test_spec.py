"""The spec parser: profile defaults, explicit overrides, and actionable errors."""

from __future__ import annotations

from typing import Any

import pytest
from workerpool_operator.spec import SpecError, parse_pool

from tests.unit.operator.conftest import make_pool, spec_of


def test_preview_profile_matches_the_original_design_table() -> None:
    pool = make_pool(environment="preview")
    assert (pool.replicas, pool.concurrency) == (1, 8)
    assert pool.resources.requests == {"cpu": "200m", "memory": "512Mi"}
    assert pool.redis.persistence is False


def test_production_profile_matches_the_original_design_table() -> None:
    pool = make_pool(environment="production")
    assert (pool.replicas, pool.concurrency) == (3, 8)
    assert pool.resources.requests == {"cpu": "500m", "memory": "1Gi"}
    assert pool.redis.persistence is True
    assert pool.redis.storage_size == "8Gi"


def test_environment_defaults_to_preview() -> None:
    assert make_pool().environment == "preview"


def test_schema_level_defaults_are_applied_to_files_the_api_server_never_saw() -> None:
    pool = make_pool()
    assert pool.queues == ("critical", "default", "low")
    assert (pool.timezone, pool.log_level, pool.log_format) == ("UTC", "INFO", "text")
    assert pool.termination_grace_period_seconds == 300
    assert pool.beat.enabled
    assert pool.flower.enabled
    assert pool.redis.managed
    assert pool.pod.automount_service_account_token is False
    assert (pool.pod.run_as_user, pool.pod.run_as_group) == (10001, 10001)


def test_explicit_fields_override_the_profile() -> None:
    pool = make_pool(environment="production", replicas=0, concurrency=2)
    assert (pool.replicas, pool.concurrency) == (0, 2)


def test_resources_override_the_profile_value_by_value() -> None:
    pool = make_pool(
        environment="production",
        resources={"requests": {"cpu": 1}, "limits": {"memory": "2Gi"}},
    )
    assert pool.resources.requests == {"cpu": "1", "memory": "1Gi"}
    assert pool.resources.limits == {"cpu": "2", "memory": "2Gi"}


def test_redis_persistence_can_be_switched_off_in_production() -> None:
    assert not make_pool(
        environment="production", redis={"persistence": {"enabled": False}}
    ).redis.persistence


def test_external_redis_reads_the_url_from_a_secret() -> None:
    pool = make_pool(redis={"external": {"secretName": "redis-url"}})
    assert not pool.redis.managed
    assert (pool.redis.external_secret, pool.redis.external_key) == ("redis-url", "url")


INVALID: list[tuple[str, dict[str, Any], str]] = [
    ("no image", {"image": None}, "spec.image: is required"),
    ("no packages", {"workerPackages": None}, "spec.workerPackages: needs at least one entry"),
    ("bad package", {"workerPackages": ["my-app"]}, "spec.workerPackages[0]: 'my-app' must match"),
    (
        "unknown environment",
        {"environment": "staging"},
        "'staging' is not one of preview, production",
    ),
    ("negative replicas", {"replicas": -1}, "spec.replicas: -1 is outside 0..1000"),
    ("string replicas", {"replicas": "3"}, "spec.replicas: must be an integer"),
    ("zero concurrency", {"concurrency": 0}, "spec.concurrency: 0 is outside 1..256"),
    ("duplicate queues", {"queues": ["low", "low"]}, "spec.queues: contains duplicates"),
    (
        "request above the profile limit",
        {"resources": {"requests": {"memory": "2Gi"}}},
        "spec.resources.requests.memory: 2Gi exceeds the limit 512Mi",
    ),
    ("not a quantity", {"resources": {"requests": {"cpu": "lots"}}}, "'lots' is not a quantity"),
    (
        # The user wrote the limit, not the request: the message must name the limit.
        "limit below the profile's request",
        {"resources": {"limits": {"cpu": "100m"}}},
        "spec.resources.limits.cpu: 100m is below the request 200m of the environment profile",
    ),
    ("zero limit", {"resources": {"limits": {"cpu": "0"}}}, "limits.cpu: must be greater than"),
    (
        "concurrency beyond the memory limit",
        {"concurrency": 256},
        "spec.concurrency: 256 processes do not fit the worker's memory limit 512Mi",
    ),
    (
        "redis too small",
        {"redis": {"resources": {"requests": {"memory": "8Mi"}, "limits": {"memory": "8Mi"}}}},
        "spec.redis.resources.limits.memory: 8Mi leaves Redis no room for jobs",
    ),
    ("no queues", {"queues": []}, "spec.queues: needs at least one entry"),
    ("unknown queue", {"queues": ["urgent"]}, "spec.queues[0]: 'urgent' is not one of"),
    ("not an IANA zone", {"timezone": "Mars/Olympus"}, "spec.timezone: 'Mars/Olympus' is not"),
    ("image with a space", {"image": "my image:1.0"}, "spec.image: 'my image:1.0' is not an"),
    ("zero storage", {"redis": {"persistence": {"size": "0"}}}, "size: 0 must be greater than"),
    ("spec is a list", {"_whole": [1, 2]}, "spec: must be an object, got list"),
    (
        "reserved env",
        {"env": [{"name": "CELERY_BROKER_URL", "value": "redis://x"}]},
        "spec.env[0].name: CELERY_BROKER_URL is set by the operator",
    ),
    (
        "value and valueFrom",
        {"env": [{"name": "A", "value": "1", "valueFrom": {"fieldRef": {"fieldPath": "x"}}}]},
        "value and valueFrom are mutually exclusive",
    ),
    (
        "envFrom with two sources",
        {"envFrom": [{"secretRef": {"name": "a"}, "configMapRef": {"name": "b"}}]},
        "exactly one of secretRef or configMapRef",
    ),
    (
        "external redis with persistence",
        {"redis": {"external": {"secretName": "u"}, "persistence": {"enabled": True}}},
        "spec.redis.persistence: configures the managed Redis",
    ),
    (
        "external redis without secret",
        {"redis": {"external": {}}},
        "spec.redis.external.secretName",
    ),
    ("unknown log level", {"logLevel": "TRACE"}, "spec.logLevel: 'TRACE' is not one of"),
    ("beat not an object", {"beat": True}, "spec.beat: must be an object"),
    (
        "root uid",
        {"securityContext": {"runAsUser": 0}},
        "spec.securityContext.runAsUser: 0 is outside",
    ),
]


@pytest.mark.parametrize(
    ("overrides", "message"), [c[1:] for c in INVALID], ids=[c[0] for c in INVALID]
)
def test_invalid_specs_are_rejected_with_the_field_and_a_reason(
    overrides: dict[str, Any], message: str
) -> None:
    spec = overrides["_whole"] if "_whole" in overrides else spec_of(**overrides)
    with pytest.raises(SpecError) as caught:
        parse_pool("shop", "apps", spec)
    assert message in str(caught.value)


@pytest.mark.parametrize("name", ["1pool", "Shop", "a" * 51, "shop-"])
def test_pool_names_that_cannot_prefix_service_names_are_rejected(name: str) -> None:
    with pytest.raises(SpecError, match=r"metadata\.name"):
        parse_pool(name, "apps", spec_of())


def test_a_missing_spec_is_rejected() -> None:
    with pytest.raises(SpecError, match="spec: is required"):
        parse_pool("shop", "apps", None)


def test_autoscaling_defaults_to_one_to_max_at_one_job_per_process() -> None:
    from workerpool_operator.model import AutoscalingSpec

    pool = parse_pool("shop", "apps", spec_of(concurrency=6, autoscaling={"maxReplicas": 9}))
    assert pool.autoscaling == AutoscalingSpec(1, 9, 6, 300)
    assert pool.replicas == 1  # where a first pass and `workerpool render` start
    scaled_to_zero = spec_of(
        environment="production", autoscaling={"minReplicas": 0, "maxReplicas": 2}
    )
    assert parse_pool("shop", "apps", scaled_to_zero).replicas == 0
    assert parse_pool("shop", "apps", spec_of()).autoscaling is None


def test_exabyte_quantities_are_accepted() -> None:
    """Issue 24: `1Ei` passed the CRD and was then refused as "not a quantity"."""
    pool = make_pool(resources={"requests": {"memory": "1Ei"}, "limits": {"memory": "1Ei"}})
    assert pool.resources.limits["memory"] == "1Ei"


def test_concurrency_that_fits_an_explicit_limit_is_accepted() -> None:
    pool = make_pool(concurrency=64, resources={"limits": {"memory": "2Gi"}})
    assert pool.concurrency == 64


def test_the_redis_claim_is_retained_unless_the_pool_asks_otherwise() -> None:
    assert make_pool(environment="production").redis.volume_when_deleted == "Retain"
    pool = make_pool(environment="production", redis={"persistence": {"whenDeleted": "Delete"}})
    assert pool.redis.volume_when_deleted == "Delete"
