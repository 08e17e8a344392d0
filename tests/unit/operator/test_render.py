"""`workerpool render`: the samples render with the same builders the operator uses."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner
from workerpool_operator.cli import operator_command, render_command
from workerpool_operator.crd import pool_schema
from workerpool_operator.render import PLACEHOLDER_UID, render_documents

ROOT = Path(__file__).resolve().parents[3]
SAMPLES = sorted((ROOT / "manifests" / "samples").glob("workerpool-*.yaml"))


def test_there_are_samples_for_both_environments() -> None:
    assert [p.name for p in SAMPLES] == ["workerpool-preview.yaml", "workerpool-production.yaml"]


@pytest.mark.parametrize("sample", SAMPLES, ids=lambda p: p.name)
def test_each_sample_renders_to_the_full_set_of_children(sample: Path) -> None:
    result = CliRunner().invoke(render_command, [str(sample)])
    assert result.exit_code == 0, result.output
    objects = list(yaml.safe_load_all(result.output))
    pool = yaml.safe_load(sample.read_text())["metadata"]["name"]
    kinds = {(o["kind"], o["metadata"]["name"]) for o in objects}
    assert {
        ("Secret", f"{pool}-redis"), ("Secret", f"{pool}-flower"),
        ("Service", f"{pool}-redis"), ("Deployment", f"{pool}-redis"),
        ("Service", f"{pool}-flower"), ("Deployment", f"{pool}-flower"),
        ("Deployment", f"{pool}-beat"), ("Deployment", f"{pool}-worker"),
    } <= kinds  # fmt: skip
    assert ("PersistentVolumeClaim", f"{pool}-redis") in kinds or "preview" in sample.name


def test_render_reads_stdin_and_keeps_a_given_uid() -> None:
    document = {
        "apiVersion": "workerpool.dev/v1alpha1", "kind": "WorkerPool",
        "metadata": {"name": "shop", "namespace": "apps", "uid": "1234"},
        "spec": {"image": "shop:1", "workerPackages": ["shop.jobs"]},
    }  # fmt: skip
    result = CliRunner().invoke(render_command, ["-"], input=yaml.safe_dump(document))
    assert result.exit_code == 0, result.output
    for obj in yaml.safe_load_all(result.output):
        assert obj["metadata"]["namespace"] == "apps"
        assert obj["metadata"]["ownerReferences"][0]["uid"] == "1234"


def test_render_explains_an_invalid_pool() -> None:
    document = (
        "apiVersion: workerpool.dev/v1alpha1\nkind: WorkerPool\n"
        "metadata: {name: shop}\nspec: {image: x}\n"
    )
    result = CliRunner().invoke(render_command, ["-"], input=document)
    assert result.exit_code == 1
    assert "spec.workerPackages: Required value" in result.output


def test_render_needs_a_worker_pool() -> None:
    result = CliRunner().invoke(render_command, ["-"], input="apiVersion: v1\nkind: ConfigMap\n")
    assert result.exit_code == 1
    assert "no WorkerPool document found" in result.output


def test_generated_secrets_are_rendered_with_a_placeholder_owner() -> None:
    document = {
        "apiVersion": "workerpool.dev/v1alpha1",
        "kind": "WorkerPool",
        "metadata": {"name": "shop"},
        "spec": {"image": "i", "workerPackages": ["p"]},
    }
    objects = render_documents([document], password=lambda: "pw", schema=pool_schema())
    assert objects[0]["metadata"]["ownerReferences"][0]["uid"] == PLACEHOLDER_UID
    assert objects[0]["metadata"]["namespace"] == "default"


def test_the_operator_command_needs_an_explicit_namespace_choice() -> None:
    result = CliRunner().invoke(operator_command, [])
    assert result.exit_code == 2
    assert "--namespace/-n (repeatable) or --all-namespaces" in result.output
    both = CliRunner().invoke(operator_command, ["-n", "a", "--all-namespaces"])
    assert both.exit_code == 2


def test_the_operator_command_refuses_a_resync_below_one_second() -> None:
    result = CliRunner().invoke(operator_command, ["-A", "--resync-seconds=0.1"])
    assert result.exit_code == 2
    assert "--resync-seconds" in result.output
