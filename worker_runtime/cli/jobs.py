"""The job tools: `scheduled` and `dead`, reading and changing the Redis structures of
`store/` (the same functions the pages call). Must not start processes."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import click

from worker_runtime import runtime
from worker_runtime.cli.common import one_line_errors
from worker_runtime.core.settings import Settings
from worker_runtime.store.dead import DeadJobs
from worker_runtime.store.schedule_set import ScheduleSet


@click.command()
@one_line_errors
def scheduled() -> None:
    """Show jobs waiting in the schedule set: per queue and per worker."""
    rt = runtime.configure(Settings.from_env())
    schedule_set = ScheduleSet(rt.redis, rt.keys)
    click.echo(f"{'QUEUE':<10} {'COUNT':>8}  NEXT DUE")
    for entry in schedule_set.summary():
        click.echo(f"{entry.queue:<10} {entry.count:>8}  {_when(entry.next_due)}")
    per_worker = schedule_set.per_worker()
    if per_worker:
        click.echo(f"\n{'WORKER':<50} {'COUNT':>8}  NEXT DUE")
        for task, (count, due) in sorted(per_worker.items()):
            click.echo(f"{task:<50} {count:>8}  {_when(due)}")


@click.group()
def dead() -> None:
    """Jobs that failed their last retry."""


@dead.command("list")
@click.option("--limit", type=int, default=50, show_default=True)
@one_line_errors
def dead_list(limit: int) -> None:
    rt = runtime.configure(Settings.from_env())
    store = DeadJobs(rt.redis, rt.keys)
    click.echo(f"{store.count()} dead job(s)")
    for job in store.list(limit):
        click.echo(
            f"{job.id}  {job.task}  attempts={job.attempts}  queue={job.queue}  "
            f"failed={_when(job.failed_at)}  {job.error}"
        )
        if job.raw is not None:
            cut = " (truncated)" if job.raw_truncated else ""
            click.echo(f"    raw{cut}: {job.raw[:200]!r}")


@dead.command("retry")
@click.argument("job_ids", nargs=-1)
@click.option("--all", "retry_all", is_flag=True, help="Retry every dead job.")
@one_line_errors
def dead_retry(job_ids: tuple[str, ...], retry_all: bool) -> None:
    rt = runtime.configure(Settings.from_env())
    store = DeadJobs(rt.redis, rt.keys)
    ids = [job.id for job in store.list(limit=store.count())] if retry_all else list(job_ids)
    if not ids:
        raise click.ClickException("name dead job ids to retry, or pass --all")
    missing = [job_id for job_id in ids if not store.retry(job_id)]
    click.echo(f"requeued {len(ids) - len(missing)} job(s)")
    if missing:
        raise click.ClickException(f"not in the dead set: {', '.join(missing)}")


@dead.command("purge")
@click.argument("job_id", required=False)
@one_line_errors
def dead_purge(job_id: str | None) -> None:
    rt = runtime.configure(Settings.from_env())
    click.echo(f"purged {DeadJobs(rt.redis, rt.keys).purge(job_id)} dead job(s)")


def _when(epoch: float | None) -> str:
    if epoch is None:
        return "-"
    stamp = datetime.fromtimestamp(epoch, UTC)
    return f"{stamp.isoformat(timespec='seconds')} (in {epoch - time.time():+.0f}s)"
