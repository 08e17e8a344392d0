"""The process-wide runtime: settings, the Celery app and a Redis client, built on first use.

Owns lazy construction only; nothing connects on import (Celery and redis-py both connect on
first command). `configure()` replaces the runtime (tests, the CLI); `current()` builds one
from the environment when nobody configured it.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

import redis
from celery import Celery

from worker_runtime.app import REDIS_TIMEOUTS, create_app
from worker_runtime.core.keys import Keys
from worker_runtime.core.settings import Settings


@dataclass
class Runtime:
    settings: Settings
    app: Celery = field(init=False)
    redis: redis.Redis = field(init=False)
    keys: Keys = field(init=False)

    def __post_init__(self) -> None:
        self.app = create_app(self.settings)
        self.redis = redis.Redis.from_url(self.settings.broker_url, **REDIS_TIMEOUTS)
        self.keys = Keys(self.settings.key_prefix)

    def close(self) -> None:
        self.redis.close()
        self.app.close()


_lock = threading.Lock()
_current: Runtime | None = None


def configure(settings: Settings | None = None, **overrides: Any) -> Runtime:
    """Install a runtime built from `settings` (default: the environment)."""
    global _current
    base = settings or Settings.from_env()
    if overrides:
        base = Settings(**{**base.__dict__, **overrides})
    with _lock:
        if _current is not None:
            _current.close()
        _current = Runtime(base)
        return _current


def current() -> Runtime:
    global _current
    with _lock:
        if _current is None:
            _current = Runtime(Settings.from_env())
        return _current
