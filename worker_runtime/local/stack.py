"""`workerpool up`: worker, beat and Flower on this machine, plus Redis when none is set.

Owns process supervision only: start the children (Redis, then worker, beat and Flower; ready
once each said so, output.py) and, on Ctrl-C or SIGTERM, stop them warmly: the worker first,
with SIGTERM to its main process only (its warm shutdown: it stops fetching and lets running
jobs finish, for at most `grace` seconds), then beat and Flower, and Redis last, so nothing that
still runs loses its Redis. A second Ctrl-C (or the end of the grace) is the worker's cold
shutdown, SIGQUIT: running jobs are stopped and requeued as lost attempts, not killed
unrecorded. Never leaves a process behind. Each child runs the same `workerpool` CLI a
container would, so local and cluster behave alike.

The folder `up` runs from is the project: its `.workerpool/` holds the embedded Redis's data
(queued and scheduled jobs survive a restart), the heartbeat files, the lock (claim.py) and the
record other commands find the stack by (record.py); the port and Flower login are reused.
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
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from worker_runtime.local import record
from worker_runtime.local.claim import StackLock, stop_orphan
from worker_runtime.local.embedded_redis import EmbeddedRedis, port_is_free
from worker_runtime.local.output import Relay

_PR_SET_PDEATHSIG = 1
#: After SIGQUIT, how long the worker gets to record and requeue its running jobs.
COLD_GRACE = 15.0
#: Beat and Flower stop in about a second; a second Ctrl-C does not cut this short.
OTHERS_GRACE = 10.0


@dataclass(frozen=True)
class StackOptions:
    packages: str
    concurrency: int
    flower_port: int
    flower_address: str
    loglevel: str
    #: `user:password` for Flower, already checked; None: the recorded one, or a new one.
    credentials: str | None
    #: Seconds running jobs get to finish after Ctrl-C/SIGTERM before the cold shutdown.
    grace: float = 60.0
    #: Where the embedded Redis keeps its data (relative: inside `folder`).
    redis_dir: Path = record.STATE_FOLDER / "redis"
    #: The project folder: its `.workerpool/` holds the record, lock, data and heartbeats.
    folder: Path = field(default_factory=Path.cwd)


def _die_with_parent() -> None:  # pragma: no cover - runs in the child before exec
    # If `up` itself is killed with SIGKILL it cannot stop its children; the kernel does.
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def _spawn(args: Sequence[str], env: Mapping[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "worker_runtime", *args],
        env=dict(env),
        stdin=subprocess.DEVNULL,
        # Through `up` (output.py): whole lines, and how `up` learns the child is ready.
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        # Own session: Ctrl-C reaches only `up`, which then stops children in order.
        start_new_session=True,
        preexec_fn=_die_with_parent if sys.platform == "linux" else None,
    )


def run_stack(options: StackOptions, out: IO[str] | None = None) -> int:
    """Run the stack until Ctrl-C/SIGTERM or until a child exits; the exit code for `up`."""
    folder = options.folder.absolute()
    relay = Relay(out)
    with StackLock(folder):
        previous = record.load(folder)
        orphan = stop_orphan(previous)
        if orphan is not None:
            relay.say(
                f"Stopped the embedded Redis (pid {orphan}) an `up` killed earlier left running"
            )
        return _Stack(options, folder, previous, relay).run()


class _Stack:
    def __init__(
        self,
        options: StackOptions,
        folder: Path,
        previous: record.StackRecord | None,
        relay: Relay,
    ) -> None:
        self.options = options
        self.folder = folder
        self.previous = previous
        self.relay = relay
        self.stopping = False
        self.hurry = False
        self.children: list[tuple[str, subprocess.Popen[bytes]]] = []

    def _request_stop(self, _signum: int, _frame: object) -> None:
        if self.stopping:
            self.hurry = True
        self.stopping = True

    def run(self) -> int:
        signal.signal(signal.SIGINT, self._request_stop)
        signal.signal(signal.SIGTERM, self._request_stop)
        env = dict(os.environ, WORKER_PACKAGES=self.options.packages, PYTHONUNBUFFERED="1")
        if not env.get("WORKERPOOL_STATE_DIR"):
            # Not the machine-wide /tmp/workerpool: two projects' stacks keep apart.
            env["WORKERPOOL_STATE_DIR"] = str(self.folder / record.STATE_FOLDER / "state")
        redis_server = self._maybe_start_redis(env)
        stack = self._record(env, redis_server)
        try:
            self._start_and_watch(env, stack)
        finally:
            self._stop_all()
            if redis_server is not None:
                redis_server.stop()
                self.relay.say("stopped Redis")
            record.save(self.folder, stack.stopped())
        codes = [child.returncode for _, child in self.children]
        return 0 if all(code in (0, -signal.SIGTERM) for code in codes) else 1

    def _maybe_start_redis(self, env: dict[str, str]) -> EmbeddedRedis | None:
        """Start the embedded Redis and point `env` at it, unless a broker is already set."""
        if env.get("CELERY_BROKER_URL"):
            return None
        port = self.previous.redis_port if self.previous else None
        if port is not None and not port_is_free(port):
            self.relay.say(f"Port {port}, where Redis ran last time, is taken; using another")
            port = None
        data_dir = self.folder / self.options.redis_dir
        redis_server = EmbeddedRedis(port=port, data_dir=data_dir).start()
        env["CELERY_BROKER_URL"] = env["CELERY_RESULT_BACKEND"] = redis_server.url()
        self.relay.say(
            f"Started embedded Redis at {redis_server.url()} with its data in "
            f"{data_dir} (no CELERY_BROKER_URL was set)"
        )
        return redis_server

    def _record(
        self, env: dict[str, str], redis_server: EmbeddedRedis | None
    ) -> record.StackRecord:
        login = self.options.credentials or (self.previous.flower_auth if self.previous else None)
        user, password = (login or f"admin:{secrets.token_urlsafe(12)}").split(":", 1)
        env["FLOWER_BASIC_AUTH"] = f"{user}:{password}"
        kept_port = self.previous.redis_port if self.previous else None
        stack = record.StackRecord(
            broker_url=env["CELERY_BROKER_URL"],
            result_backend=env.get("CELERY_RESULT_BACKEND") or env["CELERY_BROKER_URL"],
            flower_user=user,
            flower_password=password,
            flower_url=f"http://{self.options.flower_address}:{self.options.flower_port}",
            state_dir=env["WORKERPOOL_STATE_DIR"],
            redis_port=redis_server.port if redis_server else kept_port,
            redis_pid=redis_server.pid if redis_server else None,
        )
        record.save(self.folder, stack)
        return stack

    def _start_and_watch(self, env: dict[str, str], stack: record.StackRecord) -> None:
        opts = self.options
        level = f"--loglevel={opts.loglevel}"
        self._start("worker", ["worker", f"--concurrency={opts.concurrency}", level], env)
        self._start("beat", ["beat", level], env)
        flower = [f"--port={opts.flower_port}", f"--address={opts.flower_address}"]
        self._start("flower", ["flower", *flower], env)
        announced = False
        while not self.stopping:
            for name, child in self.children:
                if child.poll() is not None:
                    self.relay.say(f"{name} exited with status {child.returncode}; stopping")
                    self.stopping = True
            if not announced and self.relay.ready("worker", "beat", "flower"):
                announced = True
                self._announce(stack)
            time.sleep(0.2)

    def _start(self, name: str, args: list[str], env: Mapping[str, str]) -> None:
        child = _spawn(args, env)
        self.children.append((name, child))
        assert child.stdout is not None
        self.relay.follow(name, child.stdout)

    def _announce(self, stack: record.StackRecord) -> None:
        opts, say = self.options, self.relay.say
        where = record.record_path(self.folder).relative_to(self.folder)
        slots = f"{opts.concurrency} job slot(s) for {opts.packages}"
        say(f"workerpool up: ready ({slots}, beat, Flower)")
        login = f"user: {stack.flower_user}  password: {stack.flower_password}"
        say(f"Flower: {stack.flower_url}  {login}")
        say(f"Broker: {stack.broker_url}")
        say(f"  `workerpool` commands run from this folder use it ({where}); your own code:")
        say(f"  export CELERY_BROKER_URL={stack.broker_url}")
        say("Press Ctrl-C to stop.")

    def _stop_all(self) -> None:
        if self.children:
            self.relay.say(
                f"Stopping: running jobs get up to {self.options.grace:.0f}s to finish "
                "(Ctrl-C again to stop them now; they are requeued)"
            )
        for name, child in self.children:
            # In start order: worker, beat, Flower; each finished before the next is asked.
            if name == "worker":
                _stop_worker(child, self.options.grace, lambda: self.hurry, self.relay.say)
            else:
                _stop(name, child, self.relay.say)
        self.relay.join()


def _wait(child: subprocess.Popen[bytes], seconds: float, hurry: Callable[[], bool]) -> bool:
    """Wait for `child` for up to `seconds` or until `hurry()`; whether it exited."""
    deadline = time.monotonic() + seconds
    while child.poll() is None and time.monotonic() < deadline and not hurry():
        time.sleep(0.1)
    return child.poll() is not None


def _stop_worker(
    child: subprocess.Popen[bytes],
    grace: float,
    hurry: Callable[[], bool],
    say: Callable[[str], None],
) -> None:
    """SIGTERM to the supervisor (warm: its slots finish their jobs); at the end of `grace` or
    on a second Ctrl-C, SIGQUIT (cold: it stops the running jobs and requeues them as lost
    attempts, exit 1); SIGKILL only if even that does not end it."""
    if child.poll() is None:
        child.send_signal(signal.SIGTERM)
    if not _wait(child, grace, hurry):
        why = "Ctrl-C again" if hurry() else f"jobs still running after {grace:.0f}s"
        say(f"{why}: cold shutdown of the worker, running jobs are requeued")
        with contextlib.suppress(ProcessLookupError):
            child.send_signal(signal.SIGQUIT)
        if not _wait(child, COLD_GRACE, lambda: False):
            say(f"worker did not stop within {COLD_GRACE:.0f}s of its cold shutdown; killing it")
    _finish("worker", child, say)


def _stop(name: str, child: subprocess.Popen[bytes], say: Callable[[str], None]) -> None:
    """SIGTERM to the main process only, SIGKILL to the group after OTHERS_GRACE."""
    if child.poll() is None:
        child.send_signal(signal.SIGTERM)
    if not _wait(child, OTHERS_GRACE, lambda: False):
        say(f"{name} did not stop within {OTHERS_GRACE:.0f}s; killing it")
    _finish(name, child, say)


def _finish(name: str, child: subprocess.Popen[bytes], say: Callable[[str], None]) -> None:
    """SIGKILL whatever is left of the child's group (a stopped worker's slots may outlive it
    briefly, a stuck child itself), then reap it."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(child.pid, signal.SIGKILL)
    child.wait()
    say(f"stopped {name} (status {child.returncode})")
