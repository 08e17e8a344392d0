"""The operator process of scenario 6, started as its image and its Deployment run it.

Owns two things a measured operator must share with the real one, or its RSS means little:
- its Python environment: the image installs `workerpool[operator]` and nothing else
  (operator/Dockerfile), while the dev venv also holds the test tools (the `kubernetes` client,
  pykube via pytest-kind), which Kopf imports whenever they are installed. So the operator runs
  from its own venv under `.venv/` with only that extra, rebuilt when pyproject.toml changes
  (editable: the code under test is this checkout's);
- its command line and environment: the image's ENTRYPOINT (operator/Dockerfile) with the args
  and env of `manifests/operator/deployment.yaml`, the liveness endpoint and the metrics port
  moved to free local ports.
Must not measure anything.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import Any

import psutil
import yaml

from tests.benchmarks.harness import REPO, BenchmarkError, progress
from tests.controlplane.harness import free_port
from tests.controlplane.waiting import wait_for
from tests.integration.operator_process import local_args

DEPLOYMENT = REPO / "manifests" / "operator" / "deployment.yaml"
DOCKERFILE = REPO / "operator" / "Dockerfile"
VENV_ROOT = REPO / ".venv"


def entrypoint() -> str:
    """The operator image's ENTRYPOINT (one console script, in exec form)."""
    for line in DOCKERFILE.read_text().splitlines():
        if line.startswith("ENTRYPOINT "):
            return str(json.loads(line.removeprefix("ENTRYPOINT "))[0])
    raise BenchmarkError(f"{DOCKERFILE}: no ENTRYPOINT")


def image_venv() -> Path:
    """The ENTRYPOINT script of a venv holding only `workerpool[operator]` (as the image)."""
    digest = hashlib.sha256((REPO / "pyproject.toml").read_bytes()).hexdigest()[:12]
    venv = VENV_ROOT / "operator-image"
    stamp = venv / f".installed-{digest}"
    script = venv / "bin" / entrypoint()
    if stamp.exists() and script.exists():
        return script
    progress("  installing workerpool[operator] alone into .venv/operator-image (as the image)")
    shutil.rmtree(venv, ignore_errors=True)
    # The base interpreter, not this venv's: a venv made from a venv inherits nothing anyway,
    # but `sys._base_executable` is what `python -m venv` itself would use.
    base = getattr(sys, "_base_executable", sys.executable)
    for command in (
        [base, "-m", "venv", str(venv)],
        [
            str(venv / "bin" / "python"),
            "-m",
            "pip",
            "install",
            "--quiet",
            "-e",
            f"{REPO}[operator]",
        ],
    ):
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise BenchmarkError(f"{' '.join(command[:4])} failed:\n{done.stderr[-2000:]}")
    stamp.touch()
    return script


def deployment_container() -> dict[str, Any]:
    document = yaml.safe_load(DEPLOYMENT.read_text())
    containers = document["spec"]["template"]["spec"]["containers"]
    return next(c for c in containers if c["name"] == "operator")


class OperatorProcess:
    """The image's ENTRYPOINT with the Deployment's args and env, from the image's venv."""

    def __init__(self, kubeconfig: Path, log: Path) -> None:
        container = deployment_container()
        self.port = free_port()
        self.metrics_port = free_port()
        self.log = log
        env = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith(("KUBERNETES_", "VIRTUAL_ENV", "PYTHON"))
        }
        #: The Deployment's own variables (named in the benchmark's notes).
        self.deployment_env = {str(e["name"]): str(e["value"]) for e in container.get("env") or []}
        env.update(self.deployment_env)
        env["KUBECONFIG"] = str(kubeconfig)
        args = local_args(list(container["args"]), self.port, self.metrics_port)
        with log.open("wb") as out:
            self.popen = subprocess.Popen(
                [str(image_venv()), *args],
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        wait_for(
            self._healthy, timeout=60, interval=0.1, message=lambda: f"operator: {self.tail()}"
        )

    def _healthy(self) -> bool:
        if self.popen.poll() is not None:
            raise BenchmarkError(f"operator exited with {self.popen.returncode}: {self.tail()}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/healthz", timeout=1):
                return True
        except OSError:
            return False

    def _processes(self) -> list[psutil.Process]:
        main = psutil.Process(self.popen.pid)
        return [main, *main.children(recursive=True)]

    def rss(self) -> int:
        return sum(p.memory_info().rss for p in self._processes())

    def cpu_seconds(self) -> float:
        return sum(sum(p.cpu_times()[:2]) for p in self._processes())

    def tail(self, chars: int = 3000) -> str:
        return self.log.read_text(errors="replace")[-chars:] if self.log.exists() else ""

    def stop(self) -> None:
        if self.popen.poll() is None:
            os.killpg(self.popen.pid, signal.SIGTERM)
            try:
                self.popen.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(self.popen.pid, signal.SIGKILL)
                self.popen.wait()
