"""Pure checks of the deployment bundle's files: copies that must stay identical, documented
and closed chart values, current kustomize fields, justified RBAC rules, image Dockerfiles.
Rendering and applying them is tested in tests/integration/bundle."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[3]
MANIFESTS = ROOT / "manifests"
CHART = ROOT / "charts" / "workerpool-operator"
KUSTOMIZATIONS = sorted(MANIFESTS.rglob("kustomization.yaml"))
# Free-form string maps: their keys are the user's (labels, annotations, node labels).
OPEN_MAPS = {"#/definitions/stringMap", "/properties/global"}


def test_the_charts_crds_are_byte_identical_to_the_manifests_crds() -> None:
    source = sorted((MANIFESTS / "crd").glob("*.yaml"))
    source = [p for p in source if p.name != "kustomization.yaml"]
    copies = sorted((CHART / "crds").glob("*.yaml"))

    assert [p.name for p in copies] == [p.name for p in source]
    for original, copy in zip(source, copies, strict=True):
        assert copy.read_bytes() == original.read_bytes(), f"re-copy {original} to {copy}"


# -- values.yaml and values.schema.json -----------------------------------------------------


def test_every_key_of_values_yaml_has_a_comment_right_above_it() -> None:
    lines = (CHART / "values.yaml").read_text().splitlines()
    undocumented = [
        line.strip()
        for before, line in zip(["", *lines], lines, strict=False)
        if re.match(r"^\s*[A-Za-z][\w.-]*:", line) and not before.strip().startswith("#")
    ]

    assert undocumented == []


def schema_objects(node: Any, path: str = "#") -> Iterator[tuple[str, dict[str, Any]]]:
    """Every (JSON pointer, schema) of type object in the schema."""
    if isinstance(node, dict):
        if node.get("type") == "object":
            yield path, node
        for key, value in node.items():
            yield from schema_objects(value, f"{path}/{key}")
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from schema_objects(value, f"{path}/{index}")


def load_schema() -> dict[str, Any]:
    schema: dict[str, Any] = json.loads((CHART / "values.schema.json").read_text())
    return schema


def test_every_object_of_the_values_schema_rejects_unknown_keys() -> None:
    open_objects = [
        path
        for path, node in schema_objects(load_schema())
        if node.get("additionalProperties") is not False
        and not any(path.endswith(allowed.lstrip("#")) for allowed in OPEN_MAPS)
    ]

    assert open_objects == []


def test_the_open_maps_of_the_schema_take_strings_only() -> None:
    string_map = load_schema()["definitions"]["stringMap"]

    assert string_map["additionalProperties"] == {"type": "string"}


def resolve(schema: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    """Follow local `$ref`s (#/definitions/...)."""
    while "$ref" in node:
        target: dict[str, Any] = schema
        for part in node["$ref"].removeprefix("#/").split("/"):
            target = target[part]
        node = target
    return node


def undeclared(schema: dict[str, Any], node: dict[str, Any], values: Any, path: str) -> list[str]:
    """Keys of `values` the schema does not declare (the schema must describe every default)."""
    node = resolve(schema, node)
    if not isinstance(values, dict) or "properties" not in node:
        return []
    missing = [f"{path}.{key}" for key in values if key not in node["properties"]]
    for key, value in values.items():
        if key in node["properties"]:
            missing += undeclared(schema, node["properties"][key], value, f"{path}.{key}")
    return missing


def test_the_schema_declares_every_key_of_values_yaml() -> None:
    schema = load_schema()
    values = yaml.safe_load((CHART / "values.yaml").read_text())

    assert undeclared(schema, schema, values, "values") == []


def test_the_ci_values_files_are_documented_by_a_comment() -> None:
    for path in sorted((CHART / "ci").glob("*-values.yaml")):
        assert path.read_text().startswith("# "), path


# -- kustomize ------------------------------------------------------------------------------

CURRENT_FIELDS = {
    "apiVersion",
    "kind",
    "namespace",
    "labels",
    "resources",
    "patches",
    "configMapGenerator",  # current; the dashboard ConfigMap of manifests/monitoring
    "images",
    "components",
}


@pytest.mark.parametrize("path", KUSTOMIZATIONS, ids=lambda p: str(p.relative_to(ROOT)))
def test_kustomizations_use_current_fields_only(path: Path) -> None:
    fields = set(yaml.safe_load(path.read_text()))

    # Not bases/vars/commonLabels/patchesStrategicMerge/patchesJson6902: deprecated.
    assert fields <= CURRENT_FIELDS, fields - CURRENT_FIELDS


def test_the_samples_are_not_part_of_the_base() -> None:
    base = yaml.safe_load((MANIFESTS / "kustomization.yaml").read_text())

    assert "samples" not in " ".join(base["resources"])
    assert (MANIFESTS / "samples" / "kustomization.yaml").is_file()


# -- RBAC -----------------------------------------------------------------------------------

RULE_FILES = [
    MANIFESTS / "rbac" / "cluster_role.yaml",
    MANIFESTS / "overlays" / "namespaced" / "role.yaml",
    CHART / "templates" / "_helpers.tpl",
]


@pytest.mark.parametrize("path", RULE_FILES, ids=lambda p: p.name)
def test_every_rbac_rule_has_a_one_line_reason(path: Path) -> None:
    lines = path.read_text().splitlines()
    starts = [i for i, line in enumerate(lines) if re.match(r"^\s*- apiGroups:", line)]

    assert starts
    for i in starts:
        assert lines[i - 1].strip().startswith("# "), f"{path.name}:{i + 1} has no reason"
        assert not lines[i - 2].strip().startswith("#"), f"{path.name}:{i + 1}: one line only"


@pytest.mark.parametrize("path", RULE_FILES, ids=lambda p: p.name)
def test_no_rbac_rule_uses_a_wildcard(path: Path) -> None:
    rule_lines = [
        line
        for line in path.read_text().splitlines()
        if re.match(r"^\s*-?\s*(apiGroups|resources|verbs):", line)
    ]

    assert rule_lines
    assert not [line for line in rule_lines if "*" in line]


# -- images ---------------------------------------------------------------------------------

DOCKERFILES = [ROOT / "worker_runtime" / "Dockerfile", ROOT / "operator" / "Dockerfile"]


def instructions(path: Path) -> list[tuple[str, str]]:
    text = re.sub(r"\\\n", " ", path.read_text())
    found = []
    for line in text.splitlines():
        stripped = line.strip()
        if stripped and not stripped.startswith("#"):
            keyword, _, rest = stripped.partition(" ")
            found.append((keyword.upper(), rest.strip()))
    return found


def stages(path: Path) -> list[list[tuple[str, str]]]:
    found: list[list[tuple[str, str]]] = []
    for keyword, rest in instructions(path):
        if keyword == "FROM":
            found.append([])
        if found:
            found[-1].append((keyword, rest))
    return found


@pytest.mark.parametrize("path", DOCKERFILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_images_build_a_wheel_then_install_it_into_a_slim_stage(path: Path) -> None:
    builder, runtime = stages(path)

    assert builder[0][1].endswith(" AS builder")
    assert any(k == "RUN" and "pip wheel" in v for k, v in builder)
    assert runtime[0][1].endswith(" AS runtime")
    assert any(
        k == "RUN" and "pip install --no-index" in v and "from=builder" in v for k, v in runtime
    )
    assert re.search(r"python:3\.\d+-slim", path.read_text())


@pytest.mark.parametrize("path", DOCKERFILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_images_run_workerpool_as_uid_10001(path: Path) -> None:
    runtime = stages(path)[-1]

    assert ("USER", "10001:10001") in runtime
    # The operator's own command: `workerpool operator` without importing the job runtime.
    command = "workerpool-operator" if path.parent.name == "operator" else "workerpool"
    assert ("ENTRYPOINT", f'["{command}"]') in runtime
    assert any(k == "RUN" and "useradd" in v and "--uid 10001" in v for k, v in runtime)
    # Nothing is written at run time but /tmp (an emptyDir under a read-only root filesystem).
    env = " ".join(v for k, v in runtime if k == "ENV")
    assert "PYTHONDONTWRITEBYTECODE=1" in env
    assert "HOME=/tmp" in env


def test_the_runtime_image_puts_application_packages_on_the_path() -> None:
    runtime = stages(ROOT / "worker_runtime" / "Dockerfile")[-1]

    assert ("WORKDIR", "/app") in runtime
    assert "PYTHONPATH=/app" in " ".join(v for k, v in runtime if k == "ENV")
    assert "WORKERPOOL_STATE_DIR=/tmp/workerpool" in " ".join(v for k, v in runtime if k == "ENV")


def test_the_operator_image_installs_the_operator_extra() -> None:
    text = (ROOT / "operator" / "Dockerfile").read_text()

    assert '"workerpool[operator]"' in text
    assert "--liveness=http://0.0.0.0:8080/healthz" in text


def test_the_build_context_holds_what_the_dockerfiles_copy() -> None:
    ignore = (ROOT / ".dockerignore").read_text().splitlines()

    assert "**" in ignore  # everything not listed below is excluded
    for needed in ("!pyproject.toml", "!README.md", "!worker_runtime/"):
        assert needed in ignore
    assert "!operator/workerpool_operator/" in ignore
