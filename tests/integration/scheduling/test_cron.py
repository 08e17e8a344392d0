"""Cron with real beat and worker processes: the wiring the synthetic-time tier
(tests/integration/synthetic_time/test_cron_dispatch.py) cannot see. Two beats in the
configured time zone fire each tick once and one carries on when the other is killed; a real
worker releases a forbid-overlap hold when its job ends. Misfire, restart, DST and racing
logic are proven there with synthetic times, in milliseconds.

How "exactly one per tick" is observed: every beat logs `<task>: enqueued cron job <id> for
tick <tick>` when its Lua script pushed a job (and nothing when another beat had already
fired the tick), and every cron test job records its own job id. So the union of all beats'
logs gives tick -> job id: each tick must appear once, the ticks must be the schedule's
consecutive ticks (`next_fire`), and each job id must have run exactly once.

Every wait is a condition with a deadline (`wait_for`), never a fixed sleep. Schedules use
seconds (WORKERPOOL_CRON_SECONDS=true, seconds field first). Cron workers live in `cronjobs/`,
one module per scenario, loaded through WORKER_PACKAGES per test.
"""

from __future__ import annotations

import re
import signal
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from itertools import pairwise
from zoneinfo import ZoneInfo

import pytest
import redis

from tests.controlplane.waiting import wait_for
from tests.integration.conftest import Proc, Spawn, ran
from tests.integration.scheduling.conftest import start_together
from tests.integration.scheduling.cronjobs.new_york import ZONE as NEW_YORK
from tests.integration.scheduling.cronjobs.new_york import NewYorkHours
from tests.integration.scheduling.cronjobs.overlap import SlowAllow, SlowForbid
from worker_runtime.core.cron import next_fire
from worker_runtime.core.keys import Keys
from worker_runtime.runtime import Runtime

pytestmark = pytest.mark.integration

CRONJOBS = "tests.integration.scheduling.cronjobs"
UTC_ZONE = ZoneInfo("UTC")
KEYS = Keys()

_ENQUEUED = re.compile(
    r"(?P<task>\S+): enqueued cron job (?P<job>[0-9a-f-]{36}) for tick (?P<tick>.+)$"
)
_SKIPPED = re.compile(r"(?P<task>\S+): skipped tick (?P<tick>.+), previous run still")
_REGISTERED = re.compile(r"registered worker (?P<task>\S+) \(.*cron='(?P<expr>[^']+)'")


@dataclass(frozen=True)
class Fired:
    task: str
    job_id: str
    tick: datetime
    beat: str


def packages(*modules: str) -> dict[str, str]:
    return {"WORKER_PACKAGES": ",".join(f"{CRONJOBS}.{module}" for module in modules)}


def matches(pattern: re.Pattern[str], beats: Iterable[Proc], task: str) -> list[re.Match[str]]:
    return [
        match
        for beat in beats
        for line in beat.output().splitlines()
        if (match := pattern.search(line)) and match["task"] == task
    ]


def fired(beats: Iterable[Proc], task: str) -> list[Fired]:
    """Every tick of `task` that some beat enqueued a job for, in tick order."""
    out = []
    for beat in beats:
        for line in beat.output().splitlines():
            match = _ENQUEUED.search(line)
            if match and match["task"] == task:
                tick = datetime.fromisoformat(match["tick"])
                out.append(Fired(task, match["job"], tick, beat.name))
    return sorted(out, key=lambda f: f.tick)


def skipped(beats: Iterable[Proc], task: str) -> list[datetime]:
    return sorted(datetime.fromisoformat(m["tick"]) for m in matches(_SKIPPED, beats, task))


def expression(beat: Proc, task: str) -> str:
    """The cron expression the beat registered for `task` (as it computed it at start-up)."""
    found = matches(_REGISTERED, [beat], task)
    assert found, f"{beat.name} did not register {task}:\n{beat.output()[-2000:]}"
    return found[0]["expr"]


def ticks_between(expr: str, first: datetime, last: datetime, zone: ZoneInfo) -> list[datetime]:
    """The schedule's ticks from `first` to `last` inclusive (`first` must be a tick)."""
    out = [first]
    while (tick := next_fire(expr, out[-1], zone)) <= last:
        out.append(tick)
    return out


def assert_one_job_per_consecutive_tick(
    ticks: Sequence[datetime], expr: str, zone: ZoneInfo = UTC_ZONE
) -> None:
    """No tick twice, and none missing between the first and the last."""
    duplicates = {tick: n for tick, n in Counter(ticks).items() if n > 1}
    assert not duplicates, f"ticks fired more than once: {duplicates}"
    assert list(ticks) == ticks_between(expr, ticks[0], ticks[-1], zone), "a tick was lost"


