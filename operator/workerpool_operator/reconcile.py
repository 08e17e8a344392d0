"""One reconcile pass for one WorkerPool: read, decide (pure), apply, observe, report.

The same pass runs on create, update, resume, the periodic timer and child events, and is
idempotent: it re-reads the pool, checks the Secrets/ConfigMaps it references, creates the
generated Secrets once, server-side-applies every child (a no-op when nothing changed),
prunes children a changed spec no longer wants, reads the pods of components that are not
ready (diagnosis.py), and writes the status only if it changed. An invalid spec stops the pass
before anything is applied, so running children stay as they are. Semantic problems become a
Stalled status, never an exception loop; API errors (errors.py) other than a rejected child
propagate to the handlers. Talks to the API only through the `Cluster` protocol; must not
build objects itself (builders do) nor import kopf (handlers.py translates errors).
"""

from __future__ import annotations

import base64
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any, Protocol, cast

from workerpool_operator import builders, names
from workerpool_operator.autoscale import DELETION_COST, Decision, decide, deletion_costs
from workerpool_operator.confighash import ABSENT, digest_data
from workerpool_operator.dataloss import CONFIRM_ANNOTATION, confirmed, redis_data_loss
from workerpool_operator.diagnosis import diagnose
from workerpool_operator.errors import ApiRejected, SpecError
from workerpool_operator.load import Reading, load_status
from workerpool_operator.model import Json, Owner, PoolSpec
from workerpool_operator.names import Component
from workerpool_operator.references import REDIS_PASSWORD_KEY, Reference, all_references
from workerpool_operator.spec import parse_pool
from workerpool_operator.status import (
    DeploymentObservation,
    Problem,
    changed_conditions,
    compute_status,
    observe_deployment,
)
from workerpool_operator.values import REDIS_URL_SCHEMES, is_redis_url


class Cluster(Protocol):
    """What a pass needs from the API (implemented by `cluster.Cluster`; faked in unit tests)."""

    def get(self, api_version: str, kind: str, namespace: str, name: str) -> Json | None: ...
    def get_pool(self, namespace: str, name: str) -> Json | None: ...
    def list_objects(
        self, api_version: str, kind: str, namespace: str, selector: str
    ) -> list[Json]: ...
    def apply(self, obj: Mapping[str, Any]) -> Json: ...
    def create(self, obj: Mapping[str, Any]) -> Json | None: ...
    def delete(self, api_version: str, kind: str, namespace: str, name: str, uid: str) -> None: ...
    def apply_pool_status(self, namespace: str, name: str, status: Mapping[str, Any]) -> None: ...
    def annotate(
        self,
        api_version: str,
        kind: str,
        namespace: str,
        name: str,
        annotations: Mapping[str, str | None],
    ) -> None: ...
    def scale(
        self, api_version: str, kind: str, namespace: str, name: str, replicas: int
    ) -> None: ...


class Loads(Protocol):
    """Reads a pool's load from its Redis (implemented by `redisload.LoadReader`)."""

    def read(self, pool: tuple[str, str], url: str, queues: tuple[str, ...]) -> Reading: ...
    def forget(self, pool: tuple[str, str]) -> None: ...


@dataclass(frozen=True)
class Outcome:
    problem: Problem | None  # found by this pass (not a slow rollout): handlers raise on it
    status: Json | None
    status_changed: bool
    # Condition types whose status or reason changed in this pass (for Events).
    transitions: frozenset[str] = frozenset()
    pool: Json | None = None  # the live WorkerPool this pass saw (Events refer to it)
    # The autoscaler's decision when it changed the worker count in this pass (for Events).
    scaled: Decision | None = None
    reading: Reading | None = None  # this pass's load reading, if any


def utc_now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def new_password() -> str:
    # URL-safe alphabet: the password is embedded in redis:// URLs without escaping.
    return secrets.token_urlsafe(32)


