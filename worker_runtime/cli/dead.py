"""The dead set's tools: `workerpool dead list|show|retry|delete|purge`, calling the same
`store/dead.py` methods as the Dead page. `purge` asks before it deletes everything. Must not
start processes.
"""

from __future__ import annotations

import time

import click

from worker_runtime import runtime
from worker_runtime.cli.common import one_line_errors
from worker_runtime.cli.jobs import window_options
from worker_runtime.cli.tables import arguments, cut, emit_window, relative, stamp
from worker_runtime.core.settings import Settings
from worker_runtime.store.dead import DeadJobs
from worker_runtime.store.history import history
from worker_runtime.store.scheduled_jobs import matches


def _store() -> tuple[runtime.Runtime, DeadJobs]:
    rt = runtime.configure(Settings.from_env())
    return rt, DeadJobs(rt.redis, rt.keys, rt.settings.dead_max_jobs)


@click.group()
def dead() -> None:
    """Jobs that failed their last retry, and messages that could not run."""


def dead_list(limit: int, offset: int, task: str | None, text: str | None, output: str) -> None:
    """List dead jobs, most recent first."""
    _, store = _store()
    match = (lambda job: matches(job, task, text)) if task or text else None
    shown = store.window(offset, limit, match=match)
    now = time.time()
    rows = [
        [
            job.id,
            job.task,
            arguments(job.args, job.kwargs, 40),
            str(job.attempts),
            relative(job.failed_at, now),
            cut(job.error, 60),
        ]
        for job in shown.items
    ]
    headers = ["ID", "WORKER", "ARGS", "ATTEMPTS", "DIED", "ERROR"]
    emit_window(shown, output, headers, rows, "dead job")


for _option in reversed(window_options):
    dead_list = _option(dead_list)
dead.command("list")(one_line_errors(dead_list))


@dead.command("show")
@click.argument("job_id")
@one_line_errors
def dead_show(job_id: str) -> None:
    """Everything about one dead job: arguments, the full traceback, every failed attempt."""
    rt, store = _store()
    job = store.show(job_id)
    now = time.time()
    click.echo(f"id:        {job.id}\nworker:    {job.task}\nqueue:     {job.queue}")
    click.echo(f"died:      {stamp(job.failed_at)} ({relative(job.failed_at, now)})")
    click.echo(f"attempts:  {job.attempts}\nargs:      {job.args}\nkwargs:    {job.kwargs}")
    click.echo(f"error:     {job.error}")
    if job.raw is not None:
        click.echo(f"raw{' (truncated)' if job.raw_truncated else ''}: {job.raw!r}")
    if job.traceback:
        click.echo("\n" + job.traceback.rstrip())
    for failure in history(rt.redis, rt.keys, job_id):
        click.echo(f"\nattempt {failure.attempt} failed {relative(failure.failed_at, now)}:")
        click.echo(f"  {failure.error}")


@dead.command("retry")
@click.argument("job_ids", nargs=-1)
@click.option("--all", "retry_all", is_flag=True, help="Retry every dead job.")
@one_line_errors
def dead_retry(job_ids: tuple[str, ...], retry_all: bool) -> None:
    """Queue dead jobs again, under the same ids, with a fresh retry budget."""
    _, store = _store()
    if retry_all:
        click.echo(f"requeued {store.retry_all()} job(s)")
        return
    if not job_ids:
        raise click.ClickException("name dead job ids to retry, or pass --all")
    missing = [job_id for job_id in job_ids if not store.retry(job_id)]
    click.echo(f"requeued {len(job_ids) - len(missing)} job(s)")
    if missing:
        raise click.ClickException(f"not in the dead set: {', '.join(missing)}")


@dead.command("delete")
@click.argument("job_ids", nargs=-1, required=True)
@one_line_errors
def dead_delete(job_ids: tuple[str, ...]) -> None:
    """Delete the named dead jobs."""
    _, store = _store()
    click.echo(f"deleted {store.delete(job_ids)} dead job(s)")


@dead.command("purge")
@click.option("--yes", is_flag=True, help="Do not ask.")
@one_line_errors
def dead_purge(yes: bool) -> None:
    """Delete every dead job (asks first unless --yes)."""
    _, store = _store()
    count = store.count()
    if count and not yes:
        click.confirm(f"delete all {count} dead job(s)?", abort=True)
    click.echo(f"purged {store.purge()} dead job(s)")
