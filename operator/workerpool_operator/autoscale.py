"""The autoscaling decision: how many workers a pool should run, and why. Pure.

Rules (the README's "Autoscaling" section):
- demand = jobs held by workers (reserved, running included) + queued + due within the
  horizon (load.py); recommendation = ceil(demand / jobsPerWorker), clamped to
  [minReplicas, maxReplicas];
- scale-up is immediate: a recommendation above the current count is applied in the same
  evaluation;
- scale-down is stabilised: only after the recommendation stayed below the current count for
  `scaleDownStabilizationSeconds`, and then to the highest recommendation seen in that window
  (the HorizontalPodAutoscaler's rule), so a queue that empties between bursts keeps its workers;
- no load reading (Redis unreachable): keep the current count, say so.
Safe scale-down: each worker pod carries `controller.kubernetes.io/pod-deletion-cost` from its
own report (`deletion_costs`), and the ReplicaSet controller removes the lowest cost first: an
idle pod before a busy one, a pod running one job before a pod running three. The pod told to
stop then finishes its running jobs (Celery's warm shutdown on SIGTERM) within the pool's
terminationGracePeriodSeconds, the documented bound on job length; a job that outlives it is
killed and comes back through its lease (worker_runtime/process/lease.py), never lost.

The window's state (`belowSince`, `peakSinceBelow`) lives in status.autoscaling, so a restarted
operator continues the same window. Must not do I/O or read the clock (`now` comes in).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from workerpool_operator.load import Load, PodLoad
from workerpool_operator.model import AutoscalingSpec, Json

DELETION_COST: Final = "controller.kubernetes.io/pod-deletion-cost"
#: A running job outweighs any number of prefetched ones: those go back to the queue unharmed.
RUNNING_WEIGHT: Final = 1000


def deletion_cost(pod: PodLoad) -> int:
    return RUNNING_WEIGHT * pod.running + (pod.reserved - pod.running)


def deletion_costs(
    load: Load, previous_pods: Mapping[str, Any] | None, worker_prefix: str
) -> dict[str, int]:
    """Costs to write this evaluation: pods whose report changed since the last status (one
    PATCH per changed pod, none in a steady state), and 0 for pods whose report went away.
    Only pods named like the pool's workers (`worker_prefix`): an external Redis may be
    shared with other workers."""
    before = {
        str(name): PodLoad(int(v.get("reserved", 0)), int(v.get("running", 0)))
        for name, v in (previous_pods or {}).items()
        if isinstance(v, Mapping)
    }
    changes = {
        name: deletion_cost(pod)
        for name, pod in load.pods.items()
        if name.startswith(worker_prefix) and before.get(name) != pod
    }
    for name in before:
        if name not in load.pods and name.startswith(worker_prefix):
            changes[name] = 0
    return changes


@dataclass(frozen=True)
class Decision:
    replicas: int
    recommendation: int
    reason: str  # ScaledUp, ScaledDown, Steady, ScaleDownStabilizing, LoadUnavailable, Bounds
    message: str
    below_since: str | None = None  # RFC 3339
    peak_since_below: int = 0

    def to_status(self) -> Json:
        status: Json = {
            "replicas": self.replicas,
            "recommendation": self.recommendation,
            "reason": self.reason,
            "message": self.message,
        }
        if self.below_since is not None:
            status["belowSince"] = self.below_since
            status["peakSinceBelow"] = self.peak_since_below
        return status


def _clamp(value: int, spec: AutoscalingSpec) -> int:
    return max(spec.min_replicas, min(spec.max_replicas, value))


def _parse(stamp: str) -> datetime:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00"))


def decide(
    spec: AutoscalingSpec,
    load: Load | None,
    previous: Mapping[str, Any] | None,
    now: str,
    unavailable: str = "no load reading",
) -> Decision:
    """The worker count for this evaluation; `previous` is the last status.autoscaling."""
    previous = previous or {}
    raw_current = int(previous.get("replicas", spec.min_replicas))
    current = _clamp(raw_current, spec)
    if load is None:
        return Decision(
            current, current, "LoadUnavailable", f"{unavailable}; keeping {current} worker(s)"
        )
    demand, per_worker = load.demand, spec.jobs_per_worker
    wanted = math.ceil(demand / per_worker)
    recommendation = _clamp(wanted, spec)
    why = (
        f"{demand} job(s) held, queued or due at {per_worker} per worker want {wanted} "
        f"worker(s) (bounds {spec.min_replicas}..{spec.max_replicas})"
    )
    if recommendation > current:
        return Decision(
            recommendation, recommendation, "ScaledUp", f"{why}: {current} -> {recommendation}"
        )
    if recommendation == current:
        if current != raw_current:
            return Decision(
                current,
                recommendation,
                "Bounds",
                f"{why}: {raw_current} -> {current} to stay within bounds",
            )
        return Decision(current, recommendation, "Steady", f"{why}: keeping {current}")
    below_since = previous.get("belowSince")
    if not isinstance(below_since, str):
        below_since = now
        peak = recommendation
    else:
        peak = max(recommendation, int(previous.get("peakSinceBelow", recommendation)))
    waited = (_parse(now) - _parse(below_since)).total_seconds()
    window = spec.scale_down_stabilization_seconds
    if waited >= window:
        return Decision(
            peak, recommendation, "ScaledDown", f"{why}, for {int(waited)}s: {current} -> {peak}"
        )
    return Decision(
        current,
        recommendation,
        "ScaleDownStabilizing",
        f"{why}: keeping {current} until the recommendation has stayed lower for {window}s "
        f"({int(window - waited)}s left)",
        below_since=below_since,
        peak_since_below=peak,
    )
