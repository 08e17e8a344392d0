"""The slot board: what each job slot of a worker pod is doing, in memory shared with its
supervisor (supervisor.py), so that the supervisor can enforce hard time limits, keep leases,
report load and judge liveness while a slot's own event loop is blocked by a job.

One fixed-size record per slot in an anonymous shared mapping the supervisor creates before it
forks its slots: writing it is a memory store, not a system call, so the two writes per job and
one per fetch cost microseconds. Each record has a single writer (its slot);
the job fields are written under a sequence lock (odd while writing), so the supervisor never
acts on half a record. Times are `time.monotonic()`, one clock for every process of the
machine. Must not talk to Redis or Celery: it is the shared memory and nothing else.
"""

from __future__ import annotations

import mmap
import struct
from dataclasses import dataclass

#: seq, last fetch, job started, hard limit, attempt, then id, delivery tag, queue (UTF-8,
#: NUL-padded). Celery job ids are UUIDs and kombu's delivery tags too; 200 bytes leave room
#: for ids a caller chose (`apply_async(task_id=...)`), and a longer one is not tracked.
_RECORD = struct.Struct("<Qddd I 200s 64s 32s")
_SEQ = struct.Struct("<Q")
_FETCH = struct.Struct("<d")
_FETCH_OFFSET = _SEQ.size
_JOB_OFFSET = _SEQ.size + _FETCH.size
_JOB = struct.Struct("<dd I 200s 64s 32s")
RECORD_SIZE = 512
assert _RECORD.size <= RECORD_SIZE


@dataclass(frozen=True)
class Job:
    """The message a slot holds (it runs it: a solo slot reserves nothing else)."""

    started: float
    #: Seconds after `started` the supervisor kills the slot; 0 for no limit.
    hard_limit: float
    attempt: int
    id: str
    delivery_tag: str
    queue: str


@dataclass(frozen=True)
class SlotState:
    #: When the slot's consumer last completed a fetch from Redis; 0 before its first.
    last_fetch: float
    job: Job | None


class Board:
    """`slots` records in memory shared with every process forked after it was made."""

    def __init__(self, slots: int) -> None:
        self.slots = slots
        # Anonymous and MAP_SHARED (mmap's default): forked slots write into the same pages.
        self._map = mmap.mmap(-1, slots * RECORD_SIZE)

    def close(self) -> None:
        self._map.close()

    def _at(self, slot: int) -> int:
        if not 0 <= slot < self.slots:
            raise IndexError(f"slot {slot} is not on a board of {self.slots}")
        return slot * RECORD_SIZE

    # Writer side (the slot itself).

    def fetched(self, slot: int, now: float) -> None:
        _FETCH.pack_into(self._map, self._at(slot) + _FETCH_OFFSET, now)

    def begin(self, slot: int, job: Job) -> None:
        self._write_job(
            slot,
            _JOB.pack(
                job.started,
                job.hard_limit,
                job.attempt,
                job.id.encode()[:200],
                job.delivery_tag.encode()[:64],
                job.queue.encode()[:32],
            ),
        )

    def end(self, slot: int) -> None:
        self._write_job(slot, bytes(_JOB.size))

    def _write_job(self, slot: int, packed: bytes) -> None:
        at = self._at(slot)
        (seq,) = _SEQ.unpack_from(self._map, at)
        _SEQ.pack_into(self._map, at, seq + 1)  # odd: being written
        self._map[at + _JOB_OFFSET : at + _JOB_OFFSET + _JOB.size] = packed
        _SEQ.pack_into(self._map, at, seq + 2)

    # Reader side (the supervisor).

    def clear(self, slot: int) -> None:
        """Forget a dead slot's record before its replacement starts."""
        at = self._at(slot)
        self._map[at : at + RECORD_SIZE] = bytes(RECORD_SIZE)

    def read(self, slot: int) -> SlotState:
        at = self._at(slot)
        # A slot killed mid-write leaves the sequence odd for good: after a bounded number of
        # tries, take the record as it is (its job fields are then the last ones written).
        for _ in range(1000):
            seq, last_fetch, started, hard, attempt, job_id, tag, queue = _RECORD.unpack_from(
                self._map, at
            )
            if seq % 2 == 0 and _SEQ.unpack_from(self._map, at)[0] == seq:
                break
        if started == 0.0:
            return SlotState(last_fetch, None)
        return SlotState(
            last_fetch,
            Job(started, hard, attempt, _text(job_id), _text(tag), _text(queue)),
        )


def _text(raw: bytes) -> str:
    return raw.rstrip(b"\0").decode(errors="replace")


class Flag:
    """One flag in memory shared with every process forked after it was made: the supervisor
    raises it, its slots read it (`SlotPool`: a warm shutdown a job's own signal handling hid
    from the slot still stops it before its next fetch)."""

    def __init__(self) -> None:
        self._map = mmap.mmap(-1, 1)

    def set(self) -> None:
        self._map[0] = 1

    def is_set(self) -> bool:
        return self._map[0] == 1

    def close(self) -> None:
        self._map.close()
