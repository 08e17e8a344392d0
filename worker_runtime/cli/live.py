"""`workerpool busy` and `workerpool queues`: what runs now and what waits, from Redis
(store/busy.py, store/queues.py: the functions the Busy and Queues pages call).
Must not start processes."""

from __future__ import annotations

import dataclasses
import time

import click

from worker_runtime import runtime
from worker_runtime.cli.common import one_line_errors
from worker_runtime.cli.tables import cut, emit_json, output_option, stamp, table
from worker_runtime.core.display import duration
from worker_runtime.core.queues import QUEUES, UnknownQueueError
from worker_runtime.core.settings import Settings
from worker_runtime.store import busy as busy_store
from worker_runtime.store import queues as queue_store


@click.command()
@output_option
@one_line_errors
def busy(output: str) -> None:
    """Every job running now, across all worker pods and slots, and each pod's load."""
    rt = runtime.configure(Settings.from_env())
    now = time.time()
    pods = busy_store.pods(rt.redis, rt.keys, now)
    if output == "json":
        emit_json({"pods": [dataclasses.asdict(p) for p in pods]})
        return
    click.echo(
        table(
            ["POD", "BUSY", "RSS", "QUEUES", "VERSION"],
            [
                [
                    p.pod,
                    f"{p.busy}/{p.slots}",
                    f"{p.rss_kib // 1024} MiB",
                    ",".join(p.queues),
                    p.version,
                ]
                for p in pods
            ],
        )
        if pods
        else "no worker pods are reporting"
    )
    jobs = busy_store.running(pods)
    click.echo(f"\n{len(jobs)} job(s) running")
    if jobs:
        click.echo(
            table(
                ["WORKER", "JOB ID", "QUEUE", "POD/SLOT", "STARTED", "RUNNING FOR", "ARGUMENTS"],
                [
                    [
                        j.task,
                        j.id,
                        j.queue,
                        f"{p.pod}/{j.slot}",
                        stamp(j.started_at),
                        duration(now - j.started_at),
                        cut(j.args, 60),
                    ]
                    for p, j in jobs
                ],
            )
        )


def _queue_name(queue: str) -> str:
    if queue not in QUEUES:
        raise click.BadParameter(f"{queue!r} is not one of {', '.join(QUEUES)}", param_hint="QUEUE")
    return queue


@click.group(invoke_without_command=True)
@output_option
@click.pass_context
@one_line_errors
def queues(ctx: click.Context, output: str) -> None:
    """Each queue's depth, latency (age of its oldest job) and rates; subcommands act."""
    if ctx.invoked_subcommand is not None:
        return
    rt = runtime.configure(Settings.from_env())
    found = queue_store.infos(rt.redis, time.time())
    if output == "json":
        emit_json([dataclasses.asdict(q) for q in found])
        return
    click.echo(
        table(
            ["QUEUE", "DEPTH", "LATENCY", "PROCESSED/MIN", "FAILED/MIN"],
            [
                [
                    q.name,
                    str(q.depth),
                    duration(q.latency),
                    f"{q.processed_per_minute:.1f}",
                    f"{q.failed_per_minute:.1f}",
                ]
                for q in found
            ],
        )
    )


@queues.command("show")
@click.argument("queue")
@click.option("--start", type=click.IntRange(min=0), default=0, show_default=True)
@click.option("--limit", type=click.IntRange(min=1), default=25, show_default=True)
@output_option
@one_line_errors
def queues_show(queue: str, start: int, limit: int, output: str) -> None:
    """The jobs waiting in QUEUE, next to run first."""
    rt = runtime.configure(Settings.from_env())
    jobs = queue_store.browse(rt.redis, _queue_name(queue), start, limit)
    if output == "json":
        emit_json([dataclasses.asdict(j) for j in jobs])
        return
    now = time.time()
    click.echo(
        table(
            ["#", "WORKER", "JOB ID", "WAITING", "ARGUMENTS"],
            [
                [
                    str(j.position),
                    j.task,
                    j.id,
                    duration(None if j.enqueued_at is None else now - j.enqueued_at),
                    cut(f"{j.args} {j.kwargs}", 60),
                ]
                for j in jobs
            ],
        )
        if jobs
        else f"no jobs at positions {start}.. of {queue}"
    )


@queues.command("delete")
@click.argument("queue")
@click.argument("job_id")
@one_line_errors
def queues_delete(queue: str, job_id: str) -> None:
    """Remove one waiting job from QUEUE (it never runs)."""
    rt = runtime.configure(Settings.from_env())
    try:
        queue_store.delete(rt.redis, _queue_name(queue), job_id)
    except (queue_store.QueueError, UnknownQueueError) as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"deleted job {job_id} from {queue}")


@queues.command("clear")
@click.argument("queue")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@one_line_errors
def queues_clear(queue: str, yes: bool) -> None:
    """Delete every job waiting in QUEUE (asks first unless --yes)."""
    rt = runtime.configure(Settings.from_env())
    name = _queue_name(queue)
    depth = int(rt.redis.llen(name))
    if not yes:
        click.confirm(f"delete all {depth} job(s) waiting in {name}?", abort=True)
    click.echo(f"deleted {queue_store.clear(rt.redis, name)} job(s) from {name}")
