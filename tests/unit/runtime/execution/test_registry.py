"""Worker discovery: what it registers, and start-up errors that name their culprit."""

from __future__ import annotations

import itertools
import sys
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

import worker_runtime
from worker_runtime import WorkerDefinitionError, WorkerDiscoveryError, WorkerRegistry
from worker_runtime.core.settings import Settings

_names = itertools.count()
MakePackage = Callable[..., str]


@pytest.fixture
def make_package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[MakePackage]:
    """make_package(mod_a="source", ...) writes a uniquely named package; returns its name."""
    monkeypatch.syspath_prepend(str(tmp_path))
    created: list[str] = []

    def make(**modules: str) -> str:
        name = f"wp_test_pkg_{next(_names)}"
        root = tmp_path / name
        root.mkdir()
        (root / "__init__.py").write_text("")
        for module, source in modules.items():
            (root / f"{module}.py").write_text(textwrap.dedent(source))
        created.append(name)
        return name

    yield make
    for name in list(sys.modules):
        if any(name == p or name.startswith(f"{p}.") for p in created):
            del sys.modules[name]


@pytest.fixture
def runtime_settings() -> None:
    worker_runtime.configure(Settings())


GOOD = """
    from worker_runtime import Worker

    class Base(Worker):
        queue = "critical"

    class SendReceipt(Base):
        @classmethod
        def perform(cls, order_id: int) -> None: ...

    class Nightly(Worker):
        cron_schedule = "0 2 * * *"

        @classmethod
        def perform(cls) -> None: ...
"""


@pytest.mark.usefixtures("runtime_settings")
def test_registry_registers_one_task_per_concrete_worker_and_its_cron(
    make_package: MakePackage,
) -> None:
    package = make_package(jobs=GOOD)
    workers = WorkerRegistry.initialize([package])

    assert set(workers) == {f"{package}.jobs.SendReceipt", f"{package}.jobs.Nightly"}
    assert workers[f"{package}.jobs.SendReceipt"].queue == "critical"  # inherited
    app = worker_runtime.current().app
    assert f"{package}.jobs.SendReceipt" in app.tasks
    assert [w.task_name for w in WorkerRegistry.cron_workers()] == [f"{package}.jobs.Nightly"]


@pytest.mark.usefixtures("runtime_settings")
def test_a_missing_package_is_named() -> None:
    with pytest.raises(WorkerDiscoveryError, match="'no_such_pkg_xyz' is not importable"):
        WorkerRegistry.initialize(["no_such_pkg_xyz"])


@pytest.mark.usefixtures("runtime_settings")
def test_a_module_that_fails_to_import_is_named_with_its_error(make_package: MakePackage) -> None:
    package = make_package(ok=GOOD, broken="import json\nraise RuntimeError('db url missing')\n")
    with pytest.raises(WorkerDiscoveryError) as info:
        WorkerRegistry.initialize([package])
    assert f"worker module '{package}.broken' failed to import" in str(info.value)
    assert "RuntimeError: db url missing" in str(info.value)


@pytest.mark.usefixtures("runtime_settings")
def test_a_broken_import_inside_a_module_is_not_mistaken_for_a_missing_package(
    make_package: MakePackage,
) -> None:
    package = make_package(needs="import not_installed_dependency_xyz\n")
    with pytest.raises(WorkerDiscoveryError, match=f"'{package}.needs' failed to import"):
        WorkerRegistry.initialize([package])


@pytest.mark.usefixtures("runtime_settings")
def test_duplicate_task_names_name_both_classes(make_package: MakePackage) -> None:
    source = """
        from worker_runtime import Worker

        class {cls}(Worker):
            task_name = "billing.charge"

            @classmethod
            def perform(cls) -> None: ...
    """
    package = make_package(a=source.format(cls="ChargeA"), b=source.format(cls="ChargeB"))
    with pytest.raises(WorkerDiscoveryError) as info:
        WorkerRegistry.initialize([package])
    message = str(info.value)
    assert "duplicate task name 'billing.charge'" in message
    assert f"{package}.a.ChargeA" in message
    assert f"{package}.b.ChargeB" in message


@pytest.mark.usefixtures("runtime_settings")
def test_a_bad_cron_string_names_the_worker_and_expression(make_package: MakePackage) -> None:
    package = make_package(
        jobs="""
        from worker_runtime import Worker

        class Report(Worker):
            cron_schedule = "0 25 * * *"

            @classmethod
            def perform(cls) -> None: ...
        """
    )
    with pytest.raises(WorkerDiscoveryError) as info:
        WorkerRegistry.initialize([package])
    assert f"{package}.jobs.Report" in str(info.value)
    assert "'0 25 * * *'" in str(info.value)


@pytest.mark.usefixtures("runtime_settings")
def test_seconds_level_cron_needs_the_test_mode_setting(make_package: MakePackage) -> None:
    package = make_package(
        jobs="""
        from worker_runtime import Worker

        class Tick(Worker):
            cron_schedule = "*/2 * * * * *"

            @classmethod
            def perform(cls) -> None: ...
        """
    )
    with pytest.raises(WorkerDiscoveryError, match="has 6 fields"):
        WorkerRegistry.initialize([package])
    worker_runtime.configure(Settings(cron_seconds=True))
    assert f"{package}.jobs.Tick" in WorkerRegistry.initialize([package])


@pytest.mark.usefixtures("runtime_settings")
def test_no_configured_packages_is_an_error() -> None:
    with pytest.raises(WorkerDiscoveryError, match="WORKER_PACKAGES"):
        WorkerRegistry.initialize()


@pytest.mark.parametrize(
    ("attribute", "message"),
    [
        ('queue = "urgent"', "queue 'urgent' is not one of critical, default, low"),
        ("max_retries = -1", "max_retries must be an int >= 0"),
        ('retry_backoff = "yes"', "retry_backoff must be True or False"),
        ("retry_backoff_max = 0", "retry_backoff_max must be a positive, finite number"),
        ('cron_schedule = "every day"', "cron_schedule 'every day' has 2 fields"),
        ('cron_misfire = "all"', "cron_misfire must be 'skip' or 'run_once'"),
        ('cron_overlap = "maybe"', "cron_overlap must be 'allow' or 'forbid'"),
    ],
)
def test_bad_class_attributes_fail_at_class_definition(attribute: str, message: str) -> None:
    source = textwrap.dedent(
        f"""
        from worker_runtime import Worker

        class Bad(Worker):
            {attribute}

            @classmethod
            def perform(cls) -> None: ...
        """
    )
    with pytest.raises(WorkerDefinitionError) as info:
        exec(compile(source, "<worker>", "exec"), {"__name__": "jobs"})
    assert message in str(info.value)
    assert "jobs.Bad" in str(info.value)


@pytest.mark.usefixtures("runtime_settings")
def test_a_definition_error_found_during_discovery_names_the_module(
    make_package: MakePackage,
) -> None:
    package = make_package(
        jobs="""
        from worker_runtime import Worker

        class Urgent(Worker):
            queue = "urgent"

            @classmethod
            def perform(cls) -> None: ...
        """
    )
    with pytest.raises(WorkerDiscoveryError) as info:
        WorkerRegistry.initialize([package])
    assert f"worker module '{package}.jobs'" in str(info.value)
    assert f"{package}.jobs.Urgent: queue 'urgent'" in str(info.value)
