"""Arguments are checked at the call site: they must bind to perform and be plain JSON."""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any

import pytest

from worker_runtime import JobArgumentError, Worker


class Payment(Worker):
    @classmethod
    def perform(cls, user_id: int, data: dict[str, Any], note: str = "") -> None:
        pass


def _check(*args: Any, **kwargs: Any) -> None:
    Payment._message(args, kwargs)


@pytest.mark.parametrize(
    ("args", "kwargs"),
    [
        ((1, {"a": [1, 2.5, None, True, {"b": "c"}]}), {}),
        ((), {"user_id": 1, "data": {}, "note": "x"}),
    ],
)
def test_plain_json_arguments_that_bind_are_accepted(
    args: tuple[Any, ...], kwargs: dict[str, Any]
) -> None:
    _check(*args, **kwargs)


@pytest.mark.parametrize(
    ("args", "kwargs", "message"),
    [
        ((1,), {}, "missing a required argument: 'data'"),
        ((1, {}, "n", "extra"), {}, "too many positional arguments"),
        ((), {"user_id": 1, "data": {}, "colour": "red"}, "unexpected keyword argument 'colour'"),
        ((1, {"when": datetime(2026, 1, 1)}), {}, r"argument 'data' .*datetime"),
        ((1, {1: "x"}), {}, "key 1 of type int; JSON keys are strings"),
        ((1, {"t": (1, 2)}), {}, r"\['t'\] is a tuple"),
        ((1, {"x": math.nan}), {}, "is nan"),
        ((1, {"s": {1, 2}}), {}, "is a set"),
        ((object(), {}), {}, "argument 'user_id' is not plain JSON"),
    ],
)
def test_bad_arguments_fail_at_the_call_site_naming_the_argument(
    args: tuple[Any, ...], kwargs: dict[str, Any], message: str
) -> None:
    with pytest.raises(JobArgumentError, match=message) as info:
        _check(*args, **kwargs)
    assert "Payment.perform" in str(info.value)


@pytest.mark.parametrize("when", ["2026-01-01", 1767225600, None])
def test_perform_at_refuses_a_when_that_is_not_a_datetime(when: Any) -> None:
    with pytest.raises(JobArgumentError, match="`when` must be a datetime"):
        Payment.perform_at(when, 1, {})


@pytest.mark.parametrize("delay", [1e12, -1e12, 10**15])
def test_perform_in_beyond_year_9999_is_a_job_argument_error_naming_the_delay(delay: Any) -> None:
    with pytest.raises(JobArgumentError, match=r"delay_seconds=.* beyond the largest date"):
        Payment.perform_in(delay, 1, {})


@pytest.mark.parametrize("delay", ["5", None, math.inf, True])
def test_perform_in_refuses_a_delay_that_is_not_a_number(delay: Any) -> None:
    with pytest.raises(JobArgumentError, match="delay_seconds"):
        Payment.perform_in(delay, 1, {})
