"""What a worker reports about its own load: requests counted per queue they came from."""

from __future__ import annotations

from types import SimpleNamespace

from worker_runtime.process.load_report import counts


def request(queue: str | None) -> SimpleNamespace:
    return SimpleNamespace(delivery_info={"routing_key": queue} if queue else {})


def test_reserved_includes_running_and_both_are_per_queue() -> None:
    reserved = [request("default"), request("default"), request("low"), request(None)]
    active = [request("default")]
    assert counts(reserved, active) == {
        "default": {"reserved": 2, "running": 1},
        "low": {"reserved": 1, "running": 0},
        "unknown": {"reserved": 1, "running": 0},
    }


def test_an_idle_worker_reports_nothing_held() -> None:
    assert counts([], []) == {}