def wait_for_runs(client: redis.Redis, kind: str, jobs: Sequence[Fired]) -> list[dict[str, object]]:
    """Wait until every fired job has run, then return all recorded runs of `kind`."""
    wanted = {f.job_id for f in jobs}
    wait_for(
        lambda: wanted <= {str(run["job_id"]) for run in ran(client, kind)},
        timeout=60,
        interval=0.3,
        message=lambda: f"{len(wanted)} {kind} jobs to run (have {len(ran(client, kind))})",
    )
    return ran(client, kind)


def assert_each_job_ran_once(runs: Sequence[dict[str, object]], jobs: Sequence[Fired]) -> None:
    assert Counter(str(run["job_id"]) for run in runs) == Counter(f.job_id for f in jobs)


def test_two_beats_in_new_york_time_fire_each_tick_once_and_one_carries_on_alone(
    rt: Runtime, spawn: Spawn
) -> None:
    """The schedule only matches the current New York hours, so a beat reading it in UTC
    would never fire. The beat that fired the newest tick is killed; the other must go on
    with the very next tick, and no tick may be fired twice or lost around the kill."""
    task = NewYorkHours.task_name
    extra = {**packages("new_york"), "WORKERPOOL_TIMEZONE": NEW_YORK}
    _, *beats = start_together(
        spawn, ("worker", "--concurrency=2"), ("beat",), ("beat",), extra_env=extra
    )
    wait_for(lambda: len(fired(beats, task)) >= 3, timeout=30, message="three ticks fired")
    newest = fired(beats, task)[-1]
    victim = next(beat for beat in beats if beat.name == newest.beat)
    survivor = next(beat for beat in beats if beat is not victim)
    victim.signal(signal.SIGKILL)
    victim.popen.wait(10)
    last_by_victim = fired([victim], task)[-1].tick
    wait_for(
        lambda: len([f for f in fired([survivor], task) if f.tick > last_by_victim]) >= 3,
        timeout=30,
        message="the surviving beat to fire three ticks on its own",
    )
    survivor.stop()

    zone = ZoneInfo(NEW_YORK)
    expr = expression(survivor, task)
    jobs = fired(beats, task)
    assert_one_job_per_consecutive_tick([f.tick for f in jobs], expr, zone)
    hours = {int(h) for h in expr.split()[2].split(",")}
    assert {f.tick.astimezone(zone).hour for f in jobs} <= hours
    assert_each_job_ran_once(wait_for_runs(rt.redis, "new_york", jobs), jobs)
    token = rt.redis.get(KEYS.cron_last(task))
    assert token is not None
    assert int(token) == int(jobs[-1].tick.timestamp())


def overlapping_pairs(runs: Sequence[dict[str, object]]) -> int:
    spans = sorted((float(r["started"]), float(r["ended"])) for r in runs)  # type: ignore[arg-type]
    return sum(1 for (_, end), (start, _) in pairwise(spans) if start < end)


def test_overlap_forbid_skips_ticks_until_a_real_worker_ends_the_job_and_allow_overlaps(
    rt: Runtime, spawn: Spawn
) -> None:
    """The same 1.5 s job on an every-second schedule under both policies, in one beat and
    one worker with enough processes for the `allow` runs to pile up. A second forbid run
    needs the worker to have released the first run's hold."""
    extra = packages("overlap")
    _, beat = start_together(spawn, ("worker", "--concurrency=4"), ("beat",), extra_env=extra)
    forbid, allow = SlowForbid.task_name, SlowAllow.task_name
    wait_for(
        lambda: (
            len(fired([beat], forbid)) >= 2
            and len(skipped([beat], forbid)) >= 2
            and overlapping_pairs(ran(rt.redis, "slow_allow")) >= 2
        ),
        timeout=60,
        message=lambda: (
            f"two forbid runs, two skipped ticks and overlapping allow runs (have "
            f"{len(fired([beat], forbid))}, {len(skipped([beat], forbid))}, "
            f"{overlapping_pairs(ran(rt.redis, 'slow_allow'))})"
        ),
    )
    beat.stop()
    expr = expression(beat, forbid)

    forbid_jobs = fired([beat], forbid)
    forbid_skipped = skipped([beat], forbid)
    forbid_runs = wait_for_runs(rt.redis, "slow_forbid", forbid_jobs)
    assert_each_job_ran_once(forbid_runs, forbid_jobs)
    assert overlapping_pairs(forbid_runs) == 0
    # Every tick was either fired or skipped, once.
    assert_one_job_per_consecutive_tick(
        sorted([f.tick for f in forbid_jobs] + forbid_skipped), expr
    )
    wait_for(
        lambda: not rt.redis.exists(KEYS.running(forbid)),
        timeout=10,
        message="the last forbid job to release its hold",
    )

    allow_jobs = fired([beat], allow)
    allow_runs = wait_for_runs(rt.redis, "slow_allow", allow_jobs)
    assert_each_job_ran_once(allow_runs, allow_jobs)
    assert skipped([beat], allow) == []
    assert_one_job_per_consecutive_tick([f.tick for f in allow_jobs], expr)
    assert len(allow_jobs) > len(forbid_jobs)
