"""What every cron test worker records: its job id (the beat logs the tick of each job id)
and when it started and ended."""

from __future__ import annotations

import time

from celery import current_task

from tests.integration.runtime.jobs.recording import record


def record_run(kind: str, seconds: float = 0.0) -> None:
    started = time.time()
    time.sleep(seconds)
    record(kind, job_id=str(current_task.request.id), started=started, ended=time.time())
