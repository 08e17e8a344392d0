"""The offline openAPIV3Schema check, keyword by keyword, with the API server's field paths."""

from __future__ import annotations

from typing import Any

import pytest
from workerpool_operator.crd import pool_schema
from workerpool_operator.errors import SpecError
from workerpool_operator.schema import validate

QUANTITY: dict[str, Any] = {"x-kubernetes-int-or-string": True, "pattern": "^[0-9]+(m|Gi)?$"}
SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["name"],
    "properties": {
        "name": {"type": "string", "minLength": 2, "maxLength": 5},
        "size": QUANTITY,
        "count": {"type": "integer", "minimum": 1, "maximum": 3},
        "ratio": {"type": "number"},
        "on": {"type": "boolean"},
        "labels": {"type": "object", "maxProperties": 1,
                   "additionalProperties": {"type": "string"}},
        "free": {"type": "object", "x-kubernetes-preserve-unknown-fields": True,
                 "properties": {"known": {"type": "string"}}},
        "tags": {"type": "array", "maxItems": 2, "x-kubernetes-list-type": "set",
                 "items": {"type": "string", "enum": ["a", "b", "c"]}},
        "ports": {"type": "array", "x-kubernetes-list-type": "map",
                  "x-kubernetes-list-map-keys": ["port"],
                  "items": {"type": "object", "properties": {"port": {"type": "integer"},
                                                              "name": {"type": "string"}}}},
    },
}  # fmt: skip

VALID: list[dict[str, Any]] = [
    {"name": "ok"},
    {"name": "ok", "size": 3, "ratio": 1, "on": False, "count": None},  # null = omitted
    {"name": "ok", "size": "500m", "ratio": 0.5, "free": {"anything": [1, {"x": 2}]}},
    {"name": "ok", "labels": {"k": "v"}, "tags": ["a", "b"]},
    {"name": "ok", "ports": [{"port": 1, "name": "x"}, {"port": 2, "name": "x"}]},
]

INVALID: list[tuple[dict[str, Any], str, str]] = [
    ({}, "name", "Required value"),
    ({"name": "x"}, "name", "should be at least 2 chars long"),
    ({"name": "toolong"}, "name", "may not be more than 5 bytes"),
    ({"name": 12}, "name", "must be of type string, got integer"),
    ({"name": "ok", "size": "1 Gi"}, "size", "should match"),
    ({"name": "ok", "size": True}, "size", "must be of type integer or string, got boolean"),
    ({"name": "ok", "size": 1.5}, "size", "must be of type integer or string, got number"),
    ({"name": "ok", "count": 0}, "count", "should be greater than or equal to 1"),
    ({"name": "ok", "count": 4}, "count", "should be less than or equal to 3"),
    ({"name": "ok", "count": True}, "count", "must be of type integer, got boolean"),
    ({"name": "ok", "ratio": "1"}, "ratio", "must be of type number, got string"),
    ({"name": "ok", "on": "yes"}, "on", "must be of type boolean, got string"),
    ({"name": "ok", "labels": {"a": "1", "b": "2"}}, "labels", "must have at most 1 items"),
    ({"name": "ok", "labels": {"a": 1}}, "labels.a", "must be of type string"),
    ({"name": "ok", "free": {"known": 1}}, "free.known", "must be of type string"),
    ({"name": "ok", "tags": ["a", "b", "c"]}, "tags", "must have at most 2 items"),
    ({"name": "ok", "tags": ["a", "d"]}, "tags[1]", "Unsupported value: 'd'"),
    ({"name": "ok", "tags": ["a", "a"]}, "tags[1]", "Duplicate value: 'a'"),
    ({"name": "ok", "ports": [{"port": 1}, {"port": 1, "name": "y"}]}, "ports[1]",
     "Duplicate value"),
    ({"name": "ok", "extra": 1}, "extra", "unknown field"),
    ({"name": "ok", "ports": [{"port": 1, "protocol": "TCP"}]}, "ports[0].protocol",
     "unknown field"),
]  # fmt: skip


@pytest.mark.parametrize("document", VALID)
def test_documents_within_the_schema_pass(document: dict[str, Any]) -> None:
    validate(document, SCHEMA, "")


@pytest.mark.parametrize(("document", "path", "problem"), INVALID)
def test_each_keyword_is_enforced_with_the_field_path(
    document: dict[str, Any], path: str, problem: str
) -> None:
    with pytest.raises(SpecError) as caught:
        validate(document, SCHEMA, "")
    assert caught.value.path == path
    assert problem in caught.value.problem


def test_metadata_is_left_to_the_api_server_except_the_name() -> None:
    document: dict[str, Any] = {
        "apiVersion": "workerpool.dev/v1alpha1", "kind": "WorkerPool",
        "metadata": {"name": "shop", "labels": {"team": "a"}, "uid": "1", "resourceVersion": "9"},
        "spec": {"image": "shop:1", "workerPackages": ["shop.jobs"]},
    }  # fmt: skip
    validate(document, pool_schema(), "")
    document["metadata"]["name"] = "Shop"
    with pytest.raises(SpecError, match=r"^metadata\.name: 'Shop' should match"):
        validate(document, pool_schema(), "")


def test_a_status_read_back_from_the_cluster_is_valid() -> None:
    """`kubectl get wp -o yaml | workerpool render -` works: the status is in the schema."""
    status = {
        "observedGeneration": 1, "replicas": 1, "readyReplicas": 1, "desiredReplicas": 1,
        "selector": "a=b", "environment": "preview",
        "components": {"worker": {"desiredReplicas": 1, "readyReplicas": 1,
                                  "updatedReplicas": 1, "ready": True}},
        "conditions": [{"type": "Ready", "status": "True", "reason": "Available", "message": "m",
                        "lastTransitionTime": "2030-01-01T00:00:00Z", "observedGeneration": 1}],
    }  # fmt: skip
    validate(status, pool_schema()["properties"]["status"], "status")
