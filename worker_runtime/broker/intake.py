"""Messages between a queue list and a job: anything that cannot run goes to the dead set.

Two places can meet a message that is not a runnable job, and stock Celery/kombu handle both
badly (a worker exits on `LPUSH default garbage`; other bad messages are dropped with a log
line). This module owns both, and keeps every such message in the dead set with its raw body,
the reason and the queue it came from:

- `Channel._handle_taken`: kombu's Redis channel decodes the taken bytes (fetch.py) and builds
  a message in the consumer's event loop, where a JSONDecodeError or a KeyError stops the
  worker. The override checks the few fields kombu's `virtual.Message` reads before handing it
  over; a refused message goes to the dead set before it leaves `unacked`.
- `Consumer`: Celery's callbacks for unknown tasks, invalid tasks, undecodable bodies and
  messages without a task header, plus a guard around the task handler for anything else. Only
  worker classes' tasks are runnable here (refusal.py): Celery's built-ins are unknown tasks,
  and an unknown task waits out a rolling deploy before it is dead.

kombu offers no hook for an undecodable payload (the decode happens inline in `_brpop_read`),
hence the transport subclass (over fetch.py's); it is selected with Celery's
`broker_transport` setting, so `redis://` URLs keep working. It also notes when the consumer
last completed a fetch, for the liveness heartbeat. The Consumer also swaps Celery's event
heartbeat bootstep for one that never retries (`Heart`, below). Must not run jobs or retry them.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import logging
import uuid
from collections.abc import Callable
from time import monotonic
from typing import Any, ClassVar

from celery.worker import heartbeat
from celery.worker.consumer import Consumer as CeleryConsumer
from celery.worker.consumer import heart
from kombu.utils import encoding, json

from worker_runtime import runtime
from worker_runtime.broker import fetch
from worker_runtime.broker.refusal import dead_reason, runs_here, wait_for_deploy, without_refusal
from worker_runtime.store.dead import DeadJobs, unrunnable

log = logging.getLogger(__name__)

# kombu's own decoders (untyped), so messages decode exactly as kombu would decode them.
_loads: Callable[[str], Any] = json.loads
_dumps: Callable[[Any], str] = json.dumps
_to_str: Callable[[bytes | str], str] = encoding.bytes_to_str


class _FetchClock:
    """When this process's consumer last completed a fetch (a BRPOP answered, with a message or
    empty after its one-second timeout): the liveness evidence a job slot passes on to its
    supervisor through `sink` (slot.py, supervisor.py)."""

    last: float | None = None
    sink: Callable[[float], None] | None = None
    #: Told of each message taken (delivery tag, job id, attempt, queue) before kombu builds
    #: it, so the supervisor can requeue it at once if the slot dies before the job starts.
    hold_sink: Callable[[str, str, int, str], None] | None = None
    #: Told of each fetch that found nothing: no job runs then, so nothing is held either.
    idle_sink: Callable[[], None] | None = None

    def mark(self, *, empty: bool = False) -> None:
        self.last = now = monotonic()
        if self.sink is not None:
            self.sink(now)
        if empty and self.idle_sink is not None:
            self.idle_sink()

    def hold(self, tag: str, job_id: str, retries: Any, queue: str) -> None:
        if self.hold_sink is not None:
            attempt = retries if isinstance(retries, int) else 0
            self.hold_sink(tag, job_id, attempt, queue)


fetches = _FetchClock()


def keep(raw: bytes | str, reason: str, queue: str, headers: Any = None) -> None:
    """Record an unrunnable message in the dead set and say so in one log line."""
    rt = runtime.current()
    store = DeadJobs(rt.redis, rt.keys, rt.settings.dead_max_jobs)
    job = unrunnable(raw, reason, queue, headers)
    if store.get(job.id) is not None:
        # Another message claimed the same id (a forged or duplicated header): keep both.
        job = dataclasses.replace(job, id=f"{job.id}-{uuid.uuid4().hex[:8]}")
    store.add(job)
    log.error("message on %r cannot run (%s); kept in the dead set as %s", queue, reason, job.id)


def envelope_problem(payload: Any) -> str | None:
    """Why kombu could not turn `payload` into a message, or None if it can."""
    if not isinstance(payload, dict):
        return f"not a message envelope: a JSON {type(payload).__name__}"
    properties = payload.get("properties")
    if not isinstance(properties, dict):
        return "not a message envelope: no 'properties' object"
    if not isinstance(properties.get("delivery_info"), dict):
        return "not a message envelope: no 'properties.delivery_info' object"
    if "delivery_tag" not in properties:
        return "not a message envelope: no 'properties.delivery_tag'"
    headers = payload.get("headers")
    if headers is not None and not isinstance(headers, dict):
        return "not a message envelope: 'headers' is not an object"
    if isinstance(headers, dict) and not isinstance(headers.get("task", ""), str):
        return "not a message envelope: 'headers.task' is not a string"
    body = payload.get("body")
    if body and not isinstance(body, str):
        return "not a message envelope: 'body' is not a string"
    if body and properties.get("body_encoding") == "base64":
        try:
            base64.b64decode(body, validate=True)
        except (binascii.Error, ValueError):
            return "not a message envelope: 'body' is not valid base64"
    return None


class Channel(fetch.Channel):
    """The reliable fetch (fetch.py), each taken message checked before kombu builds it."""

    def _fetched(self, *, empty: bool) -> None:
        fetches.mark(empty=empty)

    def _handle_taken(self, dest: str, raw: bytes, tag: str | None) -> bool:
        try:
            payload = _loads(_to_str(raw))
        except (ValueError, UnicodeDecodeError) as exc:
            self._refuse(raw, f"not JSON: {exc}", dest, None, tag)
            return True
        problem = envelope_problem(payload)
        if problem is not None:
            headers = payload.get("headers") if isinstance(payload, dict) else None
            self._refuse(raw, problem, dest, headers, tag)
            return True
        if tag is not None:
            headers = payload.get("headers") or {}
            fetches.hold(tag, str(headers.get("id") or ""), headers.get("retries"), dest)
        self.connection._deliver(payload, dest)
        return True

    def _refuse(self, raw: bytes, reason: str, dest: str, headers: Any, tag: str | None) -> None:
        """Into the dead set first, then out of `unacked`: never in neither."""
        keep(raw, reason, dest, headers)
        if tag is not None:
            self.qos._remove_from_indices(tag).execute()


class Transport(fetch.Transport):
    Channel = Channel


def _queue_of(message: Any) -> str:
    info = getattr(message, "delivery_info", None) or {}
    return str(info.get("routing_key") or "")


def _raw_of(message: Any) -> bytes | str:
    raw = getattr(message, "_raw", None)
    if isinstance(raw, dict):
        return _dumps(raw)
    return bytes(getattr(message, "body", b"") or b"")


class _OneShotHeart(heartbeat.Heart):  # type: ignore[misc]
    """Celery's `worker-heartbeat` events, each sent once or not at all.

    Celery publishes them with `retry=True` and no retry policy: kombu then reconnects forever
    inside the event loop's timer while Redis is gone (its pod deleted with the pool), and a
    warm shutdown never gets its turn, so the pod lingers for its whole grace period. A lost
    heartbeat costs nothing: the next one follows in two seconds.
    """

    def _send(self, event: str, retry: bool = False) -> Any:  # noqa: ARG002 - never retried
        try:
            return super()._send(event, retry=False)
        except Exception as error:  # any broker failure: skip this beat
            log.warning("%s event not sent: %s", event, error)
            return None


class Heart(heart.Heart):  # type: ignore[misc]
    """Celery's heartbeat bootstep, starting `_OneShotHeart` instead of its own."""

    def start(self, c: Any) -> None:
        c.heart = _OneShotHeart(c.timer, c.event_dispatcher, self.heartbeat_interval)
        c.heart.start()


