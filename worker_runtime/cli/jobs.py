"""The job tools for waiting jobs: `scheduled` and `retries` (list, show, run-now, delete, and
kill for retries), calling the same `store/` functions as the Scheduled and Retries pages.
The dead set's tools are in dead.py. Must not start processes.
"""

from __future__ import annotations

import time

import click

from worker_runtime import runtime
from worker_runtime.cli.common import one_line_errors
from worker_runtime.cli.tables import (
    arguments,
    cut,
    emit_window,
    output_option,
    relative,
    stamp,
    table,
)
from worker_runtime.core.settings import Settings
from worker_runtime.store.dead import DeadJobs
from worker_runtime.store.schedule_set import ScheduleSet
from worker_runtime.store.scheduled_jobs import Kind, ScheduledJobs

window_options = [
    click.option("--limit", type=click.IntRange(1, 10_000), default=50, show_default=True),
    click.option("--offset", type=click.IntRange(min=0), default=0, help="Rank to start at."),
    click.option("--class", "task", default=None, help="Only this worker (full or last name)."),
    click.option("--grep", "text", default=None, help="Only jobs containing this text."),
    output_option,
]


def _store(kind: Kind) -> tuple[runtime.Runtime, ScheduledJobs]:
    rt = runtime.configure(Settings.from_env())
    return rt, ScheduledJobs(rt.redis, rt.keys, kind)


def _list(
    kind: Kind, limit: int, offset: int, task: str | None, text: str | None, output: str
) -> None:
    _, store = _store(kind)
    shown = store.window(offset, limit, task=task, text=text)
    now = time.time()
    rows = [
        [
            job.id,
            job.task,
            arguments(job.args, job.kwargs, 40),
            relative(job.due, now),
            job.queue,
            str(job.retries),
            cut(job.last_error or "-", 50),
        ]
        for job in shown.items
    ]
    headers = ["ID", "WORKER", "ARGS", "RUNS", "QUEUE", "RETRIES", "LAST ERROR"]
    if kind == "scheduled":
        headers, rows = headers[:5], [row[:5] for row in rows]
    emit_window(shown, output, headers, rows, store.noun)


def _show(kind: Kind, job_id: str) -> None:
    _, store = _store(kind)
    job = store.get(job_id)
    now = time.time()
    click.echo(f"id:       {job.id}\nworker:   {job.task}\nqueue:    {job.queue}")
    click.echo(f"runs:     {stamp(job.due)} ({relative(job.due, now)})")
    click.echo(f"retries:  {job.retries}\nargs:     {job.args}\nkwargs:   {job.kwargs}")
    for failure in store.history(job_id):
        click.echo(f"\nattempt {failure.attempt} failed {relative(failure.failed_at, now)}: ")
        click.echo(f"  {failure.error}")
        if failure.traceback:
            click.echo("  " + failure.traceback.rstrip().replace("\n", "\n  "))


def _add_list(group: click.Group, kind: Kind) -> None:
    def command(limit: int, offset: int, task: str | None, text: str | None, output: str) -> None:
        _list(kind, limit, offset, task, text, output)

    for option in reversed(window_options):
        command = option(command)
    group.command("list", help=f"List waiting {kind} jobs, soonest first.")(
        one_line_errors(command)
    )


@click.group(invoke_without_command=True)
@click.pass_context
@one_line_errors
def scheduled(ctx: click.Context) -> None:
    """Jobs waiting for their time (perform_in/perform_at); alone: counts per queue and worker."""
    if ctx.invoked_subcommand is not None:
        return
    rt = runtime.configure(Settings.from_env())
    schedule_set = ScheduleSet(rt.redis, rt.keys)
    now = time.time()
    rows = [
        [e.queue, str(e.count), stamp(e.next_due), relative(e.next_due, now)]
        for e in schedule_set.summary()
    ]
    click.echo(table(["QUEUE", "WAITING", "NEXT DUE", ""], rows))
    per_worker = schedule_set.per_worker()
    if per_worker:
        rows = [
            [task, str(n), stamp(due), relative(due, now)]
            for task, (n, due) in sorted(per_worker.items())
        ]
        click.echo("\n" + table(["WORKER", "WAITING", "NEXT DUE", ""], rows))


@click.group()
def retries() -> None:
    """Failed jobs waiting for their next attempt."""


for _group, _kind in ((scheduled, "scheduled"), (retries, "retry")):
    _add_list(_group, _kind)  # type: ignore[arg-type]


def _acts(group: click.Group, kind: Kind) -> None:
    @group.command("show")
    @click.argument("job_id")
    @one_line_errors
    def show(job_id: str) -> None:
        """Everything about one job, with its failed attempts."""
        _show(kind, job_id)

    @group.command("run-now")
    @click.argument("job_ids", nargs=-1, required=True)
    @one_line_errors
    def run_now(job_ids: tuple[str, ...]) -> None:
        """Put the jobs on their queues now."""
        _, store = _store(kind)
        click.echo(f"queued {len(store.run_now(job_ids))} job(s) to run now")

    @group.command("delete")
    @click.argument("job_ids", nargs=-1, required=True)
    @one_line_errors
    def delete(job_ids: tuple[str, ...]) -> None:
        """Delete the jobs: they never run (AsyncResult.status says REVOKED)."""
        rt, store = _store(kind)
        click.echo(f"deleted {len(store.delete(job_ids, rt.settings.result_expires))} job(s)")


_acts(scheduled, "scheduled")
_acts(retries, "retry")


@retries.command("kill")
@click.argument("job_ids", nargs=-1, required=True)
@click.option("--reason", default="killed by hand", show_default=True)
@one_line_errors
def retries_kill(job_ids: tuple[str, ...], reason: str) -> None:
    """Move the retries to the dead set now, with `reason` as their error."""
    rt, store = _store("retry")
    dead = DeadJobs(rt.redis, rt.keys, rt.settings.dead_max_jobs)
    click.echo(f"moved {len(store.kill(job_ids, reason, dead))} job(s) to the dead set")
