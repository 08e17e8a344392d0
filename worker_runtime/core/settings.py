"""Runtime settings, read once from the environment into a frozen value.

Owns the names of the environment variables and their validation. Must not connect to
anything: building settings is pure apart from reading `os.environ`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

DEFAULT_BROKER_URL = "redis://localhost:6379/0"


class SettingsError(ValueError):
    """An environment variable holds a value the runtime cannot use."""


@dataclass(frozen=True)
class Settings:
    """Everything the runtime reads from its environment."""

    broker_url: str = DEFAULT_BROKER_URL
    result_backend: str = DEFAULT_BROKER_URL
    worker_packages: tuple[str, ...] = ()
    timezone: str = "UTC"
    #: Prefix of every key this project adds to Redis (schedule, dead jobs, cron ticks).
    key_prefix: str = "workerpool"
    #: Lease of a delivered job, in seconds: a live worker renews it every third of this, so
    #: only a dead worker's jobs are redelivered, this long after its last renewal. Unrelated
    #: to job length (lease.py) and to delays (they live in the schedule set, celery#2599).
    visibility_timeout: int = 60
    log_format: Literal["text", "json"] = "text"
    state_dir: Path = field(default=Path("/tmp/workerpool"))
    #: Accept six-field cron expressions (seconds first). Meant for tests and demos.
    cron_seconds: bool = False
    #: How often each dispatcher moves due scheduled jobs onto their queues.
    dispatch_interval: float = 0.2
    #: Dead jobs kept at most; the oldest go first (Sidekiq keeps 10,000 too).
    dead_max_jobs: int = 10_000
    #: Seconds a result stays readable in the backend.
    result_expires: int = 86_400
    #: Seconds a message for a worker class this image lacks keeps being offered again (a
    #: rolling deploy adding the class) before it goes to the dead set; 0: dead at once.
    unknown_task_grace: float = 600.0
    #: Start although Redis may evict keys (store/eviction.py): the user accepts losing jobs.
    allow_eviction: bool = False

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ
        broker = env.get("CELERY_BROKER_URL") or DEFAULT_BROKER_URL
        settings = cls(
            broker_url=_redis_url(broker, "CELERY_BROKER_URL"),
            result_backend=_redis_url(
                env.get("CELERY_RESULT_BACKEND") or broker, "CELERY_RESULT_BACKEND"
            ),
            worker_packages=_csv(env.get("WORKER_PACKAGES", "")),
            timezone=env.get("WORKERPOOL_TIMEZONE") or "UTC",
            key_prefix=env.get("WORKERPOOL_KEY_PREFIX") or "workerpool",
            visibility_timeout=_positive_int(env, "WORKERPOOL_VISIBILITY_TIMEOUT", 60),
            log_format=_log_format(env.get("WORKERPOOL_LOG_FORMAT") or "text"),
            state_dir=Path(env.get("WORKERPOOL_STATE_DIR") or "/tmp/workerpool"),
            cron_seconds=_flag(env, "WORKERPOOL_CRON_SECONDS"),
            dispatch_interval=_seconds(env, "WORKERPOOL_DISPATCH_INTERVAL", 0.2),
            dead_max_jobs=_positive_int(env, "WORKERPOOL_DEAD_MAX_JOBS", 10_000),
            result_expires=_positive_int(env, "WORKERPOOL_RESULT_EXPIRES", 86_400),
            unknown_task_grace=_seconds(env, "WORKERPOOL_UNKNOWN_TASK_GRACE", 600.0, zero=True),
            allow_eviction=_flag(env, "WORKERPOOL_ALLOW_EVICTION"),
        )
        try:
            settings.zone  # noqa: B018 - validate the zone name once, at start-up
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise SettingsError(
                f"WORKERPOOL_TIMEZONE={settings.timezone!r} is not an IANA time zone"
            ) from exc
        return settings


def _csv(value: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in value.split(",") if part.strip())


def _redis_url(value: str, name: str) -> str:
    """`value` if it is one Redis URL redis-py and kombu read the same way, else a one-line
    SettingsError naming it (password hidden).

    redis-py's `parse_url` was considered, but this room may not import redis; and both it and
    kombu read `redis://host/abc` as database 0 without a word, so the checks are here.
    """
    shown = f"{name}={_redacted(value)!r}"
    if not value.startswith(("redis://", "rediss://", "unix://")):
        raise SettingsError(f"{shown} must be a redis:// URL")
    if value.count("://") != 1 or any(ch.isspace() or ch in ",;" for ch in value):
        raise SettingsError(f"{shown} must be one URL, not several")
    if value.startswith("unix://"):
        return value  # a socket path; its database is a ?db= query parameter
    parts = urlsplit(value)
    try:
        parts.port  # noqa: B018 - urllib checks the port only when asked
    except ValueError:
        raise SettingsError(f"{shown}: the port must be a number from 1 to 65535") from None
    if not parts.hostname:
        raise SettingsError(f"{shown} names no host")
    database = parts.path[1:] if parts.path.startswith("/") else parts.path
    if database and not (database.isascii() and database.isdigit()):
        raise SettingsError(f"{shown}: the database after the host must be a number, like /0")
    return value


def _redacted(url: str) -> str:
    scheme, sep, rest = url.partition("://")
    credentials, at, host = rest.rpartition("@")
    return f"{scheme}{sep}***@{host}" if at and credentials else url


def _positive_int(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name)
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise SettingsError(f"{name}={raw!r} must be a whole number") from None
    if value <= 0:
        raise SettingsError(f"{name}={raw!r} must be greater than zero")
    return value


def _seconds(env: Mapping[str, str], name: str, default: float, *, zero: bool = False) -> float:
    """A number of seconds from `name`: more than zero, or also zero when `zero` says it means
    something (e.g. "at once")."""
    raw = env.get(name)
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise SettingsError(f"{name}={raw!r} must be a number of seconds") from None
    if not (value >= 0 if zero else value > 0) or value == float("inf"):
        more = "zero or more seconds" if zero else "greater than zero"
        raise SettingsError(f"{name}={raw!r} must be {more}")
    return value


def _flag(env: Mapping[str, str], name: str) -> bool:
    raw = (env.get(name) or "").strip().lower()
    if raw in ("", "0", "false", "no"):
        return False
    if raw in ("1", "true", "yes"):
        return True
    raise SettingsError(f"{name}={raw!r} must be true or false")


def _log_format(raw: str) -> Literal["text", "json"]:
    if raw == "text":
        return "text"
    if raw == "json":
        return "json"
    raise SettingsError(f"WORKERPOOL_LOG_FORMAT={raw!r} must be 'text' or 'json'")
