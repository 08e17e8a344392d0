"""Polling with a deadline: the only sanctioned way for tests to wait for the cluster.

Owns `wait_for` and its `WaitTimeout` error. Must not know anything about Kubernetes and must
never sleep for a fixed time without re-checking the condition: every wait is a predicate
polled until it holds or a deadline passes, so a fast cluster makes a fast test.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")

__all__ = ["WaitTimeout", "wait_for"]


class WaitTimeout(AssertionError):
    """The condition did not hold before the deadline.

    An AssertionError so pytest reports it as a test failure, not as an error in the harness.
    """


def wait_for(
    predicate: Callable[[], T],
    timeout: float = 30.0,
    interval: float = 0.2,
    message: str | Callable[[], str] = "condition",
    ignore: tuple[type[BaseException], ...] = (),
) -> T:
    """Call `predicate` until it returns something truthy, and return that value.

    `message` describes what was awaited; a callable is evaluated only on timeout so it can
    report the state at that moment (e.g. the object's current status). Exceptions listed in
    `ignore` count as "not yet" (e.g. a 404 while an object is being created); the last one is
    chained to the timeout error so its cause is not lost.
    """
    deadline = time.monotonic() + timeout
    last_error: BaseException | None = None
    last_value: object = None
    while True:
        try:
            value = predicate()
        except ignore as error:
            last_error = error
        else:
            if value:
                return value
            last_value = value
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            break
        time.sleep(min(interval, remaining))
    text = message() if callable(message) else message
    detail = f"last error: {last_error!r}" if last_error is not None else f"last: {last_value!r}"
    raise WaitTimeout(f"timed out after {timeout:g}s waiting for {text} ({detail})") from last_error
