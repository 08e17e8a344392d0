"""Retry delays: exponential, capped and jittered.

Pure: the random source is passed in so tests can pin it. Must not sleep or schedule anything.
Same shape as dramatiq's `compute_backoff` and Celery's `retry_backoff` ("full jitter",
https://aws.amazon.com/blogs/architecture/exponential-backoff-and-jitter/), which spreads a
burst of failures instead of retrying them in lock-step.
"""

from __future__ import annotations

import random
from collections.abc import Callable

#: Seconds before the first retry; doubles each attempt.
BASE_DELAY = 1.0


def backoff_ceiling(attempt: int, cap: float, *, base: float = BASE_DELAY) -> float:
    """Largest delay before retry number `attempt` (1 = first retry): base * 2**(attempt-1)."""
    if attempt < 1:
        raise ValueError(f"attempt must be >= 1, got {attempt}")
    # min() before the power would still overflow for huge attempts; clamp the exponent.
    return min(cap, base * float(2 ** min(attempt - 1, 62)))


def retry_delay(
    attempt: int,
    *,
    exponential: bool,
    cap: float,
    uniform: Callable[[float, float], float] = random.uniform,
) -> float:
    """Seconds to wait before retry `attempt`.

    With `exponential`, a uniform draw between half the ceiling and the ceiling: jittered
    but never near zero, so a retry storm cannot hammer a struggling dependency. Without
    it, a fixed `BASE_DELAY` (bounded by `cap`).
    """
    if not exponential:
        return min(BASE_DELAY, cap)
    ceiling = backoff_ceiling(attempt, cap)
    return float(uniform(ceiling / 2, ceiling))
