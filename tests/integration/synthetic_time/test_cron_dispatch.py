"""The cron dispatcher against real Redis with synthetic times: exactly once per tick however
many dispatchers race, across a dispatcher's death and restart, the misfire and overlap
policies, and daylight-saving changes.

A "beat" here is a `CronDispatcher` on its own Redis connection; "time passes" by calling
`run_due(now)` with later instants. The fencing token, the queue list and the overlap hold are
the real keys the real Lua script writes.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
import redis

from tests.integration.synthetic_time.conftest import KEYS, T0, at
from tests.integration.synthetic_time.workers import (
    EveryMinute,
    EveryMinuteForbid,
    EveryMinuteRunOnce,
    Hourly,
    NightlyAtHalfPastOne,
    NightlyAtHalfPastTwo,
)
from worker_runtime.core.messages import decode_message
from worker_runtime.jobs.worker import Worker
from worker_runtime.scheduling.cron_dispatch import (
    MISFIRE_GRACE,
    CronDispatcher,
    Fired,
    release_overlap,
)

pytestmark = pytest.mark.integration

UTC_ZONE = ZoneInfo("UTC")
NEW_YORK = ZoneInfo("America/New_York")
FIRED, ELSEWHERE, SKIPPED = 1, 0, -1


def beat(
    client: redis.Redis,
    *workers: type[Worker],
    start: datetime = T0,
    zone: ZoneInfo = UTC_ZONE,
) -> CronDispatcher:
    """A dispatcher as a beat builds it at start-up (where `run_once` catches up)."""
    return CronDispatcher(client, KEYS, workers, zone, start=start)


def steps(start: datetime, end: datetime, every: timedelta) -> list[datetime]:
    """Instants start+every, start+2*every, ... before `end`, then `end` itself."""
    out = []
    now = start + every
    while now < end:
        out.append(now)
        now += every
    return [*out, end]


def advance(
    dispatcher: CronDispatcher, start: datetime, end: datetime, every: float = 20
) -> list[Fired]:
    """A beat running from `start` to `end`, asking every `every` seconds (well inside the
    misfire grace, as a live beat does)."""
    instants = steps(start, end, timedelta(seconds=every))
    return [f for now in instants for f in dispatcher.run_due(now)]


def minutes(first: int, last: int) -> list[datetime]:
    """The every-minute ticks T0+first .. T0+last."""
    return [at(minutes=m) for m in range(first, last + 1)]


def queued(client: redis.Redis, queue: str = "default") -> list[dict[str, object]]:
    """The jobs on `queue` in the order workers will take them (oldest push first)."""
    return [decode_message(raw) for raw in reversed(client.lrange(queue, 0, -1))]


def ticks(fired: Iterable[Fired], outcome: int = FIRED) -> list[datetime]:
    return sorted(f.tick for f in fired if f.outcome == outcome)


def token(client: redis.Redis, task_name: str) -> int | None:
    raw = client.get(KEYS.cron_last(task_name))
    return None if raw is None else int(raw)


def assert_queue_holds_exactly(client: redis.Redis, fired: Sequence[Fired]) -> None:
    """One job per fired tick, in tick order, each with the job id the firing reported."""
    in_order = sorted((f for f in fired if f.outcome == FIRED), key=lambda f: f.tick)
    assert [job["id"] for job in queued(client)] == [f.job_id for f in in_order]


def test_a_dispatcher_fires_every_tick_once_in_order_and_advances_the_token(
    client: redis.Redis,
) -> None:
    dispatcher = beat(client, EveryMinute)
    fired = advance(dispatcher, T0, at(minutes=60), every=7)

    assert ticks(fired) == minutes(1, 60)
    assert [f.outcome for f in fired] == [FIRED] * 60
    assert_queue_holds_exactly(client, fired)
    assert {job["task"] for job in queued(client)} == {EveryMinute.task_name}
    assert token(client, EveryMinute.task_name) == int(at(minutes=60).timestamp())
    assert dispatcher.next_tick() == at(minutes=61)


def test_asking_again_for_the_same_instant_fires_nothing_more(client: redis.Redis) -> None:
    dispatcher = beat(client, EveryMinute)
    first = advance(dispatcher, T0, at(minutes=3))
    again = dispatcher.run_due(at(minutes=3))

    assert ticks(first) == minutes(1, 3)
    assert again == []
    assert client.llen("default") == 3


def test_a_tick_is_not_fired_a_millisecond_early(client: redis.Redis) -> None:
    dispatcher = beat(client, EveryMinute)

    assert dispatcher.run_due(at(minutes=1, milliseconds=-1)) == []
    assert ticks(dispatcher.run_due(at(minutes=1))) == [at(minutes=1)]


def test_two_beats_calling_the_same_script_with_the_same_times_fire_each_tick_once(
    client: redis.Redis, other_client: redis.Redis
) -> None:
    first, second = beat(client, EveryMinute), beat(other_client, EveryMinute)
    won: Counter[int] = Counter()
    fired: list[Fired] = []
    for index, now in enumerate(steps(T0, at(minutes=30), timedelta(seconds=20))):
        # Alternate who asks first, so each beat wins some ticks.
        for number, dispatcher in sorted(
            enumerate((first, second)), key=lambda p: p[0] == index % 2
        ):
            mine = dispatcher.run_due(now)
            won[number] += len(ticks(mine))
            fired += mine

    assert ticks(fired) == minutes(1, 30)
    assert ticks(fired, ELSEWHERE) == minutes(1, 30), "the loser of each tick must see it fired"
    assert won[0] > 0, f"one beat won every tick: {won}"
    assert won[1] > 0, f"one beat won every tick: {won}"
    assert_queue_holds_exactly(client, fired)
    assert token(client, EveryMinute.task_name) == int(at(minutes=30).timestamp())


def test_eight_beats_in_threads_racing_for_every_tick_fire_each_once(redis_url: str) -> None:
    """Eight dispatchers on eight connections call the script at the same synthetic instant,
    released together by a barrier at every step."""
    racers = 8
    clients = [redis.Redis.from_url(redis_url) for _ in range(racers)]
    dispatchers = [beat(c, EveryMinute, EveryMinuteRunOnce) for c in clients]
    instants = steps(T0, at(minutes=120), timedelta(seconds=30))
    barrier = threading.Barrier(racers)
    results: list[list[Fired]] = [[] for _ in range(racers)]
    errors: list[BaseException] = []

    def race(index: int) -> None:
        try:
            for now in instants:
                barrier.wait(timeout=30)
                results[index] += dispatchers[index].run_due(now)
        except BaseException as error:  # surfaced below; a silent thread would hide it
            errors.append(error)
            barrier.abort()

    threads = [threading.Thread(target=race, args=(i,)) for i in range(racers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    for c in clients:
        c.close()

    assert errors == []
    fired = [f for result in results for f in result]
    for worker in (EveryMinute, EveryMinuteRunOnce):
        mine = [f for f in fired if f.task_name == worker.task_name]
        assert ticks(mine) == minutes(1, 120), worker.task_name
        assert Counter(f.tick for f in mine) == Counter({t: racers for t in minutes(1, 120)})
    check = redis.Redis.from_url(redis_url)
    assert check.llen("default") == 240
    check.close()


def test_killing_one_of_two_beats_loses_no_tick_and_duplicates_none(
    client: redis.Redis, other_client: redis.Redis
) -> None:
    victim, survivor = beat(client, EveryMinute), beat(other_client, EveryMinute)
    fired: list[Fired] = []
    killed_at = at(minutes=10, seconds=30)
    for now in steps(T0, killed_at, timedelta(seconds=15)):
        fired += victim.run_due(now)
        fired += survivor.run_due(now)
    before_kill = len(fired)
    # The victim is gone: only the survivor is asked from now on.
    for now in steps(killed_at, at(minutes=20), timedelta(seconds=15)):
        fired += survivor.run_due(now)

    assert ticks(fired) == minutes(1, 20)
    assert ticks(fired[:before_kill]) == minutes(1, 10)
    assert ticks(fired[before_kill:]) == minutes(11, 20)
    assert_queue_holds_exactly(client, fired)


def test_a_beat_restarted_within_the_tick_it_just_fired_does_not_fire_it_again(
    client: redis.Redis, other_client: redis.Redis
) -> None:
    """`run_once` fires the newest tick before start-up unless the token says it fired. A
    restart inside the same interval makes that tick the one the dead beat just fired."""
    first = beat(client, EveryMinuteRunOnce)
    before = advance(first, T0, at(minutes=3, seconds=1))
    # Killed here; a new beat starts 20 seconds later, before the next tick.
    second = beat(other_client, EveryMinuteRunOnce, start=at(minutes=3, seconds=21))

    assert client.llen("default") == 3, "the restarted beat fired the dead beat's tick again"
    after = advance(second, at(minutes=3, seconds=21), at(minutes=6))
    assert ticks(before) == minutes(1, 3)
    assert ticks(after) == minutes(4, 6)
    assert_queue_holds_exactly(client, before + after)


def test_after_an_outage_skip_fires_nothing_missed_and_resumes_at_the_next_tick(
    client: redis.Redis,
) -> None:
    advance(beat(client, EveryMinute), T0, at(minutes=2))
    # No beat at all from 00:02:00 to 00:05:30: ticks 3, 4 and 5 are missed.
    after = beat(client, EveryMinute, start=at(minutes=5, seconds=30))

    assert client.llen("default") == 2
    assert token(client, EveryMinute.task_name) == int(at(minutes=2).timestamp())
    assert ticks(advance(after, at(minutes=5, seconds=30), at(minutes=8))) == minutes(6, 8)
    assert client.llen("default") == 2 + 3


def test_after_an_outage_run_once_fires_one_catch_up_for_the_newest_missed_tick_at_start(
    client: redis.Redis,
) -> None:
    advance(beat(client, EveryMinuteRunOnce), T0, at(minutes=2))
    after = beat(client, EveryMinuteRunOnce, start=at(minutes=5, seconds=30))

    # The catch-up, for tick 5, is on the queue at start-up, before tick 6 is due.
    assert client.llen("default") == 3
    assert token(client, EveryMinuteRunOnce.task_name) == int(at(minutes=5).timestamp())
    regular = advance(after, at(minutes=5, seconds=30), at(minutes=8))
    assert ticks(regular) == minutes(6, 8)
    assert [job["id"] for job in queued(client)][3:] == [f.job_id for f in regular]


def test_run_once_does_not_catch_up_a_schedule_that_never_fired(client: redis.Redis) -> None:
    beat(client, EveryMinuteRunOnce, start=at(minutes=5, seconds=30))

    assert client.llen("default") == 0
    assert token(client, EveryMinuteRunOnce.task_name) is None


def test_two_beats_restarting_after_an_outage_catch_up_only_once(
    client: redis.Redis, other_client: redis.Redis
) -> None:
    advance(beat(client, EveryMinuteRunOnce), T0, at(minutes=2))
    beat(client, EveryMinuteRunOnce, start=at(minutes=5, seconds=30))
    beat(other_client, EveryMinuteRunOnce, start=at(minutes=5, seconds=31))

    assert client.llen("default") == 3
    assert token(client, EveryMinuteRunOnce.task_name) == int(at(minutes=5).timestamp())


def test_a_stalled_beat_fires_ticks_within_the_misfire_grace_and_skips_older_ones(
    client: redis.Redis,
) -> None:
    """A beat that wakes up late (GC pause, suspended VM) fires a tick at most
    MISFIRE_GRACE late; older ones are misfires and are skipped, never burst."""
    assert timedelta(seconds=60) == MISFIRE_GRACE
    dispatcher = beat(client, EveryMinute)
    # Ticks 1..5 are due; 5 and 4 are 30 and 60 s old (within grace), 3..1 older.
    fired = dispatcher.run_due(at(minutes=5))

    assert ticks(fired) == minutes(4, 5)
    assert ticks(dispatcher.run_due(at(minutes=5, seconds=59))) == []
    assert ticks(dispatcher.run_due(at(minutes=6))) == [at(minutes=6)]
    assert client.llen("default") == 3


def test_overlap_forbid_skips_ticks_while_the_previous_job_holds_and_fires_after_release(
    client: redis.Redis, other_client: redis.Redis
) -> None:
    first, second = beat(client, EveryMinuteForbid), beat(other_client, EveryMinuteForbid)
    fired: list[Fired] = []
    for now in minutes(1, 3):
        fired += first.run_due(now) + second.run_due(now)
    held_by = next(f.job_id for f in fired if f.outcome == FIRED)
    running = KEYS.running(EveryMinuteForbid.task_name)
    assert client.get(running) == held_by.encode()
    assert 0 < int(client.ttl(running)) <= EveryMinuteForbid.cron_overlap_timeout

    # Another job id cannot release the hold; the job that holds it can (execution does).
    release_overlap(client, KEYS, EveryMinuteForbid.task_name, "someone-else")
    fired += first.run_due(at(minutes=4)) + second.run_due(at(minutes=4))
    release_overlap(client, KEYS, EveryMinuteForbid.task_name, held_by)
    fired += first.run_due(at(minutes=5)) + second.run_due(at(minutes=5))

    assert ticks(fired) == [at(minutes=1), at(minutes=5)]
    assert ticks(fired, SKIPPED) == minutes(2, 4)
    # Every tick is decided once: fired or skipped by one beat, "fired elsewhere" for the other.
    assert sorted(ticks(fired) + ticks(fired, SKIPPED)) == ticks(fired, ELSEWHERE)
    assert ticks(fired, ELSEWHERE) == minutes(1, 5)
    assert_queue_holds_exactly(client, fired)
    newest = max((f for f in fired if f.outcome == FIRED), key=lambda f: f.tick)
    assert client.get(running) == newest.job_id.encode(), "the newest job holds now"


def test_overlap_allow_fires_every_tick_while_earlier_jobs_are_still_queued(
    client: redis.Redis,
) -> None:
    fired = beat(client, EveryMinute).run_due(at(minutes=5))

    assert ticks(fired) == minutes(4, 5)
    assert not client.exists(KEYS.running(EveryMinute.task_name))
    assert client.llen("default") == 2


def run_through(dispatchers: Sequence[CronDispatcher], end: datetime) -> list[Fired]:
    """Beats that wake up exactly at the next tick any of them has due, as the beat process
    does (it sleeps until `next_tick()`), until `end`."""
    fired: list[Fired] = []
    while (now := min(t for d in dispatchers if (t := d.next_tick()) is not None)) <= end:
        for dispatcher in dispatchers:
            fired += dispatcher.run_due(now)
    return fired


def wall_clock(instants: Iterable[datetime], first: datetime, last: datetime) -> list[str]:
    """New York wall-clock times of the instants from first to last."""
    return [t.astimezone(NEW_YORK).strftime("%H:%M%Z") for t in instants if first <= t <= last]


def utc(month: int, day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2030, month, day, hour, minute, tzinfo=UTC)


def test_spring_forward_in_new_york_fires_a_nonexistent_wall_time_once_an_hour_later(
    client: redis.Redis, other_client: redis.Redis
) -> None:
    """2030-03-10: 02:00 EST jumps to 03:00 EDT, so 02:30 does not exist that night."""
    start = utc(3, 9, 12)
    dispatchers = [
        beat(c, NightlyAtHalfPastTwo, Hourly, start=start, zone=NEW_YORK)
        for c in (client, other_client)
    ]
    fired = run_through(dispatchers, utc(3, 11, 12))

    nightly = [f for f in fired if f.task_name == NightlyAtHalfPastTwo.task_name]
    assert ticks(nightly) == [utc(3, 10, 7, 30), utc(3, 11, 6, 30)]  # 03:30 EDT, 02:30 EDT
    hourly = ticks(f for f in fired if f.task_name == Hourly.task_name)
    night = wall_clock(hourly, utc(3, 10, 5), utc(3, 10, 8))
    assert night == ["00:00EST", "01:00EST", "03:00EDT", "04:00EDT"]
    # Every UTC hour is some wall-clock hour: none lost, none twice.
    assert len(hourly) == len(set(hourly)) == 48
    assert Counter(f.outcome for f in fired) == Counter({FIRED: 50, ELSEWHERE: 50})


def test_fall_back_in_new_york_fires_a_fixed_time_once_and_an_hourly_schedule_every_hour(
    client: redis.Redis, other_client: redis.Redis
) -> None:
    """2030-11-03: 02:00 EDT falls back to 01:00 EST, so 01:00-01:59 happen twice. A fixed
    wall time (01:30) fires once, on its first occurrence; an hourly schedule fires once per
    real hour, in both passes of the repeated hour (issue 22: it used to skip the second)."""
    start = utc(11, 2, 12)
    dispatchers = [
        beat(c, NightlyAtHalfPastOne, Hourly, start=start, zone=NEW_YORK)
        for c in (client, other_client)
    ]
    fired = run_through(dispatchers, utc(11, 4, 12))

    nightly = [f for f in fired if f.task_name == NightlyAtHalfPastOne.task_name]
    assert ticks(nightly) == [utc(11, 3, 5, 30), utc(11, 4, 6, 30)]  # 01:30 EDT, 01:30 EST
    hourly = ticks(f for f in fired if f.task_name == Hourly.task_name)
    night = wall_clock(hourly, utc(11, 3, 4), utc(11, 3, 8))
    assert night == ["00:00EDT", "01:00EDT", "01:00EST", "02:00EST", "03:00EST"]
    # 48 real hours, each fired once by one of the two dispatchers.
    assert len(hourly) == len(set(hourly)) == 48
    assert Counter(f.outcome for f in fired) == Counter({FIRED: 50, ELSEWHERE: 50})


def test_a_schedule_is_read_in_the_beats_zone_not_in_utc(client: redis.Redis) -> None:
    new_york = beat(client, NightlyAtHalfPastTwo, start=utc(1, 7, 0), zone=NEW_YORK)

    assert new_york.next_tick() == utc(1, 7, 7, 30)  # 02:30 EST
    assert ticks(new_york.run_due(utc(1, 7, 7, 29))) == []
    assert ticks(new_york.run_due(utc(1, 7, 7, 30))) == [utc(1, 7, 7, 30)]
    assert all(f.tick.tzinfo is UTC for f in new_york.run_due(utc(1, 8, 7, 30)))
