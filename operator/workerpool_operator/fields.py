"""Typed, path-aware reading of untyped spec mappings, for the spec parser.

Every accessor checks the type (and range/pattern where given) and raises `SpecError` naming
the exact field (e.g. `spec.redis.persistence.size`), so a user can act on the message.
Pure; must not import kubernetes or kopf.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from workerpool_operator.errors import SpecError
from workerpool_operator.quantity import QuantityError, parse_quantity

_EMPTY: Mapping[str, Any] = {}


class Fields:
    """Accessors over one mapping of the spec, located at `path`."""

    def __init__(self, data: Mapping[str, Any], path: str) -> None:
        self.data = data
        self.path = path

    def _at(self, key: str) -> str:
        return f"{self.path}.{key}"

    def has(self, key: str) -> bool:
        return self.data.get(key) is not None

    def child(self, key: str) -> Fields:
        value = self.data.get(key)
        if value is None:
            return Fields(_EMPTY, self._at(key))
        if not isinstance(value, Mapping):
            raise SpecError(self._at(key), f"must be an object, got {type(value).__name__}")
        return Fields(value, self._at(key))

    def optional_object(self, key: str) -> Mapping[str, Any] | None:
        return self.child(key).data if self.has(key) else None

    def string(self, key: str) -> str:
        """A required non-empty string."""
        value = self.optional_string(key)
        if value is None:
            raise SpecError(self._at(key), "is required")
        return value

    def optional_string(self, key: str) -> str | None:
        value = self.data.get(key)
        if value is None:
            return None
        if not isinstance(value, str) or not value:
            raise SpecError(self._at(key), "must be a non-empty string")
        return value

    def string_or(self, key: str, default: str) -> str:
        value = self.optional_string(key)
        return default if value is None else value

    def enum(self, key: str, choices: tuple[str, ...], default: str) -> str:
        value = self.optional_enum(key, choices)
        return default if value is None else value

    def optional_enum(self, key: str, choices: tuple[str, ...]) -> str | None:
        value = self.optional_string(key)
        if value is not None and value not in choices:
            raise SpecError(self._at(key), f"{value!r} is not one of {', '.join(choices)}")
        return value

    def integer(self, key: str, low: int, high: int, default: int) -> int:
        value = self.data.get(key)
        if value is None:
            return default
        if not isinstance(value, int) or isinstance(value, bool):
            raise SpecError(self._at(key), f"must be an integer, got {value!r}")
        number: int = value
        if not low <= value <= high:
            raise SpecError(self._at(key), f"{value} is outside {low}..{high}")
        return number

    def boolean(self, key: str, default: bool) -> bool:
        value = self.data.get(key)
        if value is None:
            return default
        if not isinstance(value, bool):
            raise SpecError(self._at(key), f"must be true or false, got {value!r}")
        return value

    def quantity(self, key: str, default: str) -> str:
        value = self.data.get(key)
        if value is None:
            return default
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            raise SpecError(self._at(key), f"must be a quantity, got {value!r}")
        try:
            if parse_quantity(value) < 0:
                raise SpecError(self._at(key), f"{value} must not be negative")
        except QuantityError as error:
            raise SpecError(self._at(key), str(error)) from error
        return str(value)

    def str_list(
        self, key: str, pattern: re.Pattern[str] | None = None, required: bool = False
    ) -> tuple[str, ...]:
        value = self.data.get(key)
        if value is None or value == []:
            if required:
                raise SpecError(self._at(key), "needs at least one entry")
            return ()
        if not isinstance(value, list):
            raise SpecError(self._at(key), "must be a list")
        for i, item in enumerate(value):
            if not isinstance(item, str):
                raise SpecError(f"{self._at(key)}[{i}]", f"must be a string, got {item!r}")
            if pattern is not None and not pattern.match(item):
                raise SpecError(f"{self._at(key)}[{i}]", f"{item!r} must match {pattern.pattern}")
        return tuple(value)

    def str_map(self, key: str) -> dict[str, str]:
        value = self.child(key).data
        for k, v in value.items():
            if not isinstance(v, str):
                raise SpecError(f"{self._at(key)}.{k}", "must be a string")
        return dict(value)

    def object_list(self, key: str) -> list[Mapping[str, Any]]:
        value = self.data.get(key)
        if value is None:
            return []
        if not isinstance(value, list):
            raise SpecError(self._at(key), "must be a list")
        for i, item in enumerate(value):
            if not isinstance(item, Mapping):
                raise SpecError(f"{self._at(key)}[{i}]", "must be an object")
        return list(value)
