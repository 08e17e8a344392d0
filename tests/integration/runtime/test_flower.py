"""Flower, started by `workerpool flower`, always asks for credentials and sees the three queues."""

from __future__ import annotations

import subprocess
import sys

import pytest
import requests

from tests.controlplane.waiting import wait_for
from tests.integration.runtime.conftest import Spawn
from worker_runtime.core.queues import QUEUES
from worker_runtime.local.embedded_redis import free_port

pytestmark = pytest.mark.integration

CREDENTIALS = ("user", "pw")


def _flower(spawn: Spawn) -> str:
    port = free_port()
    spawn("flower", f"--port={port}", extra_env={"FLOWER_BASIC_AUTH": ":".join(CREDENTIALS)})
    return f"http://127.0.0.1:{port}"


def test_flower_refuses_requests_without_credentials_and_answers_with_them(
    spawn: Spawn,
) -> None:
    url = _flower(spawn)

    assert requests.get(f"{url}/api/workers", timeout=30).status_code == 401
    assert requests.get(f"{url}/api/workers", auth=("user", "wrong"), timeout=30).status_code == 401
    assert requests.get(f"{url}/api/workers", auth=CREDENTIALS, timeout=30).status_code == 200


def test_flower_lists_the_lengths_of_the_critical_default_and_low_queues(spawn: Spawn) -> None:
    spawn("worker", "--concurrency=1")
    url = _flower(spawn)

    def worker_queues() -> list[list[str]]:
        # refresh=1 makes Flower inspect the workers now instead of on its next poll.
        response = requests.get(f"{url}/api/workers?refresh=1", auth=CREDENTIALS, timeout=30)
        workers = response.json() if response.status_code == 200 else {}
        return [[q["name"] for q in info.get("active_queues", [])] for info in workers.values()]

    assert wait_for(worker_queues, timeout=60, message="Flower to see the worker") == [list(QUEUES)]

    def queue_lengths() -> dict[str, int] | None:
        response = requests.get(f"{url}/api/queues/length", auth=CREDENTIALS, timeout=30)
        if response.status_code != 200:
            return None
        return {q["name"]: q["messages"] for q in response.json()["active_queues"]}

    lengths = wait_for(queue_lengths, timeout=60, message="Flower to report queue lengths")
    assert lengths is not None
    assert sorted(lengths) == sorted(QUEUES)
    assert all(isinstance(count, int) for count in lengths.values()), lengths


def test_workerpool_flower_without_credentials_exits_saying_to_set_flower_basic_auth(
    env: dict[str, str],
) -> None:
    env = {name: value for name, value in env.items() if name != "FLOWER_BASIC_AUTH"}

    done = subprocess.run(
        [sys.executable, "-m", "worker_runtime", "flower", f"--port={free_port()}"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert done.returncode != 0
    assert "set FLOWER_BASIC_AUTH=user:password" in done.stderr, done.stderr


def test_metrics_need_the_same_credentials_as_every_other_page(spawn: Spawn) -> None:
    url = _flower(spawn)

    assert requests.get(f"{url}/metrics", timeout=30).status_code == 401
    assert requests.get(f"{url}/metrics", auth=("user", "wrong"), timeout=30).status_code == 401
    scraped = requests.get(f"{url}/metrics", auth=CREDENTIALS, timeout=30)
    assert scraped.status_code == 200
    assert "flower_" in scraped.text


def test_metrics_are_public_only_with_the_explicit_opt_out(spawn: Spawn) -> None:
    port = free_port()
    spawn(
        "flower",
        f"--port={port}",
        extra_env={"FLOWER_BASIC_AUTH": ":".join(CREDENTIALS), "FLOWER_METRICS_PUBLIC": "true"},
    )
    url = f"http://127.0.0.1:{port}"

    assert requests.get(f"{url}/metrics", timeout=30).status_code == 200
    assert requests.get(f"{url}/api/workers", timeout=30).status_code == 401
