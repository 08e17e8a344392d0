"""Invalid WorkerPools: what the schema can reject, the API server rejects with a clear
message; what only the cluster can reveal becomes Stalled=True with a reason and message."""

from __future__ import annotations

import base64
from typing import Any

import pytest
import yaml

from tests.integration.operator.conftest import Kube, pool_manifest

pytestmark = pytest.mark.integration

# (test id, spec fields merged over a valid spec or a whole manifest, expected message)
REJECTED: list[tuple[str, dict[str, Any], str]] = [
    ("no image", {"image": None}, 'spec.image: Required value'),
    ("no packages", {"workerPackages": None}, "spec.workerPackages: Required value"),
    ("bad package", {"workerPackages": ["my-app"]}, "spec.workerPackages[0]: Invalid value"),
    ("unknown environment", {"environment": "staging"},
     'spec.environment: Unsupported value: "staging": supported values: "preview", "production"'),
    ("negative replicas", {"replicas": -1},
     "spec.replicas in body should be greater than or equal to 0"),
    ("zero concurrency", {"concurrency": 0},
     "spec.concurrency in body should be greater than or equal to 1"),
    ("huge concurrency", {"concurrency": 1000},
     "spec.concurrency in body should be less than or equal to 256"),
    ("no queues", {"queues": []}, "spec.queues in body should have at least 1 items"),
    ("duplicate queues", {"queues": ["low", "low"]}, 'spec.queues[1]: Duplicate value: "low"'),
    ("reserved env", {"env": [{"name": "CELERY_BROKER_URL", "value": "redis://x"}]},
     "env CELERY_BROKER_URL is set by the operator"),
    ("value and valueFrom", {"env": [{"name": "A", "value": "1",
                                      "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}]},
     "env: value and valueFrom are mutually exclusive"),
    ("envFrom with two sources",
     {"envFrom": [{"secretRef": {"name": "a"}, "configMapRef": {"name": "b"}}]},
     "envFrom: each entry needs exactly one of secretRef or configMapRef"),
    ("request above limit", {"resources": {"requests": {"cpu": "2"}, "limits": {"cpu": "1"}}},
     "resources.requests.cpu must not exceed resources.limits.cpu"),
    ("external redis with persistence",
     {"redis": {"external": {"secretName": "u"}, "persistence": {"enabled": True}}},
     "spec.redis.external cannot be combined with image, resources or persistence"),
    ("external redis without secret", {"redis": {"external": {}}},
     "spec.redis.external.secretName: Required value"),
    ("unknown field", {"replica": 3}, 'unknown field "spec.replica"'),
    ("unknown log format", {"logFormat": "xml"}, 'spec.logFormat: Unsupported value: "xml"'),
    ("bad time zone", {"timezone": "Not A Zone!"}, "spec.timezone in body should match"),
    ("root user", {"securityContext": {"runAsUser": 0}},
     "spec.securityContext.runAsUser in body should be greater than or equal to 1"),
    ("bad secret name", {"flower": {"credentialsSecret": "Bad_Name"}},
     "spec.flower.credentialsSecret in body should match"),
    ("negative grace period", {"terminationGracePeriodSeconds": -5},
     "spec.terminationGracePeriodSeconds in body should be greater than or equal to 0"),
]  # fmt: skip


def manifest_with(fields: dict[str, Any], name: str = "bad") -> dict[str, Any]:
    manifest = pool_manifest(name)
    for key, value in fields.items():
        if value is None:
            manifest["spec"].pop(key)
        else:
            manifest["spec"][key] = value
    return manifest


@pytest.mark.parametrize(
    ("fields", "message"), [case[1:] for case in REJECTED], ids=[case[0] for case in REJECTED]
)
def test_the_api_server_rejects_invalid_specs_with_a_clear_message(
    kube: Kube, fields: dict[str, Any], message: str
) -> None:
    code, output = kube.try_run("apply", "-f", "-", input=yaml.safe_dump(manifest_with(fields)))
    assert code != 0
    assert message in output
    assert kube.get("workerpool", "bad") is None


@pytest.mark.parametrize("name", ["9lives", "a" * 51])
def test_names_that_cannot_prefix_service_names_are_rejected(kube: Kube, name: str) -> None:
    code, output = kube.try_run("apply", "-f", "-", input=yaml.safe_dump(pool_manifest(name)))
    assert code != 0
    assert "metadata.name must be a DNS label of at most 50 characters" in output


def wait_stalled(kube: Kube, pool: str, reason: str) -> dict[str, Any]:
    def stalled() -> dict[str, Any] | None:
        condition = kube.condition(pool, "Stalled")
        if (
            condition is not None
            and condition["status"] == "True"
            and condition["reason"] == reason
        ):
            return condition
        return None

    found: dict[str, Any] = kube.wait(stalled, timeout=15, message=f"{pool} Stalled/{reason}")
    ready = kube.condition(pool, "Ready")
    assert ready is not None
    assert (ready["status"], ready["reason"]) == ("False", reason)
    return found


def secret(kube: Kube, name: str, **data: str) -> None:
    kube.apply({
        "apiVersion": "v1", "kind": "Secret", "metadata": {"name": name},
        "data": {k: base64.b64encode(v.encode()).decode() for k, v in data.items()},
    })  # fmt: skip


def test_a_missing_credentials_secret_stalls_until_it_exists(kube: Kube) -> None:
    kube.apply(pool_manifest("shop", flower={"credentialsSecret": "ops-flower"}))
    condition = wait_stalled(kube, "shop", "SecretNotFound")
    assert condition["message"] == (
        f"Secret {kube.namespace}/ops-flower (from spec.flower.credentialsSecret) does not "
        "exist; create it, or fix the reference"
    )
    assert kube.get("deployment", "shop-worker") is None  # nothing half-configured runs
    # ...and `kubectl describe wp shop` shows it as a Warning Event.
    selector = "involvedObject.kind=WorkerPool,involvedObject.name=shop,reason=SecretNotFound"
    kube.wait(
        lambda: "Warning" in kube.run("get", "events", "--field-selector", selector),
        timeout=10,
        message="a SecretNotFound Event",
    )

    secret(kube, "ops-flower", username="ops", password="pw")
    kube.wait(
        lambda: kube.condition("shop", "Stalled")["status"] == "False",  # type: ignore[index]
        timeout=15,
        message="Stalled to clear once the Secret exists",
    )
    assert kube.get("deployment", "shop-worker") is not None


def test_an_external_redis_secret_without_the_url_key_stalls(kube: Kube) -> None:
    secret(kube, "redis-url", uri="redis://redis.example:6379/0")
    kube.apply(pool_manifest("shop", redis={"external": {"secretName": "redis-url"}}))
    condition = wait_stalled(kube, "shop", "SecretKeyMissing")
    assert condition["message"] == (
        f"Secret {kube.namespace}/redis-url (from spec.redis.external.secretName) has no key "
        "url; add it"
    )


def test_a_missing_env_from_config_map_stalls(kube: Kube) -> None:
    kube.apply(pool_manifest("shop", envFrom=[{"configMapRef": {"name": "app-config"}}]))
    condition = wait_stalled(kube, "shop", "ConfigMapNotFound")
    assert "ConfigMap " in condition["message"]
    assert "app-config (from spec.envFrom[0].configMapRef) does not exist" in condition["message"]


def test_a_request_above_the_profiles_limit_is_a_permanent_spec_error(kube: Kube) -> None:
    # The schema cannot see the profile's limit (512Mi in preview); the operator can.
    kube.apply(pool_manifest("shop", resources={"requests": {"memory": "2Gi"}}))
    condition = wait_stalled(kube, "shop", "InvalidSpec")
    assert condition["message"] == (
        "invalid WorkerPool: spec.resources.requests.memory: 2Gi exceeds the limit 512Mi "
        "(explicit or from the environment profile); raise spec.resources.limits.memory as well"
    )


def test_an_object_of_someone_else_in_the_way_stalls(kube: Kube) -> None:
    kube.run("create", "service", "clusterip", "shop-flower", "--tcp=80:80")
    kube.apply(pool_manifest("shop"))
    condition = wait_stalled(kube, "shop", "NameConflict")
    assert condition["message"] == (
        f"Service {kube.namespace}/shop-flower exists and is not controlled by WorkerPool shop; "
        "delete or rename it, or rename the pool"
    )
    assert kube.must_get("service", "shop-flower")["spec"]["ports"][0]["port"] == 80


def test_a_child_the_api_server_rejects_stalls_with_its_message(kube: Kube) -> None:
    # Structurally valid core/v1 Affinity that Deployment validation refuses.
    affinity: dict[str, Any] = {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
        "nodeSelectorTerms": []}}}  # fmt: skip
    kube.apply(pool_manifest("shop", affinity=affinity))
    condition = wait_stalled(kube, "shop", "ApplyRejected")
    assert "was rejected by the API server" in condition["message"]
    assert "nodeSelectorTerms" in condition["message"]
