"""`python -m tests.benchmarks --profile`: where a drained no-op job's worker CPU goes.

Owns one reproducible measurement, not a comparison: a worker (ours, or plain Celery with a
profile of `plain_celery.py`) drains a backlog of no-op jobs while py-spy samples every one of
its processes, and Redis counts what the drain asked of it. Prints, per job:

- CPU milliseconds of each worker process (main/consumer vs pool children), from psutil;
- Redis commands by name (`INFO commandstats`) and read events (`total_reads_processed`,
  one per request batch a client sends: a round trip, or a pipeline);
- the sampled on-CPU time of each process split by the library that was running (the
  innermost frame in celery, kombu, billiard, redis-py, our code, the standard library...),
  and the heaviest functions by self time and by inclusive time.

py-spy (PyPI `py-spy`, a sampling profiler reading the processes from outside, so the worker
runs its own code unchanged) must be installed; it is a development tool, not a dependency.
Sampling costs the worker a little, so the rate measured here is not a benchmark figure.
"""

from __future__ import annotations

import collections
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import psutil
import redis

from tests.benchmarks import plain_celery
from tests.benchmarks.harness import (
    CELERY_DB,
    OURS,
    OURS_DB,
    Bench,
    BenchmarkError,
    WorkerProcess,
    prefill,
    progress,
    release,
    wait_drained,
)

CONCURRENCY = 2
WARM_UP = 200
#: Samples per second per process; py-spy's default (100) gives too few samples per job.
RATE = 250
#: Seconds between the harness's drained checks; coarse, so its Redis reads stay negligible.
POLL = 0.1

#: Innermost-frame path prefixes (py-spy shortens paths to the package) -> library charged.
_LIBRARIES = (
    ("celery/", "celery"),
    ("kombu/", "kombu"),
    ("billiard/", "billiard"),
    ("redis/", "redis-py"),
    ("vine/", "vine"),
    ("worker_runtime/", "workerpool"),
    ("tests/", "benchmark job"),
    ("click/", "click"),
)
#: A frame in every pool child's stack (the fork happens inside the main process's stack).
_POOL_CHILD = "Worker.__call__ (billiard/pool.py"
_FRAME = re.compile(r"^(?P<func>.*) \((?P<file>[^:]*)(?::\d+)?\)$")


@dataclass
class ProcessProfile:
    """Samples of one worker process, aggregated."""

    label: str
    samples: int = 0
    by_library: collections.Counter[str] = field(default_factory=collections.Counter)
    self_time: collections.Counter[str] = field(default_factory=collections.Counter)
    inclusive: collections.Counter[str] = field(default_factory=collections.Counter)


def library_of(path: str) -> str:
    for prefix, name in _LIBRARIES:
        if path.startswith(prefix):
            return name
    return "stdlib/other"


def parse_folded(lines: Iterable[str]) -> dict[str, ProcessProfile]:
    """py-spy's raw (folded) output with --subprocesses: `process N:"cmd";frame;... count`.

    py-spy labels forked pool children with the parent's pid; a billiard worker frame in the
    stack tells them apart.
    """
    profiles: dict[str, ProcessProfile] = {}
    for line in lines:
        stack, _, count_text = line.rstrip("\n").rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = stack.split(";")
        frames = [f for f in frames if not f.startswith(("process ", "thread "))] or ["?"]
        child = any(f.startswith(_POOL_CHILD) for f in frames)
        process = "pool children" if child else "main process (consumer, its threads)"
        profile = profiles.setdefault(process, ProcessProfile(process))
        profile.samples += count
        leaf = _FRAME.match(frames[-1])
        profile.by_library[library_of(leaf.group("file")) if leaf else "other"] += count
        profile.self_time[_short(frames[-1])] += count
        for name in {_short(f) for f in frames}:
            profile.inclusive[name] += count
    return profiles


def _short(frame: str) -> str:
    found = _FRAME.match(frame)
    if not found:
        return frame
    path = found.group("file")
    for marker in ("site-packages/", "/lib/python3.11/", "wt-drain/", "workerpool/"):
        if marker in path:
            path = path.split(marker, 1)[1]
            break
    return f"{found.group('func')} ({path})"


def _redis_counts(client: redis.Redis) -> tuple[dict[str, int], int]:
    stats = client.info("commandstats")
    calls = {k.removeprefix("cmdstat_"): int(v["calls"]) for k, v in stats.items()}
    reads = int(client.info("stats")["total_reads_processed"])
    return calls, reads


def _cpu_by_process(worker: WorkerProcess) -> dict[int, tuple[float, float]]:
    """pid -> (user, system) CPU seconds of the worker's main process and pool children."""
    main = psutil.Process(worker.popen.pid)
    out = {}
    for proc in [main, *main.children(recursive=True)]:
        try:
            times = proc.cpu_times()
        except psutil.NoSuchProcess:
            continue
        out[proc.pid] = (times.user, times.system)
    return out


