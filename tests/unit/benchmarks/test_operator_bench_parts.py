"""The operator benchmark's pure parts: it runs what the image and the Deployment run, and it
counts Redis work as deltas without its own INFO calls."""

from __future__ import annotations

from tests.benchmarks.operator_env import deployment_container, entrypoint
from tests.benchmarks.operator_load import Counters
from tests.integration.operator_process import local_args


def test_the_operator_runs_with_the_image_entrypoint_and_the_deployment_args() -> None:
    assert entrypoint() == "workerpool-operator"
    args = local_args(list(deployment_container()["args"]), 8081, 9091)
    assert args[0] == "operator"
    assert "--liveness=http://127.0.0.1:8081/healthz" in args
    assert "--metrics-port=9091" in args


def test_command_deltas_leave_out_commands_that_did_not_run() -> None:
    before = Counters({"hlen": 10, "llen": 30, "info": 1}, reads=50)
    after = Counters({"hlen": 12, "llen": 36, "info": 2, "ping": 0}, reads=53)
    delta = after.minus(before)
    assert delta.calls == {"hlen": 2, "llen": 6, "info": 1}
    assert delta.reads == 3
