"""The only module of the operator that talks to a pool's Redis: one pipelined round trip per
pool per evaluation (load.commands), read-only except for deleting long-expired pod reports.

Keeps one small client per pool (a connection pool of at most one connection, reused across
evaluations) and what must survive between evaluations: the oldest-message sightings (load.py)
and, after a failure, when to try again, so an unreachable Redis costs one failed connect per
RETRY_SECONDS, not one per pass. Short timeouts: a reconcile pass must never hang on Redis.
Must not decide anything from the load, and never put a URL (it carries the password) in a
message.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from time import monotonic, time
from typing import Final

import redis

from workerpool_operator import load
from workerpool_operator.load import Reading

CONNECT_TIMEOUT_SECONDS: Final = 1.0
READ_TIMEOUT_SECONDS: Final = 2.0
RETRY_SECONDS: Final = 15.0


@dataclass
class _PoolState:
    url: str
    client: redis.Redis
    sightings: dict[str, load.Sighting] = field(default_factory=dict)
    retry_at: float = 0.0
    error: str = ""


class LoadReader:
    """Reads pools' loads; thread-safe (kopf runs sync handlers in a thread pool)."""

    def __init__(self) -> None:
        self._pools: dict[tuple[str, str], _PoolState] = {}
        self._lock = threading.Lock()

    def read(self, pool: tuple[str, str], url: str, queues: tuple[str, ...]) -> Reading:
        state = self._state(pool, url)
        if monotonic() < state.retry_at:
            return Reading(None, state.error)
        now = time()
        batch = load.commands(queues, now)
        try:
            with state.client.pipeline(transaction=False) as pipe:
                for command in batch:
                    pipe.execute_command(*command)  # type: ignore[no-untyped-call]
                # In the same round trip: memory pressure for the status (pressure.py).
                pipe.execute_command("INFO", "memory")  # type: ignore[no-untyped-call]
                replies = pipe.execute()
            memory = _memory(replies.pop())
            found = load.load_from(queues, replies, now, state.sightings)
            if found.expired_pods:
                state.client.hdel(load.LOAD_KEY, *found.expired_pods)
        except (redis.RedisError, ValueError) as error:
            state.retry_at = monotonic() + RETRY_SECONDS
            state.error = f"cannot read the pool's Redis: {type(error).__name__}"
            return Reading(None, state.error, len(batch) + 1)
        state.sightings = dict(found.sightings)
        return Reading(found, "", len(batch) + 1, memory)

    def forget(self, pool: tuple[str, str]) -> None:
        with self._lock:
            state = self._pools.pop(pool, None)
        if state is not None:
            state.client.close()

    def _state(self, pool: tuple[str, str], url: str) -> _PoolState:
        with self._lock:
            state = self._pools.get(pool)
            if state is not None and state.url == url:
                return state
            if state is not None:
                state.client.close()  # password or URL changed
            client = redis.Redis.from_url(
                url,
                socket_connect_timeout=CONNECT_TIMEOUT_SECONDS,
                socket_timeout=READ_TIMEOUT_SECONDS,
                max_connections=1,
            )
            state = self._pools[pool] = _PoolState(url=url, client=client)
            return state


def _memory(info: object) -> tuple[int, int] | None:
    """(used_memory, maxmemory) from redis-py's parsed `INFO memory`, if it has them."""
    if not isinstance(info, dict):
        return None
    used, limit = info.get("used_memory"), info.get("maxmemory")
    if not isinstance(used, int) or not isinstance(limit, int):
        return None
    return used, limit
