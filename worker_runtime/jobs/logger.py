"""`Logger.info(message=...)` and friends, on the standard `logging` module, text or JSON lines.

Owns log formatting for every process the CLI starts (Celery's own logs included, through the
`setup_logging` signal). Must not decide where logs go beyond stderr: the platform collects it.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import Any, ClassVar, Literal

_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime"}


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
    if fmt == "json":
        handler.setFormatter(JsonLinesFormatter())
    else:
        handler.setFormatter(
            logging.Formatter("[%(asctime)s: %(levelname)s/%(processName)s] %(name)s: %(message)s")
        )
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
