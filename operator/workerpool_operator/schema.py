"""Offline validation of a document against the CRD's own openAPIV3Schema, as the API server
does it: unknown fields, types, enums, patterns, lengths, ranges, item counts and set/map list
uniqueness. `workerpool render` runs it first, so a file the API server would refuse is
refused offline too, with the same field path.

What it leaves out, on purpose: `x-kubernetes-validations` (CEL) rules, which `spec.parse_pool`
mirrors in Python (a test lists every CEL rule and the bad spec that proves the mirror, and the
integration test runs that table against a real API server); `format` (int32/int64 ranges are
covered by minimum/maximum); defaults (a default is valid by construction). Hand-written over the
`jsonschema` package: the CRD dialect needs unknown-field errors, int-or-string and list types,
which would all be custom keywords there, and messages must name Kubernetes field paths.
Pure; no I/O; must not import kubernetes or kopf.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from workerpool_operator.errors import SpecError

Schema = Mapping[str, Any]

_TYPES: dict[str, tuple[type, ...]] = {
    "object": (Mapping,),
    "array": (list,),
    "string": (str,),
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
}


def validate(value: Any, schema: Schema, path: str) -> None:
    """Raise SpecError naming the first field of `value` that `schema` refuses."""
    if value is None:
        return  # a null is dropped like an omitted field (non-nullable structural schema)
    _check_type(value, schema, path)
    if "enum" in schema and value not in schema["enum"]:
        allowed = ", ".join(f'"{v}"' for v in schema["enum"])
        raise SpecError(path, f"Unsupported value: {value!r}: supported values: {allowed}")
    if isinstance(value, Mapping):
        _check_object(value, schema, path)
    elif isinstance(value, list):
        _check_array(value, schema, path)
    elif isinstance(value, str):
        _check_string(value, schema, path)
    elif isinstance(value, int | float) and not isinstance(value, bool):
        _check_number(value, schema, path)


def _check_type(value: Any, schema: Schema, path: str) -> None:
    if schema.get("x-kubernetes-int-or-string"):
        wanted: tuple[type, ...] = (int, str)
        name = "integer or string"
    elif "type" in schema:
        wanted, name = _TYPES[schema["type"]], str(schema["type"])
    else:
        return
    bool_mismatch = isinstance(value, bool) and bool not in wanted
    if bool_mismatch or not isinstance(value, wanted):
        raise SpecError(path, f"must be of type {name}, got {_kind(value)}")


def _kind(value: Any) -> str:
    """The JSON type name of a value (bool before int: a bool is an int in Python)."""
    for types, name in ((bool, "boolean"), (int, "integer"), (float, "number")):
        if isinstance(value, types):
            return name
    for name in ("string", "array", "object"):
        if isinstance(value, _TYPES[name]):
            return name
    return type(value).__name__


def _check_object(value: Mapping[str, Any], schema: Schema, path: str) -> None:
    properties: Mapping[str, Schema] = schema.get("properties") or {}
    extra = schema.get("additionalProperties")
    for key in schema.get("required") or []:
        if value.get(key) is None:
            raise SpecError(_join(path, key), "Required value")
    if "maxProperties" in schema and len(value) > schema["maxProperties"]:
        raise SpecError(path, f"must have at most {schema['maxProperties']} items")
    # The API server validates ObjectMeta itself: the schema may only narrow metadata.name.
    closed = (
        bool(properties)
        and not schema.get("x-kubernetes-preserve-unknown-fields")
        and path != "metadata"
    )
    for key, item in value.items():
        if key in properties:
            validate(item, properties[key], _join(path, key))
        elif isinstance(extra, Mapping):
            validate(item, extra, _join(path, key))
        elif closed:
            raise SpecError(_join(path, key), "unknown field")


def _check_array(value: list[Any], schema: Schema, path: str) -> None:
    if "minItems" in schema and len(value) < schema["minItems"]:
        raise SpecError(path, f"should have at least {schema['minItems']} items")
    if "maxItems" in schema and len(value) > schema["maxItems"]:
        raise SpecError(path, f"must have at most {schema['maxItems']} items")
    items = schema.get("items")
    for i, item in enumerate(value):
        if isinstance(items, Mapping):
            validate(item, items, f"{path}[{i}]")
    list_type = schema.get("x-kubernetes-list-type")
    if list_type == "set":
        _unique(value, list(value), path)
    elif list_type == "map":
        keys = schema.get("x-kubernetes-list-map-keys") or []
        _unique(value, [tuple(item.get(k) for k in keys) for item in value], path)


def _unique(value: Sequence[Any], identities: Sequence[Any], path: str) -> None:
    for i, identity in enumerate(identities):
        if identity in identities[:i]:
            raise SpecError(f"{path}[{i}]", f"Duplicate value: {value[i]!r}")


def _check_string(value: str, schema: Schema, path: str) -> None:
    if "minLength" in schema and len(value) < schema["minLength"]:
        raise SpecError(path, f"should be at least {schema['minLength']} chars long")
    if "maxLength" in schema and len(value) > schema["maxLength"]:
        raise SpecError(path, f"may not be more than {schema['maxLength']} bytes")
    # Go's regexp.MatchString finds a match anywhere, like re.search.
    if "pattern" in schema and not re.search(schema["pattern"], value):
        raise SpecError(path, f"{value!r} should match '{schema['pattern']}'")


def _check_number(value: float, schema: Schema, path: str) -> None:
    if "minimum" in schema and value < schema["minimum"]:
        raise SpecError(path, f"should be greater than or equal to {schema['minimum']}")
    if "maximum" in schema and value > schema["maximum"]:
        raise SpecError(path, f"should be less than or equal to {schema['maximum']}")


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key
