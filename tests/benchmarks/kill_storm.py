"""`python -m tests.benchmarks.kill_storm`: the long kill storm of issue 20, counted.

A producer enqueues a job every 10 ms into a real Redis while two real workers (`-c 2`) are
hit at random: a slot or the duties process SIGKILLed, a whole worker SIGKILLed and started
again, or a worker frozen (SIGSTOP, with jobs arriving) and then SIGKILLed. Afterwards it
prints how many jobs never ran (lost, target 0) and how many ran more than once (killed after
they ran but before their ack: at-least-once, counted, not a failure). Not a test: the short
storm with assertions is tests/integration/runtime/test_kill_storm.py. Must not assert timing.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

import redis

import worker_runtime
from tests.controlplane.waiting import wait_for
from tests.integration.runtime.jobs.recording import Storm
from worker_runtime.core.settings import Settings
from worker_runtime.local.embedded_redis import EmbeddedRedis

KINDS = ("slot", "worker", "freeze")


def family(pid: int) -> list[int]:
    try:
        return [pid, *map(int, Path(f"/proc/{pid}/task/{pid}/children").read_text().split())]
    except OSError:
        return [pid]


def signal_all(pids: list[int], signum: int) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signum)


class Worker:
    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.log = log
        with log.open("ab") as out:
            self.popen = subprocess.Popen(
                [sys.executable, "-m", "worker_runtime", "worker", "--concurrency=2"],
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        offset = log.stat().st_size
        wait_for(
            lambda: "slot(s) consuming" in log.read_text(errors="replace")[offset:],
            timeout=60,
            message=f"{log.name} to consume",
        )

    def kill(self) -> None:
        signal_all(family(self.popen.pid), signal.SIGKILL)
        self.popen.wait()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.benchmarks.kill_storm")
    parser.add_argument("--kills", type=int, default=45, help="kills in all (issue: 20+20+5)")
    parser.add_argument("--gap", type=float, default=1.0, help="seconds between kills")
    parser.add_argument("--seed", type=int, default=20)
    args = parser.parse_args(argv)
    chance = random.Random(args.seed)
    logs = Path(tempfile.mkdtemp(prefix="kill-storm-"))
    with EmbeddedRedis() as server:
        url = server.url(1)
        env = {
            **os.environ,
            "CELERY_BROKER_URL": url,
            "CELERY_RESULT_BACKEND": url,
            "WORKER_PACKAGES": "tests.integration.runtime.jobs",
            "WORKERPOOL_STATE_DIR": str(logs / "state"),
            "WORKERPOOL_VISIBILITY_TIMEOUT": "3",
            "WORKERPOOL_DISPATCH_INTERVAL": "0.1",
        }
        worker_runtime.configure(Settings.from_env(env))
        client = redis.Redis.from_url(url)
        workers = [Worker(env, logs / "a.log"), Worker(env, logs / "b.log")]
        sent = 0
        halt = threading.Event()

        def produce() -> None:
            nonlocal sent
            while not halt.wait(0.01):
                Storm.perform_async(n=sent)
                sent += 1

        producer = threading.Thread(target=produce, daemon=True)
        producer.start()
        done = Counter[str]()
        try:
            for _ in range(args.kills):
                halt.wait(args.gap)
                kind = chance.choice(KINDS)
                index = chance.randrange(len(workers))
                victim = workers[index]
                if kind == "slot":
                    children = family(victim.popen.pid)[1:]
                    signal_all(children[chance.randrange(len(children)) :][:1], signal.SIGKILL)
                else:
                    if kind == "freeze":
                        signal_all(family(victim.popen.pid), signal.SIGSTOP)
                        halt.wait(0.3)
                    victim.kill()
                    workers[index] = Worker(env, victim.log)
                done[kind] += 1
        finally:
            halt.set()
            producer.join()
        started = time.monotonic()
        with contextlib.suppress(AssertionError):
            wait_for(lambda: client.llen("ran:storm") >= sent, timeout=120, interval=0.5)
            wait_for(lambda: not client.hlen("unacked"), timeout=60, interval=0.5)
        runs = Counter(json.loads(raw)["n"] for raw in client.lrange("ran:storm", 0, -1))
        for worker in workers:
            worker.kill()
    lost = sent - len(runs)
    twice = sum(1 for count in runs.values() if count > 1)
    print(
        f"{sent} jobs; kills: {dict(done)}; lost {lost} (target 0); ran twice {twice} "
        f"(killed after running, before the ack); drained {time.monotonic() - started:.1f} s "
        f"after the storm; logs in {logs}"
    )
    return 1 if lost else 0


if __name__ == "__main__":
    sys.exit(main())
