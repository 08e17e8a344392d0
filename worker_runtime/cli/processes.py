"""The commands that start processes in a container: `worker` (the supervisor of job slots),
`beat`, `flower`, and the `health` probe of the first two (the local stack `up` is local.py).

Must not read or change jobs: those are the job tools (jobs.py)."""

from __future__ import annotations

import os
import sys
import time

import click
import redis

from worker_runtime.cli.common import (
    loglevel_option,
    one_line_errors,
    packages_option,
    start,
)
from worker_runtime.core.queues import QUEUES, UnknownQueueError, parse_queue_list
from worker_runtime.core.settings import Settings, SettingsError
from worker_runtime.process.heartbeat import age, heartbeat_path
from worker_runtime.runtime import Runtime
from worker_runtime.store.eviction import EvictionPolicyError, check_eviction_policy

time_limit_option = click.option(
    "--time-limit",
    type=click.FloatRange(min=0),
    default=0,
    help="Seconds after which a job's slot is killed and the attempt fails (0: none); a "
    "job's own limit wins.",
)
soft_time_limit_option = click.option(
    "--soft-time-limit",
    type=click.FloatRange(min=0),
    default=0,
    help="Seconds after which SoftTimeLimitExceeded is raised in the job (0: none).",
)
max_tasks_option = click.option(
    "--max-tasks-per-child",
    type=click.IntRange(min=0),
    default=0,
    help="Replace a job slot after this many jobs (0: never).",
)
max_memory_option = click.option(
    "--max-memory-per-child",
    type=click.IntRange(min=0),
    default=0,
    help="Replace a job slot, after its job, once its resident memory exceeds this many KiB "
    "(0: never).",
)


@click.command()
@packages_option
@loglevel_option
@click.option(
    "--concurrency",
    "-c",
    type=click.IntRange(min=1),
    default=8,
    show_default=True,
    help="Jobs at once: one job slot (process) each.",
)
@click.option("--queues", "-Q", default=",".join(QUEUES), show_default=True)
@click.option(
    "--hostname",
    "-n",
    default=None,
    help="Node name NAME@HOST; slot i is NAME-i@HOST (default: slot-i@HOST).",
)
@time_limit_option
@soft_time_limit_option
@max_tasks_option
@max_memory_option
def worker(
    packages: str,
    loglevel: str,
    concurrency: int,
    queues: str,
    hostname: str | None,
    time_limit: float,
    soft_time_limit: float,
    max_tasks_per_child: int,
    max_memory_per_child: int,
) -> None:
    """Run `concurrency` job slots consuming the queues in strict priority order."""
    try:
        queue_list = parse_queue_list(queues)
    except UnknownQueueError as exc:
        raise click.ClickException(str(exc)) from exc
    # Worker modules are imported here, once: a broken one stops the pod with one line, and the
    # slots, forked after, share them.
    rt = start(packages, loglevel)
    _wait_for_redis(rt.redis, rt.settings.broker_url)
    _refuse_eviction(rt, "worker")
    from worker_runtime.process.supervisor import SlotOptions, Supervisor

    options = SlotOptions(
        queues=queue_list,
        loglevel=loglevel,
        hostname=hostname,
        time_limit=time_limit,
        soft_time_limit=soft_time_limit,
        max_tasks_per_child=max_tasks_per_child,
        max_memory_per_child=max_memory_per_child,
    )
    sys.exit(Supervisor(rt, concurrency, options).run())


#: Seconds between PINGs while a starting worker waits for Redis.
REDIS_RETRY = 2.0


def _wait_for_redis(client: redis.Redis, url: str) -> None:
    """Return once Redis answers a PING; log one line while it does not.

    A worker whose first connection fails goes through kombu's start-up retry, and on real
    pods whose Redis started after them that path sometimes left the worker "ready" but never
    fetching (until liveness restarted it). Waiting here means Celery connects only to a Redis
    that answers.
    """
    since: float | None = None
    while True:
        try:
            client.ping()
        except (redis.ConnectionError, redis.TimeoutError) as exc:
            if since is None:
                since = time.monotonic()
                where = f"{url.partition('://')[0]}://{url.rpartition('@')[2]}"
                click.echo(
                    f"worker: Redis at {where} is not reachable ({exc}); waiting for it, "
                    f"retrying every {REDIS_RETRY:.0f}s",
                    err=True,
                )
            time.sleep(REDIS_RETRY)
            continue
        if since is not None:
            click.echo(f"worker: Redis answered after {time.monotonic() - since:.0f}s", err=True)
        return


