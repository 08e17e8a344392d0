"""Retry delays: exponential, capped, jittered within known bounds."""

from __future__ import annotations

import pytest

from worker_runtime.core.backoff import BASE_DELAY, backoff_ceiling, retry_delay


@pytest.mark.parametrize(
    ("attempt", "cap", "ceiling"),
    [(1, 600, 1), (2, 600, 2), (3, 600, 4), (10, 600, 512), (11, 600, 600), (500, 600, 600)],
)
def test_ceiling_doubles_until_the_cap(attempt: int, cap: float, ceiling: float) -> None:
    assert backoff_ceiling(attempt, cap) == ceiling


def test_delay_is_drawn_between_half_and_full_ceiling() -> None:
    bounds: list[tuple[float, float]] = []

    def record(low: float, high: float) -> float:
        bounds.append((low, high))
        return high

    assert retry_delay(4, exponential=True, cap=600, uniform=record) == 8
    assert bounds == [(4, 8)]


def test_delays_are_jittered_with_the_real_random_source() -> None:
    delays = {retry_delay(5, exponential=True, cap=600) for _ in range(50)}
    assert len(delays) > 1
    assert all(8 <= d <= 16 for d in delays)


def test_without_backoff_the_delay_is_fixed_and_capped() -> None:
    assert retry_delay(7, exponential=False, cap=600) == BASE_DELAY
    assert retry_delay(7, exponential=False, cap=0.5) == 0.5


def test_attempts_start_at_one() -> None:
    with pytest.raises(ValueError, match="attempt"):
        backoff_ceiling(0, 600)
