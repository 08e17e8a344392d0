"""What every `workerpool` command shares: start-up (settings, logging, worker discovery),
finding the local stack `up` runs from this folder, and the rule that a bad setting or an
unreachable Redis is one line and exit 1, never a traceback. Must not define commands."""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, MutableMapping
from pathlib import Path
from typing import ParamSpec, TypeVar

import click
import redis

from worker_runtime import runtime
from worker_runtime.core.settings import Settings, SettingsError
from worker_runtime.execution.registry import WorkerDiscoveryError, WorkerRegistry
from worker_runtime.jobs.logger import configure_logging
from worker_runtime.local import record
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
            hint = (
                f" (the local stack recorded in {_stack_record}: is `workerpool up` running?)"
                if _stack_record is not None
                else ""
            )
            raise click.ClickException(
                f"cannot use Redis at {without_password(url)}: {type(exc).__name__}: {exc}{hint}"
            ) from exc

    return wrapper


#: The record this process took its broker from, if it did (for the error's hint).
_stack_record: Path | None = None

#: What the record supplies, each only when the environment does not set it.
_FROM_RECORD: dict[str, Callable[[record.StackRecord], str]] = {
    "CELERY_BROKER_URL": lambda stack: stack.broker_url,
    "CELERY_RESULT_BACKEND": lambda stack: stack.result_backend,
    "FLOWER_BASIC_AUTH": lambda stack: stack.flower_auth,
    "WORKERPOOL_STATE_DIR": lambda stack: stack.state_dir,
}


def use_local_stack(environ: MutableMapping[str, str], folder: Path | None = None) -> None:
    """When CELERY_BROKER_URL is unset and `workerpool up` ran from `folder` (default: here),
    fill `environ` from its record (local/record.py), so `workerpool dead list` in a second
    shell reaches that stack. Settings are then read from `environ` as always; a set
    CELERY_BROKER_URL wins and the record is not even read."""
    global _stack_record
    if environ.get("CELERY_BROKER_URL"):
        return
    here = Path.cwd() if folder is None else folder
    try:
        stack = record.load(here)
    except record.StackRecordError as exc:
        raise click.ClickException(str(exc)) from exc
    if stack is None:
        return
    for name, value in _FROM_RECORD.items():
        if not environ.get(name):
            environ[name] = value(stack)
    _stack_record = record.record_path(here)


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
