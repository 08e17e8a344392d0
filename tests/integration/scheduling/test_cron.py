"""Cron against real beat and worker processes: exactly one job per tick with several beats,
across a beat being killed, and the misfire and overlap policies.

How "exactly one per tick" is observed: every beat logs `<task>: enqueued cron job <id> for
tick <tick>` when its Lua script pushed a job (and nothing when another beat had already
fired the tick), and every cron test job records its own job id. So the union of all beats'
logs gives tick -> job id: each tick must appear once, the ticks must be the schedule's
consecutive ticks (`next_fire`), and each job id must have run exactly once.

Schedules use seconds (WORKERPOOL_CRON_SECONDS=true, seconds field first). Cron workers live in
`cronjobs/`, one module per scenario, loaded through WORKER_PACKAGES per test.
"""

from __future__ import annotations

import re
import signal
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from zoneinfo import ZoneInfo

import pytest
import redis

from tests.controlplane.waiting import wait_for
from tests.integration.conftest import Proc, Spawn, ran
from tests.integration.scheduling.conftest import start_together
from tests.integration.scheduling.cronjobs.every_five_seconds import EveryFiveSeconds
from tests.integration.scheduling.cronjobs.every_second import EverySecond
from tests.integration.scheduling.cronjobs.misfire import MisfireRunOnce, MisfireSkip
from tests.integration.scheduling.cronjobs.new_york import ZONE as NEW_YORK
from tests.integration.scheduling.cronjobs.new_york import NewYorkHours
from tests.integration.scheduling.cronjobs.overlap import SlowAllow, SlowForbid
from worker_runtime.cron import next_fire
from worker_runtime.keys import Keys
from worker_runtime.runtime import Runtime

pytestmark = pytest.mark.integration

CRONJOBS = "tests.integration.scheduling.cronjobs"
UTC_ZONE = ZoneInfo("UTC")
KEYS = Keys()

_ENQUEUED = re.compile(
    r"(?P<task>\S+): enqueued cron job (?P<job>[0-9a-f-]{36}) for tick (?P<tick>.+)$"
)
_SKIPPED = re.compile(r"(?P<task>\S+): skipped tick (?P<tick>.+), previous run still")
_CAUGHT_UP = re.compile(r"(?P<task>\S+): running missed tick (?P<tick>.+) once")
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


def caught_up(beats: Iterable[Proc], task: str) -> list[datetime]:
    return sorted(datetime.fromisoformat(m["tick"]) for m in matches(_CAUGHT_UP, beats, task))


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


def test_two_beats_enqueue_exactly_one_job_per_tick(rt: Runtime, spawn: Spawn) -> None:
    extra = packages("every_second")
    _, *beats = start_together(
        spawn, ("worker", "--concurrency=2"), ("beat",), ("beat",), extra_env=extra
    )
    # Deliberately let about seven ticks happen with both beats racing for each.
    time.sleep(7)
    assert all(beat.popen.poll() is None for beat in beats)
    for beat in beats:
        beat.stop()

    jobs = fired(beats, EverySecond.task_name)
    print(f"\nticks fired per beat: {Counter(f.beat for f in jobs)}")
    assert len(jobs) >= 5
    assert_one_job_per_consecutive_tick(
        [f.tick for f in jobs], expression(beats[0], EverySecond.task_name)
    )
    assert_each_job_ran_once(wait_for_runs(rt.redis, "every_second", jobs), jobs)
    token = rt.redis.get(KEYS.cron_last(EverySecond.task_name))
    assert token is not None
    assert int(token) == int(jobs[-1].tick.timestamp())


def test_killing_one_of_two_beats_loses_no_tick_and_duplicates_none(
    rt: Runtime, spawn: Spawn
) -> None:
    extra = packages("every_second")
    _, victim, survivor = start_together(
        spawn, ("worker", "--concurrency=2"), ("beat",), ("beat",), extra_env=extra
    )
    # Deliberately let a few ticks happen with both beats up.
    time.sleep(4)
    victim.signal(signal.SIGKILL)
    victim.popen.wait(10)
    killed_at = datetime.now(UTC)
    time.sleep(5)  # ...and a few more with only the survivor.
    survivor.stop()

    jobs = fired([victim, survivor], EverySecond.task_name)
    ticks = [f.tick for f in jobs]
    assert_one_job_per_consecutive_tick(ticks, expression(survivor, EverySecond.task_name))
    assert ticks[0] < killed_at
    assert ticks[-1] >= killed_at + timedelta(seconds=3), "the survivor stopped firing"
    assert all(f.tick <= killed_at for f in jobs if f.beat == victim.name)
    assert_each_job_ran_once(wait_for_runs(rt.redis, "every_second", jobs), jobs)


