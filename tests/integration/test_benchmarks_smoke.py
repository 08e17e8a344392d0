"""The benchmark runner's smoke mode still runs: every scenario, both systems, real processes.

Keeps `python -m tests.benchmarks` from rotting. Tiny sizes and one run, so nothing about
speed is asserted; a missed target is not a failure either. Only that the runner exits 0 and
its JSON carries a number for workerpool and for plain Celery in every row of every scenario.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
#: Scenario labels the runner writes (the operator scenario needs --with-operator).
SCENARIOS = {"1 enqueue", "2 bulk enqueue", "3 drain", "4 priority", "5 scheduled"}


def test_smoke_mode_reports_every_scenario_for_both_systems(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    proc = subprocess.run(
        [sys.executable, "-m", "tests.benchmarks", "--smoke", "--json", str(out)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=280,
        check=False,
    )
    assert proc.returncode == 0, f"stdout:\n{proc.stdout}\nstderr:\n{proc.stderr[-5000:]}"

    rows = json.loads(out.read_text())["results"]
    assert {row["scenario"] for row in rows} == SCENARIOS
    for row in rows:
        for system in ("workerpool", "celery"):
            value = row[system]
            where = f"{row['scenario']} / {row['metric']} / {system}"
            assert isinstance(value, int | float), f"{where}: {value!r}"
            assert math.isfinite(value), f"{where}: {value!r}"
            # A growth or a lag may be zero (ours grows by nothing); every other figure is a
            # rate, a latency or a cost, which must be positive.
            if not row["signed"]:
                assert value > 0, f"{where}: {value!r}"
    # The table went to stdout too.
    assert "workerpool" in proc.stdout
    assert "celery" in proc.stdout
