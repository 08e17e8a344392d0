"""The README's Argo CD health check, executed by a real Lua 5.1 interpreter against
WorkerPool objects whose status the operator's own status code computed.

Argo CD runs the script as the body of a function with the resource in the global `obj` and
reads the returned table's `status` and `message`; the wrapper here does the same.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from workerpool_operator.status import DeploymentObservation, Problem, compute_status

from tests.integration.bundle import lua, readme
from tests.integration.bundle.bundle import ROOT

pytestmark = pytest.mark.integration

SAMPLE = ROOT / "manifests" / "samples" / "workerpool-preview.yaml"
KEY = "resource.customizations.health.workerpool.dev_WorkerPool"
NOW = "2030-01-01T00:00:00Z"


@pytest.fixture(scope="module")
def lua51() -> Path:
    return lua.interpreter()


def health_script() -> str:
    (config,) = readme.fenced(readme.section(readme.README.read_text()), "yaml")
    script: str = yaml.safe_load(config)["data"][KEY]
    return script


def pool(status: dict[str, Any] | None, generation: int = 2) -> dict[str, Any]:
    obj: dict[str, Any] = yaml.safe_load(SAMPLE.read_text())
    obj["metadata"]["generation"] = generation
    if status is not None:
        obj["status"] = status
    return obj


def worker(ready: int, desired: int = 1) -> DeploymentObservation:
    return DeploymentObservation("worker", desired, 1, 1, desired, ready, desired, ready, None)


def status(observations: list[DeploymentObservation], problem: Problem | None = None) -> Any:
    return compute_status(
        pool_name="examples-preview", generation=2, environment="preview", desired_replicas=1,
        observations=observations, problem=problem, previous=None, now=NOW,
    )  # fmt: skip


def run_check(lua51: Path, obj: dict[str, Any], tmp_path: Path) -> tuple[str, str]:
    program = tmp_path / "check.lua"
    program.write_text(
        f"obj = {lua.literal(obj)}\n"
        f"local function check()\n{health_script()}\nend\n"
        "local hs = check()\n"
        'io.write(hs.status, "\\t", hs.message or "")\n'
    )
    result = subprocess.run([str(lua51), str(program)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    state, _, message = result.stdout.partition("\t")
    return state, message


CRASH = Problem("CrashLoopBackOff", "worker: container celery-worker of pod p CrashLoopBackOff")
CASES = [
    ("no status yet", pool(None), "Progressing", "Waiting for the operator"),
    ("spec not yet observed", pool(status([worker(1)]), generation=3), "Progressing",
     "The operator has not seen the latest spec yet"),
    ("ready", pool(status([worker(1)])), "Healthy", "ready: worker 1/1"),
    ("starting", pool(status([worker(0)])), "Progressing", "waiting for worker (0/1 ready)"),
    ("stalled", pool(status([worker(0)], CRASH)), "Degraded", CRASH.message),
]  # fmt: skip


@pytest.mark.parametrize(
    ("obj", "state", "message"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_argo_cd_reads_the_pools_health_from_its_conditions(
    lua51: Path, tmp_path: Path, obj: dict[str, Any], state: str, message: str
) -> None:
    assert run_check(lua51, obj, tmp_path) == (state, message)