def _refuse_eviction(rt: Runtime, name: str) -> None:
    """One line and exit if Redis may evict jobs (store/eviction.py), unless allowed."""
    try:
        warning = check_eviction_policy(rt.redis, allow=rt.settings.allow_eviction)
    except EvictionPolicyError as exc:
        raise click.ClickException(f"{name}: {exc}") from exc
    except redis.RedisError:
        return  # not reachable yet (beat retries on its own): nothing to check against

    if warning:
        click.echo(f"{name}: warning: {warning}", err=True)


@click.command()
@packages_option
@loglevel_option
def beat(packages: str, loglevel: str) -> None:
    """Run cron schedules (exactly once per tick, safe with several beats) and dispatch
    scheduled jobs."""
    rt = start(packages, loglevel)
    _refuse_eviction(rt, "beat")
    from worker_runtime.process.beat import RedisScheduler

    rt.app.Beat(scheduler=RedisScheduler, loglevel=loglevel, quiet=True).run()


@click.command()
@loglevel_option
@click.option("--port", type=int, default=5555, show_default=True)
@click.option("--address", default="127.0.0.1", show_default=True)
@click.option(
    "--basic-auth",
    envvar="FLOWER_BASIC_AUTH",
    default="",
    help="user:password for Flower's basic auth [env: FLOWER_BASIC_AUTH]. Required.",
)
def flower(loglevel: str, port: int, address: str, basic_auth: str) -> None:
    """Run the Flower dashboard with the job pages, with basic authentication (on /metrics
    too, unless FLOWER_METRICS_PUBLIC=true)."""
    from worker_runtime.web import dashboard, pages

    try:
        dashboard.check_credentials(basic_auth)
        public = dashboard.metrics_public(os.environ)
        pages.install(os.environ)
    except SettingsError as exc:
        raise click.ClickException(str(exc)) from exc
    rt = start("", loglevel, discover=False)
    # Flower consumes nothing, and it picks its queue-length reader from the broker URL's
    # scheme, which must stay `redis://`: plain kombu transport here.
    rt.app.conf.broker_transport = None
    if not public:
        dashboard.protect_metrics()
    rt.app.start(["flower", f"--port={port}", f"--address={address}", f"--basic-auth={basic_auth}"])


#: Seconds `health` waits for Redis to connect and answer.
HEALTH_TIMEOUT = 3.0


@click.command()
@click.option("--component", type=click.Choice(["worker", "beat"]), required=True)
@click.option("--max-age", type=float, default=60.0, show_default=True)
@one_line_errors
def health(component: str, max_age: float) -> None:
    """Exit 0 if Redis answers and the component's heartbeat is fresh (for Kubernetes
    probes)."""
    settings = Settings.from_env()
    # Redis gone is a worker that cannot fetch and a beat that cannot fire, whatever their
    # heartbeat says. Short timeouts: the kubelet gives a probe 10 s.
    client = redis.Redis.from_url(
        settings.broker_url, socket_connect_timeout=HEALTH_TIMEOUT, socket_timeout=HEALTH_TIMEOUT
    )
    try:
        client.ping()  # a RedisError is one line (one_line_errors)
    finally:
        client.close()
    seconds = age(heartbeat_path(settings.state_dir, component))
    if seconds is None:
        raise click.ClickException(f"{component}: no heartbeat yet in {settings.state_dir}")
    if seconds > max_age:
        raise click.ClickException(
            f"{component}: last heartbeat {seconds:.0f}s ago (> {max_age:.0f}s)"
        )
    click.echo(f"{component}: ok (heartbeat {seconds:.1f}s ago, Redis answers)")
