"""`workerpool up`: worker, beat and Flower on this machine, plus Redis when none is set.

Owns process supervision only: start children in order, stop them in reverse on Ctrl-C or
SIGTERM (the worker gets a warm shutdown), and never leave one behind. Each child runs the same
`workerpool` CLI a container would, so local and cluster behave alike.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from worker_runtime.local.embedded_redis import EmbeddedRedis

_PR_SET_PDEATHSIG = 1


@dataclass(frozen=True)
class StackOptions:
    packages: str
    concurrency: int
    flower_port: int
    flower_address: str
    loglevel: str
    credentials: str | None


def _die_with_parent() -> None:  # pragma: no cover - runs in the child before exec
    # If `up` itself is killed with SIGKILL it cannot stop its children; the kernel does.
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def _spawn(args: Sequence[str], env: Mapping[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "worker_runtime", *args],
        env=dict(env),
        stdin=subprocess.DEVNULL,
        # Own session: Ctrl-C reaches only `up`, which then stops children in order.
        start_new_session=True,
        preexec_fn=_die_with_parent if sys.platform == "linux" else None,
    )


def run_stack(options: StackOptions, echo: Callable[[str], None]) -> int:
    stopping = False

    def request_stop(_signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)

    env = dict(os.environ, WORKER_PACKAGES=options.packages)
    redis_server: EmbeddedRedis | None = None
    if not env.get("CELERY_BROKER_URL"):
        redis_server = EmbeddedRedis().start()
        env["CELERY_BROKER_URL"] = env["CELERY_RESULT_BACKEND"] = redis_server.url()
        echo(f"Started embedded Redis at {redis_server.url()} (no CELERY_BROKER_URL was set)")
    credentials = options.credentials or f"admin:{secrets.token_urlsafe(12)}"
    env["FLOWER_BASIC_AUTH"] = credentials

    children: list[tuple[str, subprocess.Popen[bytes]]] = []
    try:
        for name, args in (
            (
                "worker",
                [
                    "worker",
                    f"--concurrency={options.concurrency}",
                    f"--loglevel={options.loglevel}",
                ],
            ),
            ("beat", ["beat", f"--loglevel={options.loglevel}"]),
            (
                "flower",
                ["flower", f"--port={options.flower_port}", f"--address={options.flower_address}"],
            ),
        ):
            children.append((name, _spawn(args, env)))
        user, password = credentials.split(":", 1)
        url = f"http://{options.flower_address}:{options.flower_port}"
        echo(f"Flower: {url}  user: {user}  password: {password}")
        echo(f"Broker: {env['CELERY_BROKER_URL']}  (export it to enqueue jobs from another shell)")
        echo("Press Ctrl-C to stop.")
        while not stopping:
            for name, child in children:
                if child.poll() is not None:
                    echo(f"{name} exited with status {child.returncode}; stopping the stack")
                    stopping = True
            time.sleep(0.2)
    finally:
        _stop_all([child for _, child in reversed(children)])
        if redis_server is not None:
            redis_server.stop()
    return 0 if all(child.returncode in (0, -signal.SIGTERM) for _, child in children) else 1


def _stop_all(children: Sequence[subprocess.Popen[bytes]], grace: float = 30.0) -> None:
    for child in children:
        if child.poll() is None:
            os.killpg(child.pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    for child in children:
        try:
            child.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            os.killpg(child.pid, signal.SIGKILL)
            child.wait()
    for child in children:
        # A warm-shut-down worker's pool children may outlive it briefly: sweep the group.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(child.pid, signal.SIGKILL)
