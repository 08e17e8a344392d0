"""Issue 23 on a real redis-server started with the operator's own command line: a flood past
the managed Redis's memory refuses the producer with Redis's "OOM" error, keeps every job it
took (noeviction: nothing is evicted), and the operator's reader reports the pool full."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from workerpool_operator.builders.redis import redis_command, redis_maxmemory
from workerpool_operator.pressure import memory_problem
from workerpool_operator.redisload import LoadReader
from workerpool_operator.spec import parse_pool

from tests.controlplane.harness import free_port
from tests.controlplane.waiting import wait_for
from worker_runtime.local.embedded_redis import redis_server_binary

pytestmark = pytest.mark.integration

PASSWORD = "test-password"
POOL = parse_pool(
    "shop",
    "apps",
    {
        "image": "shop:1",
        "workerPackages": ["shop.jobs"],
        "redis": {"resources": {"requests": {"memory": "32Mi"}, "limits": {"memory": "48Mi"}}},
    },
)


@pytest.fixture
def managed_redis(tmp_path: Path) -> Iterator[str]:
    """redis-server with the arguments the operator gives the managed Redis container."""
    port = free_port()
    args = [
        {"$(REDIS_PASSWORD)": PASSWORD, "/data": str(tmp_path), "6379": str(port)}.get(a, a)
        for a in redis_command(POOL)
    ]
    process = subprocess.Popen(
        [redis_server_binary(), *args[1:], "--bind", "127.0.0.1"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"redis://:{PASSWORD}@127.0.0.1:{port}/0"
    client = redis.Redis.from_url(url)
    try:
        wait_for(client.ping, timeout=10, message="redis-server", ignore=(redis.RedisError,))
        yield url
    finally:
        client.close()
        process.terminate()
        process.wait(timeout=10)


def test_a_full_redis_refuses_new_jobs_and_keeps_every_job_it_took(managed_redis: str) -> None:
    client = redis.Redis.from_url(managed_redis)
    assert int(str(client.config_get("maxmemory")["maxmemory"])) == redis_maxmemory(POOL)
    payload = b"x" * 64 * 1024

    def fill() -> int:
        """LPUSH jobs until Redis refuses one; 48Mi * 75% = 36Mi ends it long before 1,000."""
        for taken in range(1000):
            try:
                client.lpush("default", payload)
            except redis.exceptions.OutOfMemoryError:
                return taken
        raise AssertionError("Redis took 1,000 jobs of 64 KiB past its maxmemory")

    taken = fill()
    # What a producer gets from then on (redis-py maps Redis's "OOM" prefix to the class).
    with pytest.raises(redis.exceptions.OutOfMemoryError, match="used memory > 'maxmemory'"):
        client.lpush("default", payload)
    assert taken > 100
    assert client.llen("default") == taken  # noeviction: no job was dropped to make room

    reading = LoadReader().read(("apps", "shop"), managed_redis, ("default",))
    assert reading.memory is not None
    problem = memory_problem("apps/shop-redis", *reading.memory)
    assert problem is not None
    assert problem.reason == "RedisMemoryFull"
    assert "Redis apps/shop-redis is full: new jobs are refused" in problem.message
