"""The autoscaling decision: fast up, stabilised down, bounded, and honest without a reading."""

from __future__ import annotations

from typing import Any

import pytest
from workerpool_operator.autoscale import Decision, decide
from workerpool_operator.load import Load, QueueLoad
from workerpool_operator.model import AutoscalingSpec

SPEC = AutoscalingSpec(
    min_replicas=1, max_replicas=5, jobs_per_worker=4, scale_down_stabilization_seconds=60
)
T0 = "2030-01-01T00:00:00Z"


def at(seconds: int) -> str:
    return f"2030-01-01T00:{seconds // 60:02d}:{seconds % 60:02d}Z"


def demand(queued: int, unacked: int = 0, due: int = 0) -> Load:
    return Load(
        queues={"default": QueueLoad(queued, 0, 0, due, 0.0)}, pods={}, unacked=unacked, dead=0
    )


def status(decision: Decision) -> dict[str, Any]:
    return decision.to_status()


@pytest.mark.parametrize(
    ("load", "replicas"),
    [
        (demand(0), 1),  # never below min
        (demand(4), 1),
        (demand(5), 2),  # ceil(5 / 4)
        (demand(3, unacked=3, due=3), 3),  # held and due count as demand
        (demand(1000), 5),  # never above max
    ],
)
def test_scale_up_is_immediate_and_bounded(load: Load, replicas: int) -> None:
    decision = decide(SPEC, load, {"replicas": 1}, T0)
    assert decision.replicas == replicas
    assert decision.reason == ("ScaledUp" if replicas > 1 else "Steady")


def test_a_first_decision_starts_at_the_minimum() -> None:
    assert decide(SPEC, demand(0), None, T0).replicas == 1
    assert decide(SPEC, demand(9), None, T0).replicas == 3


def test_scale_down_waits_for_the_window_then_takes_the_windows_peak() -> None:
    first = decide(SPEC, demand(4), {"replicas": 5}, T0)
    assert (first.replicas, first.reason) == (5, "ScaleDownStabilizing")
    assert first.below_since == T0
    assert first.peak_since_below == 1
    second = decide(SPEC, demand(12), status(first), at(30))
    assert (second.replicas, second.reason, second.peak_since_below) == (
        5,
        "ScaleDownStabilizing",
        3,
    )
    assert "30s left" in second.message
    third = decide(SPEC, demand(0), status(second), at(60))
    assert (third.replicas, third.reason, third.below_since) == (3, "ScaledDown", None)


def test_a_burst_during_the_window_cancels_the_scale_down() -> None:
    waiting = decide(SPEC, demand(0), {"replicas": 3}, T0)
    steady = decide(SPEC, demand(12), status(waiting), at(30))
    assert (steady.replicas, steady.reason, steady.below_since) == (3, "Steady", None)
    again = decide(SPEC, demand(0), status(steady), at(59))
    assert again.below_since == at(59)  # a new window


def test_zero_window_scales_down_at_once() -> None:
    spec = AutoscalingSpec(0, 5, 4, 0)
    decision = decide(spec, demand(0), {"replicas": 5}, T0)
    assert (decision.replicas, decision.reason) == (0, "ScaledDown")


def test_changed_bounds_apply_at_once() -> None:
    decision = decide(SPEC, demand(0), {"replicas": 9}, T0)
    assert decision.replicas == 5  # clamped to the new max, then stabilised
    raised = decide(AutoscalingSpec(2, 5, 4, 60), demand(0), {"replicas": 1}, T0)
    assert (raised.replicas, raised.reason) == (2, "Bounds")
    same = decide(SPEC, demand(20), {"replicas": 9}, T0)
    assert (same.replicas, same.reason) == (5, "Bounds")


def test_no_reading_keeps_the_count_and_says_why() -> None:
    decision = decide(SPEC, None, {"replicas": 4}, T0, unavailable="cannot read the pool's Redis")
    assert (decision.replicas, decision.reason) == (4, "LoadUnavailable")
    assert decision.message == "cannot read the pool's Redis; keeping 4 worker(s)"


def test_the_reason_names_the_load_and_the_rule() -> None:
    decision = decide(SPEC, demand(9), {"replicas": 1}, T0)
    assert decision.message == (
        "9 job(s) held, queued or due at 4 per worker want 3 worker(s) (bounds 1..5): 1 -> 3"
    )


def pods_load(**pods: tuple[int, int]) -> Load:
    from workerpool_operator.load import PodLoad

    return Load(
        queues={},
        pods={n: PodLoad(r, running) for n, (r, running) in pods.items()},
        unacked=0,
        dead=0,
    )


def test_an_idle_pod_costs_least_and_a_running_job_outweighs_prefetched_ones() -> None:
    from workerpool_operator.autoscale import deletion_costs

    load = pods_load(**{"shop-worker-a": (0, 0), "shop-worker-b": (3, 1), "shop-worker-c": (4, 0)})
    costs = deletion_costs(load, None, "shop-worker-")
    assert costs == {"shop-worker-a": 0, "shop-worker-b": 1002, "shop-worker-c": 4}


def test_costs_are_written_only_when_a_pods_report_changed_and_reset_when_it_went_away() -> None:
    from workerpool_operator.autoscale import deletion_costs

    previous = {
        "shop-worker-a": {"reserved": 1, "running": 1},
        "shop-worker-gone": {"reserved": 1, "running": 1},
    }
    load = pods_load(
        **{"shop-worker-a": (1, 1), "shop-worker-new": (2, 2), "other-worker-x": (1, 1)}
    )
    assert deletion_costs(load, previous, "shop-worker-") == {
        "shop-worker-new": 2000,
        "shop-worker-gone": 0,
    }
