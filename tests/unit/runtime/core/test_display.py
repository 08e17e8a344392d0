"""How times and arguments read in the CLI and on the pages (core/display.py)."""

from __future__ import annotations

import pytest

from worker_runtime.core.display import arguments, cut, relative

NOW = 1_800_000_000.0


@pytest.mark.parametrize(
    ("offset", "text"),
    [
        (0.4, "now"),
        (-0.4, "now"),
        (9, "in 9s"),
        (-9, "9s ago"),
        (65, "in 1m5s"),
        (-600, "10m ago"),
        (3_700, "in 1h1m"),
        (7_200, "in 2h"),
        (-200_000, "2d7h ago"),
        (30 * 86_400, "in 30d"),
    ],
)
def test_relative_times_read_forwards_and_backwards_never_as_negative_counts(
    offset: float, text: str
) -> None:
    assert relative(NOW + offset, NOW) == text


def test_no_time_is_a_dash() -> None:
    assert relative(None, NOW) == "-"


def test_arguments_read_as_the_call_and_are_cut_to_one_line() -> None:
    assert arguments([1, "x"], {"user_id": 42}) == '1, "x", user_id=42'
    assert arguments([], {}) == ""
    assert cut("a\nb   c") == "a b c"
    long = arguments(["y" * 100], {}, width=10)
    assert long == '"yyyyyyyy…'
    assert len(long) == 10
