"""The load figure end to end on a real redis-server: a real worker reports the job it runs
and counts the jobs it finished,
and the operator's reader (workerpool_operator.redisload, the code the operator runs) reads
queued, due, reserved, running and per-pod figures in one batch whose cost is measured here
with Redis's own command statistics."""

from __future__ import annotations

import socket
import time

import pytest
import redis
from workerpool_operator.load import Load
from workerpool_operator.redisload import LoadReader

from tests.controlplane.waiting import wait_for
from tests.integration.runtime.conftest import Spawn
from tests.integration.runtime.jobs.recording import AlwaysFails, Echo, Sleepy, SleepyDefault
from worker_runtime.core.queues import QUEUES
from worker_runtime.runtime import Runtime

pytestmark = pytest.mark.integration
POOL = ("apps", "shop")


def calls(client: redis.Redis) -> int:
    """Commands the server has run, all clients together, minus our own INFO calls."""
    stats = client.info("commandstats")
    return sum(int(v["calls"]) for k, v in stats.items() if k != "cmdstat_info")


@pytest.mark.usefixtures("rt")  # perform_async enqueues through the current runtime
def test_a_running_job_is_reported_by_its_worker_and_read_by_the_operator(
    spawn: Spawn, redis_url: str
) -> None:
    spawn("worker", "--concurrency=1")
    SleepyDefault.perform_async(tag="long", seconds=60)
    for i in range(3):
        Sleepy.perform_async(tag=f"waiting-{i}")
    reader = LoadReader()

    def running() -> Load | None:
        found = reader.read(POOL, redis_url, tuple(QUEUES)).load
        return found if found is not None and found.running == 1 else None

    load = wait_for(running, timeout=30, message="the worker to report its running job")
    assert load is not None
    assert load.queues["default"].running == 1
    assert load.queues["default"].reserved == 1
    assert load.queues["low"].queued == 3
    assert load.unacked == 1  # kombu's own count agrees
    assert load.pods == {socket.gethostname(): load.pods[socket.gethostname()]}
    assert load.pods[socket.gethostname()].running == 1
    assert load.demand == 4


def test_one_evaluation_is_one_batch_of_fifteen_commands(rt: Runtime, redis_url: str) -> None:
    """No worker runs here, so the server's command count moves only with the reader's."""
    rt.redis.lpush("default", "{}")
    rt.redis.zadd("workerpool:schedule:default", {"due": time.time()})
    client = redis.Redis.from_url(redis_url)
    reader = LoadReader()
    reader.read(POOL, redis_url, tuple(QUEUES))  # connects (HELLO/CLIENT SETINFO, if any)
    before = calls(client)
    reading = reader.read(POOL, redis_url, tuple(QUEUES))
    spent = calls(client) - before
    print(f"one evaluation: {spent} Redis commands in one round trip")
    assert reading.load is not None
    assert reading.load.backlog == 2
    assert spent == 3 * len(QUEUES) + 5
    # ... and INFO memory for the pressure check, which calls() leaves out with its own INFO.
    assert reading.commands == spent + 1
    assert reading.memory is not None
    used, maxmemory = reading.memory
    assert used > 0
    assert maxmemory == int(str(client.config_get("maxmemory")["maxmemory"]))


@pytest.mark.usefixtures("rt")
def test_job_counters_and_durations_per_task_come_from_the_workers(
    spawn: Spawn, redis_url: str
) -> None:
    spawn("worker", "--concurrency=2")
    Echo.perform_async(user_id=1, data={})
    AlwaysFails.perform_async(key="k")  # 3 attempts (2 retries), then dead
    reader = LoadReader()
    echo, fails = Echo.task_name, AlwaysFails.task_name

    def settled() -> Load | None:
        found = reader.read(POOL, redis_url, tuple(QUEUES)).load
        if found is None or found.jobs.get((fails, "dead")) != 1:
            return None
        return found if found.jobs.get((echo, "processed")) == 1 else None

    load = wait_for(settled, timeout=60, message="the jobs to be counted")
    assert load is not None
    assert load.jobs[(fails, "processed")] == 3
    assert load.jobs[(fails, "failed")] == 3
    assert load.jobs[(fails, "retried")] == 2
    assert (echo, "failed") not in load.jobs
    assert load.durations[fails].count == 3
    assert load.durations[echo].count == 1
    assert load.dead == 1
