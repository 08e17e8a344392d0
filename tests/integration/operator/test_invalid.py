"""Invalid WorkerPools: what the schema can reject, the API server rejects with a clear
message; what only the cluster can reveal becomes Stalled=True with a reason and message."""

from __future__ import annotations

import base64
from typing import Any

import pytest
import yaml

from tests.integration.operator.conftest import Kube, pool_manifest
from tests.unit.operator.bad_specs import BAD_SPECS, BadSpec

pytestmark = pytest.mark.integration

# The table render is tested with (tests/unit/operator/bad_specs.py): what render refuses
# offline, a cluster refuses too, naming the same field.
API_ROWS = [row for row in BAD_SPECS if row.by != "operator"]
OPERATOR_ROWS = [row for row in BAD_SPECS if row.by == "operator"]


@pytest.mark.parametrize("row", API_ROWS, ids=lambda row: row.id)
def test_the_api_server_refuses_what_render_refuses_naming_the_same_field(
    kube: Kube, row: BadSpec
) -> None:
    code, output = kube.try_run("apply", "-f", "-", input=yaml.safe_dump(row.manifest()))
    assert code != 0
    assert row.api in output
    assert row.field in output
    # Every error carries a real field path; the one exception is the API server's own notice
    # that CEL rules were skipped because the schema already failed.
    for line in output.splitlines():
        assert "<nil>" not in line or "some validation rules were not checked" in line, line
    assert kube.get("workerpool", row.name) is None


@pytest.mark.parametrize("row", OPERATOR_ROWS, ids=lambda row: row.id)
def test_the_operator_stalls_what_render_refuses_and_the_api_server_accepts(
    kube: Kube, row: BadSpec
) -> None:
    kube.apply(row.manifest())
    condition = wait_stalled(kube, row.name, "InvalidSpec")
    assert condition["message"].startswith(f"invalid WorkerPool: {row.field}: ")
    assert kube.get("deployment", f"{row.name}-worker") is None  # nothing rolled out


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
