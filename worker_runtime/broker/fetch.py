"""Reliable fetch: a message leaves its queue list and enters `unacked` in one Redis step.

kombu's Redis channel takes a message with BRPOP and only afterwards records it in the
`unacked` hash and `unacked_index` sorted set (`QoS.append`): a slot killed between the two
(SIGKILL, the OOM killer, a frozen pod killed later) takes the message with it (issue 20).
Here one Lua script pops the first message in strict queue order (kombu's BRPOP keys, in its
order) and writes both records in the same atomic step: at every instant the message is in
its queue or held under a lease.

A script cannot block, and no Redis command waits on several lists without popping, so an
idle slot waits on client-side caching's broadcast notices (Redis 6+, no server setting): its
BRPOP connection asks Redis (`CLIENT TRACKING ON BCAST PREFIX <queue>`) to say whenever a key
of its queues changes, wakes within a round trip of a push, as BRPOP did, and runs the script
(a lost race just waits again). A PING each second (and after every message) makes it run the
script anyway: liveness evidence, and a safety net for a notice missed across a reconnect.
Considered: a `BLMOVE q q RIGHT RIGHT` waiter connection per queue (three sockets per slot for
kombu's poller), and keyspace notifications (a server setting managed Redis often forbids).

Must not decide what a message means (intake.py), ack, restore or renew. No `global_keyprefix`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from queue import Empty
from time import monotonic, time
from typing import Any

import redis
from kombu.transport import redis as kombu_redis
from kombu.transport import virtual
from kombu.utils import encoding, json

from worker_runtime.broker import transport

log = logging.getLogger(__name__)

# kombu's own decoders (untyped), so messages decode exactly as kombu would decode them.
_loads: Callable[[str], Any] = json.loads
_to_str: Callable[[bytes | str], str] = encoding.bytes_to_str

#: Redis's channel for client-side caching invalidations (RESP2 redirect mode).
INVALIDATE = "__redis__:invalidate"

#: KEYS: unacked hash, unacked_index sorted set, then the queue lists in priority order. ARGV:
#: the lease's score (kombu's: epoch seconds), then per list "1" if its messages are acked, "0"
#: if consumed without acks (Celery's reply queues). Returns nil or {key index, raw message,
#: tag or nil}: nil for no ack, or for no envelope kombu could record (the intake dead-sets it:
#: lost only to a kill between this script and that record).
TAKE = """
for i = 3, #KEYS do
  local raw = redis.call('RPOP', KEYS[i])
  if raw then
    if ARGV[i - 1] ~= '1' then
      return {i - 2, raw, false}
    end
    local ok, message = pcall(cjson.decode, raw)
    if ok and type(message) == 'table' and type(message.properties) == 'table' then
      local tag = message.properties.delivery_tag
      local info = message.properties.delivery_info
      if type(tag) == 'string' and type(info) == 'table' then
        redis.call('ZADD', KEYS[2], ARGV[1], tag)
        -- kombu's record, [payload, exchange, routing_key], around the bytes as they came.
        redis.call('HSET', KEYS[1], tag, '[' .. raw .. ',' .. cjson.encode(info.exchange)
          .. ',' .. cjson.encode(info.routing_key) .. ']')
        return {i - 2, raw, tag}
      end
    end
    return {i - 2, raw, false}
  end
end
return false
"""


def tracking_prefixes(queues: list[str]) -> list[str]:
    """Queue names as tracking prefixes: Redis refuses two that overlap (one a prefix of
    another), and the shorter already covers the longer."""
    kept: list[str] = []
    for name in sorted(set(queues), key=len):
        if not any(name.startswith(shorter) for shorter in kept):
            kept.append(name)
    return kept


class FetchUnsupportedError(RuntimeError):
    """The Redis server lacks what the reliable fetch needs."""


def _is_pong(reply: Any) -> bool:
    """PING's reply: "PONG", or ["pong", ""] on a RESP2 connection in subscribe mode."""
    if isinstance(reply, list):
        reply = reply[0] if len(reply) == 2 else None
    return reply in (b"PONG", "PONG", b"pong", "pong")


