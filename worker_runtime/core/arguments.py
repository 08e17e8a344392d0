"""Checks that job arguments bind to `perform` and survive a JSON round trip unchanged.

Pure. Runs at the call site of `perform_*` so the caller gets the error, not a worker minutes
later (dramatiq and Sidekiq's `strict_args!` do the same). Plain JSON only: a tuple would arrive
as a list and an int dict key as a string, so both are refused rather than silently changed.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Mapping, Sequence
from typing import Any


class JobArgumentError(TypeError):
    """Arguments that do not fit `perform` or are not plain JSON."""


def check_arguments(
    owner: str,
    signature: inspect.Signature,
    args: Sequence[Any],
    kwargs: Mapping[str, Any],
) -> None:
    """Raise JobArgumentError naming `owner` and the argument at fault."""
    try:
        bound = signature.bind(*args, **kwargs)
    except TypeError as exc:
        raise JobArgumentError(
            f"{owner}: arguments do not match perform{signature}: {exc}"
        ) from None
    for name, value in bound.arguments.items():
        problem = _json_problem(value)
        if problem is not None:
            raise JobArgumentError(f"{owner}: argument {name!r} is not plain JSON: {problem}")


def _json_problem(value: Any, path: str = "") -> str | None:
    """Describe the first part of `value` that JSON would reject or change, else None."""
    # bool is an int subclass and must stay allowed; exact type checks keep subclasses
    # (enums, numpy scalars) out, since they would decode as something else.
    if value is None or type(value) in (str, int, bool):
        return None
    if type(value) is float:
        return None if math.isfinite(value) else f"{path or 'value'} is {value!r}"
    if type(value) is list:
        for index, item in enumerate(value):
            problem = _json_problem(item, f"{path}[{index}]")
            if problem:
                return problem
        return None
    if type(value) is dict:
        for key, item in value.items():
            if type(key) is not str:
                return (
                    f"{path or 'dict'} has key {key!r} of type {type(key).__name__}; "
                    "JSON keys are strings"
                )
            problem = _json_problem(item, f"{path}[{key!r}]")
            if problem:
                return problem
        return None
    where = path or "value"
    return f"{where} is a {type(value).__name__}, which JSON cannot carry unchanged"
