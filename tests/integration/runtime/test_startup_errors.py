"""`workerpool worker` refuses to start on a broken set-up, with one line naming the culprit.

Each case writes a small worker package under tmp_path (on PYTHONPATH) and runs the real CLI.
Nothing may be skipped silently: a worker that cannot run must stop the worker from starting.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from dataclasses import dataclass, field
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

PACKAGE = "startup_case"


@dataclass(frozen=True)
class Case:
    #: Module name (inside PACKAGE) -> source.
    modules: dict[str, str] = field(default_factory=dict)
    packages: str = PACKAGE
    args: tuple[str, ...] = ()
    env: dict[str, str] = field(default_factory=dict)
    #: Every fragment must appear in the error line.
    names: tuple[str, ...] = ()


def worker(name: str, body: str = "") -> str:
    return textwrap.dedent(f"""\
        from worker_runtime import Worker


        class {name}(Worker):
            {body or "pass"}

            @classmethod
            def perform(cls) -> None:
                pass
        """)


CASES = {
    "a-package-that-does-not-exist": Case(
        packages="no_such_workers_pkg",
        names=("WORKER_PACKAGES", "'no_such_workers_pkg'", "not importable"),
    ),
    "a-module-that-raises-on-import": Case(
        modules={"broken": 'raise RuntimeError("cannot reach the billing API")'},
        names=(f"'{PACKAGE}.broken'", "RuntimeError: cannot reach the billing API"),
    ),
    "a-module-whose-dependency-is-missing": Case(
        modules={"needs_dep": "import no_such_dependency_xyz"},
        names=(f"'{PACKAGE}.needs_dep'", "No module named 'no_such_dependency_xyz'"),
    ),
    "a-bad-cron-string": Case(
        modules={"nightly": worker("Nightly", 'cron_schedule = "61 * * * *"')},
        names=(f"{PACKAGE}.nightly.Nightly", "'61 * * * *'"),
    ),
    "a-seconds-cron-string-while-seconds-are-off": Case(
        modules={"often": worker("Often", 'cron_schedule = "*/5 * * * * *"')},
        env={"WORKERPOOL_CRON_SECONDS": "false"},
        names=(f"{PACKAGE}.often.Often", "'*/5 * * * * *'", "6 fields"),
    ),
    "a-queue-that-is-not-one-of-the-three": Case(
        modules={"pager": worker("Pager", 'queue = "urgent"')},
        names=(f"{PACKAGE}.pager.Pager", "'urgent'"),
    ),
    "two-workers-with-the-same-task-name": Case(
        modules={
            "first": worker("SendMail", 'task_name = "mail.send"'),
            "second": worker("SendMailToo", 'task_name = "mail.send"'),
        },
        names=("'mail.send'", f"{PACKAGE}.first.SendMail", f"{PACKAGE}.second.SendMailToo"),
    ),
    "a-cron-string-that-never-fires": Case(
        modules={"feb30": worker("Feb30", 'cron_schedule = "0 2 30 2 *"')},
        names=(f"{PACKAGE}.feb30.Feb30", "'0 2 30 2 *'", "never fires"),
    ),
    "a-cron-overlap-timeout-of-zero": Case(
        modules={"held": worker("Held", "cron_overlap_timeout = 0")},
        names=(f"{PACKAGE}.held.Held", "cron_overlap_timeout", "got 0"),
    ),
    "a-nan-backoff-cap": Case(
        modules={"nan": worker("NaNCap", 'retry_backoff_max = float("nan")')},
        names=(f"{PACKAGE}.nan.NaNCap", "retry_backoff_max", "finite", "nan"),
    ),
    "a-cron-worker-whose-perform-needs-arguments": Case(
        modules={
            "report": textwrap.dedent("""\
                from worker_runtime import Worker


                class Report(Worker):
                    cron_schedule = "0 2 * * *"

                    @classmethod
                    def perform(cls, user_id: int) -> None:
                        pass
                """)
        },
        names=(f"{PACKAGE}.report.Report", "cron worker", "perform(user_id"),
    ),
    "a-perform-without-classmethod": Case(
        modules={
            "plain": textwrap.dedent("""\
                from worker_runtime import Worker


                class Plain(Worker):
                    def perform(self, user_id: int) -> None:
                        pass
                """)
        },
        names=(f"{PACKAGE}.plain.Plain", "perform must be a @classmethod"),
    ),
    # Before: raw tracebacks from redis-py/kombu, and `/abc` silently meant database 0.
    "a-broker-url-whose-port-is-not-a-number": Case(
        modules={"fine": worker("Fine")},
        env={"CELERY_BROKER_URL": "redis://localhost:notaport/0"},
        names=("CELERY_BROKER_URL='redis://localhost:notaport/0'", "port"),
    ),
    "a-broker-url-whose-database-is-not-a-number": Case(
        modules={"fine": worker("Fine")},
        env={"CELERY_BROKER_URL": "redis://localhost:6379/abc"},
        names=("CELERY_BROKER_URL='redis://localhost:6379/abc'", "database"),
    ),
    "two-broker-urls-glued": Case(
        modules={"fine": worker("Fine")},
        env={"CELERY_BROKER_URL": "redis://a:6379/0redis://b:6379/0"},
        names=("CELERY_BROKER_URL='redis://a:6379/0redis://b:6379/0'", "one URL"),
    ),
    "an-unknown-queue-on-the-command-line": Case(
        modules={"fine": worker("Fine")},
        args=("--queues", "critical,urgent"),
        names=("--queues", "'urgent'"),
    ),
}


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_worker_start_up_fails_with_one_line_naming_the_culprit(
    case: Case, env: dict[str, str], tmp_path: Path
) -> None:
    package = tmp_path / PACKAGE
    package.mkdir()
    (package / "__init__.py").write_text("")
    for module, source in case.modules.items():
        (package / f"{module}.py").write_text(source)

    done = subprocess.run(
        [sys.executable, "-m", "worker_runtime", "worker", "--concurrency=1", *case.args],
        env={**env, "WORKER_PACKAGES": case.packages, "PYTHONPATH": str(tmp_path), **case.env},
        capture_output=True,
        text=True,
        # A worker that started despite the error runs until this timeout fails the test.
        timeout=60,
        check=False,
    )

    assert done.returncode != 0, done.stdout + done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, f"expected one line, got:\n{done.stderr}"
    assert lines[0].startswith("Error: "), lines[0]
    for name in case.names:
        assert name in lines[0], f"{name!r} not named in: {lines[0]}"


#: Replaced by the URL of a port where nothing listens.
REDIS_DOWN = {"CELERY_BROKER_URL": "DOWN"}

TOOL_CASES = {
    "dead-list-with-redis-down": (
        ("dead", "list"),
        REDIS_DOWN,
        "cannot use Redis",
    ),
    "dead-retry-with-redis-down": (
        ("dead", "retry", "--all"),
        REDIS_DOWN,
        "cannot use Redis",
    ),
    "dead-purge-with-redis-down": (("dead", "purge"), REDIS_DOWN, "cannot use"),
    "scheduled-with-redis-down": (
        ("scheduled",),
        REDIS_DOWN,
        "cannot use Redis",
    ),
    "dead-list-with-a-bad-broker-url": (
        ("dead", "list"),
        {"CELERY_BROKER_URL": "http://example.com"},
        "CELERY_BROKER_URL",
    ),
    "dead-list-with-a-broker-url-naming-database-abc": (
        ("dead", "list"),
        {"CELERY_BROKER_URL": "redis://localhost:6379/abc"},
        "CELERY_BROKER_URL='redis://localhost:6379/abc'",
    ),
    "scheduled-with-a-bad-setting": (
        ("scheduled",),
        {"WORKERPOOL_DEAD_MAX_JOBS": "lots"},
        "WORKERPOOL_DEAD_MAX_JOBS='lots'",
    ),
    "health-with-a-bad-setting": (
        ("health", "--component=worker"),
        {"WORKERPOOL_TIMEZONE": "Mars/Olympus"},
        "WORKERPOOL_TIMEZONE='Mars/Olympus'",
    ),
    "flower-with-a-user-but-no-password": (
        ("flower",),
        {"FLOWER_BASIC_AUTH": "admin"},
        "FLOWER_BASIC_AUTH='admin'",
    ),
    "flower-with-a-bad-metrics-flag": (
        ("flower",),
        {"FLOWER_BASIC_AUTH": "a:b", "FLOWER_METRICS_PUBLIC": "maybe"},
        "FLOWER_METRICS_PUBLIC='maybe'",
    ),
}


@pytest.mark.parametrize(("args", "settings", "name"), TOOL_CASES.values(), ids=TOOL_CASES.keys())
def test_tool_commands_fail_with_one_line_and_no_traceback(
    args: tuple[str, ...], settings: dict[str, str], name: str, env: dict[str, str]
) -> None:
    from worker_runtime.local.embedded_redis import free_port

    down = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens there
    values = {key: down if value == "DOWN" else value for key, value in settings.items()}
    done = subprocess.run(
        [sys.executable, "-m", "worker_runtime", *args],
        env={**env, **values, "CELERY_RESULT_BACKEND": values.get("CELERY_BROKER_URL", "")},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert done.returncode == 1, done.stdout + done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, f"expected one line, got:\n{done.stderr}"
    assert lines[0].startswith("Error: "), lines[0]
    assert name in lines[0], lines[0]
