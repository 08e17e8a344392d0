"""The Sidekiq-style `Worker` base class: configuration, `perform` and the `perform_*` calls.

Owns the public job API and the checks that must fail at the call site: class attributes at
class definition (dramatiq fails a bad actor at declaration too), arguments at `perform_*`.
Must not know how jobs run: `execution.py` does that, and the registry makes the Celery tasks.
"""

from __future__ import annotations

import inspect
import math
import time
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar, Literal

from celery.result import AsyncResult

from worker_runtime import runtime
from worker_runtime.core.arguments import JobArgumentError, check_arguments
from worker_runtime.core.cron import CronError, check_expression
from worker_runtime.core.messages import build_message, new_job_id
from worker_runtime.core.queues import DEFAULT, UnknownQueueError, check_queue
from worker_runtime.store.enqueue import push, push_many
from worker_runtime.store.schedule_set import schedule


class WorkerDefinitionError(TypeError):
    """A Worker subclass whose class attributes cannot work."""


class Worker:
    """Subclass, set the class attributes you need, and implement the `perform` classmethod."""

    #: critical | default | low. Workers never start a lower queue's job while a higher waits.
    queue: ClassVar[str] = DEFAULT
    #: Retries after the first attempt; then the job goes to the dead set.
    max_retries: ClassVar[int] = 3
    #: Exponential, jittered delays between retries (else about one second each).
    retry_backoff: ClassVar[bool] = True
    #: Upper bound of one retry delay, in seconds.
    retry_backoff_max: ClassVar[float] = 600
    #: Standard five-field cron expression (six, seconds first, with WORKERPOOL_CRON_SECONDS),
    #: in WORKERPOOL_TIMEZONE (UTC by default).
    cron_schedule: ClassVar[str | None] = None
    #: Ticks missed while no beat ran: "skip" drops them, "run_once" runs one catch-up job.
    cron_misfire: ClassVar[Literal["skip", "run_once"]] = "skip"
    #: "forbid" skips (and logs) a tick while the previous cron job is queued or running.
    cron_overlap: ClassVar[Literal["allow", "forbid"]] = "allow"
    #: Seconds after which a forbid-overlap hold expires even if its job never reported back
    #: (a worker lost with the job); bounds how long a lost job can block the schedule.
    cron_overlap_timeout: ClassVar[int] = 3600
    #: Celery task name. Defaults to "module.ClassName"; set it to keep the name stable when
    #: moving the class, since queued jobs carry the name.
    task_name: ClassVar[str]

    _signature: ClassVar[inspect.Signature]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        owner = f"{cls.__module__}.{cls.__qualname__}"
        if "task_name" not in cls.__dict__:
            cls.task_name = owner
        perform = cls.__dict__.get("perform")
        if perform is not None and not isinstance(perform, classmethod):
            raise WorkerDefinitionError(
                f"{owner}: perform must be a @classmethod (def perform(cls, ...)); "
                "workers are never instantiated"
            )
        cls._signature = inspect.signature(cls.perform)
        try:
            _check_definition(cls, owner)
        except (CronError, UnknownQueueError) as exc:
            raise WorkerDefinitionError(str(exc)) from None

    @classmethod
    def is_concrete(cls) -> bool:
        """True when the class implements `perform` (a shared base class does not)."""
        return cls.perform.__func__ is not Worker.perform.__func__  # type: ignore[attr-defined]

    @classmethod
    def perform(cls, *args: Any, **kwargs: Any) -> Any:
        """The job. Runs in a worker; call it directly to run inline (tests)."""
        raise NotImplementedError(f"{cls.__qualname__} must implement perform()")

    @classmethod
    def perform_async(cls, *args: Any, **kwargs: Any) -> AsyncResult:
        """Queue the job to run as soon as a worker is free."""
        job_id, message = cls._message(args, kwargs, time.time())
        rt = runtime.current()
        push(rt.redis, cls.queue, message)
        return AsyncResult(job_id, app=rt.app, task_name=cls.task_name)

    @classmethod
    def perform_in(cls, delay_seconds: float, *args: Any, **kwargs: Any) -> AsyncResult:
        """Queue the job to run `delay_seconds` from now (held in Redis until then)."""
        if (
            isinstance(delay_seconds, bool)
            or not isinstance(delay_seconds, int | float)
            or (not math.isfinite(delay_seconds))
        ):
            raise JobArgumentError(
                f"{cls.__qualname__}.perform_in: delay_seconds must be a number of seconds, "
                f"got {delay_seconds!r}"
            )
        try:
            when = datetime.now(UTC) + timedelta(seconds=delay_seconds)
        except OverflowError:
            raise JobArgumentError(
                f"{cls.__qualname__}.perform_in: delay_seconds={delay_seconds!r} is beyond the "
                "largest date Python can represent (year 9999)"
            ) from None
        return cls.perform_at(when, *args, **kwargs)

    @classmethod
    def perform_at(cls, when: datetime, *args: Any, **kwargs: Any) -> AsyncResult:
        """Queue the job to run at `when` (held in Redis until then).

        An aware datetime is exact. A naive one is this process's local time, Python's own rule
        for `datetime.timestamp()`, so `datetime.now() + timedelta(hours=2)` means two hours
        from now.
        """
        if not isinstance(when, datetime):
            raise JobArgumentError(
                f"{cls.__qualname__}.perform_at: `when` must be a datetime, got {when!r}"
            )
        if when.tzinfo is None:
            when = when.astimezone()  # naive = local time, as datetime.timestamp() reads it
        job_id, message = cls._message(args, kwargs, max(when.timestamp(), time.time()))
        rt = runtime.current()
        if when <= datetime.now(UTC):
            push(rt.redis, cls.queue, message)
        else:
            schedule(
                rt.redis,
                rt.keys,
                queue=cls.queue,
                job_id=job_id,
                message=message,
                due=when,
                result_ttl=rt.settings.result_expires,
            )
        return AsyncResult(job_id, app=rt.app, task_name=cls.task_name)

    @classmethod
    def perform_bulk(cls, jobs: Iterable[Mapping[str, Any]], batch_size: int = 1000) -> list[str]:
        """Queue one job per kwargs mapping, one Redis round trip per `batch_size` jobs.

        Every job is checked before any is queued, so a bad one queues nothing.
        """
        ids: list[str] = []
        messages: list[str] = []
        now = time.time()
        for kwargs in jobs:
            job_id, message = cls._message((), kwargs, now)
            ids.append(job_id)
            messages.append(message)
        push_many(runtime.current().redis, cls.queue, messages, batch=batch_size)
        return ids

    @classmethod
    def _message(
        cls, args: tuple[Any, ...], kwargs: Mapping[str, Any], enqueued_at: float | None = None
    ) -> tuple[str, str]:
        check_arguments(f"{cls.__qualname__}.perform", cls._signature, args, kwargs)
        job_id = new_job_id()
        return job_id, build_message(
            task_name=cls.task_name,
            job_id=job_id,
            queue=cls.queue,
            args=args,
            kwargs=kwargs,
            enqueued_at=enqueued_at,
        )