def profile_drain(
    bench: Bench, worker: WorkerProcess, db: int, task: str, n: int, out_dir: Path
) -> str:
    """Drain `n` no-ops under py-spy; return the report text (also written to out_dir)."""
    py_spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if not Path(py_spy).exists():
        raise BenchmarkError("py-spy is not installed: pip install py-spy")
    client = bench.db_client(db)
    client.flushdb()
    prefill(client, "default", task, ({"n": i} for i in range(WARM_UP)))
    release(client, "default")
    wait_drained(client, plain_celery.QUEUES, worker, timeout=120)
    client.flushdb()
    prefill(client, "default", task, ({"n": i} for i in range(n)))
    folded = out_dir / f"{worker.name}.folded"
    spy = subprocess.Popen(
        [
            py_spy,
            "record",
            "--pid",
            str(worker.popen.pid),
            "--subprocesses",
            "--nonblocking",
            # Only samples holding the GIL, i.e. running Python code. Without it, on a loaded
            # machine a thread woken from recv() but waiting for a CPU counts as busy in
            # recv(), which inflates I/O frames several-fold; syscall costs show in the
            # psutil user/system split and the Redis round trips instead.
            "--gil",
            *("--rate", str(RATE), "--format", "raw", "--output", str(folded)),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    time.sleep(2.0)  # py-spy attaches to every process before the clock starts
    client.config_resetstat()
    cpu_before = _cpu_by_process(worker)
    calls_before, reads_before = _redis_counts(client)
    began = release(client, "default")
    ended = wait_drained(client, plain_celery.QUEUES, worker, timeout=60 + n / 20, interval=POLL)
    cpu_after = _cpu_by_process(worker)
    calls_after, reads_after = _redis_counts(client)
    spy.send_signal(signal.SIGINT)
    _, err = spy.communicate(timeout=60)
    if not folded.exists():
        raise BenchmarkError(f"py-spy wrote nothing: {err.decode(errors='replace')[-500:]}")
    lines = [
        f"{worker.name}: {n} no-op jobs in {ended - began:.2f} s under py-spy "
        f"({n / (ended - began):.0f} jobs/s, slowed by sampling)",
        "",
        "worker CPU per job (psutil, user+system), by process:",
    ]
    main_pid = worker.popen.pid
    total = 0.0
    for pid, (user, system) in sorted(cpu_after.items()):
        user0, system0 = cpu_before.get(pid, (0.0, 0.0))
        used = (user - user0) + (system - system0)
        total += used
        role = "main (consumer)" if pid == main_pid else "pool child"
        lines.append(
            f"  {pid:>7} {role:<16} {used / n * 1000:6.3f} ms "
            f"(user {(user - user0) / n * 1000:.3f}, system {(system - system0) / n * 1000:.3f})"
        )
    lines.append(f"  {'all':>7} {'':<16} {total / n * 1000:6.3f} ms")
    lines += ["", "Redis per job: commands (INFO commandstats, excluding the harness's polling):"]
    per_job = {
        name: (calls_after.get(name, 0) - calls_before.get(name, 0)) / n for name in calls_after
    }
    # The harness polls with LLEN x3 + HLEN every 10 ms and reads INFO: not the worker's.
    harness = {"llen", "hlen", "info", "config|resetstat", "config"}
    worker_calls = {k: v for k, v in per_job.items() if v > 0 and k not in harness}
    for name, value in sorted(worker_calls.items(), key=lambda kv: -kv[1]):
        lines.append(f"  {name:<12} {value:6.2f}")
    lines.append(f"  {'total':<12} {sum(worker_calls.values()):6.2f}")
    # Each harness poll is one pipeline: one read event (approximate count, from the time).
    polls = (ended - began) / POLL
    lines.append(
        f"  read events (round trips, a pipeline counts once) per job: "
        f"{(reads_after - reads_before - polls) / n:.2f} (harness polls subtracted, approx.)"
    )
    profiles = parse_folded(folded.read_text().splitlines())
    samples = sum(p.samples for p in profiles.values())
    lines += ["", f"py-spy on-CPU samples: {samples} at {RATE}/s per process"]
    for profile in sorted(profiles.values(), key=lambda p: -p.samples):
        share = profile.samples / samples if samples else 0.0
        lines += ["", f"{profile.label[:100]}  {share:.0%} of samples"]
        lib = ", ".join(
            f"{name} {count / profile.samples:.0%}"
            for name, count in profile.by_library.most_common()
        )
        lines.append(f"  innermost frame by library: {lib}")
        lines.append("  top self time:")
        for name, count in profile.self_time.most_common(12):
            lines.append(f"    {count / profile.samples:5.1%}  {name}")
        lines.append("  top inclusive time (frames below the process's main loop):")
        below_loop = [
            (name, count)
            for name, count in profile.inclusive.most_common()
            if count < 0.6 * profile.samples
        ]
        for name, count in below_loop[:30]:
            lines.append(f"    {count / profile.samples:5.1%}  {name}")
    report = "\n".join(lines)
    (out_dir / f"{worker.name}.txt").write_text(report + "\n")
    return report


def run(n: int, out_dir: Path, systems: Iterable[str]) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    with Bench() as bench:
        for system in systems:
            if system == OURS:
                worker = bench.start_ours(CONCURRENCY)
                db, task = OURS_DB, "bench.noop"
            else:
                worker = bench.start_celery(system, CONCURRENCY)
                db, task = CELERY_DB, "plain.noop"
            progress(f"profiling {worker.name} draining {n} no-ops")
            print(profile_drain(bench, worker, db, task, n, out_dir), flush=True)
            print(flush=True)
            worker.stop()
    progress(f"folded stacks and reports in {out_dir}")
