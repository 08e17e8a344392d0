"""The CRD manifest: structural, explained, and in agreement with the parser's defaults."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from workerpool_operator import profiles, sizing, spec, values
from workerpool_operator.quantity import parse_quantity
from workerpool_operator.spec import RESERVED_ENV

from tests.unit.operator.conftest import make_pool

ROOT = Path(__file__).resolve().parents[3]
CRD_FILE = ROOT / "manifests" / "crd" / "workerpool.dev_workerpools.yaml"


@pytest.fixture(scope="module")
def crd() -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load(CRD_FILE.read_text())
    return document


@pytest.fixture(scope="module")
def version(crd: dict[str, Any]) -> dict[str, Any]:
    (only,) = crd["spec"]["versions"]
    return dict(only)


@pytest.fixture(scope="module")
def spec_schema(version: dict[str, Any]) -> dict[str, Any]:
    return dict(version["schema"]["openAPIV3Schema"]["properties"]["spec"])


def walk(schema: dict[str, Any], path: str) -> Iterator[tuple[str, dict[str, Any]]]:
    yield path, schema
    for key, child in (schema.get("properties") or {}).items():
        yield from walk(child, f"{path}.{key}")
    if isinstance(schema.get("items"), dict):
        yield from walk(schema["items"], f"{path}[]")
    if isinstance(schema.get("additionalProperties"), dict):
        yield from walk(schema["additionalProperties"], f"{path}.*")


def test_the_api_is_workerpool_dev_v1alpha1_namespaced_with_short_name_wp(
    crd: dict[str, Any],
) -> None:
    assert crd["metadata"]["name"] == "workerpools.workerpool.dev"
    assert crd["spec"]["scope"] == "Namespaced"
    assert crd["spec"]["names"]["kind"] == "WorkerPool"
    assert "wp" in crd["spec"]["names"]["shortNames"]


def test_every_field_is_explained(version: dict[str, Any]) -> None:
    root = version["schema"]["openAPIV3Schema"]
    for part in ("spec", "status"):
        for path, schema in walk(root["properties"][part], part):
            # Fields are named properties; list items and map values are described by them.
            if not path.endswith(("[]", ".*")):
                assert schema.get("description"), f"{path} has no description"


def test_no_field_preserves_unknown_fields(spec_schema: dict[str, Any]) -> None:
    assert "x-kubernetes-preserve-unknown-fields" not in yaml.safe_dump(spec_schema)


def test_fields_the_profile_decides_have_no_schema_default(spec_schema: dict[str, Any]) -> None:
    props = spec_schema["properties"]
    undecided = [
        props["replicas"], props["concurrency"], props["resources"],
        props["beat"]["properties"]["resources"], props["flower"]["properties"]["resources"],
        props["redis"]["properties"]["resources"], props["redis"]["properties"]["image"],
        props["redis"]["properties"]["persistence"]["properties"]["enabled"],
        props["redis"]["properties"]["persistence"]["properties"]["size"],
    ]  # fmt: skip
    for schema in undecided:
        assert "default" not in yaml.safe_dump(schema).split("description")[0]
        assert "default" not in schema


def test_schema_defaults_equal_the_parsers_defaults(spec_schema: dict[str, Any]) -> None:
    props = spec_schema["properties"]
    pool = make_pool()
    assert props["environment"]["default"] == pool.environment
    assert tuple(props["queues"]["default"]) == profiles.DEFAULT_QUEUES == pool.queues
    assert props["timezone"]["default"] == pool.timezone
    assert props["logLevel"]["default"] == pool.log_level
    assert props["logFormat"]["default"] == pool.log_format
    assert (
        props["terminationGracePeriodSeconds"]["default"] == pool.termination_grace_period_seconds
    )
    assert props["beat"]["properties"]["enabled"]["default"] is pool.beat.enabled
    assert props["flower"]["properties"]["enabled"]["default"] is pool.flower.enabled
    assert (
        props["automountServiceAccountToken"]["default"] is pool.pod.automount_service_account_token
    )
    security = props["securityContext"]["properties"]
    assert security["runAsUser"]["default"] == pool.pod.run_as_user
    assert props["redis"]["properties"]["external"]["properties"]["key"]["default"] == "url"


def test_reserved_env_names_agree_with_the_parser(spec_schema: dict[str, Any]) -> None:
    (rule, *_) = spec_schema["properties"]["env"]["items"]["x-kubernetes-validations"]
    for name in RESERVED_ENV:
        assert f"'{name}'" in rule["rule"]
    assert rule["rule"].count("'") == 2 * len(RESERVED_ENV)


def test_scale_and_status_subresources(version: dict[str, Any]) -> None:
    assert version["subresources"]["status"] == {}
    assert version["subresources"]["scale"] == {
        "specReplicasPath": ".spec.replicas",
        "statusReplicasPath": ".status.replicas",
        "labelSelectorPath": ".status.selector",
    }


def test_printer_columns_show_environment_replicas_status_and_age(version: dict[str, Any]) -> None:
    columns = {c["name"]: c["jsonPath"] for c in version["additionalPrinterColumns"]}
    assert columns["Environment"] == ".spec.environment"
    assert columns["Desired"] == ".status.desiredReplicas"
    assert columns["Ready"] == ".status.readyReplicas"
    assert columns["Status"] == '.status.conditions[?(@.type=="Ready")].reason'
    assert columns["Age"] == ".metadata.creationTimestamp"
    assert columns["Backlog"] == ".status.load.backlog"


def test_cel_rules_cover_the_cross_field_constraints(version: dict[str, Any]) -> None:
    text = yaml.safe_dump(version["schema"])
    for message in (
        "spec.redis.external cannot be combined",
        "resources.requests.memory must not exceed resources.limits.memory",
        "value and valueFrom are mutually exclusive",
        "exactly one of secretRef or configMapRef",
        "spec.replicas and spec.autoscaling are mutually exclusive",
        "spec.autoscaling.minReplicas must not exceed maxReplicas",
        "resources.limits.memory must be greater than zero",
        "spec.concurrency does not fit the worker's memory limit",
    ):
        assert message in text


def test_name_and_image_rules_are_the_parsers(version: dict[str, Any]) -> None:
    root = version["schema"]["openAPIV3Schema"]
    name = root["properties"]["metadata"]["properties"]["name"]
    assert (name["pattern"], name["maxLength"]) == (spec._POOL_NAME.pattern, spec._MAX_POOL_NAME)
    fields = root["properties"]["spec"]["properties"]
    for image in (fields["image"], fields["redis"]["properties"]["image"]):
        assert (image["pattern"], image["maxLength"]) == (
            values.IMAGE_PATTERN,
            values.MAX_IMAGE_LENGTH,
        )


def test_the_concurrency_rule_knows_the_profiles_memory_limits(version: dict[str, Any]) -> None:
    """The CEL rule cannot read profiles.py: its copy of their worker limits must agree."""
    spec_schema = version["schema"]["openAPIV3Schema"]["properties"]["spec"]
    (rule,) = [
        r["rule"] for r in spec_schema["x-kubernetes-validations"] if "concurrency" in r["rule"]
    ]
    preview = parse_quantity(profiles.PROFILES["preview"].worker.limits["memory"])
    production = parse_quantity(profiles.PROFILES["production"].worker.limits["memory"])
    mebi = sizing.MEMORY_PER_PROCESS // 2**20
    assert f"* {mebi} <= (has(self.environment) && self.environment == 'production'" in rule
    assert f"? {production // 2**20} : {preview // 2**20})" in rule
    assert f"* {sizing.MEMORY_PER_PROCESS}.0 :" in rule
    assert f": {profiles.PROFILES['preview'].concurrency}) * {mebi}" in rule
