"""Names of the Redis keys this project adds beside Celery's own.

Pure. One place for the layout, so the CLI, dispatchers and tests agree. Queue lists keep
Celery's names (`critical`, `default`, `low`) so stock workers and Flower see them.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Keys:
    prefix: str = "workerpool"

    def schedule(self, queue: str) -> str:
        """Sorted set of job ids due on `queue`, scored by due time (epoch seconds)."""
        return f"{self.prefix}:schedule:{queue}"

    @property
    def payloads(self) -> str:
        """Hash job id -> serialised message of every scheduled job."""
        return f"{self.prefix}:schedule:payloads"

    @property
    def schedule_wake(self) -> str:
        """Pub/sub channel: a job was scheduled due sooner than a dispatcher may be sleeping.

        The message is its due time (epoch seconds)."""
        return f"{self.prefix}:schedule:wake"

    @property
    def scheduled_index(self) -> str:
        """Sorted set of every waiting `perform_in`/`perform_at` job id (all queues) by due time.

        A browsing index beside the per-queue sets (which stay what dispatchers read): one set
        per kind lets a page or the CLI read a window with one ZRANGE, however many wait."""
        return f"{self.prefix}:schedule:index:scheduled"

    @property
    def retries_index(self) -> str:
        """Sorted set of every waiting retry's job id (all queues) by due time: the Retries."""
        return f"{self.prefix}:schedule:index:retries"

    def history(self, job_id: str) -> str:
        """List of JSON records of the failed attempts of `job_id` (error, traceback, time)."""
        return f"{self.prefix}:history:{job_id}"

    @property
    def dead(self) -> str:
        """Sorted set of dead job ids scored by time of death."""
        return f"{self.prefix}:dead"

    @property
    def dead_records(self) -> str:
        """Hash dead job id -> JSON record (worker, args, error, traceback, attempts, times)."""
        return f"{self.prefix}:dead:records"

    def cron_last(self, task_name: str) -> str:
        """Epoch of the newest tick fired for `task_name`: the fencing token of its schedule.

        Beats fire a tick only if it is newer than this value and move it forward in the same
        Lua script, so each tick is enqueued once however many beats run.
        """
        return f"{self.prefix}:cron:last:{task_name}"

    def lost(self, job_id: str, attempt: int) -> str:
        """Why attempt `attempt` (0 = first run) of `job_id` lost its worker process, e.g.
        "killed by SIGKILL", written by the worker's supervisor for the redelivered run."""
        return f"{self.prefix}:lost:{job_id}:{attempt}"

    def running(self, task_name: str) -> str:
        """Held while a cron job of an `overlap = "forbid"` worker is queued or running."""
        return f"{self.prefix}:cron:running:{task_name}"

    @property
    def busy_pods(self) -> str:
        """Sorted set of pod names scored by when their busy report lapses (epoch seconds)."""
        return f"{self.prefix}:busy:pods"

    def busy_pod(self, pod: str) -> str:
        """JSON of what pod `pod` runs now (store/busy.py), expiring with the report."""
        return f"{self.prefix}:busy:pod:{pod}"

    @property
    def cron_schedules(self) -> str:
        """Hash task name -> JSON of its cron schedule, as the newest beat declared it."""
        return f"{self.prefix}:cron:schedules"

    @property
    def cron_disabled(self) -> str:
        """Set of task names whose cron schedule is disabled: their ticks pass, unfired."""
        return f"{self.prefix}:cron:disabled"

    @property
    def cron_last_job(self) -> str:
        """Hash task name -> id of the newest job its schedule (or run-now) enqueued."""
        return f"{self.prefix}:cron:last_job"


#: Kombu's Redis transport: hash delivery tag -> JSON [message, exchange, routing key] of every
#: message a consumer holds (kombu.transport.redis.Channel.unacked_key).
UNACKED_KEY = "unacked"


def result_key(job_id: str) -> str:
    """Celery's Redis result backend key for a job (celery.backends.base.KeyValueStoreBackend)."""
    return f"celery-task-meta-{job_id}"
