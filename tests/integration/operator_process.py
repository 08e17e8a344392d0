"""`workerpool operator …` as a real local subprocess, for every test that needs the operator.

Owns starting it with its liveness endpoint on a free local port, waiting until that endpoint
answers (what the Deployment's probe asks), and stopping it with SIGTERM (then SIGKILL) for
its whole process group. Restartable: `start()` after `stop()` picks a new port. Must not
know which WorkerPools or RBAC a test uses.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Self

from tests.controlplane.harness import free_port
from tests.controlplane.waiting import wait_for


def local_args(args: Sequence[str], port: int, metrics_port: int = 0) -> list[str]:
    """`args` with the liveness endpoint and the metrics port moved to free local ports."""
    moved = []
    for arg in args:
        if arg.startswith("--liveness="):
            arg = f"--liveness=http://127.0.0.1:{port}/healthz"
        elif arg.startswith("--metrics-port="):
            arg = f"--metrics-port={metrics_port}"
        moved.append(arg)
    return moved


class OperatorProcess:
    def __init__(self, args: Sequence[str], kubeconfig: Path, log_path: Path) -> None:
        """`args` follow the `workerpool-operator` command, e.g. the operator Deployment's args."""
        self.args = list(args)
        self.kubeconfig = kubeconfig
        self.log_path = log_path
        self.port = 0
        self.metrics_port = 0
        self.process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    def start(self) -> Self:
        assert self.process is None, "already running"
        # The operator image's ENTRYPOINT (operator/Dockerfile).
        script = shutil.which("workerpool-operator", path=str(Path(sys.executable).parent))
        assert script is not None, "the `workerpool-operator` console script is not installed"
        self.port = free_port()
        self.metrics_port = free_port()
        env = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith("KUBERNETES_")  # never fall back to in-cluster config
        }
        env.update(KUBECONFIG=str(self.kubeconfig), PYTHONUNBUFFERED="1")
        self._log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [script, *local_args(self.args, self.port, self.metrics_port)],
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # its own process group: stopped with everything it forks
        )
        wait_for(self._live, timeout=60, interval=0.1, message=self.describe)
        return self

    def _live(self) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            raise AssertionError(f"operator exited with {self.process.returncode}:\n{self.tail()}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/healthz", timeout=1):
                return True
        except OSError:
            return False

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)  # kopf stops gracefully on SIGTERM
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=5)
        self.process = None
        if self._log is not None:
            self._log.close()
            self._log = None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def tail(self, lines: int = 40) -> str:
        return "\n".join(self.log().splitlines()[-lines:])

    def describe(self) -> str:
        return f"the operator ({' '.join(self.args)}) to be live; log tail:\n{self.tail()}"
