"""A Redis that may evict keys is refused at start (issue 20): with `allkeys-lru` a full Redis
deletes queue lists, `unacked` and schedule payloads without a word. Worker and beat exit
with one line naming the setting; `WORKERPOOL_ALLOW_EVICTION=1` starts anyway, saying so.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis

from tests.integration.runtime.conftest import Spawn
from worker_runtime.local.embedded_redis import EmbeddedRedis

pytestmark = pytest.mark.integration


@pytest.fixture
def _evicting(redis_server: EmbeddedRedis) -> Iterator[None]:
    """The session's Redis set to a common managed-Redis default, for this test only."""
    client = redis.Redis.from_url(redis_server.url(0))
    assert client.config_get("maxmemory-policy")["maxmemory-policy"] == "noeviction"
    client.config_set("maxmemory-policy", "allkeys-lru")
    try:
        yield
    finally:
        client.config_set("maxmemory-policy", "noeviction")
        client.close()


@pytest.mark.usefixtures("_evicting")
@pytest.mark.parametrize("command", ["worker", "beat"])
def test_allkeys_lru_is_refused_with_one_line_naming_the_setting(
    spawn: Spawn, command: str
) -> None:
    proc = spawn(command, ready="")
    assert proc.popen.wait(timeout=60) != 0
    lines = [line for line in proc.output().splitlines() if "maxmemory-policy" in line]
    assert len(lines) == 1, proc.output()[-3000:]
    assert "'allkeys-lru'" in lines[0]
    assert "noeviction" in lines[0]
    assert "WORKERPOOL_ALLOW_EVICTION=1" in lines[0]
    assert "Traceback" not in proc.output()


@pytest.mark.usefixtures("_evicting")
def test_the_override_starts_the_worker_and_says_so(spawn: Spawn) -> None:
    proc = spawn("worker", "--concurrency=1", extra_env={"WORKERPOOL_ALLOW_EVICTION": "1"})
    assert "starting anyway" in proc.output()
