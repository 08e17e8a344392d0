"""`workerpool operator` and `workerpool render`: click commands the runtime CLI loads through
the `workerpool.commands` entry points, and the `workerpool-operator` command that holds the
same two without the runtime CLI (the operator image's ENTRYPOINT): the `workerpool` command
imports the job runtime (Celery, kombu), about 16 MB of the operator's RSS it never uses.

Imports only click at module level: the runtime image has no kopf/kubernetes/pyyaml, and
loading these commands there must not break `workerpool worker`.
"""

from __future__ import annotations

from typing import IO

import click

HANDLER_THREADS = 16


@click.command("render")
@click.argument("file", type=click.File("r"))
def render_command(file: IO[str]) -> None:
    """Print the objects the operator would apply for the WorkerPool(s) in FILE ('-' = stdin).

    Generated Secrets are shown with throwaway passwords; the operator generates its own once.
    Without a cluster, hashes of referenced Secrets' data cannot be included.
    """
    import secrets

    import yaml

    from workerpool_operator.crd import pool_schema
    from workerpool_operator.errors import SpecError
    from workerpool_operator.render import render_documents

    try:
        documents = list(yaml.safe_load_all(file))
        objects = render_documents(documents, lambda: secrets.token_urlsafe(32), pool_schema())
    except yaml.YAMLError as error:
        raise click.ClickException(f"{file.name}: not YAML: {error}") from error
    except SpecError as error:
        raise click.ClickException(f"{file.name}: {error}") from error
    click.echo(yaml.safe_dump_all(objects, sort_keys=False), nl=False)


@click.command("operator")
@click.option(
    "-n",
    "--namespace",
    "namespaces",
    multiple=True,
    help="Watch WorkerPools in this namespace (repeatable; globs like 'team-*' work).",
)
@click.option("-A", "--all-namespaces", is_flag=True, help="Watch every namespace.")
@click.option(
    "--liveness",
    "liveness_endpoint",
    metavar="URL",
    help="Serve a health endpoint for the kubelet, e.g. http://0.0.0.0:8080/healthz.",
)
@click.option(
    "--resync-seconds",
    type=click.FloatRange(min=1),
    default=10.0,
    show_default=True,
    help="How often each pool is checked without a watch event (Secrets and pods are not watched).",
)
@click.option(
    "--metrics-port",
    type=click.IntRange(min=0, max=65535),
    default=0,
    show_default=True,
    help="Serve Prometheus metrics of every pool on this port (/metrics; the manifests use "
    "9090); 0 serves none.",
)
@click.option("-v", "--verbose", is_flag=True, help="Debug logging.")
def operator_command(
    namespaces: tuple[str, ...],
    all_namespaces: bool,
    liveness_endpoint: str | None,
    resync_seconds: float,
    metrics_port: int,
    verbose: bool,
) -> None:
    """Run the WorkerPool operator until interrupted.

    Runs standalone (no peering): deploy exactly one replica with the Recreate strategy.
    Two replicas would both reconcile; that is safe (server-side apply is idempotent) but
    wasteful. Kopf's peering is deliberately not used: replicas at equal priority freeze.
    """
    if bool(namespaces) == all_namespaces:
        raise click.UsageError("pass --namespace/-n (repeatable) or --all-namespaces, not both")
    import kopf

    from workerpool_operator import handlers  # registers the event handlers

    handlers.register_resync(resync_seconds)
    settings = kopf.OperatorSettings()
    # Exact names need no namespace discovery; globs do (and need the cluster-wide role).
    # Without it Kopf need not observe namespaces and CRDs, which a namespaced install's Role
    # does not allow (Kopf would retry those lists for about a minute before reconciling).
    settings.scanning.disabled = not all_namespaces and not any(
        ch in ns for ns in namespaces for ch in "*?["
    )
    # Handler threads: a pass mostly waits on the API server and Redis, so throughput grows with
    # threads; Kopf's default (CPUs + 4, counted on the node, not the pod's limit) made it and
    # the memory depend on the node's size. 16 evaluates 200 pools per 10 s resync on a loaded
    # 2-core machine (README "Benchmarks": the scale-up decision latency).
    settings.execution.max_workers = HANDLER_THREADS
    kopf.configure(verbose=verbose)
    kopf.run(
        settings=settings,
        standalone=True,
        clusterwide=all_namespaces,
        namespaces=namespaces,
        liveness_endpoint=liveness_endpoint,
        memo=kopf.Memo({handlers.METRICS_PORT_KEY: metrics_port}),
    )


@click.group("workerpool-operator")
def operator_cli() -> None:
    """The WorkerPool operator (`operator`) and its offline renderer (`render`): the same
    commands as `workerpool operator` / `workerpool render`, without the job runtime."""


operator_cli.add_command(operator_command)
operator_cli.add_command(render_command)


def main() -> None:
    """The `workerpool-operator` console script."""
    operator_cli()
