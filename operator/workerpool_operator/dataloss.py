"""Which changes of the managed Redis would lose the jobs it holds, decided before applying.

The Redis Deployment is one pod with the Recreate strategy: any change of its pod template
(image, resources, `maxmemory`, scheduling) replaces the pod. On an emptyDir (a preview pool)
that empties the queue; moving between an emptyDir and the claim (preview promoted to
production, persistence switched off) starts the new Redis without the old one's data. Such a
change is refused, with the old Redis left running, until the pool carries the annotation
CONFIRM_ANNOTATION: "true" (README "Your jobs' data"). A change on the same claim keeps the
data (the append-only file is reloaded) and passes, and so does any change while no Redis pod
is ready (there is nothing to lose). Pure: compares two Deployment bodies.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from workerpool_operator import names

#: Set on the WorkerPool to accept that the pending Redis change starts it empty.
CONFIRM_ANNOTATION: Final = f"{names.GROUP}/confirm-redis-data-loss"


def confirmed(pool: Mapping[str, Any]) -> bool:
    annotations = (pool.get("metadata") or {}).get("annotations") or {}
    return annotations.get(CONFIRM_ANNOTATION) == "true"


def redis_data_loss(live: Mapping[str, Any] | None, wanted: Mapping[str, Any]) -> str | None:
    """Why applying `wanted` over the `live` Redis Deployment loses its data, or None."""
    if live is None or not (live.get("status") or {}).get("readyReplicas"):
        # No Redis serves (a broken image being fixed, a pod that never started): nothing in
        # memory to lose, and refusing would keep the pool broken.
        return None
    old, new = _template(live), _template(wanted)
    if _hash(old) == _hash(new):
        return None  # same pod: nothing restarts
    old_claim, new_claim = _claim(old), _claim(new)
    if old_claim is not None and old_claim == new_claim:
        return None  # restarts on the same volume and reloads its append-only file
    if old_claim is None and new_claim is not None:
        return "would start it on a new, empty volume (persistence enabled)"
    if old_claim is not None:
        return "would start it without its volume (persistence disabled)"
    changed = ", ".join(_changes(old, new)) or "its pod template"
    return f"would restart it on an empty in-memory volume ({changed} changed)"


def _template(deployment: Mapping[str, Any]) -> Mapping[str, Any]:
    return (deployment.get("spec") or {}).get("template") or {}


def _hash(template: Mapping[str, Any]) -> str | None:
    annotations = (template.get("metadata") or {}).get("annotations") or {}
    found = annotations.get(names.CONFIG_HASH_ANNOTATION)
    return None if found is None else str(found)


def _claim(template: Mapping[str, Any]) -> str | None:
    for volume in (template.get("spec") or {}).get("volumes") or []:
        claim = volume.get("persistentVolumeClaim")
        if claim:
            return str(claim.get("claimName"))
    return None


def _container(template: Mapping[str, Any]) -> Mapping[str, Any]:
    for container in (template.get("spec") or {}).get("containers") or []:
        if container.get("name") == names.CONTAINERS["redis"]:
            found: Mapping[str, Any] = container
            return found
    return {}


def _changes(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    before, after = _container(old), _container(new)
    return [
        label
        for key, label in (("image", "image"), ("resources", "resources"), ("command", "command"))
        if before.get(key) != after.get(key)
    ]
