"""The load figure from Redis replies: one batch of 3 commands per queue + 3, read in order."""

from __future__ import annotations

import json
from typing import Any

import pytest
from workerpool_operator import load
from workerpool_operator.load import Load, QueueLoad, Sighting, commands, load_from, load_status

QUEUES = ("critical", "default", "low")
NOW = 1_000_000.0


def message(tag: str) -> bytes:
    return json.dumps({"body": "", "properties": {"delivery_tag": tag}}).encode()


def report(queues: dict[str, tuple[int, int]], expires: float = NOW + 15, ttl: float = 15) -> bytes:
    return json.dumps(
        {
            "expires": expires,
            "ttl": ttl,
            "queues": {q: {"reserved": r, "running": n} for q, (r, n) in queues.items()},
        }
    ).encode()


def replies(
    per_queue: dict[str, tuple[int, bytes | None, int]],
    unacked: int = 0,
    dead: int = 0,
    pods: dict[bytes, bytes] | None = None,
    jobs: dict[bytes, bytes] | None = None,
    durations: dict[bytes, bytes] | None = None,
) -> list[Any]:
    found: list[Any] = []
    for queue in QUEUES:
        found.extend(per_queue.get(queue, (0, None, 0)))
    return [*found, unacked, dead, pods or {}, jobs or {}, durations or {}]


def test_one_batch_costs_three_commands_per_queue_and_five_for_the_pool() -> None:
    batch = commands(QUEUES, NOW)
    assert len(batch) == 3 * len(QUEUES) + 5 == 14
    assert batch[0] == ("LLEN", "critical")
    assert batch[1] == ("LINDEX", "critical", -1)
    assert batch[2] == ("ZCOUNT", "workerpool:schedule:critical", "-inf", NOW + 30)
    assert batch[-5:] == [
        ("HLEN", "unacked"),
        ("ZCARD", "workerpool:dead"),
        ("HGETALL", load.LOAD_KEY),
        ("HGETALL", "workerpool:stats:jobs"),
        ("HGETALL", "workerpool:stats:duration"),
    ]


def test_queued_due_reserved_running_and_dead_per_queue_and_pool() -> None:
    pods = {
        b"shop-worker-a": report({"default": (3, 2)}),
        b"shop-worker-b": report({"default": (1, 1), "low": (1, 0)}),
    }
    found = load_from(
        QUEUES,
        replies({"default": (7, message("t1"), 2), "low": (1, message("t9"), 0)}, 5, 4, pods),
        NOW,
        {},
    )
    assert found.queues["default"] == QueueLoad(7, 4, 3, 2, 0.0)
    assert found.queues["low"] == QueueLoad(1, 1, 0, 0, 0.0)
    assert found.queues["critical"] == QueueLoad(0, 0, 0, 0, 0.0)
    assert found.backlog == 10  # 8 queued + 2 due
    assert found.reserved == 5
    assert found.running == 3
    assert found.dead == 4
    assert found.demand == 15
    assert found.pods["shop-worker-a"].running == 2
    assert found.pods["shop-worker-b"].reserved == 2


def test_kombus_unacked_hash_counts_held_jobs_a_worker_did_not_report() -> None:
    found = load_from(QUEUES, replies({}, unacked=6), NOW, {})
    assert found.reserved == 6
    assert found.demand == 6


def test_the_oldest_job_ages_while_the_same_message_stays_at_the_head() -> None:
    first = load_from(QUEUES, replies({"default": (2, message("t1"), 0)}), NOW, {})
    assert first.queues["default"].oldest_age_seconds == 0
    later = load_from(
        QUEUES, replies({"default": (2, message("t1"), 0)}), NOW + 42, first.sightings
    )
    assert later.queues["default"].oldest_age_seconds == 42
    assert later.oldest_age_seconds == 42
    moved = load_from(
        QUEUES, replies({"default": (1, message("t2"), 0)}), NOW + 50, later.sightings
    )
    assert moved.queues["default"].oldest_age_seconds == 0
    assert moved.sightings["default"] == Sighting("t2", NOW + 50)
    empty = load_from(QUEUES, replies({}), NOW + 60, moved.sightings)
    assert empty.sightings == {}


def test_a_message_kombu_cannot_read_is_still_a_waiting_message() -> None:
    first = load_from(QUEUES, replies({"low": (1, b"garbage", 0)}), NOW, {})
    later = load_from(QUEUES, replies({"low": (1, b"garbage", 0)}), NOW + 5, first.sightings)
    assert later.queues["low"].oldest_age_seconds == 5


def test_expired_pod_reports_are_ignored_then_collected() -> None:
    pods = {
        b"live": report({"default": (1, 1)}),
        b"lapsed": report({"default": (4, 4)}, expires=NOW - 1, ttl=15),
        b"gone": report({"default": (4, 4)}, expires=NOW - 16, ttl=15),
        b"broken": b"{",
    }
    found = load_from(QUEUES, replies({}, pods=pods), NOW, {})
    assert set(found.pods) == {"live"}
    assert found.expired_pods == ("broken", "gone")


def test_a_short_reply_is_refused() -> None:
    with pytest.raises(ValueError, match="expected 14 replies, got 3"):
        load_from(QUEUES, [0, None, 0], NOW, {})


def test_the_status_holds_whole_numbers_so_an_unchanged_load_writes_nothing() -> None:
    found = Load(
        queues={"default": QueueLoad(3, 1, 1, 2, 12.7)},
        pods={},
        unacked=1,
        dead=0,
    )
    status = load_status(found)
    assert status["backlog"] == 5
    assert status["oldestAgeSeconds"] == 12
    assert status["queues"]["default"] == {
        "queued": 3,
        "reserved": 1,
        "running": 1,
        "due": 2,
        "oldestAgeSeconds": 12,
    }


def test_job_counters_and_cumulative_duration_buckets_per_task() -> None:
    jobs = {b"shop.Mail\tprocessed": b"5", b"shop.Mail\tfailed": b"2", b"shop.Mail\tdead": b"1"}
    durations = {
        b"shop.Mail\t0.1": b"2",
        b"shop.Mail\t5.0": b"2",
        b"shop.Mail\t+Inf": b"1",
        b"shop.Mail\tsum": b"7200.5",
    }
    found = load_from(QUEUES, replies({}, jobs=jobs, durations=durations), NOW, {})
    assert found.jobs == {
        ("shop.Mail", "processed"): 5,
        ("shop.Mail", "failed"): 2,
        ("shop.Mail", "dead"): 1,
    }
    histogram = found.durations["shop.Mail"]
    assert dict(histogram.buckets)["0.1"] == 2
    assert dict(histogram.buckets)["1.0"] == 2
    assert dict(histogram.buckets)["5.0"] == 4
    assert dict(histogram.buckets)["3600.0"] == 4
    assert histogram.count == 5
    assert histogram.sum == 7200.5