def reconcile(
    cluster: Cluster,
    namespace: str,
    name: str,
    *,
    now: Callable[[], str] = utc_now,
    password: Callable[[], str] = new_password,
    loads: Loads | None = None,
) -> Outcome:
    # Always the live object: kopf's body may lag, and a coalesced re-run needs fresh input.
    body = cluster.get_pool(namespace, name)
    if body is None or body["metadata"].get("deletionTimestamp"):
        if loads is not None:
            loads.forget((namespace, name))
        return Outcome(None, None, False)  # gone or going: the garbage collector takes over
    meta = body["metadata"]
    owner = Owner(name=name, uid=meta["uid"])
    pool: PoolSpec | None = None
    observations: list[DeploymentObservation] = []
    previous = body.get("status") or {}
    extra: Json = {}
    decision: Decision | None = None
    reading: Reading | None = None
    stamp = now()
    try:
        pool = parse_pool(name, namespace, body.get("spec"))
        digests, seen, problem = _read_inputs(cluster, pool, owner, password)
        if problem is None:
            reading = _read_load(loads, pool, seen)
            if reading is not None and reading.load is not None:
                extra["load"] = load_status(reading.load)
                # Before any scale-down below is applied, so the ReplicaSet sees the costs.
                _mark_deletion_costs(cluster, pool, reading, previous)
            if pool.autoscaling is not None:
                decision = decide(
                    pool.autoscaling,
                    reading.load if reading else None,
                    previous.get("autoscaling"),
                    stamp,
                    unavailable=(reading.error if reading else "") or "no load reading",
                )
                extra["autoscaling"] = decision.to_status()
                pool = replace(pool, replicas=decision.replicas)
            observations, problem = _apply(cluster, pool, owner, digests, confirmed(body))
    except SpecError as error:
        problem = Problem("InvalidSpec", f"invalid WorkerPool: {error}", permanent=True)
    except ApiRejected as error:
        problem = Problem(error.reason, str(error), permanent=error.permanent)
    if problem is not None and not observations:
        observations = _observe(cluster, namespace, name, owner)

    status = compute_status(
        pool_name=name,
        generation=int(meta.get("generation", 0)),
        environment=pool.environment if pool else None,
        desired_replicas=pool.replicas if pool else None,
        observations=observations,
        problem=problem,
        previous=previous,
        now=stamp,
    )
    status.update(extra)
    changed = status != previous
    if changed:
        cluster.apply_pool_status(namespace, name, status)
    transitions = frozenset(changed_conditions(previous, status))
    before = (previous.get("autoscaling") or {}).get("replicas")
    scaled = decision if decision is not None and decision.replicas != before else None
    return Outcome(problem, status, changed, transitions, body, scaled, reading)


def _mark_deletion_costs(
    cluster: Cluster, pool: PoolSpec, reading: Reading, previous: Mapping[str, Any]
) -> None:
    assert reading.load is not None
    previous_pods = (previous.get("load") or {}).get("pods")
    prefix = names.child_name(pool.name, "worker") + "-"
    for pod, cost in sorted(deletion_costs(reading.load, previous_pods, prefix).items()):
        cluster.annotate("v1", "Pod", pool.namespace, pod, {DELETION_COST: str(cost)})


def _read_load(
    loads: Loads | None, pool: PoolSpec, seen: Mapping[tuple[str, str], Json | None]
) -> Reading | None:
    """The pool's load, if its Redis URL is known (the Secrets were read this pass)."""
    if loads is None:
        return None
    url = _redis_url(pool, seen)
    if url is None:
        return Reading(None, "the Redis URL is not readable from its Secret")
    return loads.read((pool.namespace, pool.name), url, pool.queues)


def _redis_url(pool: PoolSpec, seen: Mapping[tuple[str, str], Json | None]) -> str | None:
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


