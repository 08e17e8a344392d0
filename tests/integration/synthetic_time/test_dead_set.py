"""The dead set against real Redis with synthetic failure times: newest first, bounded like
Sidekiq's, and retry/purge leave no orphan record."""

from __future__ import annotations

import pytest
import redis

from tests.integration.synthetic_time.conftest import KEYS, T0
from worker_runtime.core.messages import decode_message
from worker_runtime.store.dead import DeadJob, DeadJobs

pytestmark = pytest.mark.integration


def dead_job(n: int, failed_at: float) -> DeadJob:
    return DeadJob(
        id=f"job-{n}",
        task="tests.Fails",
        queue="low",
        args=[n],
        kwargs={"tag": f"t{n}"},
        error=f"ValueError: boom {n}",
        traceback="Traceback ...",
        attempts=3,
        started_at=failed_at - 1,
        failed_at=failed_at,
    )


def at(seconds: float) -> float:
    return T0.timestamp() + seconds


def test_dead_jobs_are_listed_newest_first_and_read_back_unchanged(client: redis.Redis) -> None:
    dead = DeadJobs(client, KEYS)
    # Added out of order: the listing follows the failure time, not the insertion order.
    for n, seconds in [(1, 10), (3, 30), (2, 20)]:
        dead.add(dead_job(n, at(seconds)))

    assert dead.count() == 3
    assert [job.id for job in dead.list()] == ["job-3", "job-2", "job-1"]
    assert [job.id for job in dead.list(limit=2)] == ["job-3", "job-2"]
    assert dead.get("job-2") == dead_job(2, at(20))
    assert dead.get("job-9") is None


def test_beyond_its_cap_the_oldest_dead_jobs_and_their_records_go(client: redis.Redis) -> None:
    dead = DeadJobs(client, KEYS, max_jobs=3)
    for n in range(5):
        dead.add(dead_job(n, at(n)))

    assert [job.id for job in dead.list()] == ["job-4", "job-3", "job-2"]
    assert client.hlen(KEYS.dead_records) == 3, "a trimmed job left its record behind"
    assert dead.get("job-0") is None


def test_retry_queues_the_job_again_under_its_id_with_a_fresh_retry_budget(
    client: redis.Redis,
) -> None:
    dead = DeadJobs(client, KEYS)
    dead.add(dead_job(7, at(0)))

    assert dead.retry("job-7") is True
    assert dead.retry("job-7") is False, "a retried job must leave the dead set"
    [raw] = client.lrange("low", 0, -1)
    job = decode_message(raw)
    assert (job["id"], job["task"], job["args"], job["kwargs"], job["retries"]) == (
        "job-7", "tests.Fails", [7], {"tag": "t7"}, 0
    )  # fmt: skip
    assert dead.count() == 0
    assert client.hlen(KEYS.dead_records) == 0


def test_purge_removes_one_job_or_all_of_them(client: redis.Redis) -> None:
    dead = DeadJobs(client, KEYS)
    for n in range(4):
        dead.add(dead_job(n, at(n)))

    assert dead.purge("job-1") == 1
    assert dead.purge("job-1") == 0
    assert [job.id for job in dead.list()] == ["job-3", "job-2", "job-0"]
    assert dead.purge() == 3
    assert dead.count() == 0
    assert client.exists(KEYS.dead, KEYS.dead_records) == 0
