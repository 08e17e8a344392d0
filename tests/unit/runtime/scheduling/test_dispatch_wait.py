"""How long a dispatcher sleeps between passes: never longer than its interval (so an idle
schedule set is polled no harder than before), until the next due job when that is sooner."""

from __future__ import annotations

import pytest

from worker_runtime.scheduling.dispatcher import MIN_WAIT, next_wait

NOW = 1_900_000_000.0


@pytest.mark.parametrize(
    ("next_due", "expected"),
    [
        (None, 0.2),  # nothing scheduled: one pass per interval
        (NOW + 3600, 0.2),  # due later than the interval: the interval
        (NOW + 0.05, 0.05),  # due within the interval: wake at its due time
        (NOW + 0.001, MIN_WAIT),  # due at once: the floor bounds the passes per second
        (NOW - 5, MIN_WAIT),  # overdue (scheduled during the pass): at once, within the floor
    ],
)
def test_the_sleep_ends_at_the_next_due_job_within_the_interval(
    next_due: float | None, expected: float
) -> None:
    assert next_wait(next_due, NOW, interval=0.2) == pytest.approx(expected)
