"""Celery task messages in the exact envelope kombu's Redis transport puts on a queue list.

Pure. This is what lets the project enqueue with one LPUSH (or one per batch), hold delayed
jobs in a Redis sorted set and move them with a Lua script, while stock Celery workers consume
them unchanged. The layout is Celery's task protocol 2
(https://docs.celeryq.dev/en/stable/internals/protocol.html) wrapped the way
`kombu.transport.virtual.Channel.basic_publish` wraps it; a test compares this output with what
Celery's own `apply_async` writes, field by field. kombu's `Producer` was considered: it needs a
live channel per message and cannot hand back the bytes for later, which is the point here.
"""

from __future__ import annotations

import base64
import json
import os
import socket
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

#: Celery's `argsrepr`/`kwargsrepr` are for humans (Flower, logs); keep them bounded.
_REPR_LIMIT = 1024
_EMBED = {"callbacks": None, "errbacks": None, "chain": None, "chord": None}
_ORIGIN = f"gen{os.getpid()}@{socket.gethostname()}"


#: Header: when the job was put on (or became due for) its queue, epoch seconds.
ENQUEUED_AT = "workerpool_enqueued_at"


def new_job_id() -> str:
    return str(uuid.uuid4())


def build_message(
    *,
    task_name: str,
    job_id: str,
    queue: str,
    args: Sequence[Any],
    kwargs: Mapping[str, Any],
    retries: int = 0,
    enqueued_at: float | None = None,
) -> str:
    """Serialised message for `task_name(*args, **kwargs)`, ready to LPUSH onto `queue`.

    `enqueued_at` (epoch seconds: now, or the due time of a scheduled job) becomes the header
    ENQUEUED_AT, from which the Queues page tells a queue's latency (Sidekiq's `enqueued_at`);
    Celery ignores headers it does not know, and leaves it out of messages it builds itself.
    """
    body = json.dumps([list(args), dict(kwargs), _EMBED]).encode()
    envelope = {
        "body": base64.b64encode(body).decode(),
        "content-encoding": "utf-8",
        "content-type": "application/json",
        "headers": {
            "lang": "py",
            "task": task_name,
            "id": job_id,
            "shadow": None,
            "eta": None,
            "expires": None,
            "group": None,
            "group_index": None,
            "retries": retries,
            "timelimit": [None, None],
            "root_id": job_id,
            "parent_id": None,
            "argsrepr": repr(tuple(args))[:_REPR_LIMIT],
            "kwargsrepr": repr(dict(kwargs))[:_REPR_LIMIT],
            "origin": _ORIGIN,
            "ignore_result": False,
            "replaced_task_nesting": 0,
            "stamped_headers": None,
            "stamps": {},
            **({} if enqueued_at is None else {ENQUEUED_AT: enqueued_at}),
        },
        "properties": {
            "correlation_id": job_id,
            "reply_to": None,
            "delivery_mode": 2,
            "delivery_info": {"exchange": "", "routing_key": queue},
            "priority": 0,
            "body_encoding": "base64",
            "delivery_tag": str(uuid.uuid4()),
        },
    }
    return json.dumps(envelope)


def decode_message(raw: str | bytes) -> dict[str, Any]:
    """Inverse of `build_message` for inspection (CLI, tests): headers plus args/kwargs."""
    envelope = json.loads(raw)
    args, kwargs, _embed = json.loads(base64.b64decode(envelope["body"]))
    headers: dict[str, Any] = envelope["headers"]
    return {
        "id": headers["id"],
        "task": headers["task"],
        "retries": headers["retries"],
        "queue": envelope["properties"]["delivery_info"]["routing_key"],
        "args": args,
        "kwargs": kwargs,
    }
