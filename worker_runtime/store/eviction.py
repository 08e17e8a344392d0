"""Redis must not evict: the queues, `unacked`, the schedule set and results are all keys an
eviction policy may delete, silently (issue 20: with `allkeys-lru` a full Redis ran 0 of 400
jobs and said nothing).

Owns the start-up check worker and beat run (`workerpool up` starts both, and its embedded
Redis sets `noeviction`). Reads the policy from `INFO memory`, which managed Redis services
answer even where they disable `CONFIG`. Must not change the server's configuration.
"""

from __future__ import annotations

import redis

#: The only policy under which Redis refuses a write instead of deleting a key to make room.
SAFE_POLICY = "noeviction"
#: Set to 1 to start anyway, accepting that Redis may drop jobs when it fills up.
ALLOW_ENV = "WORKERPOOL_ALLOW_EVICTION"


class EvictionPolicyError(RuntimeError):
    """Redis may evict keys, and with them jobs."""


def eviction_policy(client: redis.Redis) -> str | None:
    """The server's `maxmemory-policy`, or None if it does not say (an old or odd server)."""
    info = client.info("memory")
    policy = info.get("maxmemory_policy") if isinstance(info, dict) else None
    return None if policy is None else str(policy)


def check_eviction_policy(client: redis.Redis, *, allow: bool) -> str | None:
    """Raise EvictionPolicyError unless the policy is `noeviction` or `allow` is set; return
    a warning line when starting anyway, else None."""
    policy = eviction_policy(client)
    if policy is None or policy == SAFE_POLICY:
        return None
    line = (
        f"Redis maxmemory-policy is {policy!r}: a full Redis would silently delete queued "
        f"jobs, leases and results; set maxmemory-policy {SAFE_POLICY}"
    )
    if not allow:
        raise EvictionPolicyError(f"{line} (or {ALLOW_ENV}=1 to accept the risk)")
    return f"{line}; starting anyway ({ALLOW_ENV}=1)"
