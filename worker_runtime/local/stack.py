"""`workerpool up`: worker, beat and Flower on this machine, plus Redis when none is set.

Owns process supervision only: start children in order and, on Ctrl-C or SIGTERM, stop them
warmly: the worker first, with SIGTERM to its main process only (Celery's warm shutdown: it
stops fetching and lets running jobs finish, for at most `grace` seconds, then it is killed),
then beat and Flower, and Redis last, so nothing that still runs loses its Redis. A second
Ctrl-C skips the grace. Never leaves a process behind. Each child runs the same `workerpool`
CLI a container would, so local and cluster behave alike. The embedded Redis keeps its data in
`redis_dir`, so queued and scheduled jobs survive a restart of `up`.
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
from pathlib import Path

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
    #: Seconds running jobs get to finish after Ctrl-C/SIGTERM before the worker is killed.
    grace: float = 60.0
    #: Where the embedded Redis keeps its data.
    redis_dir: Path = Path(".workerpool/redis")


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


def _maybe_start_redis(
    options: StackOptions, env: dict[str, str], echo: Callable[[str], None]
) -> EmbeddedRedis | None:
    """Start the embedded Redis and point `env` at it, unless a broker is already set."""
    if env.get("CELERY_BROKER_URL"):
        return None
    redis_server = EmbeddedRedis(data_dir=options.redis_dir).start()
    env["CELERY_BROKER_URL"] = env["CELERY_RESULT_BACKEND"] = redis_server.url()
    echo(
        f"Started embedded Redis at {redis_server.url()} with its data in "
        f"{options.redis_dir} (no CELERY_BROKER_URL was set)"
    )
    return redis_server


def run_stack(options: StackOptions, echo: Callable[[str], None]) -> int:
    stopping = False
    hurry = False

    def request_stop(_signum: int, _frame: object) -> None:
        nonlocal stopping, hurry
        if stopping:
            hurry = True
        stopping = True

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)

    env = dict(os.environ, WORKER_PACKAGES=options.packages)
    redis_server = _maybe_start_redis(options, env, echo)
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
        if children:
            echo(
                f"Stopping: running jobs get up to {options.grace:.0f}s to finish "
                "(Ctrl-C again to skip)"
            )
        for name, child in children:
            # In start order: worker, beat, Flower; each finished before the next is asked.
            _stop(name, child, options.grace if name == "worker" else 10.0, lambda: hurry, echo)
        if redis_server is not None:
            redis_server.stop()
            echo("stopped Redis")
    return 0 if all(child.returncode in (0, -signal.SIGTERM) for _, child in children) else 1


def _stop(
    name: str,
    child: subprocess.Popen[bytes],
    grace: float,
    hurry: Callable[[], bool],
    echo: Callable[[str], None],
) -> None:
    """SIGTERM to the main process only: its pool children keep running their jobs while it
    shuts down warmly (SIGTERM to the whole group would kill them at once). Then SIGKILL to
    the group after `grace`, or at once on a second Ctrl-C."""
    if child.poll() is None:
        child.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + grace
    while child.poll() is None and time.monotonic() < deadline and not hurry():
        time.sleep(0.1)
    if child.poll() is None:
        echo(f"{name} did not stop within {grace:.0f}s; killing it")
        with contextlib.suppress(ProcessLookupError):
            os.killpg(child.pid, signal.SIGKILL)
        child.wait()
    # A warm-shut-down worker's pool children may outlive it briefly: sweep the group.
    with contextlib.suppress(ProcessLookupError):
        os.killpg(child.pid, signal.SIGKILL)
    echo(f"stopped {name} (status {child.returncode})")
