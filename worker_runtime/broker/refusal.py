"""Messages naming a task no worker class here registers: wait, or go to the dead set.

Only registered worker classes run (`runs_here`): Celery registers built-in tasks in every app
(`celery.accumulate`, `celery.chord_unlock`, `celery.backend_cleanup`, ...), and a message
naming one would run it from the queue, bypassing the call-site argument checks (a forged
`chord_unlock` applies the callback it carries). Those are dead at once: no deploy adds them.

A worker class this process does not know may be one a newer image adds: during a rolling
deploy, old pods meet messages for it while pods that know it are seconds away. Such a message
goes back through the schedule set every `RETRY_EVERY` seconds for the grace period
(`WORKERPOOL_UNKNOWN_TASK_GRACE`, counted from its first refusal, which it carries in a header),
and only then to the dead set with the reason. Must not run jobs.
"""

from __future__ import annotations

import copy
import json
import logging
import math
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from worker_runtime import runtime
from worker_runtime.core.queues import QUEUES
from worker_runtime.store.schedule_set import schedule

log = logging.getLogger(__name__)

#: Task option `make_task` (execution/attempt.py) sets on every worker class's task; a task
#: without it (Celery's built-ins, anything else registered on the app) is refused.
WORKER_TASK = "workerpool_worker"
#: Header holding when a message was first refused here (epoch seconds).
FIRST_REFUSED = "workerpool_first_refused"
#: How long a refused message waits before it is offered to the workers again.
RETRY_EVERY = 10.0


def runs_here(task: Any) -> bool:
    """Whether `task` is a worker class's task (the only kind a slot runs)."""
    return getattr(task, WORKER_TASK, False) is True


def dead_reason(name: Any) -> str | None:
    """Why a message for `name` goes to the dead set now; None: it may wait for a deploy."""
    if not isinstance(name, str) or not name:
        return f"unknown task {name!r}: no worker registers it"
    if name.startswith("celery."):
        return f"task {name!r} is a Celery built-in; only worker classes run here"
    return None


def wait_for_deploy(envelope: Any, queue: str, now: float | None = None) -> str | None:
    """Put an unknown task's message back through the schedule set while its grace lasts.

    Returns None when it was requeued, else why it goes to the dead set. The caller acks the
    original only after this returns, so a crash in between duplicates, never loses.
    """
    rt = runtime.current()
    grace = rt.settings.unknown_task_grace
    now = time.time() if now is None else now
    headers = envelope.get("headers") if isinstance(envelope, dict) else None
    if not isinstance(headers, dict) or not isinstance(envelope.get("properties"), dict):
        return "unknown task: no worker registers it"
    name, job_id = headers.get("task"), headers.get("id")
    first = headers.get(FIRST_REFUSED)
    # A header that is not a past time (forged, or from a clock ahead) restarts the count.
    first = float(first) if isinstance(first, int | float) and math.isfinite(first) else now
    first = min(first, now)
    waited = now - first
    if waited >= grace or queue not in QUEUES or not isinstance(job_id, str) or not job_id:
        return (
            f"unknown task {name!r}: no worker registers it here "
            f"(refused for {waited:.0f}s, grace {grace:g}s; retry it once a deploy adds it)"
        )
    again = copy.deepcopy(envelope)
    again["headers"][FIRST_REFUSED] = first
    properties = again["properties"]
    properties["delivery_tag"] = str(uuid.uuid4())
    info = properties.get("delivery_info")
    if isinstance(info, dict):
        info.pop("redelivered", None)  # a fresh offer, not a lost run (lost.py)
    delay = max(0.0, min(RETRY_EVERY, grace - waited))
    schedule(
        rt.redis,
        rt.keys,
        queue=queue,
        job_id=job_id,
        message=json.dumps(again),
        due=datetime.now(UTC) + timedelta(seconds=delay),
        result_ttl=rt.settings.result_expires,
    )
    log.warning(
        "unknown task %r (job %s) on %r: no worker registers it here; offered again in %.1fs "
        "(%.0fs of the %gs grace left)",
        name,
        job_id,
        queue,
        delay,
        grace - waited,
        grace,
    )
    return None


def without_refusal(envelope: Any) -> Any:
    """The envelope as it first came, for its dead record: a retry gets a fresh grace."""
    if isinstance(envelope, dict) and isinstance(envelope.get("headers"), dict):
        envelope = copy.deepcopy(envelope)
        envelope["headers"].pop(FIRST_REFUSED, None)
    return envelope
