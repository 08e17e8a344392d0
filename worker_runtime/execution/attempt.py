"""Running a job inside a Celery worker: the task per Worker, retries and the dead store.

Owns what happens when an attempt fails: `perform` raised, its previous run lost its worker
(lost.py tells), or it returned a value JSON cannot carry. The retry goes to the schedule set
(not a Celery ETA message) or, after the last attempt, the job is recorded as dead. Then
Celery's own `Retry`/failure handling sets the result state and acks. Must not validate
arguments (done at enqueue) nor decide delays (backoff.py does).
"""

from __future__ import annotations

import time
import traceback
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, NoReturn

from celery import Celery, Task
from celery.exceptions import Retry
from celery.exceptions import TimeLimitExceeded as CeleryTimeLimitExceeded
from kombu.utils import json

from worker_runtime import runtime
from worker_runtime.broker.refusal import WORKER_TASK
from worker_runtime.core.backoff import retry_delay
from worker_runtime.core.messages import build_message
from worker_runtime.execution.lost import LossAwareRequest, previous_run_lost
from worker_runtime.execution.time_limits import HARD_LIMIT_REASON, limits, soft_limit
from worker_runtime.jobs.logger import Logger
from worker_runtime.jobs.worker import Worker
from worker_runtime.scheduling.cron_dispatch import release_overlap
from worker_runtime.store import history, job_stats
from worker_runtime.store.dead import DeadJob, DeadJobs
from worker_runtime.store.history import FailedAttempt
from worker_runtime.store.schedule_set import schedule

#: The serializer Celery stores results with (kombu's JSON, untyped).
_result_json: Callable[[Any], str] = json.dumps


def make_task(app: Celery, worker: type[Worker]) -> Task:
    """Register the Celery task that runs `worker.perform`."""

    def run(task: Task, *args: Any, **kwargs: Any) -> Any:
        return run_job(task, worker, args, kwargs)

    run.__name__ = worker.__name__
    run.__qualname__ = worker.__qualname__
    run.__doc__ = worker.__doc__
    # Our messages carry their queue; the route only matters to code that calls the Celery
    # task directly (`apply_async`, Flower's "apply"). The `queue` task attribute is
    # deprecated in Celery 5.7, hence the route.
    app.conf.task_routes = {
        **(app.conf.task_routes or {}),
        worker.task_name: {"queue": worker.queue},
    }
    return app.task(
        run,
        bind=True,
        # Only `app` gets the task: Celery's default (shared) would add it to every app made
        # later in this process, clashing with that app's own registration (tests, re-init).
        shared=False,
        name=worker.task_name,
        acks_late=True,
        # A dead slot's message is requeued; lost.py and run_job count that run as a
        # failed attempt when it comes back.
        reject_on_worker_lost=True,
        Request=LossAwareRequest,
        # Retries are counted here, not by Celery's `max_retries`, and arguments were
        # checked at enqueue, so Celery's own call-time type check is off.
        max_retries=None,
        typing=False,
        # The mark of a worker class's task: a slot runs no other (broker/refusal.py).
        **{WORKER_TASK: True},
    )


class WorkerLostJobError(RuntimeError):
    """The previous run of this attempt never finished: its worker process or pod was lost."""


class TimeLimitExceeded(CeleryTimeLimitExceeded):  # type: ignore[misc]
    """The previous run of this attempt outlived its hard time limit; its slot was killed."""

    def __str__(self) -> str:  # billiard's shows the args tuple
        return str(self.args[0]) if self.args else "time limit exceeded"


class JobExitError(RuntimeError):
    """`perform` called `sys.exit` (raised SystemExit): a failed attempt, not a worker exit."""


class JobResultError(TypeError):
    """`perform` returned a value the JSON result backend cannot store."""


