"""What a pass reads before it applies anything: the Secrets and ConfigMaps a pool references
(their data hashed into the pod templates), the generated Secrets (created once, never a new
Redis password while Redis runs with the old one, re-adopted when a user restored one), and
the Redis URL the load is read at. Problems found here stop the pass before anything is
applied. Split from reconcile.py, which calls it; talks to the API only through
`ports.Cluster`; must not import kopf; never puts Secret data in a message.
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Mapping
from typing import Any

from workerpool_operator import builders, names
from workerpool_operator.confighash import ABSENT, digest_data
from workerpool_operator.model import Json, Owner, PoolSpec
from workerpool_operator.names import Component
from workerpool_operator.ports import Cluster
from workerpool_operator.references import REDIS_PASSWORD_KEY, Reference, all_references
from workerpool_operator.status import Problem
from workerpool_operator.values import REDIS_URL_SCHEMES, is_redis_url


def redis_url(pool: PoolSpec, seen: Mapping[tuple[str, str], Json | None]) -> str | None:
    """The URL the workers use (builders/pods.py), as the operator reaches it: the managed
    Redis through its Service's cluster DNS name, an external one as its Secret says."""
    if pool.redis.external_secret is not None:
        secret, key = pool.redis.external_secret, pool.redis.external_key
    else:
        secret, key = names.child_name(pool.name, "redis"), REDIS_PASSWORD_KEY
    obj = seen.get(("Secret", secret))
    encoded = _data(obj).get(key) if obj is not None else None
    if encoded is None:
        return None
    try:
        value = base64.b64decode(encoded).decode()
    except ValueError:
        return None
    if pool.redis.external_secret is not None:
        return value if is_redis_url(value) else None
    host = f"{names.child_name(pool.name, 'redis')}.{pool.namespace}.svc"
    return f"redis://:{value}@{host}:{names.REDIS_PORT}/0"


Seen = dict[tuple[str, str], Json | None]


def read_inputs(
    cluster: Cluster, pool: PoolSpec, owner: Owner, password: Callable[[], str]
) -> tuple[builders.Digests, Seen, Problem | None]:
    """Create missing generated Secrets, read every referenced object, digest their data;
    returns what was read too (the Redis URL comes from it)."""
    seen: Seen = {}  # one GET per object per pass
    for component in builders.generated_secret_components(pool):
        live, problem = _generated_secret(cluster, pool, owner, component, password)
        if problem is not None:
            return {}, seen, problem
        seen[("Secret", names.child_name(pool.name, component))] = live

    digests: dict[tuple[str, str], str] = {}
    problems: list[Problem] = []
    for ref in all_references(pool):
        if ref.identity not in seen:
            seen[ref.identity] = cluster.get("v1", ref.kind, pool.namespace, ref.name)
        obj = seen[ref.identity]
        digests[ref.identity] = ABSENT if obj is None else digest_data(_data(obj))
        problem = _reference_problem(pool.namespace, ref, obj)
        if problem is not None:
            problems.append(problem)
    if not problems:
        return digests, seen, None
    message = "; ".join(p.message for p in problems)
    return digests, seen, Problem(problems[0].reason, message)


def _generated_secret(
    cluster: Cluster,
    pool: PoolSpec,
    owner: Owner,
    component: Component,
    password: Callable[[], str],
) -> tuple[Json | None, Problem | None]:
    """The live generated Secret of `component`, created if it may be: never over someone
    else's object, and never a new Redis password while Redis runs with the old one."""
    ns, secret_name = pool.namespace, names.child_name(pool.name, component)
    live = cluster.get("v1", "Secret", ns, secret_name)
    if live is not None and controlled_by(live, owner):
        return live, None
    if live is not None and handed_over(live):
        return _take_back(cluster, pool, owner, component, live), None
    if live is not None:
        return None, name_conflict("Secret", ns, secret_name, pool.name)
    if component == "redis" and _owned(cluster, "apps/v1", "Deployment", ns, secret_name, owner):
        return None, Problem("RedisSecretMissing", _redis_secret_missing(ns, secret_name))
    # Created once; if another pass won the race, keep its password.
    secret = builders.build_generated_secret(pool, owner, component, password())
    return cluster.create(secret) or cluster.get("v1", "Secret", ns, secret_name), None


