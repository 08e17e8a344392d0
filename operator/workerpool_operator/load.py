"""A pool's load, from one batch of Redis readings: what is queued, held, running and due.

Why the operator computes it (and not a component inside the pool): the operator already holds
every pool's Redis credentials (it reads the Secrets each pass) and is the one that acts on the
figure (autoscale.py), so reading Redis there costs one pipelined round trip per pool per
evaluation and no new Deployment, image or RBAC per pool; a pool component would have to
publish the figure somewhere the operator reads it back, with a second staleness. The cost is
that the operator must reach each pool's Redis Service (a NetworkPolicy must allow it).

`commands` is the whole batch (3 commands per queue + 5, measured by the tests) and
`load_from` turns its replies into `Load`; both pure. redisload.py sends the batch. What the
figure counts, per queue:
- queued: LLEN of the queue list (kombu's Redis transport; no per-message priority is used,
  so there are no priority sub-lists);
- reserved/running: what each worker pod's duties process publishes in LOAD_KEY
  (worker_runtime/process/load_report.py), one held and running job per busy slot: reserved
  includes running; pods whose report expired are ignored;
- due: jobs in the schedule set falling due within `horizon` seconds (overdue included);
- oldest age: how long the message at the consuming end of the list has been there. Messages
  carry no send time, so the operator notes when it first saw that delivery tag there
  (`Sighting`): a lower bound, exact to one evaluation interval, reset by an operator restart.
Pool-wide: `unacked` (kombu's `unacked` hash: every delivered, unacked message, the ground
truth of reserved when a worker cannot report), the dead set's size, and the job counters and
duration histogram per task the workers keep (worker_runtime/store/job_stats.py). Must not do I/O.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from workerpool_operator.model import Json

# Key names of worker_runtime (keys.py, lease.py, load_report.py) and kombu; the operator must
# not import the runtime, so tests/unit/operator/test_runtime_contract.py pins them equal.
PREFIX: Final = "workerpool"
UNACKED: Final = "unacked"  # kombu Channel.unacked_key
DEAD: Final = f"{PREFIX}:dead"
LOAD_KEY: Final = f"{PREFIX}:load:pods"
JOBS_KEY: Final = f"{PREFIX}:stats:jobs"  # worker_runtime/store/job_stats.py
DURATION_KEY: Final = f"{PREFIX}:stats:duration"
#: The runtime's histogram buckets (job_stats.BUCKETS), as its field labels.
DURATION_BUCKETS: Final = (
    "0.1",
    "0.5",
    "1.0",
    "5.0",
    "10.0",
    "30.0",
    "60.0",
    "300.0",
    "900.0",
    "3600.0",
    "+Inf",
)
POOL_COMMANDS: Final = 5  # after the 3 per queue
#: "Due in the next interval": jobs becoming due this soon count as demand now.
DUE_HORIZON_SECONDS: Final = 30.0

Command = tuple[Any, ...]


def schedule_key(queue: str) -> str:
    return f"{PREFIX}:schedule:{queue}"


@dataclass(frozen=True)
class Sighting:
    """When the operator first saw `tag` as the oldest message of a queue."""

    tag: str
    since: float


@dataclass(frozen=True)
class QueueLoad:
    queued: int
    reserved: int
    running: int
    due: int
    oldest_age_seconds: float

    @property
    def backlog(self) -> int:
        """Jobs waiting for a worker now or within the horizon."""
        return self.queued + self.due


@dataclass(frozen=True)
class PodLoad:
    reserved: int
    running: int


@dataclass(frozen=True)
class Durations:
    """One task's duration histogram: cumulative counts per upper bound (DURATION_BUCKETS)."""

    buckets: tuple[tuple[str, int], ...]
    sum: float

    @property
    def count(self) -> int:
        return self.buckets[-1][1] if self.buckets else 0


@dataclass(frozen=True)
class Load:
    queues: Mapping[str, QueueLoad]
    pods: Mapping[str, PodLoad]
    unacked: int
    dead: int
    # Oldest-message sightings to remember for the next evaluation (queue -> sighting).
    sightings: Mapping[str, Sighting] = field(default_factory=dict)
    # Fields of LOAD_KEY whose report expired long ago: redisload.py deletes them.
    expired_pods: tuple[str, ...] = ()
    # (task, outcome) -> count; outcomes: processed, failed, retried, dead.
    jobs: Mapping[tuple[str, str], int] = field(default_factory=dict)
    durations: Mapping[str, Durations] = field(default_factory=dict)

    @property
    def backlog(self) -> int:
        return sum(q.backlog for q in self.queues.values())

    @property
    def reserved(self) -> int:
        # A worker that cannot report (killed, old image) still shows in kombu's hash.
        return max(self.unacked, sum(q.reserved for q in self.queues.values()))

    @property
    def running(self) -> int:
        return sum(q.running for q in self.queues.values())

    @property
    def demand(self) -> int:
        """Jobs that need a worker slot: held by workers now, or waiting."""
        return self.reserved + self.backlog

    @property
    def oldest_age_seconds(self) -> float:
        return max((q.oldest_age_seconds for q in self.queues.values()), default=0.0)


@dataclass(frozen=True)
class Reading:
    """One evaluation's result (redisload.LoadReader.read)."""

    load: Load | None
    error: str = ""  # why `load` is None; never the URL (it carries the password)
    commands: int = 0  # sent in this evaluation: the cost per evaluation
    memory: tuple[int, int] | None = None  # Redis's used_memory and maxmemory, in bytes


