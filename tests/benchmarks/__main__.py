"""`python -m tests.benchmarks`: run the benchmarks, print the table, write the JSON.

Owns the command line and the run order only. Exit status 0 means every selected scenario
produced its figures (a missed target is a finding, not a failure); 1 means a scenario could
not run (its error and the worker log tail are printed). Progress goes to stderr, the table
to stdout.
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import time
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path
from typing import Any

import psutil

from tests.benchmarks import (
    drain,
    enqueue,
    plain_celery,
    priority,
    profile,
    prototype,
    scheduled,
)
from tests.benchmarks.config import SCENARIOS, Config
from tests.benchmarks.harness import OURS, REPO, Bench, BenchmarkError, progress
from tests.benchmarks.report import Row, table, write_json
from worker_runtime.local.embedded_redis import redis_server_binary

DEFAULT_JSON = Path(__file__).resolve().parent / "results" / "latest.json"
PROFILE_DIR = Path(__file__).resolve().parent / "results" / "profile"


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m tests.benchmarks", description=__doc__)
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, 1 run: proves it runs")
    parser.add_argument("--runs", type=int, default=None, help="runs per figure (3; smoke: 1)")
    parser.add_argument(
        "--only",
        default="",
        help=f"comma-separated subset of: {','.join(SCENARIOS)}",
    )
    parser.add_argument("--json", type=Path, default=DEFAULT_JSON, help="where to write JSON")
    parser.add_argument(
        "--with-operator",
        action="store_true",
        help="also run scenario 6 against a real control plane (skipped otherwise)",
    )
    parser.add_argument("--keep-logs", action="store_true", help="keep worker logs after exit")
    parser.add_argument(
        "--profile",
        action="store_true",
        help="instead of the table: drain no-ops under py-spy and print where each job's CPU "
        "and Redis commands go (tests/benchmarks/PROFILE.md)",
    )
    parser.add_argument("--profile-jobs", type=int, default=3000, help="jobs drained per profile")
    parser.add_argument(
        "--prototype",
        action="store_true",
        help="instead of the table: drain with other worker layouts for two slots, side by side "
        "(tests/benchmarks/PROFILE.md); sizes from --profile-jobs and --runs",
    )
    parser.add_argument(
        "--profile-systems",
        default=f"{OURS},{plain_celery.GUARANTEES}",
        help=f"comma-separated: {OURS} and/or plain Celery's {', '.join(plain_celery.PROFILES)}",
    )
    args = parser.parse_args(argv)
    chosen = [s.strip() for s in args.only.split(",") if s.strip()]
    unknown = sorted(set(chosen) - set(SCENARIOS))
    if unknown:
        parser.error(f"--only: unknown scenario(s) {', '.join(unknown)}")
    if "operator" in chosen and not args.with_operator:
        parser.error("the operator scenario needs --with-operator")
    if args.runs is not None and args.runs < 1:
        parser.error("--runs must be at least 1")
    selected = chosen or [s for s in SCENARIOS if s != "operator"]
    if args.with_operator and "operator" not in selected:
        selected.append("operator")
    args.selected = selected
    return args


def _meta(config: Config, selected: list[str]) -> dict[str, Any]:
    redis_version = subprocess.run(
        [redis_server_binary(), "--version"], capture_output=True, text=True, check=False
    ).stdout.split()
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    return {
        "started": datetime.now(UTC).isoformat(timespec="seconds"),
        "mode": "smoke" if config.smoke else "full",
        "runs": config.runs,
        "scenarios": selected,
        "sizes": {k: v for k, v in vars(config).items() if k not in ("smoke", "runs")},
        "scaled": config.scaled(),
        "machine": {
            "cpus": os.cpu_count(),
            "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
            "platform": platform.platform(),
            # The machine may be shared; the load says how much the figures can be trusted.
            "loadavg_at_start": [round(x, 2) for x in os.getloadavg()],
        },
        "versions": {
            "python": platform.python_version(),
            "celery": version("celery"),
            "kombu": version("kombu"),
            "redis-py": version("redis"),
            "redis-server": next((p for p in redis_version if p.startswith("v=")), "?")[2:],
        },
        "commit": commit,
    }


def _header(meta: dict[str, Any]) -> list[str]:
    machine, versions = meta["machine"], meta["versions"]
    return [
        f"workerpool vs plain Celery - {meta['mode']} run, median of {meta['runs']} run(s), "
        f"{meta['started']} @ {meta['commit'] or '?'}",
        f"machine: {machine['cpus']} CPUs, {machine['memory_gib']} GiB, {machine['platform']}; "
        f"load average (1/5/15 min) at start {machine['loadavg_at_start']}, "
        f"at end {machine['loadavg_at_end']}",
        "versions: " + ", ".join(f"{k} {v}" for k, v in versions.items()),
        "both: one redis-server (separate DBs), -l INFO, Redis result backend; workerpool "
        "worker --concurrency=2 (2 job slots), celery worker --concurrency=2 (prefork); "
        "figures are medians over runs",
        "ratio: how many times better workerpool is (median of per-run ratios where the runs "
        "interleave both systems); celery [...] = the plain Celery configuration compared",
        *[f"scaled: {line}" for line in meta["scaled"]],
        "",
    ]


def run(config: Config, selected: list[str], keep_logs: bool = False) -> list[Row]:
    rows: list[Row] = []
    with Bench(keep_logs=keep_logs) as bench:
        if "enqueue" in selected or "bulk" in selected:
            progress("scenarios 1-2: enqueue")
            rows += enqueue.run(bench, config, selected)
        if "drain" in selected:
            progress("scenario 3: drain")
            rows += drain.run(bench, config)
        if "priority" in selected:
            progress("scenario 4: priority")
            rows += priority.run(bench, config)
        if "scheduled" in selected or "lag" in selected:
            progress("scenario 5: scheduled jobs")
            rows += scheduled.run(bench, config, selected)
    if "operator" in selected:
        progress("scenario 6: operator")
        # Imported here: it needs the operator extra and the control plane binaries.
        from tests.benchmarks import operator_bench

        rows += operator_bench.run(config)
    return rows


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    if args.prototype:
        prototype.run(args.profile_jobs, args.runs or 3)
        return 0
    if args.profile:
        systems = [s.strip() for s in args.profile_systems.split(",") if s.strip()]
        bad = [s for s in systems if s != OURS and s not in plain_celery.PROFILES]
        if bad:
            progress(f"--profile-systems: unknown system(s) {', '.join(bad)}")
            return 2
        profile.run(args.profile_jobs, PROFILE_DIR, systems)
        return 0
    runs = args.runs or (1 if args.smoke else 3)
    config = Config.smoke_sized(runs) if args.smoke else Config.full(runs)
    meta = _meta(config, args.selected)
    started = time.monotonic()
    try:
        rows = run(config, args.selected, keep_logs=args.keep_logs)
    except BenchmarkError as error:
        progress(f"FAILED: {error}")
        return 1
    meta["seconds"] = round(time.monotonic() - started, 1)
    meta["machine"]["loadavg_at_end"] = [round(x, 2) for x in os.getloadavg()]
    write_json(args.json, meta, rows)
    print(table(rows, _header(meta)))
    progress(f"done in {meta['seconds']:.0f} s; JSON in {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
