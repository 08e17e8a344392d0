"""kombu's Redis transport, reusing one client object per channel instead of one per command.

kombu's Redis `Channel.conn_or_acquire` builds a new `redis.Redis` for every command the
consumer sends outside its BRPOP loop: each event published for Flower, each delivery recorded
in the unacked hash and each ack. Since redis-py 6 building a client costs more than sending
the command (it copies about 200 response callbacks into a case-insensitive dict): a fifth of
the consumer process's Python time per no-op job (tests/benchmarks/PROFILE.md). A client built
on a connection pool owns no connection (it takes one from the pool per command) and is
thread-safe, so one client per pool sends exactly what the fresh ones sent.

intake.py's channel (unrunnable messages to the dead set) builds on this one, and app.py
selects intake's transport with Celery's `broker_transport` setting, so `redis://` URLs keep
working. Must not change which commands reach Redis, nor hold connections of its own.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from kombu.transport import redis as kombu_redis


class Channel(kombu_redis.Channel):
    _reused_client: Any = None

    @contextmanager
    def conn_or_acquire(self, client: Any = None) -> Iterator[Any]:
        if client:
            yield client
            return
        reused = self._reused_client
        # kombu drops and rebuilds its pool after a connection error; follow it there.
        if reused is None or reused.connection_pool is not self.pool:
            reused = self._reused_client = self._create_client()  # type: ignore[no-untyped-call]
        yield reused


class Transport(kombu_redis.Transport):
    Channel = Channel
