"""The `workerpool` command: container entrypoints (worker, beat, flower), the local stack
(`up`), health probes and the job tools (scheduled, retries, dead).

Owns argument parsing and start-up error reporting: a bad setting, a broken worker module or
an unknown queue stops start-up with one line naming the culprit. Subcommands from other
packages (the operator's `operator` and `render`) arrive through the `workerpool.commands`
entry points, so this package never imports the operator.
"""

from __future__ import annotations

import os
from importlib.metadata import entry_points
from typing import Any

import click

from worker_runtime.cli import cron, dead, jobs, live, local, processes
from worker_runtime.cli.common import use_local_stack


@click.group()
@click.pass_context
def cli(ctx: click.Context) -> None:
    """Sidekiq-style Celery workers: run them, schedule them, inspect them."""
    # Every command but `up` (which starts the stack the record describes) finds the local
    # stack of this folder when no broker is set.
    if ctx.invoked_subcommand != "up":
        use_local_stack(os.environ)


for _command in (
    processes.worker,
    processes.beat,
    processes.flower,
    local.up,
    processes.health,
    jobs.scheduled,
    jobs.retries,
    dead.dead,
    live.busy,
    live.queues,
    cron.cron,
):
    cli.add_command(_command)


def _load_plugins(group: click.Group) -> None:
    for entry in entry_points(group="workerpool.commands"):
        try:
            command: Any = entry.load()
        except ImportError:
            # The operator extra is optional; its commands appear when it is installed.
            continue
        group.add_command(command, entry.name)


def main() -> None:
    _load_plugins(cli)
    cli()