def run_job(task: Task, worker: type[Worker], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    job_id = str(task.request.id)
    started = time.time()
    lost = previous_run_lost(task)
    if lost is not None:
        # Not run again now: that is what loops forever when the job itself kills its process.
        # A slot killed for outliving its hard limit fails the way Celery's prefork pool fails
        # it, with `TimeLimitExceeded`.
        loss: Exception = (
            TimeLimitExceeded(lost)
            if lost.startswith(HARD_LIMIT_REASON)
            else WorkerLostJobError(lost)
        )
        _failed(task, worker, args, kwargs, started, loss, "")
    try:
        with soft_limit(limits(task)[1]):
            result = worker.perform(*args, **kwargs)
    except Exception as exc:
        _failed(task, worker, args, kwargs, started, exc, traceback.format_exc())
    except SystemExit as exc:
        # Left alone, it unwinds Celery's tracer (a TypeError in its failure path, the state
        # left STARTED) instead of failing the attempt; the slot must go on taking jobs.
        exit_error = JobExitError(f"{worker.task_name}.perform called sys.exit({exc.code!r})")
        _failed(task, worker, args, kwargs, started, exit_error, traceback.format_exc())
    try:
        # The serializer Celery uses for results; it fails after the task returns, leaving a
        # FAILURE with no dead record, so check here where the failure can be handled.
        _result_json(result)
    except (TypeError, ValueError) as exc:
        problem = JobResultError(
            f"{worker.task_name}.perform returned a {type(result).__name__}, which the JSON "
            f"result backend cannot store ({exc}); return plain JSON"
        )
        _failed(task, worker, args, kwargs, started, problem, "")
    _finish(worker, job_id)
    rt = runtime.current()
    job_stats.defer(rt.redis, task.request, worker.task_name, "succeeded", time.time() - started)
    return result


def _failed(
    task: Task,
    worker: type[Worker],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    started: float,
    exc: Exception,
    trace: str,
) -> NoReturn:
    """Schedule the next attempt, or dead-set the job after the last; always raises."""
    rt = runtime.current()
    attempt = int(task.request.retries or 0)
    job_id = str(task.request.id)
    # Kept for the Retries page's last error and the dead job's attempt history.
    history.record(
        rt.redis,
        rt.keys,
        job_id,
        FailedAttempt(attempt + 1, f"{type(exc).__name__}: {exc}", trace, time.time()),
    )
    if attempt < worker.max_retries:
        delay = retry_delay(
            attempt + 1, exponential=worker.retry_backoff, cap=worker.retry_backoff_max
        )
        due = datetime.now(UTC) + timedelta(seconds=delay)
        schedule(
            rt.redis,
            rt.keys,
            queue=worker.queue,
            job_id=job_id,
            message=build_message(
                task_name=worker.task_name,
                job_id=job_id,
                queue=worker.queue,
                args=args,
                kwargs=kwargs,
                retries=attempt + 1,
                enqueued_at=due.timestamp(),
            ),
            due=due,
            result_ttl=rt.settings.result_expires,
            retry=True,
        )
        Logger.warning(
            message=f"{worker.task_name}[{job_id}] failed ({type(exc).__name__}: {exc}); "
            f"retry {attempt + 1}/{worker.max_retries} in {delay:.1f}s"
        )
        job_stats.defer(rt.redis, task.request, worker.task_name, "retried", time.time() - started)
        # Celery records the RETRY state and acks; the retry itself is already in Redis.
        raise Retry(message=f"retry in {delay:.1f}s", exc=exc, when=delay) from exc
    DeadJobs(rt.redis, rt.keys, rt.settings.dead_max_jobs).add(
        DeadJob(
            id=job_id,
            task=worker.task_name,
            queue=worker.queue,
            args=list(args),
            kwargs=dict(kwargs),
            error=f"{type(exc).__name__}: {exc}",
            traceback=trace,
            attempts=attempt + 1,
            started_at=started,
            failed_at=time.time(),
        )
    )
    Logger.error(
        message=f"{worker.task_name}[{job_id}] died after {attempt + 1} attempt(s): "
        f"{type(exc).__name__}: {exc}"
    )
    job_stats.defer(rt.redis, task.request, worker.task_name, "dead", time.time() - started)
    _finish(worker, job_id)
    raise exc


def _finish(worker: type[Worker], job_id: str) -> None:
    if worker.cron_overlap == "forbid":
        rt = runtime.current()
        release_overlap(rt.redis, rt.keys, worker.task_name, job_id)
