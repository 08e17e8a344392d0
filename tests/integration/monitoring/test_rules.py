"""The alert rules (manifests/monitoring/prometheusrule.yaml) checked by Prometheus's own
tools: `promtool check rules` parses and validates them, `promtool test rules` runs the cases
in rules_test.yaml (each alert fires on its trigger, stays silent on a healthy pool, and
resolves). promtool comes from Debian's `prometheus` package, installed here when missing."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from workerpool_operator.metrics import PoolMetrics

from tests.unit.operator.test_metrics import LOAD, STATUS

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[3]
RULE_OBJECT = ROOT / "manifests" / "monitoring" / "prometheusrule.yaml"
RULE_TESTS = Path(__file__).with_name("rules_test.yaml")
REQUIRED = {
    "WorkerPoolBacklogGrowing",
    "WorkerPoolOldestJobTooOld",
    "WorkerPoolDeadSetGrowing",
    "WorkerPoolWorkersMissing",
    "WorkerPoolStalled",
}


@pytest.fixture(scope="session")
def promtool() -> str:
    found = shutil.which("promtool")
    if found is None:
        install = ["apt-get", "install", "-y", "--no-install-recommends", "prometheus"]
        options = ["-o", "DPkg::Lock::Timeout=300"]
        env = {"DEBIAN_FRONTEND": "noninteractive", "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"}
        if subprocess.run([*install, *options], env=env, check=False).returncode != 0:
            subprocess.run(["apt-get", "update", *options], env=env, check=True)
            subprocess.run([*install, *options], env=env, check=True)
        found = shutil.which("promtool")
    assert found is not None, "Debian's prometheus package did not provide promtool"
    return found


def rule_spec() -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load(RULE_OBJECT.read_text())
    spec: dict[str, Any] = document["spec"]
    return spec


def rules() -> list[dict[str, Any]]:
    return [rule for group in rule_spec()["groups"] for rule in group["rules"]]


@pytest.fixture
def rule_dir(tmp_path: Path) -> Path:
    """The PrometheusRule's spec as a plain rule file, beside the test cases."""
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump(rule_spec()))
    shutil.copy(RULE_TESTS, tmp_path / "rules_test.yaml")
    return tmp_path


def run(promtool: str, *args: str, cwd: Path) -> str:
    result = subprocess.run(
        [promtool, *args], cwd=cwd, capture_output=True, text=True, check=False, timeout=120
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout + result.stderr


def test_promtool_accepts_the_rules(promtool: str, rule_dir: Path) -> None:
    out = run(promtool, "check", "rules", "rules.yaml", cwd=rule_dir)
    assert f"SUCCESS: {len(rules())} rules found" in out


def test_promtool_unit_tests_fire_stay_silent_and_resolve(promtool: str, rule_dir: Path) -> None:
    out = run(promtool, "test", "rules", "rules_test.yaml", cwd=rule_dir)
    assert "SUCCESS" in out
    tested = {case["alertname"] for test in yaml.safe_load(RULE_TESTS.read_text())["tests"]
              for case in test["alert_rule_test"]}  # fmt: skip
    assert tested == {rule["alert"] for rule in rules()}


def test_the_required_alerts_exist_with_runbook_text() -> None:
    alerts = {rule["alert"]: rule for rule in rules()}
    assert set(alerts) >= REQUIRED
    for name, rule in alerts.items():
        assert set(rule["annotations"]) == {"summary", "description", "runbook"}, name
        assert len(rule["annotations"]["runbook"]) > 100, name


def test_alerts_use_only_metrics_the_operator_serves() -> None:
    metrics = PoolMetrics()
    metrics.update("apps", "shop", STATUS, LOAD)
    served = {family.name for family in metrics.collect()}
    used = {name for rule in rules() for name in re.findall(r"\bworkerpool_\w+", rule["expr"])}
    assert used
    assert used <= served, used - served
