"""The operations kit: off by default in both installs (the ServiceMonitor and PrometheusRule
need CRDs a cluster may lack), the same objects from kustomize (manifests/monitoring) and the
chart (values.monitoring), and a dashboard that asks only for metrics the operator serves."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from workerpool_operator.metrics import PoolMetrics

from tests.controlplane.harness import ControlPlane
from tests.integration.bundle.bundle import kustomize, render_chart
from tests.unit.operator.test_metrics import LOAD, STATUS

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[3]
KIT = ROOT / "manifests" / "monitoring"
CHART_FILES = ROOT / "charts" / "workerpool-operator" / "files"
ALL_ON = {
    "monitoring": {
        "serviceMonitor": {"enabled": True},
        "prometheusRule": {"enabled": True},
        "grafanaDashboard": {"enabled": True},
    }
}
KIT_KINDS = {"ServiceMonitor", "PrometheusRule", "ConfigMap", "Service"}


def by_kind(objects: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {o["kind"]: o for o in objects if o["kind"] in KIT_KINDS}


def test_the_default_installs_have_no_monitoring_objects(control_plane: ControlPlane) -> None:
    assert not by_kind(render_chart())
    assert not by_kind(kustomize(control_plane, ROOT / "manifests"))


def test_kustomize_and_the_chart_render_the_same_kit(control_plane: ControlPlane) -> None:
    kit = by_kind(kustomize(control_plane, KIT))
    chart = by_kind(render_chart(ALL_ON))
    assert set(kit) == set(chart) == KIT_KINDS
    assert chart["PrometheusRule"]["spec"] == kit["PrometheusRule"]["spec"]
    assert chart["Service"]["spec"]["ports"] == kit["Service"]["spec"]["ports"]
    assert chart["Service"]["spec"]["selector"] == kit["Service"]["spec"]["selector"]
    assert chart["ServiceMonitor"]["spec"] == kit["ServiceMonitor"]["spec"]
    for found in (kit, chart):
        dashboard = found["ConfigMap"]
        assert dashboard["metadata"]["labels"]["grafana_dashboard"] == "1"
        (text,) = dashboard["data"].values()
        assert json.loads(text) == json.loads((KIT / "workerpool-dashboard.json").read_text())
    # The ServiceMonitor finds the Service, which finds the operator pod's metrics port.
    selector = kit["ServiceMonitor"]["spec"]["selector"]["matchLabels"]
    assert selector.items() <= kit["Service"]["metadata"]["labels"].items()
    assert kit["Service"]["spec"]["ports"][0]["targetPort"] == "metrics"
    # The pools' `namespace` label survives the scrape (tests/e2e/test_real_node_autoscale.py
    # proves it with a real Prometheus): not renamed exported_namespace.
    (endpoint,) = kit["ServiceMonitor"]["spec"]["endpoints"]
    assert endpoint["honorLabels"] is True


def test_the_charts_files_are_copies_of_the_manifests() -> None:
    rule = yaml.safe_load((KIT / "prometheusrule.yaml").read_text())
    assert yaml.safe_load((CHART_FILES / "prometheusrule-spec.yaml").read_text()) == rule["spec"]
    dashboard = "workerpool-dashboard.json"
    assert (CHART_FILES / dashboard).read_bytes() == (KIT / dashboard).read_bytes()


def test_the_dashboard_queries_only_served_metrics() -> None:
    metrics = PoolMetrics()
    metrics.update("apps", "shop", STATUS, LOAD)
    served = {sample.name for family in metrics.collect() for sample in family.samples}
    dashboard = json.loads((KIT / "workerpool-dashboard.json").read_text())
    exprs = [t["expr"] for panel in dashboard["panels"] for t in panel["targets"]]
    used = {name for expr in exprs for name in re.findall(r"\bworkerpool_\w+", expr)}
    assert used
    assert used <= served, used - served
