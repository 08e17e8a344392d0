"""The local stack's plumbing: the embedded Redis started from a relative folder and, when it
cannot start, its own words in one line; `health` against a Redis that is gone; and the record
`up` keeps in `.workerpool/`: the README's `workerpool up --packages myapp.workers`, commands in
a second shell that find the stack, one `up` per folder, and the Redis a SIGKILLed `up` leaves
behind, stopped by the next `up`, which keeps the port and login."""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
import redis

import worker_runtime
from tests.controlplane.waiting import wait_for
from tests.integration.runtime.up_processes import (
    CONFIGURED,
    alive,
    descendants,
    leave_nothing,
)
from worker_runtime.core.settings import Settings
from worker_runtime.local import record
from worker_runtime.local.embedded_redis import EmbeddedRedis, RedisStartError, free_port

pytestmark = pytest.mark.integration

README = Path(__file__).parents[3] / "README.md"
WORKERPOOL = str(Path(sys.executable).with_name("workerpool"))


def test_the_embedded_redis_starts_from_a_relative_data_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # `up`'s default, `.workerpool/redis`: Redis changes into --dir before it opens --logfile.
    monkeypatch.chdir(tmp_path)
    with EmbeddedRedis(data_dir=Path(".workerpool/redis")) as server:
        assert redis.Redis(port=server.port).ping()
    assert (tmp_path / ".workerpool/redis/redis.log").exists()


def test_a_redis_that_cannot_start_says_why_in_one_line(tmp_path: Path) -> None:
    # A configuration error: Redis says it on its stdout, before any log file is open.
    with pytest.raises(RedisStartError) as refused:
        EmbeddedRedis(databases=0, data_dir=tmp_path / "a").start()
    assert "FATAL CONFIG FILE ERROR" in str(refused.value)
    assert "'databases \"0\"'" in str(refused.value)
    assert "\n" not in str(refused.value)

    # A failure after start-up: Redis says it in its log.
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(RedisStartError) as busy:
            EmbeddedRedis(port=port, data_dir=tmp_path / "b").start()
    assert "Address already in use" in str(busy.value)
    assert "\n" not in str(busy.value)