def commands(
    queues: Sequence[str], now: float, horizon: float = DUE_HORIZON_SECONDS
) -> list[Command]:
    """The batch, in the order `load_from` reads the replies."""
    batch: list[Command] = []
    for queue in queues:
        batch.append(("LLEN", queue))
        batch.append(("LINDEX", queue, -1))  # kombu LPUSHes and BRPOPs: the oldest is last
        batch.append(("ZCOUNT", schedule_key(queue), "-inf", now + horizon))
    batch.append(("HLEN", UNACKED))
    batch.append(("ZCARD", DEAD))
    batch.append(("HGETALL", LOAD_KEY))
    batch.append(("HGETALL", JOBS_KEY))
    batch.append(("HGETALL", DURATION_KEY))
    return batch


def load_from(
    queues: Sequence[str],
    replies: Sequence[Any],
    now: float,
    sightings: Mapping[str, Sighting],
) -> Load:
    """Replies of `commands(queues, ...)`, in order, as a `Load`."""
    expected = 3 * len(queues) + POOL_COMMANDS
    if len(replies) != expected:
        raise ValueError(f"expected {expected} replies, got {len(replies)}")
    unacked, dead, pod_reports, jobs, durations = replies[-POOL_COMMANDS:]
    reports, expired = _pod_reports(pod_reports, now)
    seen: dict[str, Sighting] = {}
    result: dict[str, QueueLoad] = {}
    for i, queue in enumerate(queues):
        queued, oldest, due = replies[3 * i : 3 * i + 3]
        age = 0.0
        tag = _delivery_tag(oldest)
        if tag is not None:
            previous = sightings.get(queue)
            sighting = previous if previous is not None and previous.tag == tag else None
            seen[queue] = sighting or Sighting(tag, now)
            age = max(0.0, now - seen[queue].since)
        result[queue] = QueueLoad(
            queued=int(queued),
            reserved=sum(r.get(queue, (0, 0))[0] for r in reports.values()),
            running=sum(r.get(queue, (0, 0))[1] for r in reports.values()),
            due=int(due),
            oldest_age_seconds=round(age, 1),
        )
    pods = {
        pod: PodLoad(
            reserved=sum(v[0] for v in per_queue.values()),
            running=sum(v[1] for v in per_queue.values()),
        )
        for pod, per_queue in reports.items()
    }
    return Load(
        queues=result,
        pods=pods,
        unacked=int(unacked),
        dead=int(dead),
        sightings=seen,
        expired_pods=expired,
        jobs=_job_counts(jobs),
        durations=_durations(durations),
    )


def _job_counts(raw: Mapping[Any, Any] | None) -> dict[tuple[str, str], int]:
    counts: dict[tuple[str, str], int] = {}
    for key, value in (raw or {}).items():
        task, _, outcome = _text(key).rpartition("\t")
        try:
            counts[(task, outcome)] = int(value)
        except ValueError:
            continue  # not ours; the metric must not break on it
    return counts


def _durations(raw: Mapping[Any, Any] | None) -> dict[str, Durations]:
    """Per-bucket counts (as the runtime writes them) made cumulative, as Prometheus wants."""
    per_task: dict[str, dict[str, float]] = {}
    for key, value in (raw or {}).items():
        task, _, label = _text(key).rpartition("\t")
        try:
            per_task.setdefault(task, {})[label] = float(value)
        except ValueError:
            continue
    found = {}
    for task, fields in per_task.items():
        total, buckets = 0, []
        for bound in DURATION_BUCKETS:
            total += int(fields.get(bound, 0))
            buckets.append((bound, total))
        found[task] = Durations(tuple(buckets), fields.get("sum", 0.0))
    return found


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _delivery_tag(raw: Any) -> str | None:
    """The delivery tag of a kombu message body; a body kombu could not read (the runtime's
    intake keeps those in the dead set) is still a message waiting: its own text identifies it."""
    if raw is None:
        return None
    text = _text(raw)
    try:
        tag = json.loads(text)["properties"]["delivery_tag"]
    except (ValueError, KeyError, TypeError):
        return f"raw:{hash(text)}"
    return str(tag)


def _pod_reports(
    raw: Mapping[Any, Any] | None, now: float
) -> tuple[dict[str, dict[str, tuple[int, int]]], tuple[str, ...]]:
    """Live reports {pod: {queue: (reserved, running)}} and the fields to delete.

    A report is live until its `expires`; a field unreadable or expired for as long again is
    garbage (pods get new names, so the hash would otherwise grow forever)."""
    live: dict[str, dict[str, tuple[int, int]]] = {}
    expired: list[str] = []
    for key, value in (raw or {}).items():
        pod = _text(key)
        try:
            report = json.loads(_text(value))
            expires, ttl = float(report["expires"]), float(report["ttl"])
            queues = {
                str(q): (int(v["reserved"]), int(v["running"])) for q, v in report["queues"].items()
            }
        except (ValueError, KeyError, TypeError, AttributeError):
            expired.append(pod)
            continue
        if now <= expires:
            live[pod] = queues
        elif now > expires + ttl:
            expired.append(pod)
    return live, tuple(sorted(expired))


def load_status(load: Load) -> Json:
    """`status.load`: integers and one-decimal ages, so an unchanged load writes nothing."""
    return {
        "backlog": load.backlog,
        "queued": sum(q.queued for q in load.queues.values()),
        "reserved": load.reserved,
        "running": load.running,
        "due": sum(q.due for q in load.queues.values()),
        "oldestAgeSeconds": int(load.oldest_age_seconds),
        "dead": load.dead,
        "queues": {
            name: {
                "queued": q.queued,
                "reserved": q.reserved,
                "running": q.running,
                "due": q.due,
                "oldestAgeSeconds": int(q.oldest_age_seconds),
            }
            for name, q in load.queues.items()
        },
        "pods": {
            pod: {"reserved": p.reserved, "running": p.running}
            for pod, p in sorted(load.pods.items())
        },
    }
