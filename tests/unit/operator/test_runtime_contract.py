"""The contract between the operator's builders and the workerpool runtime, checked with no
cluster: every command, argument and exec probe the builders write is parsed by the runtime's
real CLI (click) and validated by its real checks; the environment, expanded as the kubelet
expands it, is read by the runtime's real settings reader and means what the spec says; every
variable the builders set is one the runtime (or the kubelet's expansion) reads; and the
operator's queues and time zones are exactly the runtime's. A change on either side that the
other would refuse fails here, not in a crash-looping pod.

Runtime hooks used as they exist today: `worker_runtime.cli.cli` (the click group behind the
`workerpool` console script), `queues.parse_queue_list` (what `worker` applies to --queues)
and `settings.Settings.from_env`.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterator, Mapping
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

import click
import pytest
import yaml
from workerpool_operator import builders, profiles
from workerpool_operator.crd import pool_schema
from workerpool_operator.errors import SpecError
from workerpool_operator.model import PoolSpec
from workerpool_operator.spec import parse_pool
from workerpool_operator.values import is_redis_url

from tests.unit.operator.conftest import OWNER, spec_of
from worker_runtime.cli import cli
from worker_runtime.core.queues import QUEUES, UnknownQueueError, parse_queue_list
from worker_runtime.core.settings import Settings, SettingsError

ROOT = Path(__file__).resolve().parents[3]
SAMPLES = sorted((ROOT / "manifests" / "samples").glob("workerpool-*.yaml"))
APP_CONTAINERS = ("celery-worker", "celery-beat", "flower")
#: Set for libraries, not for the runtime: a writable home on a read-only root filesystem.
PLATFORM_ENV = frozenset({"HOME"})
SECRET_VALUE = "s3cr3t"  # what the kubelet would read from a secretKeyRef
EXTERNAL_URL = "redis://redis.example:6379/0"


def sample_pools() -> list[PoolSpec]:
    pools = []
    for path in SAMPLES:
        document = yaml.safe_load(path.read_text())
        pools.append(parse_pool(document["metadata"]["name"], "apps", document["spec"]))
    return pools


def matrix_pools() -> list[PoolSpec]:
    """Every environment, log format and level, with queue subsets, zones and an external
    Redis: the knobs that reach a command line or an environment variable."""
    pools = []
    queue_sets = [["low"], ["critical", "low"], ["low", "default", "critical"]]
    combos = itertools.product(
        ("preview", "production"), ("text", "json"), ("DEBUG", "WARNING"), queue_sets
    )
    for i, (environment, log_format, level, queues) in enumerate(combos):
        pools.append(parse_pool("shop", "apps", spec_of(
            environment=environment, logFormat=log_format, logLevel=level, queues=queues,
            concurrency=1 + i * 11, timezone=("UTC", "Europe/Berlin", "Asia/Kolkata")[i % 3],
            workerPackages=["shop.jobs", "billing.workers"][: 1 + i % 2],
            # Room for up to 254 processes of 32Mi (the concurrency rule, sizing.py).
            resources={"limits": {"memory": "8Gi"}},
        )))  # fmt: skip
    pools.append(parse_pool("shop", "apps", spec_of(redis={"external": {"secretName": "r"}})))
    pools.append(parse_pool("shop", "apps", spec_of(flower={"credentialsSecret": "ops"})))
    return pools


POOLS = sample_pools() + matrix_pools()


def app_containers(pool: PoolSpec) -> Iterator[tuple[str, dict[str, Any]]]:
    for obj in builders.build_children(pool, OWNER, {}):
        if obj["kind"] != "Deployment":
            continue
        for container in obj["spec"]["template"]["spec"]["containers"]:
            if container["name"] in APP_CONTAINERS:
                yield f"{obj['metadata']['name']}/{container['name']}", container


def cases() -> list[Any]:
    return [
        pytest.param(pool, container, id=f"{pool.environment}-{i}-{where}")
        for i, pool in enumerate(POOLS)
        for where, container in app_containers(pool)
    ]


def kubelet_env(container: Mapping[str, Any]) -> dict[str, str]:
    """The container's environment as the kubelet builds it: Secret keys read, `$(VAR)`
    replaced by variables defined earlier in the list, `$$` an escaped `$`."""
    env: dict[str, str] = {}
    for entry in container["env"]:
        if "valueFrom" in entry:
            ref = entry["valueFrom"]["secretKeyRef"]
            env[entry["name"]] = EXTERNAL_URL if ref["key"] == "url" else SECRET_VALUE
            continue

        def expand(match: re.Match[str]) -> str:
            if match.group(0) == "$$":
                return "$"
            return env.get(match.group(1), match.group(0))

        env[entry["name"]] = re.sub(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_]*)\)", expand, entry["value"])
    return env


def parse_cli(argv: list[str], env: Mapping[str, str], monkeypatch: pytest.MonkeyPatch) -> Any:
    """Parse argv exactly as `workerpool` would (options from the environment included),
    without running the command; returns the subcommand's click context."""
    for name in runtime_env_names():
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    (script,) = entry_points(group="console_scripts", name=argv[0])
    assert script.value == "worker_runtime.cli:main", "the image's command is the runtime's CLI"
    # The group has no options of its own: the first word names the subcommand.
    group_ctx = click.Context(cli, info_name=argv[0])
    found, command, rest = cli.resolve_command(group_ctx, argv[1:])
    assert command is not None, argv
    assert found is not None, argv
    return command.make_context(found, rest, parent=group_ctx)


