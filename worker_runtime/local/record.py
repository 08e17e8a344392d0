"""The project's `.workerpool/stack.json`: where the local stack of this folder is.

`workerpool up` writes it (mode 0600: it holds the Flower password) with the broker URL, the
Flower login, the embedded Redis's port and, while that Redis runs, its pid. Every
`workerpool` command run from the same folder reads it when `CELERY_BROKER_URL` is unset
(cli/common.py), and the next `up` starts Redis on the same port with the same login, so an
exported URL, a second shell and a bookmarked Flower keep working across restarts.

Owns the file's format and its permissions. Must not start or stop anything.
"""

from __future__ import annotations

import contextlib
import json
import os
from dataclasses import asdict, dataclass, replace
from pathlib import Path

#: The folder `up` keeps its state in, relative to where it runs (the project).
STATE_FOLDER = Path(".workerpool")
RECORD_NAME = "stack.json"


class StackRecordError(ValueError):
    """The record exists but cannot be read; the message names the file."""


@dataclass(frozen=True)
class StackRecord:
    broker_url: str
    result_backend: str
    flower_user: str
    flower_password: str
    flower_url: str
    #: Heartbeat files of the stack's worker and beat (`health`).
    state_dir: str
    #: The embedded Redis's port, kept across restarts; None when `up` used a given broker.
    redis_port: int | None = None
    #: The embedded Redis's pid while it runs: a hard-killed `up` leaves it behind, and the
    #: next `up` stops it (stack.py).
    redis_pid: int | None = None

    def stopped(self) -> StackRecord:
        return replace(self, redis_pid=None)

    @property
    def flower_auth(self) -> str:
        return f"{self.flower_user}:{self.flower_password}"


def record_path(folder: Path) -> Path:
    return folder / STATE_FOLDER / RECORD_NAME


def load(folder: Path) -> StackRecord | None:
    """The record of the stack run from `folder`, or None if `up` never ran there."""
    path = record_path(folder)
    try:
        raw = json.loads(path.read_text())
        return StackRecord(**raw)
    except FileNotFoundError:
        return None
    except (OSError, ValueError, TypeError) as exc:
        raise StackRecordError(
            f"{path} is not a record `workerpool up` can read ({exc}); delete it and run "
            "`workerpool up` again"
        ) from None


def save(folder: Path, record: StackRecord) -> Path:
    """Write the record atomically, readable by its owner only."""
    path = record_path(folder)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{RECORD_NAME}.{os.getpid()}")
    # Created 0600 rather than chmod-ed after, so the password is never readable by others.
    descriptor = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(descriptor, "w") as out:
            json.dump(asdict(record), out, indent=2)
            out.write("\n")
        os.chmod(partial, 0o600)  # O_CREAT's mode only applies to a new file
        os.replace(partial, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            partial.unlink()
    return path