def test_a_beat_killed_right_after_a_tick_and_restarted_does_not_fire_it_again(
    rt: Runtime, spawn: Spawn
) -> None:
    """`run_once` makes a starting beat fire the newest tick before its start unless the
    fencing token says it already fired. Restarting within the same five-second interval makes
    that newest tick the one the killed beat just fired: without the token it runs twice."""
    task = EveryFiveSeconds.task_name
    extra = packages("every_five_seconds")
    _, first = start_together(spawn, ("worker", "--concurrency=2"), ("beat",), extra_env=extra)
    wait_for(lambda: fired([first], task), timeout=20, message="the first beat to fire a tick")
    first.signal(signal.SIGKILL)
    first.popen.wait(10)
    last_before_kill = fired([first], task)[-1].tick

    second = spawn("beat", extra_env=extra)
    restarted_at = datetime.now(UTC)
    wait_for(
        lambda: len(fired([second], task)) >= 2,
        timeout=30,
        message="the restarted beat to fire two ticks",
    )
    second.stop()

    jobs = fired([first, second], task)
    in_same_interval = restarted_at < last_before_kill + timedelta(seconds=5)
    print(f"\nrestart within the killed beat's tick interval: {in_same_interval}")
    assert_one_job_per_consecutive_tick([f.tick for f in jobs], expression(second, task))
    assert all(f.tick > last_before_kill for f in jobs if f.beat == second.name)
    assert_each_job_ran_once(wait_for_runs(rt.redis, "every_five_seconds", jobs), jobs)


def test_after_an_outage_skip_drops_missed_ticks_and_run_once_runs_one_catch_up(
    rt: Runtime, spawn: Spawn
) -> None:
    """Both policies on the same five-second schedule in the same beat. The outage is real:
    no beat runs for at least two ticks."""
    extra = packages("misfire")
    _, before = start_together(spawn, ("worker", "--concurrency=2"), ("beat",), extra_env=extra)
    tasks = (MisfireSkip.task_name, MisfireRunOnce.task_name)
    # run_once only catches up for a schedule that has fired before (its token exists).
    wait_for(
        lambda: all(fired([before], task) for task in tasks),
        timeout=20,
        message="both schedules to fire once",
    )
    before.stop()
    expr = expression(before, MisfireSkip.task_name)
    last_fired = max(f.tick for task in tasks for f in fired([before], task))
    missed = ticks_between(expr, last_fired, datetime.now(UTC) + timedelta(seconds=11), UTC_ZONE)
    # Deliberately let two ticks pass with no beat at all, then restart just after a tick.
    time.sleep(max(0.0, missed[2].timestamp() + 0.3 - time.time()))
    outage = [tick for tick in missed[1:] if tick < datetime.now(UTC)]
    assert len(outage) >= 2

    after = spawn("beat", extra_env=extra)
    # skip fires only regular ticks; run_once a catch-up and then regular ticks.
    wait_for(
        lambda: (
            len(fired([after], MisfireSkip.task_name)) >= 1
            and len(fired([after], MisfireRunOnce.task_name)) >= 2
        ),
        timeout=30,
        message="both schedules to fire a regular tick after the restart",
    )
    after.stop()

    # skip: nothing from the outage, no catch-up; the first run is the next regular tick.
    skip_jobs = fired([after], MisfireSkip.task_name)
    assert caught_up([after], MisfireSkip.task_name) == []
    assert all(f.tick > outage[-1] for f in skip_jobs), "skip ran a missed tick"
    # run_once: exactly one catch-up, for the newest missed tick, then regular ticks.
    once_jobs = fired([after], MisfireRunOnce.task_name)
    catch_up = caught_up([after], MisfireRunOnce.task_name)
    assert len(catch_up) == 1, f"expected one catch-up, got {catch_up}"
    assert catch_up[0] > last_fired
    assert [f.tick for f in once_jobs if f.tick <= catch_up[0]] == catch_up, "a burst, not one"
    assert once_jobs[1].tick == skip_jobs[0].tick, "both resume at the first tick after start"
    assert_one_job_per_consecutive_tick([f.tick for f in once_jobs[1:]], expr)

    skip_runs = wait_for_runs(rt.redis, "misfire_skip", skip_jobs)
    assert_each_job_ran_once(skip_runs, [*fired([before], MisfireSkip.task_name), *skip_jobs])
    once_runs = wait_for_runs(rt.redis, "misfire_run_once", once_jobs)
    assert_each_job_ran_once(once_runs, [*fired([before], MisfireRunOnce.task_name), *once_jobs])
    catch_up_run = next(r for r in once_runs if r["job_id"] == once_jobs[0].job_id)
    assert float(catch_up_run["started"]) < once_jobs[1].tick.timestamp(), (  # type: ignore[arg-type]
        "the catch-up should run at start, before the next regular tick"
    )