def _health(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [WORKERPOOL, "health", "--component=worker"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_health_fails_in_one_line_when_redis_is_gone_though_the_heartbeat_is_fresh(
    env: dict[str, str],
) -> None:
    heartbeat = Path(env["WORKERPOOL_STATE_DIR"]) / "worker.heartbeat"
    heartbeat.parent.mkdir(parents=True)
    heartbeat.touch()
    assert _health(env).returncode == 0

    down = f"redis://127.0.0.1:{free_port()}/0"
    gone = _health({**env, "CELERY_BROKER_URL": down, "CELERY_RESULT_BACKEND": down})
    assert gone.returncode == 1, gone
    assert gone.stderr.strip().splitlines() == [gone.stderr.strip()], gone.stderr
    assert gone.stderr.startswith(f"Error: cannot use Redis at {down}"), gone.stderr


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A folder holding the README's worker example as `myapp/workers.py`."""
    folder = tmp_path / "project"
    (folder / "myapp").mkdir(parents=True)
    (folder / "myapp" / "__init__.py").write_text("")
    define = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)[0]
    (folder / "myapp" / "workers.py").write_text(define)
    return folder


def _readme_up_command() -> list[str]:
    """The README's command for running your own workers."""
    found = re.search(r"^workerpool up --packages \S+$", README.read_text(), flags=re.M)
    assert found, "README.md no longer shows `workerpool up --packages ...`"
    return shlex.split(found.group(0))


class Stack:
    """`workerpool up` run from a folder with nothing configured."""

    def __init__(self, folder: Path, env: dict[str, str], flower_port: int) -> None:
        self.folder = folder
        self.env = env
        self.log = folder.parent / "up.log"
        self.flower_port = flower_port
        self.started: list[subprocess.Popen[bytes]] = []

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [WORKERPOOL, *args],
            cwd=self.folder,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    def up(self) -> tuple[subprocess.Popen[bytes], str]:
        """Start `up`, wait for its ready lines; the process and its output since start."""
        command = [WORKERPOOL, *_readme_up_command()[1:]]
        offset = self.log.stat().st_size if self.log.exists() else 0
        with self.log.open("ab") as out:
            process = subprocess.Popen(
                [*command, "--concurrency=1", f"--flower-port={self.flower_port}"],
                cwd=self.folder,
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        self.started.append(process)

        def output() -> str:
            return self.log.read_bytes()[offset:].decode(errors="replace")

        wait_for(
            lambda: "Press Ctrl-C to stop." in output() or process.poll() is not None,
            timeout=90,
            message="`up` to say it is ready",
        )
        assert "workerpool up: ready" in output(), output()[-3000:]
        return process, output()


@pytest.fixture
def stack(project: Path, env: dict[str, str]) -> Iterator[Stack]:
    clean = {name: value for name, value in env.items() if name not in CONFIGURED}
    clean.pop("WORKERPOOL_STATE_DIR")
    made = Stack(project, clean, free_port())
    yield made
    for process in made.started:
        leave_nothing(process)
    stale = record.load(project)
    if stale is not None and stale.redis_pid is not None:
        try:
            if "redis-server" in " ".join(psutil.Process(stale.redis_pid).cmdline()):
                os.kill(stale.redis_pid, signal.SIGKILL)
        except psutil.NoSuchProcess:
            pass


def _gone(pid: int) -> bool:
    try:
        return not alive([psutil.Process(pid)])
    except psutil.NoSuchProcess:
        return True


def _broker(output: str) -> str:
    found = re.search(r"^Broker: (redis://127\.0\.0\.1:\d+/0)$", output, flags=re.M)
    assert found, output[-3000:]
    return found.group(1)


def _login(output: str) -> tuple[str, str]:
    found = re.search(r"user: (\S+)  password: (\S+)", output)
    assert found, output[-3000:]
    return found.group(1), found.group(2)


def test_up_runs_your_workers_is_found_from_its_folder_and_keeps_port_and_login(
    stack: Stack, project: Path
) -> None:
    first, output = stack.up()
    broker, login = _broker(output), _login(output)
    record_file = project / ".workerpool" / "stack.json"
    assert record_file.stat().st_mode & 0o777 == 0o600
    recorded = json.loads(record_file.read_text())
    assert (recorded["broker_url"], recorded["flower_password"]) == (broker, login[1])

    sys.path.insert(0, str(project))
    try:
        from myapp.workers import MyBackgroundWorker  # type: ignore[import-not-found]

        rt = worker_runtime.configure(Settings.from_env({"CELERY_BROKER_URL": broker}))
        try:
            done = MyBackgroundWorker.perform_async(user_id=5, data={})
            assert done.get(timeout=60) == {"user_id": 5, "status": "completed"}
            MyBackgroundWorker.perform_in(3600, user_id=6, data={})
        finally:
            rt.close()
    finally:
        sys.path.remove(str(project))
        sys.modules.pop("myapp.workers", None)
        sys.modules.pop("myapp", None)
    # The job's own log line names it.
    assert f"MyBackgroundWorker[{done.id}]: Processing user 5" in stack.log.read_text()

    # A second shell in the folder, nothing exported: the commands find the stack.
    scheduled = stack.run("scheduled")
    assert re.search(r"^default\s+1\s", scheduled.stdout, flags=re.M), scheduled
    assert stack.run("health", "--component=worker").returncode == 0
    second = stack.run("up")
    assert second.returncode == 1, second
    assert second.stderr.strip() == (
        f"Error: another `workerpool up` (pid {first.pid}) runs from this folder; stop it "
        "first, or run this one from another folder"
    )

    # Killed hard: its children die with it (parent-death signal) but Redis, in its own
    # session and holding the jobs, stays.
    orphan = recorded["redis_pid"]
    running = descendants(first.pid)
    os.kill(first.pid, signal.SIGKILL)
    first.wait()
    wait_for(
        lambda: [line for line in alive(running) if "redis-server" not in line] == [],
        timeout=30,
        message=lambda: f"the killed up's children to die: {alive(running)}",
    )
    assert redis.Redis.from_url(broker).info("server")["process_id"] == orphan

    # The next `up` stops that Redis and starts its own on the same port with the same data;
    # the Flower login is the same too.
    again, output = stack.up()
    assert f"Stopped the embedded Redis (pid {orphan})" in output
    assert (_broker(output), _login(output)) == (broker, login)
    wait_for(lambda: _gone(orphan), timeout=10, message="the orphaned Redis to be gone")
    assert re.search(r"^default\s+1\s", stack.run("scheduled").stdout, flags=re.M)

    os.kill(again.pid, signal.SIGTERM)
    assert again.wait(timeout=90) == 0, stack.log.read_text()[-3000:]
    stopped = stack.run("health", "--component=worker")
    assert stopped.returncode == 1
    assert "is `workerpool up` running?" in stopped.stderr, stopped.stderr
    assert len(stopped.stderr.strip().splitlines()) == 1, stopped.stderr
