"""Celery's Redis result backend, writing each job state in one round trip instead of two.

Celery's `_store_result` first reads the stored state (GET) and skips the write when it is
SUCCESS, so a lost or duplicated run cannot overwrite a finished result; then it writes
(MULTI, SETEX, PUBLISH, EXEC). Every job writes twice (STARTED, because the runtime tracks
started jobs, then its outcome), so that is four round trips per job in the job slot, on
the path between one job and the next. Here the same check and write run as one Lua script:
one round trip per state, and the check and the write are atomic, where Celery's could race.
The stored document, its expiry and the PUBLISH that wakes `AsyncResult.get()` are Celery's.

The attempt's job counters and duration (job_stats.py) ride in the same script: no round trip
of their own.

Selected by prefixing the result backend URL with this class (`module:Class+redis://...`,
Celery's `by_url` syntax), so settings keep plain Redis URLs. Must not change what is stored.
"""

from __future__ import annotations

from typing import Any

from celery import states
from celery.backends.redis import RedisBackend
from celery.exceptions import BackendStoreError
from kombu.utils.encoding import bytes_to_str

from worker_runtime.store import job_stats

#: Prefix for `result_backend` naming the class below (celery.app.backends.by_url).
RESULT_BACKEND = "worker_runtime.store.results:ResultBackend"

#: KEYS: result key, then job_stats' counter and duration hashes, then its minute and day
#: timeline hashes. ARGV: encoded meta, expiry in seconds (0: none), then the attempt's counts
#: (job_stats.Counts): how many counter fields, those fields, the duration bucket field, the sum
#: field and the seconds, then how many timeline fields, those fields, and the minute and day
#: hashes' lifetimes. Counts first: the attempt happened even if a SUCCESS is already stored.
#: Returns 0 when a SUCCESS is already stored (nothing written), 1 when written and published.
_STORE_UNLESS_SUCCEEDED = """
local counters = tonumber(ARGV[3])
for i = 1, counters do
  redis.call('HINCRBY', KEYS[2], ARGV[3 + i], 1)
end
if counters > 0 then
  redis.call('HINCRBY', KEYS[3], ARGV[4 + counters], 1)
  redis.call('HINCRBYFLOAT', KEYS[3], ARGV[5 + counters], ARGV[6 + counters])
  local at = 7 + counters
  local timeline = tonumber(ARGV[at])
  for i = 1, timeline do
    redis.call('HINCRBY', KEYS[4], ARGV[at + i], 1)
    redis.call('HINCRBY', KEYS[5], ARGV[at + i], 1)
  end
  redis.call('EXPIRE', KEYS[4], ARGV[at + timeline + 1])
  redis.call('EXPIRE', KEYS[5], ARGV[at + timeline + 2])
end
local current = redis.call('GET', KEYS[1])
if current then
  local ok, meta = pcall(cjson.decode, current)
  if ok and type(meta) == 'table' and meta['status'] == 'SUCCESS' then
    return 0
  end
end
if tonumber(ARGV[2]) > 0 then
  redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
else
  redis.call('SET', KEYS[1], ARGV[1])
end
redis.call('PUBLISH', KEYS[1], ARGV[1])
return 1
"""


class ResultBackend(RedisBackend):  # type: ignore[misc]
    _store_script: Any = None

    def _store_result(
        self,
        task_id: Any,
        result: Any,
        state: str,
        traceback: Any = None,
        request: Any = None,
        **kwargs: Any,
    ) -> Any:
        # celery.backends.base.BaseKeyValueStoreBackend._store_result (5.7), with the SUCCESS
        # check moved into the write.
        meta = self._get_result_meta(
            result=result, state=state, traceback=traceback, request=request
        )
        meta["task_id"] = bytes_to_str(task_id)  # type: ignore[no-untyped-call]
        value = self.encode(meta)
        if isinstance(value, str) and len(value) > self._MAX_STR_VALUE_SIZE:
            raise BackendStoreError(
                "value too large for Redis backend", state=state, task_id=task_id
            )
        expires = self.failure_expires if state == states.FAILURE else self.expires
        counts: list[Any] = [0]
        # Without counts the timeline keys are not written; any names do.
        timelines = [job_stats.MINUTE_PREFIX, job_stats.DAY_PREFIX]
        if (stats := job_stats.take(request)) is not None:
            counts = [
                len(stats.jobs),
                *stats.jobs,
                stats.bucket,
                stats.sum,
                repr(stats.seconds),
                len(stats.timeline),
                *stats.timeline,
                job_stats.MINUTE_TTL,
                job_stats.DAY_TTL,
            ]
            timelines = [stats.minute_key, stats.day_key]
        self.ensure(
            self._store_unless_succeeded,
            (self.get_key_for_task(task_id), value, expires, counts, timelines),
        )
        return result

    def _store_unless_succeeded(
        self, key: Any, value: Any, expires: Any, counts: Any, timelines: list[str]
    ) -> None:
        if self._store_script is None:
            self._store_script = self.client.register_script(_STORE_UNLESS_SUCCEEDED)
        self._store_script(
            keys=[key, job_stats.JOBS_KEY, job_stats.DURATION_KEY, *timelines],
            args=[value, int(expires or 0), *counts],
        )
