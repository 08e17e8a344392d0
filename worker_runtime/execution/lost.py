"""Jobs whose run never finished: a lost worker process or pod counts as a failed attempt.

Celery requeues a job whose process died (`task_reject_on_worker_lost`) without counting an
attempt, so a job that OOM-kills its process loops forever. The rule here: when a message
comes back (kombu marks restored messages `redelivered`) and its job's recorded state is still
STARTED for the same attempt, that run started and never finished: it was a failed attempt.
`attempt.py` then retries it with backoff or, after the last attempt, dead-sets it, instead of
running it again.

Why not only a `Task.Request` that handles `WorkerLostError` (the documented extension point):
it needs a process that survived the loss, and a pod OOM-killed or evicted as a whole has none;
its jobs come back through the lease (process/lease.py), and only the next delivery can tell.
Celery already writes STARTED before `perform` (`task_track_started`), so the check costs one
backend read, and only for redelivered messages. The `Request` subclass below does that read
in the job slot when the message arrives, before this run writes its own STARTED. What only
the supervisor sees, the exit code or signal of a slot that died, it records with
`record_loss`, so the dead record can say what happened. Must not retry or dead-set jobs.
"""

from __future__ import annotations

import logging
import re
import signal
from typing import Any

from billiard.exceptions import WorkerLostError  # type: ignore[import-untyped]
from celery.worker.request import Request

from worker_runtime import runtime

log = logging.getLogger(__name__)

#: Reason recorded when no supervisor saw the loss (the whole worker or pod went away).
LOST_WITH_WORKER = "its worker stopped while running it (the worker process or pod was lost)"

_SIGNAL = re.compile(r"signal (\d+)")
_EXITCODE = re.compile(r"exitcode (-?\d+)")


def describe_loss(message: str) -> str:
    """A person's reading of billiard's "Worker exited prematurely: signal 9 (SIGKILL)..."."""
    if found := _SIGNAL.search(message):
        return describe_exit(-int(found.group(1)))
    if found := _EXITCODE.search(message):
        return describe_exit(int(found.group(1)))
    return f"its worker process was lost: {message}"


def describe_exit(returncode: int) -> str:
    """The same reading of a process's exit status (`Popen.returncode`: -N for signal N), for
    a job slot its supervisor saw die mid-job (supervisor.py)."""
    if returncode < 0:
        number = -returncode
        try:
            name = signal.Signals(number).name
        except ValueError:
            name = f"signal {number}"
        if number == signal.SIGKILL:
            return f"its worker process was killed by {name}: probably out of memory"
        return f"its worker process died from {name}"
    return f"its worker process exited with code {returncode} while running it"


def record_loss(job_id: str, attempt: int, reason: str) -> None:
    """Say why `attempt` of `job_id` never finished, for its next delivery to read; written
    before the message is requeued, so that delivery cannot miss it."""
    rt = runtime.current()
    rt.redis.set(rt.keys.lost(job_id, attempt), reason, ex=rt.settings.result_expires)


#: Request field carrying the loss reason from the request to the task run in the slot.
LOST_FIELD = "workerpool_lost"


class LossAwareRequest(Request):  # type: ignore[misc]
    """Celery's request, in the job slot, aware of lost previous runs."""

    def __init__(self, message: Any, *args: Any, **kwargs: Any) -> None:
        super().__init__(message, *args, **kwargs)
        if (message.delivery_info or {}).get("redelivered"):
            try:
                reason = self._lost_reason()
            except Exception as exc:
                log.warning("%s: could not tell whether its last run was lost: %s", self.id, exc)
                reason = None
            if reason is not None:
                self._request_dict[LOST_FIELD] = reason

    def _lost_reason(self) -> str | None:
        attempt = int(self._request_dict.get("retries") or 0)
        meta = self.task.backend.get_task_meta(self.id)
        if meta.get("status") != "STARTED" or int(meta.get("retries") or 0) != attempt:
            return None  # never started (only reserved), or finished: not a lost run
        rt = runtime.current()
        recorded = rt.redis.get(rt.keys.lost(str(self.id), attempt))
        if recorded is None:
            return LOST_WITH_WORKER
        return recorded.decode() if isinstance(recorded, bytes) else str(recorded)

    def on_failure(
        self, exc_info: Any, send_failed_event: bool = True, return_ok: bool = False
    ) -> Any:
        exc = getattr(exc_info, "exception", None)
        exc = getattr(exc, "exc", exc)  # ExceptionWithTraceback wraps it
        if isinstance(exc, WorkerLostError):
            # Before Celery requeues the message (below), so its next delivery can read it.
            record_loss(str(self.id), int(self._context.retries or 0), describe_loss(str(exc)))
        return super().on_failure(exc_info, send_failed_event, return_ok)


def previous_run_lost(task: Any) -> str | None:
    """In the running task: why the previous run of this attempt never finished, or None."""
    reason = getattr(task.request, LOST_FIELD, None)
    return reason if isinstance(reason, str) else None