class QoS(kombu_redis.QoS):
    """kombu's QoS, not writing again what the take script already recorded."""

    def append(self, message: Any, delivery_tag: Any) -> None:
        channel = self.channel
        if getattr(channel, "_recorded_tag", None) == delivery_tag:
            channel._recorded_tag = None
            virtual.QoS.append(self, message, delivery_tag)  # type: ignore[no-untyped-call]
            return
        super().append(message, delivery_tag)  # type: ignore[no-untyped-call]


class Channel(transport.Channel):
    """kombu's Redis channel with the fetch above; subclasses decide what a taken message
    becomes (`_handle_taken`) and hear of every completed fetch (`_fetched`)."""

    QoS = QoS
    _recorded_tag: str | None = None
    _armed_sock: Any = None
    _armed_prefixes: tuple[str, ...] = ()
    _take_keys: list[str]
    _take_acked: list[str]
    _take_script: Any = None
    _waiting = False
    _no_ack_queues: frozenset[str] = frozenset()
    _ping_sent = False
    _rearm = False

    # Hooks.

    def _handle_taken(self, dest: str, raw: bytes, tag: str | None) -> bool:  # noqa: ARG002
        """Hand a taken message to kombu, as its `_brpop_read` does."""
        self.connection._deliver(_loads(_to_str(raw)), dest)
        return True

    def _fetched(self, *, empty: bool) -> None:
        """A take completed, with a message or `empty`."""

    # kombu's BRPOP hooks.

    def basic_consume(self, queue: str, no_ack: bool, *args: Any, **kwargs: Any) -> Any:
        # kombu records a delivery only for consumers that ack (its `_callback`); so does the
        # take script.
        if no_ack:
            self._no_ack_queues = self._no_ack_queues | {queue}
        else:
            self._no_ack_queues = self._no_ack_queues - {queue}
        return super().basic_consume(queue, no_ack, *args, **kwargs)  # type: ignore[no-untyped-call]

    def _queues(self) -> list[str]:
        # kombu's own order: fixed for the "priority" strategy, rotating for round robin.
        queues: list[str] = self._queue_cycle.consume(len(self.active_queues))
        self._take_keys = [
            self._q_for_pri(queue, pri)  # type: ignore[no-untyped-call]
            for pri in self.priority_steps
            for queue in queues
        ]
        self._take_acked = [
            "0" if queue in self._no_ack_queues else "1"
            for _ in self.priority_steps
            for queue in queues
        ]
        return queues

    def _brpop_start(self, timeout: float | None = None) -> None:  # noqa: ARG002 - no BRPOP
        queues = self._queues()
        if not queues:
            return
        connection = self.client.connection
        if self._armed_sock is None or self._armed_sock is not connection._sock:
            self._arm(connection, tuple(tracking_prefixes(queues)))
        self._in_poll = connection
        self._waiting = False
        self._ping(connection)

    def _arm(self, connection: Any, prefixes: tuple[str, ...]) -> None:
        try:
            self._track(connection, prefixes)
        except redis.ResponseError as exc:
            raise FetchUnsupportedError(
                f"this Redis cannot notify waiting workers (CLIENT TRACKING ... BCAST, Redis 6 "
                f"or later, is needed for the reliable fetch): {exc}"
            ) from exc
        self._armed_sock = connection._sock
        self._armed_prefixes = prefixes
        self._ping_sent = False

    def _track(self, connection: Any, prefixes: tuple[str, ...]) -> None:
        if connection._sock is None:
            connection.connect()
        args: list[str] = []
        for prefix in prefixes:
            args += ["PREFIX", prefix]
        if str(connection.get_protocol()) == "3":
            # RESP3: the notices arrive on this connection as push messages, between replies.
            connection.send_command("CLIENT", "TRACKING", "ON", "BCAST", *args)
            connection.read_response()
        else:
            # RESP2: notices go to a subscriber, which may be this very connection.
            connection.send_command("CLIENT", "ID")
            own_id = connection.read_response()
            connection.send_command("CLIENT", "TRACKING", "ON", "REDIRECT", own_id, "BCAST", *args)
            connection.read_response()
            connection.send_command("SUBSCRIBE", INVALIDATE)
            connection.read_response()

    def _ping(self, connection: Any) -> None:
        if not self._ping_sent:
            connection.send_command("PING")
            self._ping_sent = True
            self._brpop_sent_at = monotonic()  # type: ignore[assignment]

    def wake_tick(self) -> None:
        """Once a second from the event loop: an idle slot tries the script anyway."""
        connection: Any = self._in_poll
        if self._waiting and connection and connection._sock is self._armed_sock:
            try:
                self._ping(connection)
            except self.connection_errors:
                connection.disconnect()

    def _drain(self, connection: Any) -> None:
        """Read every reply the wake connection has (notices, pongs): it was readable."""
        while True:
            reply = connection.read_response(push_request=True)
            if _is_pong(reply):
                self._ping_sent = False
            if not connection.can_read(timeout=0):
                return

    def _take(self) -> tuple[str, bytes, str | None] | None:
        with self.conn_or_acquire() as client:
            if self._take_script is None or self._take_script.registered_client is not client:
                self._take_script = client.register_script(TAKE)
            keys = [self.unacked_key, self.unacked_index_key, *self._take_keys]
            found = self._take_script(keys=keys, args=[time(), *self._take_acked], client=client)
        if not found:
            return None
        index, raw, tag = found
        dest = self._take_keys[int(index) - 1]
        return (
            _to_str(dest).rsplit(self.sep, 1)[0],
            raw,
            None if tag is None else _to_str(tag),
        )

    def _brpop_read(self, **options: Any) -> bool:
        connection = self.client.connection
        try:
            self._drain(connection)
            queues = self._queues()
            if tuple(tracking_prefixes(queues)) != self._armed_prefixes:
                # Queues were added (Celery consumes a reply queue first, then the task
                # queues); tracking cannot change in subscribe mode: a fresh connection re-arms.
                self._rearm = True
            taken = self._take()
        except self.connection_errors:
            connection.disconnect()
            self._in_poll = None  # type: ignore[assignment]
            self._armed_sock = None
            raise
        self._fetched(empty=taken is None)
        if self._rearm:
            self._rearm = False
            self._armed_sock = None
            connection.disconnect()  # kombu unregisters it; the next loop turn reconnects
        elif taken is None:
            # Keep waiting on this connection: the next notice or tick brings us back.
            self._waiting = True
            raise Empty()
        self._in_poll = None  # type: ignore[assignment]  # next loop turn: ping, take again
        if taken is None:
            raise Empty()
        dest, raw, tag = taken
        self._queue_cycle.rotate(dest)
        self._recorded_tag = tag
        try:
            return self._handle_taken(dest, raw, tag)
        finally:
            self._recorded_tag = None

    def close(self) -> None:
        # kombu reads the pending BRPOP reply here (it may hold a popped message). Nothing of
        # ours is in flight: a pending reply is a pong or a notice, and no take starts now.
        self._in_poll = None  # type: ignore[assignment]
        super().close()  # type: ignore[no-untyped-call]


class Transport(transport.Transport):
    Channel = Channel

    def register_with_event_loop(self, connection: Any, loop: Any) -> None:
        super().register_with_event_loop(connection, loop)  # type: ignore[no-untyped-call]
        previous = getattr(self, "_wake_tref", None)
        if previous is not None:
            previous.cancel()
        self._wake_tref = loop.call_repeatedly(1.0, self._wake_tick)

    def _wake_tick(self) -> None:
        cycle: Any = self.cycle
        for channel in list(cycle._channels):
            if isinstance(channel, Channel):
                channel.wake_tick()
