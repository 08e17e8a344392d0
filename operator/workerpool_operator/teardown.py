"""Deleting a pool in order: the workers stop consuming and finish their running jobs first,
and only then do beat, Flower and Redis go (with the pool, by the garbage collector).

Kopf holds the pool's finalizer while `retire` says it is still waiting, so the garbage
collector (which waits for an owner being deleted in the background) keeps every child,
Redis included, until then: a job still running can store its result and acknowledge its
message. The worker Deployment is scaled to 0 (its pods get SIGTERM: a warm shutdown within
their grace period), then `retire` waits until no worker pod is left, bounded by that grace
period plus a margin counted from the deletion request, so a pod that never goes (a lost node)
cannot hold the pool forever. What then happens to Redis's data is the README's
"Your jobs' data". Talks to the API only through the reconciler's `Cluster` protocol; must not
import kopf (handlers.py turns "still waiting" into a retry).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any, Final

from workerpool_operator import names, profiles
from workerpool_operator.ports import Cluster

#: Beyond the workers' grace period: the kubelet's kill and the API's bookkeeping.
MARGIN_SECONDS: Final = 30


def retire(cluster: Cluster, namespace: str, name: str, now: datetime) -> str | None:
    """One step of a pool's teardown: None when the rest may go, else what it waits for."""
    body = cluster.get_pool(namespace, name)
    if body is None:
        return None
    worker_name = names.child_name(name, "worker")
    worker = cluster.get("apps/v1", "Deployment", namespace, worker_name)
    if worker is not None and _owned_by(worker, body) and worker["spec"].get("replicas") != 0:
        cluster.scale("apps/v1", "Deployment", namespace, worker_name, 0)
    selector = names.selector_string(name, "worker")
    left = [
        str(pod["metadata"]["name"])
        for pod in cluster.list_objects("v1", "Pod", namespace, selector)
    ]
    if not left:
        return None
    deadline = _deadline(body)
    if deadline is not None and now >= deadline:
        return None  # bounded: a pod that cannot go must not keep the pool forever
    until = f" (at most until {deadline:%H:%M:%S} UTC)" if deadline is not None else ""
    return (
        f"{len(left)} worker pod(s) finishing their running jobs before beat, Flower and Redis "
        f"are deleted{until}: {', '.join(sorted(left))}"
    )


def _owned_by(obj: Mapping[str, Any], pool: Mapping[str, Any]) -> bool:
    uid = pool["metadata"]["uid"]
    refs = (obj.get("metadata") or {}).get("ownerReferences") or []
    return any(ref.get("uid") == uid and ref.get("controller") for ref in refs)


def _deadline(pool: Mapping[str, Any]) -> datetime | None:
    stamp = (pool.get("metadata") or {}).get("deletionTimestamp")
    if not isinstance(stamp, str):
        return None
    started = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    grace = (pool.get("spec") or {}).get("terminationGracePeriodSeconds")
    if not isinstance(grace, int) or isinstance(grace, bool):
        grace = profiles.DEFAULT_WORKER_GRACE_SECONDS
    return started + timedelta(seconds=grace + MARGIN_SECONDS)
