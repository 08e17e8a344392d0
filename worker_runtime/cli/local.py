"""`workerpool up`: worker, beat and Flower on this machine (and Redis when none is set), run
by the local stack (`worker_runtime/local/`). Must not start containers' processes itself.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from worker_runtime.cli.common import EXAMPLES, loglevel_option
from worker_runtime.core.settings import SettingsError


@click.command()
@click.option(
    "--packages",
    envvar="WORKER_PACKAGES",
    default=EXAMPLES,
    show_default=True,
    help="Comma-separated packages to discover your workers in, importable from here "
    "[env: WORKER_PACKAGES].",
)
@loglevel_option
@click.option("--concurrency", "-c", type=click.IntRange(min=1), default=2, show_default=True)
@click.option("--flower-port", type=int, default=5555, show_default=True)
@click.option("--flower-address", default="127.0.0.1", show_default=True)
@click.option(
    "--basic-auth",
    envvar="FLOWER_BASIC_AUTH",
    default=None,
    help="user:password for Flower [env: FLOWER_BASIC_AUTH]; default: the one recorded in "
    ".workerpool/ by the last `up` here, or a new one.",
)
@click.option(
    "--grace",
    type=click.FloatRange(min=0),
    default=60.0,
    show_default=True,
    help="Seconds running jobs get to finish on Ctrl-C/SIGTERM before the worker's cold "
    "shutdown requeues them.",
)
@click.option(
    "--redis-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path(".workerpool/redis"),
    show_default=True,
    help="Where the embedded Redis keeps its data across restarts.",
)
def up(
    packages: str,
    loglevel: str,
    concurrency: int,
    flower_port: int,
    flower_address: str,
    basic_auth: str | None,
    grace: float,
    redis_dir: Path,
) -> None:
    """Run worker, beat and Flower here (and Redis, unless CELERY_BROKER_URL is set).

    Ctrl-C or SIGTERM is a warm shutdown: running jobs finish (up to --grace seconds; Ctrl-C
    again stops and requeues them), then beat, Flower and Redis stop, in that order. The
    broker URL and Flower login are recorded in .workerpool/stack.json; commands run from
    this folder use them."""
    from worker_runtime.local.claim import StackBusyError
    from worker_runtime.local.embedded_redis import RedisBinaryMissingError, RedisStartError
    from worker_runtime.local.record import StackRecordError
    from worker_runtime.local.stack import StackOptions, run_stack
    from worker_runtime.web import dashboard

    try:
        if basic_auth is not None:
            dashboard.check_credentials(basic_auth)
    except SettingsError as exc:
        raise click.ClickException(str(exc)) from exc
    options = StackOptions(
        packages,
        concurrency,
        flower_port,
        flower_address,
        loglevel,
        basic_auth,
        grace=grace,
        redis_dir=redis_dir,
    )
    try:
        code = run_stack(options)
    except (RedisBinaryMissingError, RedisStartError, StackBusyError, StackRecordError) as exc:
        raise click.ClickException(str(exc)) from exc
    sys.exit(code)
