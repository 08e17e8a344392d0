"""What every worker pod runs right now, kept in Redis for the Busy page and `workerpool busy`.

Each pod's duties process publishes one JSON document per pod (`Keys.busy_pod`, with an
expiry) and its name in a sorted set scored by when that document lapses (`Keys.busy_pods`),
so readers find every pod with one ZRANGEBYSCORE and one MGET, never a SCAN; a pod killed
without a goodbye drops out when its report lapses. The worker class and arguments of a
running job are read from kombu's `unacked` hash by delivery tag (the slot board carries only
ids and tags), so slots write nothing to Redis for this.

Owns the report format, its keys and the reads. Must not read the slot board or the clock:
the duties process (process/busy_report.py) passes what it saw and the time.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import redis

from worker_runtime.core.display import cut
from worker_runtime.core.keys import UNACKED_KEY, Keys

#: Characters of a job's arguments kept in a report (Celery's argsrepr, cut).
ARGS_LIMIT = 200


@dataclass(frozen=True)
class RunningJob:
    slot: int
    id: str
    task: str
    args: str
    queue: str
    attempt: int
    #: Epoch seconds the slot began the job.
    started_at: float


@dataclass(frozen=True)
class PodReport:
    pod: str
    slots: int
    queues: tuple[str, ...]
    version: str
    rss_kib: int
    #: Epoch seconds of the report.
    updated: float
    jobs: tuple[RunningJob, ...] = field(default=())

    @property
    def busy(self) -> int:
        return len(self.jobs)


def describe(client: redis.Redis, tags: Sequence[str]) -> dict[str, tuple[str, str]]:
    """Delivery tag -> (task name, arguments cut to ARGS_LIMIT) of messages consumers hold."""
    if not tags:
        return {}
    found: dict[str, tuple[str, str]] = {}
    for tag, raw in zip(tags, client.hmget(UNACKED_KEY, list(tags)), strict=True):
        if raw is None:
            continue
        try:
            envelope = json.loads(raw)[0]  # kombu stores [message, exchange, routing key]
            if isinstance(envelope, str | bytes):
                envelope = json.loads(envelope)
            headers = envelope["headers"]
            task = str(headers.get("task") or "?")
            shown = (headers.get("argsrepr") or "", headers.get("kwargsrepr") or "")
            args = " ".join(part for part in shown if part not in ("", "()", "{}"))
        except (ValueError, KeyError, IndexError, TypeError, AttributeError):
            continue  # not a Celery message: the page shows the id alone
        found[tag] = (task, cut(args, ARGS_LIMIT))
    return found


def publish(client: redis.Redis, keys: Keys, report: PodReport, ttl: float) -> None:
    """Write `report`, valid for `ttl` seconds from `report.updated`; one round trip."""
    expires = report.updated + ttl
    with client.pipeline(transaction=True) as pipe:
        pipe.set(keys.busy_pod(report.pod), json.dumps(asdict(report)), px=int(ttl * 1000))
        pipe.zadd(keys.busy_pods, {report.pod: expires})
        # Pods gone for a day are forgotten; lapsed ones are simply not read.
        pipe.zremrangebyscore(keys.busy_pods, "-inf", report.updated - 86_400)
        pipe.execute()


def withdraw(client: redis.Redis, keys: Keys, pod: str) -> None:
    """Remove a pod's report (at a clean shutdown)."""
    with client.pipeline(transaction=True) as pipe:
        pipe.delete(keys.busy_pod(pod))
        pipe.zrem(keys.busy_pods, pod)
        pipe.execute()


def pods(client: redis.Redis, keys: Keys, now: float) -> list[PodReport]:
    """Every pod whose report has not lapsed, by name."""
    names = [_text(n) for n in client.zrangebyscore(keys.busy_pods, now, "+inf")]
    if not names:
        return []
    raws = client.mget([keys.busy_pod(name) for name in names])
    return sorted(
        (_report(json.loads(raw)) for raw in raws if raw is not None), key=lambda r: r.pod
    )


def running(reports: Iterable[PodReport]) -> list[tuple[PodReport, RunningJob]]:
    """Every running job of `reports`, longest-running first."""
    pairs = [(report, job) for report in reports for job in report.jobs]
    return sorted(pairs, key=lambda pair: pair[1].started_at)


def _report(data: dict[str, Any]) -> PodReport:
    return PodReport(
        pod=data["pod"],
        slots=int(data["slots"]),
        queues=tuple(data["queues"]),
        version=data["version"],
        rss_kib=int(data["rss_kib"]),
        updated=float(data["updated"]),
        jobs=tuple(RunningJob(**job) for job in data["jobs"]),
    )


def _text(raw: Any) -> str:
    return raw.decode() if isinstance(raw, bytes) else str(raw)