def overlapping_pairs(runs: Sequence[dict[str, object]]) -> int:
    spans = sorted((float(r["started"]), float(r["ended"])) for r in runs)  # type: ignore[arg-type]
    return sum(1 for (_, end), (start, _) in pairwise(spans) if start < end)


def test_overlap_forbid_skips_ticks_while_a_slow_job_runs_and_allow_overlaps(
    rt: Runtime, spawn: Spawn
) -> None:
    """The same 2.5 s job on an every-second schedule under both policies, in one beat and
    one worker with enough processes for the `allow` runs to pile up."""
    extra = packages("overlap")
    _, beat = start_together(spawn, ("worker", "--concurrency=5"), ("beat",), extra_env=extra)
    # Deliberately let about seven ticks happen.
    time.sleep(7)
    beat.stop()
    expr = expression(beat, SlowForbid.task_name)

    forbid_jobs = fired([beat], SlowForbid.task_name)
    forbid_skipped = skipped([beat], SlowForbid.task_name)
    forbid_runs = wait_for_runs(rt.redis, "slow_forbid", forbid_jobs)
    assert_each_job_ran_once(forbid_runs, forbid_jobs)
    print(f"\nforbid: {len(forbid_jobs)} runs, {len(forbid_skipped)} ticks skipped")
    assert len(forbid_jobs) >= 2, "the finished job should release the hold for a later tick"
    assert len(forbid_skipped) >= 2
    assert overlapping_pairs(forbid_runs) == 0
    # Every tick was either fired or skipped, once.
    assert_one_job_per_consecutive_tick(
        sorted([f.tick for f in forbid_jobs] + forbid_skipped), expr
    )
    wait_for(
        lambda: not rt.redis.exists(KEYS.running(SlowForbid.task_name)),
        timeout=10,
        message="the last forbid job to release its hold",
    )

    allow_jobs = fired([beat], SlowAllow.task_name)
    allow_runs = wait_for_runs(rt.redis, "slow_allow", allow_jobs)
    assert_each_job_ran_once(allow_runs, allow_jobs)
    assert skipped([beat], SlowAllow.task_name) == []
    assert_one_job_per_consecutive_tick([f.tick for f in allow_jobs], expr)
    assert len(allow_jobs) > len(forbid_jobs)
    assert overlapping_pairs(allow_runs) >= 2


def test_a_beat_in_new_york_time_fires_once_per_tick(rt: Runtime, spawn: Spawn) -> None:
    """The schedule only matches the current New York hours: a beat reading it in UTC would
    never fire."""
    extra = {**packages("new_york"), "WORKERPOOL_TIMEZONE": NEW_YORK}
    _, beat = start_together(spawn, ("worker", "--concurrency=2"), ("beat",), extra_env=extra)
    # Deliberately let about five ticks happen.
    time.sleep(5)
    beat.stop()

    zone = ZoneInfo(NEW_YORK)
    expr = expression(beat, NewYorkHours.task_name)
    jobs = fired([beat], NewYorkHours.task_name)
    assert len(jobs) >= 3, beat.output()[-2000:]
    assert_one_job_per_consecutive_tick([f.tick for f in jobs], expr, zone)
    hours = {int(h) for h in expr.split()[2].split(",")}
    assert {f.tick.astimezone(zone).hour for f in jobs} <= hours
    assert_each_job_ran_once(wait_for_runs(rt.redis, "new_york", jobs), jobs)
