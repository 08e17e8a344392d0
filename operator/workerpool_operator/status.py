"""The WorkerPool's status, computed from what the reconciler observed.

kstatus conventions (what Flux and Argo CD's kstatus-based checks read): `observedGeneration`;
`Ready` (True only when every component is updated and ready); `Reconciling` (True while
converging: wait); `Stalled` (True when progress needs a human: the reason and message say
what to fix). All three are always present so `kubectl wait --for=condition=...` works both
ways. Pure: observations and the clock reading come in as arguments; no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from workerpool_operator.model import Json
from workerpool_operator.names import COMPONENTS, Component, selector_string


@dataclass(frozen=True)
class Problem:
    """Why the pool cannot progress; becomes Stalled=True with this reason and message."""

    reason: str  # CamelCase, e.g. SecretNotFound
    message: str
    permanent: bool = False  # only a spec change can fix it (kopf.PermanentError)


@dataclass(frozen=True)
class DeploymentObservation:
    component: Component
    desired: int
    generation: int
    observed_generation: int
    replicas: int
    ready: int
    updated: int
    available: int
    # Message of a Progressing=False/ProgressDeadlineExceeded condition, if any.
    deadline_exceeded: str | None
    # A failing container of its pods (diagnosis.py), found long before the deadline.
    failure: Problem | None = None
    # Pods its ReplicaSet cannot create (a ResourceQuota, Pod Security, a LimitRange): the
    # Deployment's ReplicaFailure condition, set within seconds of the refusal.
    replica_failure: Problem | None = None

    @property
    def is_ready(self) -> bool:
        return (
            self.observed_generation >= self.generation
            and self.updated >= self.desired
            and self.ready >= self.desired
            and self.available >= self.desired
            and self.replicas <= self.desired  # old pods of a rollout are gone
        )

    def summary(self) -> str:
        if self.failure is not None:
            return self.failure.message
        if self.replica_failure is not None:
            return self.replica_failure.message
        if self.observed_generation < self.generation:
            return "Deployment change not yet observed by its controller"
        if self.updated < self.desired or self.replicas > self.desired:
            return f"rolling out: {self.updated}/{self.desired} updated, {self.ready} ready"
        return f"{self.ready}/{self.desired} ready"


def observe_deployment(
    component: Component, deployment: Mapping[str, Any]
) -> DeploymentObservation:
    """Read a Deployment as returned by the API server."""
    spec = deployment.get("spec") or {}
    status = deployment.get("status") or {}
    stuck = None
    refused = None
    for condition in status.get("conditions") or []:
        if (
            condition.get("type") == "Progressing"
            and condition.get("status") == "False"
            and condition.get("reason") == "ProgressDeadlineExceeded"
        ):
            stuck = str(condition.get("message", "progress deadline exceeded"))
        if condition.get("type") == "ReplicaFailure" and condition.get("status") == "True":
            refused = replica_failure(component, str(condition.get("message") or ""))
    return DeploymentObservation(
        component=component,
        desired=int(spec.get("replicas", 1)),
        generation=int((deployment.get("metadata") or {}).get("generation", 0)),
        observed_generation=int(status.get("observedGeneration", 0)),
        replicas=int(status.get("replicas", 0)),
        ready=int(status.get("readyReplicas", 0)),
        updated=int(status.get("updatedReplicas", 0)),
        available=int(status.get("availableReplicas", 0)),
        deadline_exceeded=stuck,
        replica_failure=refused,
    )


# Who refused the pod, by the admission plugin's own wording (apiserver quota, PodSecurity
# and LimitRanger messages), most specific first.
_REFUSERS = (
    ("exceeded quota", "QuotaExceeded", "a ResourceQuota"),
    ("violates PodSecurity", "PodSecurityViolation", "Pod Security admission"),
    ("LimitRange", "LimitRangeViolation", "a LimitRange"),
    ("per Container", "LimitRangeViolation", "a LimitRange"),
    ("per Pod", "LimitRangeViolation", "a LimitRange"),
)


def replica_failure(component: Component, message: str) -> Problem:
    """A Deployment's ReplicaFailure as a Stalled problem; the API server's message (which
    names the quota, the policy level or the limit) is kept whole."""
    reason, who = "FailedCreate", "the API server"
    for needle, found_reason, found_who in _REFUSERS:
        if needle in message:
            reason, who = found_reason, found_who
            break
    return Problem(reason, f"{component}: pods refused by {who}: {message}")


def compute_status(
    *,
    pool_name: str,
    generation: int,
    environment: str | None,
    desired_replicas: int | None,
    observations: Sequence[DeploymentObservation],
    problem: Problem | None,
    previous: Mapping[str, Any] | None,
    now: str,
) -> Json:
    """The complete status to write; `now` (RFC 3339) is used only for condition transitions."""
    # Worker first: it is what people look for in messages.
    observations = sorted(observations, key=lambda o: COMPONENTS.index(o.component))
    by_component = {o.component: o for o in observations}
    worker = by_component.get("worker")
    if problem is None:
        problem = _stuck_rollout(observations)
    waiting = [o for o in observations if not o.is_ready]
    if "worker" not in by_component and problem is None:
        waiting_text = "waiting for the worker Deployment to be created"
    else:
        waiting_text = "waiting for " + ", ".join(f"{o.component} ({o.summary()})" for o in waiting)

    if problem is not None:
        ready = ("False", problem.reason, problem.message)
        reconciling = ("False", "Stalled", problem.message)
        stalled = ("True", problem.reason, problem.message)
    elif waiting or worker is None:
        ready = ("False", "Progressing", waiting_text)
        reconciling = ("True", "Progressing", waiting_text)
        stalled = ("False", "Progressing", waiting_text)
    else:
        text = "ready: " + ", ".join(f"{o.component} {o.ready}/{o.desired}" for o in observations)
        ready = ("True", "Available", text)
        reconciling = ("False", "Available", text)
        stalled = ("False", "Available", text)

    old = {c.get("type"): c for c in (previous or {}).get("conditions") or []}
    conditions = (("Ready", ready), ("Reconciling", reconciling), ("Stalled", stalled))
    status: Json = {
        "observedGeneration": generation,
        "replicas": worker.replicas if worker else 0,
        "readyReplicas": worker.ready if worker else 0,
        "selector": selector_string(pool_name),
        "components": {
            o.component: {
                "desiredReplicas": o.desired,
                "readyReplicas": o.ready,
                "updatedReplicas": o.updated,
                "ready": o.is_ready,
                **({} if o.is_ready else {"message": o.summary()}),
            }
            for o in observations
        },
        "conditions": [
            _condition(kind, values, generation, old.get(kind), now) for kind, values in conditions
        ],
    }
    if environment is not None:
        status["environment"] = environment
    if desired_replicas is None and worker is not None:
        desired_replicas = worker.desired
    if desired_replicas is not None:
        status["desiredReplicas"] = desired_replicas
    return status


def changed_conditions(previous: Mapping[str, Any] | None, status: Mapping[str, Any]) -> set[str]:
    """Condition types whose status or reason differ from `previous` (for Events/logs)."""

    def summary(conditions: Any) -> dict[str, tuple[Any, Any]]:
        return {c.get("type"): (c.get("status"), c.get("reason")) for c in conditions or []}

    old, new = summary((previous or {}).get("conditions")), summary(status.get("conditions"))
    return {kind for kind, value in new.items() if old.get(kind) != value}


def _stuck_rollout(observations: Sequence[DeploymentObservation]) -> Problem | None:
    for o in observations:
        if o.failure is not None and not o.is_ready:
            return o.failure
    for o in observations:
        if o.replica_failure is not None and not o.is_ready:
            return o.replica_failure
    for o in observations:
        if o.deadline_exceeded is not None and not o.is_ready:
            return Problem("ProgressDeadlineExceeded", f"{o.component}: {o.deadline_exceeded}")
    return None


def _condition(
    kind: str,
    values: tuple[str, str, str],
    generation: int,
    previous: Mapping[str, Any] | None,
    now: str,
) -> Json:
    status, reason, message = values
    # kstatus/metav1.Condition: the transition time changes only when the status does.
    unchanged = previous is not None and previous.get("status") == status
    since = previous.get("lastTransitionTime") if previous is not None and unchanged else None
    return {
        "type": kind,
        "status": status,
        "reason": reason,
        "message": message,
        "lastTransitionTime": since or now,
        "observedGeneration": generation,
    }
