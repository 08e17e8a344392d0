"""`workerpool render` refuses what a cluster refuses, with one line naming the field.

The table (bad_specs.py) is shared with the integration test that runs it against a real
kube-apiserver and the operator."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner
from workerpool_operator.cli import render_command
from workerpool_operator.crd import pool_schema
from workerpool_operator.errors import SpecError
from workerpool_operator.schema import validate

from tests.unit.operator.bad_specs import BAD_SPECS, BadSpec

ROOT = Path(__file__).resolve().parents[3]


def render(document: Any) -> Any:
    return CliRunner().invoke(render_command, ["-"], input=yaml.safe_dump(document))


def test_the_table_is_long_enough_and_covers_every_kind_of_check() -> None:
    assert len(BAD_SPECS) >= 25
    assert {row.by for row in BAD_SPECS} == {"schema", "cel", "operator"}
    assert len({row.id for row in BAD_SPECS}) == len(BAD_SPECS)


@pytest.mark.parametrize("row", BAD_SPECS, ids=lambda row: row.id)
def test_render_refuses_each_bad_spec_in_one_line_naming_the_field(row: BadSpec) -> None:
    result = render(row.manifest())
    assert result.exit_code == 1, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    (line,) = result.output.splitlines()
    assert line.startswith(f"Error: <stdin>: {row.field}")


@pytest.mark.parametrize("row", BAD_SPECS, ids=lambda row: row.id)
def test_the_schema_check_alone_catches_exactly_the_schema_rows(row: BadSpec) -> None:
    """Proves which layer refuses each row, as in the cluster: CEL and operator rows pass the
    schema (the Python mirror of the CEL rules and the operator's checks catch them)."""
    if row.by == "schema":
        with pytest.raises(SpecError) as caught:
            validate(row.manifest(), pool_schema(), "")
        assert caught.value.path.startswith(row.field)
    else:
        validate(row.manifest(), pool_schema(), "")


def cel_rules(schema: Any) -> list[str]:
    found = []
    if isinstance(schema, dict):
        found += [rule["rule"] for rule in schema.get("x-kubernetes-validations") or []]
        for value in schema.values():
            found += cel_rules(value)
    elif isinstance(schema, list):
        for value in schema:
            found += cel_rules(value)
    return found


def test_every_cel_rule_of_the_crd_has_a_row_proving_its_python_mirror() -> None:
    fragments = [row.cel for row in BAD_SPECS if row.by == "cel"]
    uncovered = [rule for rule in cel_rules(pool_schema()) if not any(f in rule for f in fragments)]
    assert not uncovered, "add a row with by='cel' (and mirror it in spec.py) for: " + repr(
        uncovered
    )


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ("[1, 2]\n", "Error: <stdin>: document 1: must be an object, got list"),
        ("apiVersion: workerpool.dev/v1alpha1\nkind: WorkerPool\nmetadata: [x]\nspec: {}\n",
         "Error: <stdin>: metadata: must be of type object, got array"),
        ("apiVersion: workerpool.dev/v1alpha1\nkind: WorkerPool\n"
         "spec: {image: a, workerPackages: [a]}\n",
         "Error: <stdin>: metadata.name: Required value"),
        ("a: [\n", "Error: <stdin>: not YAML"),
    ],
)  # fmt: skip
def test_malformed_documents_get_one_line_never_a_traceback(document: str, message: str) -> None:
    result = CliRunner().invoke(render_command, ["-"], input=document)
    assert result.exit_code == 1
    assert result.output.splitlines()[0].startswith(message)
    assert "Traceback" not in result.output


def test_the_packaged_crd_is_the_manifests_crd() -> None:
    packaged = ROOT / "operator" / "workerpool_operator" / "crd" / "workerpool.dev_workerpools.yaml"
    original = ROOT / "manifests" / "crd" / "workerpool.dev_workerpools.yaml"
    assert packaged.read_bytes() == original.read_bytes(), f"re-copy {original} to {packaged}"
