"""What every `workerpool` command shares: start-up (settings, logging, worker discovery)
and the rule that a bad setting or an unreachable Redis is one line and exit 1, never a
traceback. Must not define commands."""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from typing import ParamSpec, TypeVar

import click
import redis

from worker_runtime import runtime
from worker_runtime.core.settings import Settings, SettingsError
from worker_runtime.execution.registry import WorkerDiscoveryError, WorkerRegistry
from worker_runtime.jobs.logger import configure_logging
from worker_runtime.store.browse import UnknownJobError
from worker_runtime.store.dead import DeadJobError

EXAMPLES = "worker_runtime.examples"

P = ParamSpec("P")
R = TypeVar("R")


def one_line_errors(command: Callable[P, R]) -> Callable[P, R]:
    """Tool commands: a bad setting or an unreachable Redis is one line and exit 1, never a
    traceback."""

    @functools.wraps(command)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return command(*args, **kwargs)
        except (SettingsError, DeadJobError, UnknownJobError) as exc:
            raise click.ClickException(str(exc)) from exc
        except redis.RedisError as exc:
            # Settings parsed before Redis was reached, so reading them again cannot fail.
            url = Settings.from_env().broker_url
            raise click.ClickException(
                f"cannot use Redis at {without_password(url)}: {type(exc).__name__}: {exc}"
            ) from exc

    return wrapper


def without_password(url: str) -> str:
    scheme, _, rest = url.partition("://")
    return f"{scheme}://{rest.rpartition('@')[2]}" if rest else url


packages_option = click.option(
    "--packages",
    envvar="WORKER_PACKAGES",
    default="",
    help="Comma-separated packages to discover workers in [env: WORKER_PACKAGES].",
)
loglevel_option = click.option("--loglevel", "-l", default="INFO", show_default=True)


def start(packages: str, loglevel: str, *, discover: bool = True) -> runtime.Runtime:
    """Settings, logging, runtime and worker discovery; start-up errors become one line."""
    try:
        settings = Settings.from_env()
        if packages:
            settings = dataclasses.replace(
                settings, worker_packages=tuple(p.strip() for p in packages.split(",") if p.strip())
            )
        configure_logging(loglevel, settings.log_format)
        rt = runtime.configure(settings)
        if discover:
            WorkerRegistry.initialize()
    except (SettingsError, WorkerDiscoveryError) as exc:
        raise click.ClickException(str(exc)) from exc
    from celery import signals

    # Celery keeps our logging set-up instead of installing its own.
    signals.setup_logging.connect(
        lambda **_: configure_logging(loglevel, settings.log_format), weak=False
    )
    return rt