def _read_inputs(
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
    if live is not None and _controlled_by(live, owner):
        return live, None
    if live is not None and _handed_over(live):
        return _take_back(cluster, pool, owner, component, live), None
    if live is not None:
        return None, _name_conflict("Secret", ns, secret_name, pool.name)
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


def _handed_over(obj: Mapping[str, Any]) -> bool:
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


def _name_conflict(kind: str, ns: str, name: str, pool: str) -> Problem:
    return Problem(
        "NameConflict",
        f"{kind} {ns}/{name} exists and is not controlled by WorkerPool {pool}; "
        "delete or rename it, or rename the pool",
        permanent=True,
    )


def _owned(cluster: Cluster, api_version: str, kind: str, ns: str, name: str, owner: Owner) -> bool:
    live = cluster.get(api_version, kind, ns, name)
    return live is not None and _controlled_by(live, owner)


def _data(obj: Mapping[str, Any]) -> dict[str, str]:
    """Secret data (base64) or ConfigMap data + binaryData, as one mapping of strings."""
    merged = dict(obj.get("data") or {})
    merged.update({f"binary:{k}": v for k, v in (obj.get("binaryData") or {}).items()})
    return merged


def _controlled_by(obj: Mapping[str, Any], owner: Owner) -> bool:
    refs = (obj.get("metadata") or {}).get("ownerReferences") or []
    return any(ref.get("uid") == owner.uid and ref.get("controller") for ref in refs)


def _apply(
    cluster: Cluster, pool: PoolSpec, owner: Owner, digests: builders.Digests, confirm: bool
) -> tuple[list[DeploymentObservation], Problem | None]:
    children = builders.build_children(pool, owner, digests)
    ns = pool.namespace
    accepted_loss = False
    for child in children:
        kind, child_name = child["kind"], child["metadata"]["name"]
        live = cluster.get(child["apiVersion"], kind, ns, child_name)
        # Never take over an object someone else created under our name (SSA with force
        # would); a Redis claim this pool's name retained when it was deleted is its own.
        if live is not None and not _controlled_by(live, owner) and not _retained(live, pool):
            return [], _name_conflict(kind, ns, child_name, pool.name)
        loss = redis_data_loss(live, child) if child_name == _redis_name(pool, kind) else None
        if loss is not None and not confirm:
            return [], _data_loss(pool, loss)
        accepted_loss = accepted_loss or loss is not None
    observations = []
    for child in children:
        live = cluster.apply(child)
        if child["kind"] == "Deployment":
            observations.append(
                _with_pods(cluster, pool, observe_deployment(_component(live), live))
            )

    if accepted_loss:
        # The confirmation covers this change only: the next one is guarded again.
        cluster.annotate(names.API_VERSION, names.KIND, ns, pool.name, {CONFIRM_ANNOTATION: None})
    wanted = {(c["apiVersion"], c["kind"], c["metadata"]["name"]) for c in children}
    wanted |= {
        ("v1", "Secret", names.child_name(pool.name, component))
        for component in builders.generated_secret_components(pool)
    }
    for api_version, kind, child_name in builders.prunable_children(pool.name):
        if (api_version, kind, child_name) in wanted:
            continue
        live = cluster.get(api_version, kind, ns, child_name)
        if live is not None and _controlled_by(live, owner):
            cluster.delete(api_version, kind, ns, child_name, live["metadata"]["uid"])
    return observations, None


def _redis_name(pool: PoolSpec, kind: str) -> str | None:
    return names.child_name(pool.name, "redis") if kind == "Deployment" else None


def _retained(obj: Mapping[str, Any], pool: PoolSpec) -> bool:
    """A Redis claim left by a deleted pool of this name (whenDeleted: Retain): no controller,
    the operator's labels for this pool; the pool adopts it with the jobs on it."""
    meta = obj.get("metadata") or {}
    labels = meta.get("labels") or {}
    return (
        obj.get("kind") == "PersistentVolumeClaim"
        and _handed_over(obj)
        and labels.get(names.LABEL_INSTANCE) == pool.name
        and labels.get(names.LABEL_COMPONENT) == "redis"
    )


def _data_loss(pool: PoolSpec, loss: str) -> Problem:
    redis = f"{pool.namespace}/{names.child_name(pool.name, 'redis')}"
    return Problem(
        "RedisDataLoss",
        f"this change of Redis {redis} {loss}: its queued, scheduled and dead jobs would be "
        "lost. The running Redis and every other child are kept as they are. Revert the "
        f"change, or accept the loss: kubectl -n {pool.namespace} annotate wp/{pool.name} "
        f"{CONFIRM_ANNOTATION}=true",
        permanent=True,
    )


def _with_pods(
    cluster: Cluster, pool: PoolSpec, observation: DeploymentObservation
) -> DeploymentObservation:
    """Add why its pods fail, for a component that is not ready (one LIST, only then)."""
    if observation.is_ready:
        return observation
    selector = names.selector_string(pool.name, observation.component)
    pods = cluster.list_objects("v1", "Pod", pool.namespace, selector)
    return replace(observation, failure=diagnose(observation.component, pods))


def _observe(
    cluster: Cluster, namespace: str, name: str, owner: Owner
) -> list[DeploymentObservation]:
    """Current Deployments of the pool, for an honest status when nothing was applied."""
    found = []
    for component in names.COMPONENTS:
        live = cluster.get("apps/v1", "Deployment", namespace, names.child_name(name, component))
        if live is not None and _controlled_by(live, owner):
            found.append(observe_deployment(component, live))
    return found


def _component(obj: Mapping[str, Any]) -> Component:
    label = obj["metadata"]["labels"][names.LABEL_COMPONENT]
    if label not in names.COMPONENTS:
        raise ValueError(f"unexpected component label {label!r}")
    return cast(Component, label)
