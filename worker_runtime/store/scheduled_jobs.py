"""Scheduled jobs and retries as a person sees them: list, show, run now, delete, kill.

The jobs themselves wait in the schedule set (schedule_set.py, which alone moves them); this
module reads the browsing index of one kind (`Keys.scheduled_index`: `perform_in`/`perform_at`;
`Keys.retries_index`: a failed attempt's next one) and acts through `ScheduleSet.take`, whose
Lua script is atomic with the dispatchers' move, so a job run now or deleted is never also run
by a dispatcher. The CLI (`workerpool scheduled|retries`) and the pages call these same
functions. Must not decide retries or build new messages.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal

import redis

from worker_runtime.core.keys import Keys, result_key
from worker_runtime.core.messages import decode_message
from worker_runtime.store.browse import UnknownJobError, Window, read_window
from worker_runtime.store.dead import DeadJob, DeadJobs
from worker_runtime.store.history import FailedAttempt, history, last_failures
from worker_runtime.store.schedule_set import ScheduleSet

Kind = Literal["scheduled", "retry"]


@dataclass(frozen=True)
class ScheduledJob:
    id: str
    task: str
    queue: str
    args: list[Any]
    kwargs: dict[str, Any]
    #: When it runs (epoch seconds).
    due: float
    #: Failed attempts so far (0 for a scheduled job; n for the n-th retry).
    retries: int
    last_error: str | None = None


def matches(job: ScheduledJob | DeadJob, task: str | None, text: str | None) -> bool:
    """The filter of the lists: `task` is the worker's full name or its last part; `text` is
    looked for, ignoring case, in the id, the name, the arguments and the error."""
    if task and task not in (job.task, job.task.rpartition(".")[2]):
        return False
    if not text:
        return True
    error = job.error if isinstance(job, DeadJob) else job.last_error
    haystack = " ".join(
        (job.id, job.task, json.dumps(job.args), json.dumps(job.kwargs), error or "")
    )
    return text.lower() in haystack.lower()


class ScheduledJobs:
    """The Scheduled (`kind="scheduled"`) or the Retries (`kind="retry"`) of one Redis."""

    def __init__(self, client: redis.Redis, keys: Keys, kind: Kind) -> None:
        self._client = client
        self._keys = keys
        self.kind = kind
        self._index = keys.retries_index if kind == "retry" else keys.scheduled_index
        self._set = ScheduleSet(client, keys)

    @property
    def noun(self) -> str:
        return "retry" if self.kind == "retry" else "scheduled job"

    def count(self) -> int:
        return int(self._client.zcard(self._index))

    def window(
        self,
        offset: int = 0,
        limit: int = 50,
        *,
        task: str | None = None,
        text: str | None = None,
    ) -> Window[ScheduledJob]:
        """Soonest first. A text filter needs each job's last error, so it reads them all."""
        with_errors = bool(text) and self.kind == "retry"
        shown = read_window(
            self._client,
            self._index,
            lambda entries: self._load(entries, with_errors=with_errors, worker=task),
            offset=offset,
            limit=limit,
            match=(lambda job: matches(job, task, text)) if task or text else None,
        )
        if self.kind != "retry" or with_errors:
            return shown
        return replace(shown, items=self._with_errors(shown.items))

    def get(self, job_id: str) -> ScheduledJob:
        score = self._client.zscore(self._index, job_id)
        found = None if score is None else self._load([(job_id, float(score))])[0]
        if found is None:
            raise UnknownJobError(f"{job_id}: not a waiting {self.noun}")
        return self._with_errors([found])[0]

    def history(self, job_id: str) -> list[FailedAttempt]:
        return history(self._client, self._keys, job_id)

    def run_now(self, job_ids: Sequence[str]) -> list[str]:
        """Push the jobs onto their queues now; unknown ids raise after the others moved."""
        taken = self._set.take(self._index, list(job_ids), push=True)
        self._check(job_ids, taken)
        return list(taken)

    def delete(self, job_ids: Sequence[str], result_ttl: int = 86_400) -> list[str]:
        """Delete the jobs for good: taken out atomically, so none of them ever runs (an id
        the dispatchers moved first is not deleted, and is reported as unknown)."""
        taken = self._set.take(self._index, list(job_ids), push=False)
        self._revoke(list(taken), result_ttl)
        self._check(job_ids, taken)
        return list(taken)

    def kill(self, job_ids: Sequence[str], reason: str, dead: DeadJobs) -> list[str]:
        """Retries only: move the jobs to the dead set, `reason` as their error."""
        if self.kind != "retry":
            raise UnknownJobError("only retries can be killed; delete a scheduled job instead")
        taken = self._set.take(self._index, list(job_ids), push=False)
        errors = last_failures(self._client, self._keys, list(taken))
        now = time.time()
        for job_id, message in taken.items():
            fields = decode_message(message)
            last = errors.get(job_id)
            dead.add(
                DeadJob(
                    id=job_id,
                    task=fields["task"],
                    queue=fields["queue"],
                    args=fields["args"],
                    kwargs=fields["kwargs"],
                    error=f"Killed: {reason}" + (f" (last error: {last.error})" if last else ""),
                    traceback=last.traceback if last else "",
                    attempts=int(fields["retries"]),
                    started_at=last.failed_at if last else now,
                    failed_at=now,
                )
            )
        self._check(job_ids, taken)
        return list(taken)

    def _check(self, asked: Sequence[str], taken: dict[str, str]) -> None:
        missing = [job_id for job_id in asked if job_id not in taken]
        if missing:
            raise UnknownJobError(f"not a waiting {self.noun}: {', '.join(missing)}")

    def _load(
        self,
        entries: Sequence[tuple[str, float]],
        *,
        with_errors: bool = False,
        worker: str | None = None,
    ) -> list[ScheduledJob | None]:
        """The jobs of `entries` (None for a gone one, or one whose message cannot name
        `worker`: the worker's name is plain text in a message, so that skips decoding)."""
        ids = [job_id for job_id, _ in entries]
        raws = self._client.hmget(self._keys.payloads, ids) if ids else []
        jobs: list[ScheduledJob | None] = []
        for (job_id, due), raw in zip(entries, raws, strict=True):
            if raw is None or (worker and worker.encode() not in raw):
                jobs.append(None)
                continue
            fields = decode_message(raw)
            jobs.append(
                ScheduledJob(
                    job_id,
                    fields["task"],
                    fields["queue"],
                    fields["args"],
                    fields["kwargs"],
                    due,
                    int(fields["retries"] or 0),
                )
            )
        if not with_errors:
            return jobs
        loaded = self._with_errors([job for job in jobs if job is not None])
        by_id = {job.id: job for job in loaded}
        return [None if job is None else by_id[job.id] for job in jobs]

    def _with_errors(self, jobs: list[ScheduledJob]) -> list[ScheduledJob]:
        errors = last_failures(self._client, self._keys, [job.id for job in jobs])
        return [
            replace(job, last_error=errors[job.id].error) if job.id in errors else job
            for job in jobs
        ]

    def _revoke(self, job_ids: Sequence[str], result_ttl: int) -> None:
        """`AsyncResult(id).status` of a deleted job says REVOKED, as Celery's revoke would."""
        if not job_ids:
            return
        with self._client.pipeline(transaction=False) as pipe:
            for job_id in job_ids:
                meta: dict[str, Any] = {
                    "status": "REVOKED",
                    "result": {
                        "exc_type": "TaskRevokedError",
                        "exc_message": ["deleted while scheduled"],
                        "exc_module": "celery.exceptions",
                    },
                    "traceback": None,
                    "children": [],
                    "date_done": None,
                    "task_id": job_id,
                }
                pipe.set(result_key(job_id), json.dumps(meta), ex=result_ttl)
            pipe.execute()
