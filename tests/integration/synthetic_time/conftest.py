"""Scheduling logic against the real redis-server with synthetic times: no worker, no beat,
no sleep.

The cron dispatcher, the schedule set, the dead set and job execution take the time as an
argument (or, for execution, report the delay they chose), so exactly-once, misfire, overlap,
DST and racing dispatchers are driven here by calling them with chosen instants, milliseconds a
test. Redis is the session `redis_server` of tests/integration/conftest.py; each test gets its
own flushed database through `redis_url`. What needs real processes (a beat or worker wiring
these pieces together, a process being killed) stays in tests/integration/scheduling/.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
import redis

from worker_runtime.core.keys import Keys

KEYS = Keys()
#: Synthetic "now" of every test: a Monday, far from today so nothing real can be due.
T0 = datetime(2030, 1, 7, 9, 0, tzinfo=UTC)


def at(*, minutes: float = 0, seconds: float = 0, milliseconds: float = 0) -> datetime:
    return T0 + timedelta(minutes=minutes, seconds=seconds, milliseconds=milliseconds)


@pytest.fixture
def client(redis_url: str) -> Iterator[redis.Redis]:
    """A connection to this test's database, like one beat's or worker's."""
    connection = redis.Redis.from_url(redis_url)
    yield connection
    connection.close()


@pytest.fixture
def other_client(redis_url: str) -> Iterator[redis.Redis]:
    """A second, independent connection: the client of a second beat or worker."""
    connection = redis.Redis.from_url(redis_url)
    yield connection
    connection.close()
