"""The dashboard's figures: processed and failed jobs per minute for the last hour and per day
for 30 days (job_stats.py's timelines), and the Redis server's version, memory and clients.

Read-only; one pipelined round trip for each. Must not read the clock: callers pass `now`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import redis

from worker_runtime.store import job_stats


@dataclass(frozen=True)
class Point:
    #: Epoch seconds where the minute or day begins.
    start: float
    processed: int
    failed: int


@dataclass(frozen=True)
class RedisInfo:
    version: str
    used_memory: str
    peak_memory: str
    clients: int
    uptime_days: int


def history(client: redis.Redis, now: float) -> tuple[list[Point], list[Point]]:
    """(the last 60 minutes, the last 30 days), oldest first, the current one included."""
    minutes = [(int(now // 60) - i) * 60 for i in range(59, -1, -1)]
    days = [(int(now // 86_400) - i) * 86_400 for i in range(29, -1, -1)]
    with client.pipeline(transaction=False) as pipe:
        for start in minutes:
            pipe.hmget(job_stats.minute_key(start), ["processed", "failed"])
        for start in days:
            pipe.hmget(job_stats.day_key(start), ["processed", "failed"])
        replies: list[list[Any]] = pipe.execute()
    points = [
        Point(float(start), int(p or 0), int(f or 0))
        for start, (p, f) in zip([*minutes, *days], replies, strict=True)
    ]
    return points[: len(minutes)], points[len(minutes) :]


def redis_info(client: redis.Redis) -> RedisInfo:
    info: dict[str, Any] = client.info()
    return RedisInfo(
        version=str(info.get("redis_version", "?")),
        used_memory=str(info.get("used_memory_human", "?")),
        peak_memory=str(info.get("used_memory_peak_human", "?")),
        clients=int(info.get("connected_clients", 0)),
        uptime_days=int(info.get("uptime_in_days", 0)),
    )
