"""How big each scenario is in full and smoke mode, and why a size differs from the issue.

Owns the numbers only. The full run must fit in about 15 minutes on a shared 2-core machine
where a Redis round trip costs 0.2-0.3 ms, so one concurrency-2 worker of either system drains
roughly 150-400 no-op jobs/s with late acks, depending on the machine's load. Sizes that would
take minutes each at that rate are scaled down here, and `scaled()` says so in the table
header.
"""

from __future__ import annotations

from dataclasses import dataclass

#: Scenario families in run order; `--only` takes any of these names.
SCENARIOS = ("enqueue", "bulk", "drain", "priority", "scheduled", "lag", "operator")


@dataclass(frozen=True)
class Config:
    smoke: bool
    runs: int
    #: Scenarios 1 and 2: jobs per enqueue loop (issue: 20,000).
    enqueue_jobs: int
    #: Scenario 3: no-op jobs per round and rounds per contender (issue: 20,000 queued).
    drain_jobs: int
    drain_rounds: int
    #: Scenario 4: 10 ms jobs waiting in `low` (issue: 20,000) and critical probes per run.
    priority_backlog: int
    priority_probes: int
    #: Scenario 5: jobs scheduled 10 minutes out, ours and plain Celery (issue: 100,000 both).
    scheduled_ours: int
    scheduled_celery: int
    #: Scenario 5: jobs due within `lag_window` seconds (issue: 5,000 within 5 s).
    lag_jobs: int
    lag_window: float
    #: Scenario 6: pools applied one at a time for latency, and at once for convergence.
    operator_latency_pools: int
    operator_bulk_pools: int
    #: Scenario 6: seconds of routine evaluations measured (CPU, Redis commands, RSS), and
    #: pools given a backlog one after another (scale-up decision latency).
    operator_window_seconds: float
    operator_scaleup_pools: int

    @classmethod
    def full(cls, runs: int) -> Config:
        return cls(
            smoke=False,
            runs=runs,
            enqueue_jobs=20_000,
            # Two short rounds per run: finer interleaving of the three contenders.
            drain_jobs=2_500,
            drain_rounds=2 * runs,
            priority_backlog=20_000,
            priority_probes=5,
            scheduled_ours=100_000,
            scheduled_celery=5_000,
            lag_jobs=500,
            lag_window=5.0,
            operator_latency_pools=20,
            operator_bulk_pools=200,
            operator_window_seconds=60.0,
            operator_scaleup_pools=5,
        )

    @classmethod
    def smoke_sized(cls, runs: int) -> Config:
        return cls(
            smoke=True,
            runs=runs,
            enqueue_jobs=200,
            drain_jobs=200,
            drain_rounds=runs,
            priority_backlog=200,
            priority_probes=1,
            scheduled_ours=200,
            scheduled_celery=200,
            lag_jobs=50,
            lag_window=1.0,
            operator_latency_pools=2,
            operator_bulk_pools=5,
            operator_window_seconds=10.0,
            operator_scaleup_pools=1,
        )

    def scaled(self) -> list[str]:
        """Lines for the table header naming every size that differs from the issue."""
        if self.smoke:
            return ["SMOKE MODE: tiny sizes, figures are not meaningful"]
        lines = []
        if self.drain_jobs != 20_000:
            lines.append(
                f"drain: {self.drain_rounds} rounds of {self.drain_jobs:,} jobs per system "
                f"({self.drain_rounds * self.drain_jobs:,} in all; issue: 20,000 queued at once). "
                "at 150-400 jobs/s here, 20,000 x 4 workers x 3 runs would take ~10-25 min; "
                "short alternating rounds also spread the machine's changing load evenly"
            )
        if self.scheduled_celery != 100_000:
            lines.append(
                f"scheduled RSS: plain Celery measured with {self.scheduled_celery:,} countdown "
                "jobs (its worker ingests ~300 ETA messages/s here, so 100,000 would take "
                "~6 min per run); ours with "
                f"{self.scheduled_ours:,}"
            )
        if self.lag_jobs != 5_000:
            rate = self.lag_jobs / self.lag_window
            lines.append(
                f"lag: {self.lag_jobs:,} jobs due within {self.lag_window:g} s ({rate:,.0f}/s; "
                "issue: 5,000 = 1,000/s, more than one concurrency-2 worker drains here, "
                "so lag would measure the backlog, not dispatch)"
            )
        return lines
