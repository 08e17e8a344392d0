"""`workerpool cron list|enable|disable|run-now`: the cron schedules beat declared, from Redis
(store/cron_state.py, the functions the Cron page calls). Must not start processes."""

from __future__ import annotations

import dataclasses
import time
from datetime import UTC, datetime

import click

from worker_runtime import runtime
from worker_runtime.cli.common import one_line_errors
from worker_runtime.cli.tables import emit_json, output_option, relative, stamp, table
from worker_runtime.core.settings import Settings
from worker_runtime.store import cron_state


@click.group()
def cron() -> None:
    """Cron schedules: list them, enable or disable one (pool-wide, durable), run one now."""


@cron.command("list")
@output_option
@one_line_errors
def cron_list(output: str) -> None:
    rt = runtime.configure(Settings.from_env())
    now = datetime.now(UTC)
    found = cron_state.entries(rt.redis, rt.keys, now)
    if output == "json":
        emit_json([dataclasses.asdict(e) for e in found])
        return
    if not found:
        click.echo("no cron schedules declared (beat declares them when it starts)")
        return
    click.echo(
        table(
            ["WORKER", "SCHEDULE", "ZONE", "ENABLED", "NEXT RUN", "LAST RUN", "LAST RESULT"],
            [
                [
                    e.schedule.task,
                    e.schedule.expression,
                    e.schedule.timezone,
                    "yes" if e.enabled else "no",
                    relative(e.next_run, now.timestamp()),
                    stamp(e.last_tick),
                    e.last_status or "-",
                ]
                for e in found
            ],
        )
    )


def _set(task: str, enabled: bool) -> None:
    rt = runtime.configure(Settings.from_env())
    try:
        cron_state.set_enabled(rt.redis, rt.keys, task, enabled)
    except cron_state.CronScheduleError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"{task}: {'enabled' if enabled else 'disabled'}")


@cron.command("enable")
@click.argument("worker")
@one_line_errors
def cron_enable(worker: str) -> None:
    """Fire WORKER's schedule again from its next tick."""
    _set(worker, True)


@cron.command("disable")
@click.argument("worker")
@one_line_errors
def cron_disable(worker: str) -> None:
    """Stop firing WORKER's schedule (every beat honours it) until enabled."""
    _set(worker, False)


@cron.command("run-now")
@click.argument("worker")
@one_line_errors
def cron_run_now(worker: str) -> None:
    """Enqueue one run of WORKER now, outside its schedule."""
    rt = runtime.configure(Settings.from_env())
    try:
        job_id = cron_state.run_now(rt.redis, rt.keys, worker, time.time())
    except cron_state.CronScheduleError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"{worker}: enqueued job {job_id}")
