"""The broker transport reuses one Redis client per channel and still talks to Redis."""

from __future__ import annotations

import pytest

from worker_runtime.broker import intake
from worker_runtime.broker.transport import Channel
from worker_runtime.runtime import Runtime

pytestmark = pytest.mark.integration


def test_the_worker_app_uses_the_reusing_transport(rt: Runtime) -> None:
    with rt.app.connection_for_write() as connection:
        # intake's channel (unrunnable messages) on top of the reusing one.
        assert isinstance(connection.default_channel, intake.Channel)
        assert isinstance(connection.default_channel, Channel)


def test_commands_outside_the_fetch_loop_share_one_client(rt: Runtime) -> None:
    with rt.app.connection_for_write() as connection:
        channel = connection.default_channel
        with channel.conn_or_acquire() as first, channel.conn_or_acquire() as second:
            assert first is second
            assert first.ping()
        given = object()
        with channel.conn_or_acquire(given) as client:
            assert client is given


def test_a_rebuilt_pool_gets_a_new_client(rt: Runtime) -> None:
    """kombu drops its pool after a connection error; the reused client must not outlive it."""
    with rt.app.connection_for_write() as connection:
        channel = connection.default_channel
        with channel.conn_or_acquire() as before:
            pass
        channel._pool = None  # what kombu's _disconnect_pools does
        with channel.conn_or_acquire() as after:
            assert after is not before
            assert after.connection_pool is channel.pool
            assert after.ping()