def runtime_env_names() -> set[str]:
    """Every variable the runtime reads: its settings reader (recorded while it reads an empty
    environment) and every click option bound to an environment variable."""

    seen: set[str] = set()

    class Recording(dict[str, str]):
        def get(self, key: str, default: Any = None) -> Any:
            seen.add(key)
            return super().get(key, default)

        def __getitem__(self, key: str) -> str:
            seen.add(key)
            return super().__getitem__(key)

    recording = Recording()
    Settings.from_env(recording)
    return seen | set(click_env_names(cli))


def click_env_names(command: click.Command) -> Iterator[str]:
    for param in command.params:
        envvar = param.envvar
        if isinstance(envvar, str):
            yield envvar
        elif envvar:
            yield from envvar
    if isinstance(command, click.Group):
        for sub in command.commands.values():
            yield from click_env_names(sub)


@pytest.mark.parametrize(("pool", "container"), cases())
def test_every_command_and_probe_parses_with_the_runtimes_cli(
    pool: PoolSpec, container: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    env = kubelet_env(container)
    ctx = parse_cli(container["command"], env, monkeypatch)
    if ctx.info_name == "worker":
        assert parse_queue_list(ctx.params["queues"]) == tuple(
            q for q in QUEUES if q in pool.queues
        )
        assert ctx.params["concurrency"] == pool.concurrency
    if ctx.info_name == "flower":
        # What `workerpool flower` requires of --basic-auth before it starts.
        user, _, password = ctx.params["basic_auth"].partition(":")
        assert (user, password) != ("", "")
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        command = container[probe].get("exec", {}).get("command")
        if command is not None:
            assert parse_cli(command, env, monkeypatch).info_name == "health"


@pytest.mark.parametrize(("pool", "container"), cases())
def test_the_environment_is_read_by_the_runtime_as_the_spec_says(
    pool: PoolSpec, container: dict[str, Any]
) -> None:
    settings = Settings.from_env(kubelet_env(container))
    assert settings.worker_packages == pool.worker_packages
    assert (settings.timezone, settings.log_format) == (pool.timezone, pool.log_format)
    expected = EXTERNAL_URL if not pool.redis.managed else f"@{pool.name}-redis:6379/0"
    assert settings.broker_url.endswith(expected)
    assert settings.result_backend == settings.broker_url


@pytest.mark.parametrize(("pool", "container"), cases())
def test_every_variable_the_builders_set_is_read_by_the_runtime_or_expanded_into_one(
    pool: PoolSpec, container: dict[str, Any]
) -> None:
    del pool  # parametrised together with its container; only the container matters here
    read = runtime_env_names()
    values = " ".join(str(entry.get("value", "")) for entry in container["env"])
    for entry in container["env"]:
        name = entry["name"]
        helper = f"$({name})" in values  # only a part of another variable (kubelet expansion)
        assert name in read or helper or name in PLATFORM_ENV, f"nothing reads {name}"


def test_the_operators_queues_are_the_runtimes() -> None:
    assert profiles.DEFAULT_QUEUES == QUEUES
    queues = pool_schema()["properties"]["spec"]["properties"]["queues"]
    assert tuple(queues["items"]["enum"]) == QUEUES
    assert tuple(queues["default"]) == QUEUES


def accepts(check: Any, *errors: type[Exception]) -> bool:
    try:
        check()
    except errors:
        return False
    return True


@pytest.mark.parametrize(
    "queue", [*QUEUES, "urgent", "Critical", "default ", "", "low,default", "critical\n"]
)
def test_the_operator_accepts_a_queue_only_if_the_runtime_does(queue: str) -> None:
    operator = accepts(lambda: parse_pool("shop", "apps", spec_of(queues=[queue])), SpecError)
    runtime = accepts(lambda: parse_queue_list(queue), UnknownQueueError)
    # Stricter is allowed (one entry must be one queue name), looser never.
    assert runtime or not operator
    assert operator == (queue in QUEUES)


@pytest.mark.parametrize(
    "zone",
    ["UTC", "Europe/Berlin", "America/Argentina/Buenos_Aires", "Etc/GMT+5", "Mars/Olympus",
     "Europe/berlin", "Europe", "../etc/passwd"],
)  # fmt: skip
def test_the_operator_and_the_runtime_agree_on_every_time_zone(zone: str) -> None:
    runtime = accepts(lambda: Settings.from_env({"WORKERPOOL_TIMEZONE": zone}), SettingsError)
    operator = accepts(lambda: parse_pool("shop", "apps", spec_of(timezone=zone)), SpecError)
    assert operator == runtime


@pytest.mark.parametrize(
    "url",
    ["redis://redis:6379/0", "rediss://:pw@redis.example:6380/1", "unix:///run/redis.sock",
     "http://redis:6379", "redis:6379", "REDIS://x", " redis://x"],
)  # fmt: skip
def test_the_operator_and_the_runtime_agree_on_an_external_redis_url(url: str) -> None:
    runtime = accepts(lambda: Settings.from_env({"CELERY_BROKER_URL": url}), SettingsError)
    assert is_redis_url(url) == runtime


def test_the_operator_reads_the_redis_keys_the_runtime_and_kombu_write() -> None:
    """load.py may not import the runtime, so its copies of the key names are pinned here."""
    from kombu.transport.redis import Channel
    from workerpool_operator import load

    from worker_runtime.core.keys import Keys
    from worker_runtime.core.queues import QUEUES as RUNTIME_QUEUES
    from worker_runtime.process import load_report
    from worker_runtime.store import job_stats

    keys = Keys()
    assert keys.dead == load.DEAD
    assert load.LOAD_KEY == load_report.LOAD_KEY
    assert load.JOBS_KEY == job_stats.JOBS_KEY
    assert load.DURATION_KEY == job_stats.DURATION_KEY
    runtime_buckets = (*(job_stats.bucket(b) for b in job_stats.BUCKETS), "+Inf")
    assert runtime_buckets == load.DURATION_BUCKETS
    assert Channel.unacked_key == load.UNACKED
    for queue in RUNTIME_QUEUES:
        assert load.schedule_key(queue) == keys.schedule(queue)


def test_a_worker_report_is_read_by_the_operator_as_written() -> None:
    import json
    from time import time

    from workerpool_operator.load import load_from

    from worker_runtime.process.load_report import LOAD_KEY

    written: dict[str, str] = {}

    class Recorder:
        def hset(self, key: str, field: str, value: str) -> None:
            assert key == LOAD_KEY
            written[field] = value

    from worker_runtime.process.load_report import report

    now = time()
    report(Recorder(), "shop-worker-1", {"default": {"reserved": 2, "running": 1}}, now, 15)  # type: ignore[arg-type]
    replies: list[object] = [0, None, 0] * 3 + [
        0,
        0,
        {k.encode(): v.encode() for k, v in written.items()},
        {},
        {},
    ]
    found = load_from(("critical", "default", "low"), replies, now + 1, {})
    assert found.queues["default"].reserved == 2
    assert found.queues["default"].running == 1
    assert json.loads(written["shop-worker-1"])["expires"] == now + 15