def _take_back(
    cluster: Cluster, pool: PoolSpec, owner: Owner, component: Component, live: Json
) -> Json | None:
    """A generated Secret a user restored (see the README) becomes the pool's again with the
    same data, so no pod rolls. Re-created rather than patched: the operator's RBAC has no
    `patch` on Secrets, which would let it rewrite any Secret it can see."""
    data = dict(live.get("data") or {})
    restored = builders.build_restored_secret(pool, owner, component, data)
    cluster.delete(
        "v1", "Secret", pool.namespace, live["metadata"]["name"], live["metadata"]["uid"]
    )
    return cluster.create(restored)


def handed_over(obj: Mapping[str, Any]) -> bool:
    """A Secret with the operator's managed-by label and no controller: restored by a user."""
    meta = obj.get("metadata") or {}
    labelled = (meta.get("labels") or {}).get(names.LABEL_MANAGED_BY) == names.OPERATOR
    controlled = any(ref.get("controller") for ref in meta.get("ownerReferences") or [])
    return labelled and not controlled


def _redis_secret_missing(ns: str, name: str) -> str:
    return (
        f"Secret {ns}/{name} (the generated Redis password) is gone while Redis {ns}/{name} "
        "still runs with that password and holds the queued jobs; a new password would cut "
        f"every component off from them. Restore it: kubectl -n {ns} create secret generic "
        f'{name} --from-literal=password="$(kubectl -n {ns} exec deploy/{name} -c redis -- '
        f'printenv REDIS_PASSWORD)" && kubectl -n {ns} label secret {name} '
        f"{names.LABEL_MANAGED_BY}={names.OPERATOR}; or give up the queue: kubectl -n {ns} "
        f"delete deployment {name}"
    )


def _reference_problem(ns: str, ref: Reference, obj: Json | None) -> Problem | None:
    if ref.optional:
        return None
    if obj is None:
        return Problem(
            f"{ref.kind}NotFound",
            f"{ref.kind} {ns}/{ref.name} (from {ref.field}) does not exist; "
            "create it, or fix the reference",
        )
    missing = [key for key in ref.keys if key not in _data(obj)]
    if not missing:
        return _value_problem(ns, ref, obj)
    fix = "delete it: the operator regenerates it or says how to restore it"
    if not ref.generated:
        fix = "add it"
    return Problem(
        f"{ref.kind}KeyMissing",
        f"{ref.kind} {ns}/{ref.name} (from {ref.field}) has no key {', '.join(missing)}; {fix}",
    )


def _value_problem(ns: str, ref: Reference, obj: Json) -> Problem | None:
    """A value the runtime would refuse at start-up; the message never quotes it (a URL
    carries the password)."""
    if not ref.holds_redis_url:
        return None
    (key,) = ref.keys
    try:
        url = base64.b64decode(_data(obj)[key]).decode()
    except ValueError:
        url = ""
    if is_redis_url(url):
        return None
    schemes = ", ".join(REDIS_URL_SCHEMES)
    return Problem(
        "SecretValueInvalid",
        f"Secret {ns}/{ref.name} (from {ref.field}) key {key} is not a Redis URL ({schemes}), "
        "which the workers need; fix the Secret",
    )


def name_conflict(kind: str, ns: str, name: str, pool: str) -> Problem:
    return Problem(
        "NameConflict",
        f"{kind} {ns}/{name} exists and is not controlled by WorkerPool {pool}; "
        "delete or rename it, or rename the pool",
        permanent=True,
    )


def _owned(cluster: Cluster, api_version: str, kind: str, ns: str, name: str, owner: Owner) -> bool:
    live = cluster.get(api_version, kind, ns, name)
    return live is not None and controlled_by(live, owner)


def _data(obj: Mapping[str, Any]) -> dict[str, str]:
    """Secret data (base64) or ConfigMap data + binaryData, as one mapping of strings."""
    merged = dict(obj.get("data") or {})
    merged.update({f"binary:{k}": v for k, v in (obj.get("binaryData") or {}).items()})
    return merged


def controlled_by(obj: Mapping[str, Any], owner: Owner) -> bool:
    refs = (obj.get("metadata") or {}).get("ownerReferences") or []
    return any(ref.get("uid") == owner.uid and ref.get("controller") for ref in refs)
