"""One reconcile pass for one WorkerPool: read, decide (pure), apply, observe, report.

The same pass runs on create, update, resume, the periodic timer and child events, and is
idempotent: it re-reads the pool, checks the Secrets/ConfigMaps it references, creates the
generated Secrets once, server-side-applies every child (a no-op when nothing changed),
prunes children a changed spec no longer wants, reads the pods of components that are not
ready (diagnosis.py), and writes the status only if it changed. An invalid spec stops the pass
before anything is applied, so running children stay as they are. Semantic problems become a
Stalled status, never an exception loop; API errors (errors.py) other than a rejected child
propagate to the handlers. Reading the inputs is inputs.py's. Talks to the API only through
the `ports.Cluster` protocol; must not build objects itself (builders do) nor import kopf
(handlers.py translates errors).
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any, cast

from workerpool_operator import builders, names
from workerpool_operator.autoscale import DELETION_COST, Decision, decide, deletion_costs
from workerpool_operator.dataloss import CONFIRM_ANNOTATION, confirmed, redis_data_loss
from workerpool_operator.diagnosis import diagnose
from workerpool_operator.errors import ApiRejected, SpecError
from workerpool_operator.inputs import (
    controlled_by,
    handed_over,
    name_conflict,
    read_inputs,
    redis_url,
)
from workerpool_operator.load import Reading, load_status
from workerpool_operator.model import Json, Owner, PoolSpec
from workerpool_operator.names import Component
from workerpool_operator.ports import Cluster, Loads
from workerpool_operator.pressure import memory_problem
from workerpool_operator.spec import parse_pool
from workerpool_operator.status import (
    DeploymentObservation,
    Problem,
    changed_conditions,
    compute_status,
    observe_deployment,
)


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
        digests, seen, problem = read_inputs(cluster, pool, owner, password)
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
            problem = problem or _memory_pressure(pool, reading)
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


def _memory_pressure(pool: PoolSpec, reading: Reading | None) -> Problem | None:
    """The managed Redis near its maxmemory (pressure.py); an external one is not ours to size."""
    if not pool.redis.managed or reading is None or reading.memory is None:
        return None
    redis = f"{pool.namespace}/{names.child_name(pool.name, 'redis')}"
    return memory_problem(redis, *reading.memory)


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
    url = redis_url(pool, seen)
    if url is None:
        return Reading(None, "the Redis URL is not readable from its Secret")
    return loads.read((pool.namespace, pool.name), url, pool.queues)


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
        if live is not None and not controlled_by(live, owner) and not _retained(live, pool):
            return [], name_conflict(kind, ns, child_name, pool.name)
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
        if live is not None and controlled_by(live, owner):
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
        and handed_over(obj)
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
        if live is not None and controlled_by(live, owner):
            found.append(observe_deployment(component, live))
    return found


def _component(obj: Mapping[str, Any]) -> Component:
    label = obj["metadata"]["labels"][names.LABEL_COMPONENT]
    if label not in names.COMPONENTS:
        raise ValueError(f"unexpected component label {label!r}")
    return cast(Component, label)