_CELERY_HEART = "celery.worker.consumer.heart:Heart"


class Consumer(CeleryConsumer):  # type: ignore[misc]
    """Celery's consumer, keeping what it would drop; each record is written before the
    message is removed from Redis, so a crash in between loses nothing."""

    class Blueprint(CeleryConsumer.Blueprint):  # type: ignore[misc]
        default_steps: ClassVar[list[str]] = [
            f"{__name__}:Heart" if step == _CELERY_HEART else step
            for step in CeleryConsumer.Blueprint.default_steps
        ]

    def on_unknown_message(self, body: Any, message: Any) -> None:
        keep(_raw_of(message), "not a task message: no 'task' header", _queue_of(message))
        super().on_unknown_message(body, message)

    def update_strategies(self) -> None:
        super().update_strategies()
        # Without a strategy, a message naming the task is an unknown task (on_unknown_task).
        for name in [name for name in self.strategies if not runs_here(self.app.tasks.get(name))]:
            del self.strategies[name]

    def on_unknown_task(self, body: Any, message: Any, exc: Exception) -> None:
        headers = message.headers if isinstance(message.headers, dict) else {}
        envelope = getattr(message, "_raw", None)
        queue = _queue_of(message)
        reason = dead_reason(headers.get("task")) or wait_for_deploy(envelope, queue)
        if reason is None:
            # Offered again later: not a failure yet (Celery's handler would mark it FAILURE).
            message.reject_log_error(log, self.connection_errors)
            return
        raw = _dumps(without_refusal(envelope)) if isinstance(envelope, dict) else _raw_of(message)
        keep(raw, reason, queue, headers)
        super().on_unknown_task(body, message, exc)

    def on_invalid_task(self, body: Any, message: Any, exc: Exception) -> None:
        keep(_raw_of(message), f"invalid task message: {exc}", _queue_of(message), message.headers)
        super().on_invalid_task(body, message, exc)

    def on_decode_error(self, message: Any, exc: Exception) -> None:
        keep(
            _raw_of(message),
            f"body cannot be decoded: {type(exc).__name__}: {exc}",
            _queue_of(message),
            message.headers,
        )
        super().on_decode_error(message, exc)

    def create_task_handler(self, *args: Any, **kwargs: Any) -> Any:
        handle = super().create_task_handler(*args, **kwargs)
        connection_errors = tuple(self.connection_errors)

        def guarded(message: Any) -> Any:
            # Celery's handler stops the consumer on any other exception (e.g. an unhashable
            # task name); a message must not be able to do that.
            try:
                return handle(message)
            except connection_errors:
                raise
            except Exception as exc:
                keep(
                    _raw_of(message),
                    f"cannot be handled: {type(exc).__name__}: {exc}",
                    _queue_of(message),
                    getattr(message, "headers", None),
                )
                if not message.acknowledged:
                    message.ack()
                return None

        return guarded
