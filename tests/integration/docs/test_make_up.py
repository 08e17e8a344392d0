"""The README's first command, exactly as written, on a fresh copy of this repository.

`git clone` of this working tree (its committed HEAD, plus its uncommitted changes and new
files, so the test checks the code under test) into a temporary folder, then the command line
from README.md's "Two commands" block run there with nothing configured: it must create its own
`.venv` with the runtime only (no test tools), reach "ready" with the example workers, run a
job enqueued through the public API from another process, and stop on Ctrl-C with nothing left
behind. The only test that installs a virtualenv (a minute or two with pip's cache warm).
"""

from __future__ import annotations

import os
import re
import shlex
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.controlplane.waiting import wait_for
from tests.integration.runtime.up_processes import CONFIGURED, alive, descendants, leave_nothing
from worker_runtime.local.embedded_redis import port_is_free

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[3]
README = REPO / "README.md"
#: `workerpool up`'s default Flower port, which the README's command uses.
FLOWER_PORT = 5555
#: pip installs the runtime into the new .venv first: minutes on a loaded machine.
INSTALL_TIMEOUT = 600


def readme_make_up() -> list[str]:
    """The `make up` line of the README's "Two commands" block, without its comment."""
    section = README.read_text().split("## Two commands", 1)[1]
    block = re.search(r"```bash\n(.*?)```", section, flags=re.S)
    assert block, "README.md: no bash block under 'Two commands'"
    for line in block.group(1).splitlines():
        tokens = shlex.split(line, comments=True)
        if tokens[:2] == ["make", "up"]:
            return tokens
    raise AssertionError(f"README.md's first block has no `make up` line:\n{block.group(1)}")


def fresh_clone(target: Path) -> None:
    """`git clone` this working tree, then bring over what is not committed yet."""
    git = ["git", "-C", str(REPO)]
    subprocess.run(["git", "clone", "--quiet", str(REPO), str(target)], check=True, timeout=120)
    diff = subprocess.run(
        [*git, "diff", "HEAD", "--binary"], check=True, capture_output=True, timeout=60
    ).stdout
    if diff:
        subprocess.run(
            ["git", "-C", str(target), "apply", "--binary", "-"],
            input=diff,
            check=True,
            timeout=60,
        )
    untracked = subprocess.run(
        [*git, "ls-files", "--others", "--exclude-standard", "-z"],
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
    ).stdout
    for name in filter(None, untracked.split("\0")):
        (target / name).parent.mkdir(parents=True, exist_ok=True)
        (target / name).write_bytes((REPO / name).read_bytes())


def nothing_configured() -> dict[str, str]:
    """A shell with no broker, no packages, no login and no virtualenv of ours on PATH."""
    ours = str(Path(sys.executable).parent)
    env = {
        name: value
        for name, value in os.environ.items()
        if name not in (*CONFIGURED, "VIRTUAL_ENV", "WORKERPOOL_STATE_DIR", "PYTHONPATH")
    }
    env["PATH"] = os.pathsep.join(p for p in env.get("PATH", "").split(os.pathsep) if p != ours)
    return env


@pytest.fixture
def clone(tmp_path: Path) -> Path:
    target = tmp_path / "workerpool"
    fresh_clone(target)
    return target


@pytest.fixture
def make_up(clone: Path, tmp_path: Path) -> Iterator[tuple[subprocess.Popen[bytes], Path]]:
    command = readme_make_up()
    if not port_is_free(FLOWER_PORT):
        pytest.fail(f"port {FLOWER_PORT}, where the README's `make up` runs Flower, is taken")
    log = tmp_path / "make-up.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            command,
            cwd=clone,
            env=nothing_configured(),
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            # Its own process group, as a terminal's job: Ctrl-C goes to make and `up`.
            start_new_session=True,
        )
    yield process, log
    leave_nothing(process)


def test_the_readme_make_up_on_a_fresh_clone_runs_a_job_and_stops_on_ctrl_c(
    make_up: tuple[subprocess.Popen[bytes], Path], clone: Path
) -> None:
    process, log = make_up

    def said(text: str) -> bool:
        return text in log.read_text(errors="replace") or process.poll() is not None

    wait_for(
        lambda: said("Started embedded Redis"),
        timeout=INSTALL_TIMEOUT,
        message="the install and Redis",
    )
    wait_for(lambda: said("Press Ctrl-C to stop."), timeout=120, message="`up` to be ready")
    output = log.read_text()
    assert "workerpool up: ready" in output, output[-4000:]
    assert "worker_runtime.examples" in output
    broker = re.search(r"^Broker: (redis://127\.0\.0\.1:\d+/0)$", output, flags=re.M)
    assert broker, output[-4000:]

    # Only what running needs: none of the test tools.
    python = clone / ".venv" / "bin" / "python"
    tools = "import importlib.util as u; print([m for m in {} if u.find_spec(m)])"
    found = subprocess.run(
        [python, "-c", tools.format(["mypy", "ruff", "pytest", "kubernetes", "kopf"])],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert found.stdout.strip() == "[]", found

    # A job through the public API, from another process of the clone's .venv.
    enqueue = (
        "from worker_runtime.examples.data_processing_worker import DataProcessingWorker\n"
        "print(DataProcessingWorker.perform_async(7, {'from': 'readme'}).get(timeout=90))"
    )
    job = subprocess.run(
        [python, "-c", enqueue],
        env={**nothing_configured(), "CELERY_BROKER_URL": broker.group(1)},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert job.returncode == 0, job.stderr
    assert "'status': 'completed'" in job.stdout, job.stdout

    started = descendants(process.pid)
    assert any("redis-server" in " ".join(p.cmdline()) for p in started), started
    os.killpg(process.pid, signal.SIGINT)  # a terminal's Ctrl-C: make and `up`
    process.wait(timeout=120)
    wait_for(
        lambda: not alive(started),
        timeout=15,
        message=lambda: f"every process of `make up` to be gone; alive: {alive(started)}",
    )
    output = log.read_text()
    for stopped in ("stopped worker (status 0)", "stopped beat", "stopped flower", "stopped Redis"):
        assert stopped in output, output[-4000:]
