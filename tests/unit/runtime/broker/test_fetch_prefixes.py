"""Tracking prefixes for the reliable fetch: Redis refuses overlapping ones."""

from __future__ import annotations

import pytest

from worker_runtime.broker.fetch import tracking_prefixes


@pytest.mark.parametrize(
    ("queues", "prefixes"),
    [
        (["critical", "default", "low"], ["low", "default", "critical"]),
        (["a", "ab", "b"], ["a", "b"]),
        (["default", "default"], ["default"]),
        (["reports.low", "reports"], ["reports"]),
    ],
)
def test_overlapping_queue_names_keep_the_shortest(queues: list[str], prefixes: list[str]) -> None:
    assert sorted(tracking_prefixes(queues)) == sorted(prefixes)
