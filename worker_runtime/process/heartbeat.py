"""Heartbeat files: a process proves it is alive by touching one; probes check its age.

Kubernetes probes run `workerpool health`, which reads a file instead of broadcasting
`celery inspect ping` to every worker from every pod. Must not do anything but touch and read.
"""

from __future__ import annotations

import os
import time
from pathlib import Path


def heartbeat_path(state_dir: Path, component: str) -> Path:
    return state_dir / f"{component}.heartbeat"


def touch(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch()
    os.utime(path)


def age(path: Path, now: float | None = None) -> float | None:
    """Seconds since the last touch, or None if it never beat."""
    try:
        mtime = path.stat().st_mtime
    except FileNotFoundError:
        return None
    return (time.time() if now is None else now) - mtime
