"""`Logger.info(message=...)` and friends, on the standard `logging` module, text or JSON lines.

Owns log formatting for every process the CLI starts (Celery's own logs included, through the
`setup_logging` signal): a line logged while a job runs, by `Logger` or any other logger, carries
the job's id and worker class (`job_id`, `worker` in JSON; `Worker[id]: ` before the message in
text), as Celery's own TaskFormatter does for its task loggers. Must not decide where logs go
beyond stderr: the platform collects it.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import Any, ClassVar, Literal

# Celery's own TaskFormatter reads the current task through this function too.
from celery._state import get_current_task

_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime"}
_TEXT = "[%(asctime)s: %(levelname)s/%(processName)s] %(name)s: %(job)s%(message)s"


class JobFields(logging.Filter):
    """Adds the running job's `job_id` and `worker` (its class) to each record logged in it.

    Celery's current task is the job of this slot (solo pool: the job runs in the consumer's
    thread); Celery's TaskFormatter reads it the same way. The task class the registry builds
    is named after the worker class (execution/attempt.py `make_task`).
    """

    def filter(self, record: logging.LogRecord) -> bool:
        # Celery's own lines about a task already name it ("Task X[id] succeeded").
        if "job_id" not in vars(record) and not record.name.startswith("celery."):
            task = get_current_task()
            job_id = getattr(getattr(task, "request", None), "id", None)
            if job_id:
                record.job_id = job_id
                record.worker = type(task).__name__
        return True


class TextFormatter(logging.Formatter):
    """The text line; a job's records get `Worker[job id]: ` before their message."""

    def __init__(self) -> None:
        super().__init__(_TEXT)

    def formatMessage(self, record: logging.LogRecord) -> str:
        job_id = vars(record).get("job_id")
        job = f"{vars(record).get('worker', '?')}[{job_id}]: " if job_id else ""
        return _TEXT % {**vars(record), "job": job}


class JsonLinesFormatter(logging.Formatter):
    """One JSON object a line: time, level, logger, message, extra fields, exception."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        entry.update({k: v for k, v in vars(record).items() if k not in _STANDARD})
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


def configure_logging(level: str | int = "INFO", fmt: Literal["text", "json"] = "text") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(JobFields())
    handler.setFormatter(JsonLinesFormatter() if fmt == "json" else TextFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper() if isinstance(level, str) else level)


class Logger:
    """The logging facade jobs use (README): `Logger.info(message="...", user_id=1)`.

    Extra keyword arguments become fields of the record (keys of a JSON line).
    """

    _log: ClassVar[logging.Logger] = logging.getLogger("workerpool.jobs")

    @classmethod
    def debug(cls, *, message: str, **fields: Any) -> None:
        cls._log.debug(message, extra=fields, stacklevel=2)

    @classmethod
    def info(cls, *, message: str, **fields: Any) -> None:
        cls._log.info(message, extra=fields, stacklevel=2)

    @classmethod
    def warning(cls, *, message: str, **fields: Any) -> None:
        cls._log.warning(message, extra=fields, stacklevel=2)

    @classmethod
    def error(cls, *, message: str, **fields: Any) -> None:
        cls._log.error(message, extra=fields, stacklevel=2)

    @classmethod
    def exception(cls, *, message: str, **fields: Any) -> None:
        cls._log.exception(message, extra=fields, stacklevel=2)