def _check_definition(cls: type[Worker], owner: str) -> None:
    check_queue(cls.queue, owner)
    _check_retries(cls, owner)
    _check_cron(cls, owner)
    if not isinstance(cls.task_name, str) or not cls.task_name:
        raise WorkerDefinitionError(f"{owner}: task_name must be a non-empty string")


def _check_retries(cls: type[Worker], owner: str) -> None:
    if type(cls.max_retries) is not int or cls.max_retries < 0:
        raise WorkerDefinitionError(
            f"{owner}: max_retries must be an int >= 0, got {cls.max_retries!r}"
        )
    if type(cls.retry_backoff) is not bool:
        raise WorkerDefinitionError(f"{owner}: retry_backoff must be True or False")
    backoff_max = cls.retry_backoff_max
    if (
        isinstance(backoff_max, bool)
        or not isinstance(backoff_max, int | float)
        or not math.isfinite(backoff_max)
        or backoff_max <= 0
    ):
        raise WorkerDefinitionError(
            f"{owner}: retry_backoff_max must be a positive, finite number of seconds, "
            f"got {backoff_max!r}"
        )


def _check_cron(cls: type[Worker], owner: str) -> None:
    timeout = cls.cron_overlap_timeout
    if type(timeout) is not int or timeout <= 0:
        raise WorkerDefinitionError(
            f"{owner}: cron_overlap_timeout must be a whole number of seconds > 0, got {timeout!r}"
        )
    if cls.cron_schedule is not None:
        try:
            check_expression(cls.cron_schedule, seconds=True)
        except CronError as exc:
            raise CronError(f"{owner}: cron_schedule {exc}") from None
        try:
            cls._signature.bind()
        except TypeError:
            raise WorkerDefinitionError(
                f"{owner}: a cron worker's perform is called with no arguments, but "
                f"perform{cls._signature} requires some; give them defaults"
            ) from None
    if cls.cron_misfire not in ("skip", "run_once"):
        raise WorkerDefinitionError(f"{owner}: cron_misfire must be 'skip' or 'run_once'")
    if cls.cron_overlap not in ("allow", "forbid"):
        raise WorkerDefinitionError(f"{owner}: cron_overlap must be 'allow' or 'forbid'")
