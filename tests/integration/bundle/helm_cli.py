"""`helm` for the README test: the subset of Helm's CLI the README uses, on the real Helm
library (helm_python, Helm v4), so README commands run exactly as written without a helm
binary. Unknown flags are an error, never ignored, so the README cannot use an option this
shim would silently drop.

    python -m tests.integration.bundle.helm_cli install NAME CHART [-n NS] [--create-namespace]
        [--set K=V]... [-f FILE]... ; upgrade NAME CHART [...] [--reuse-values] ;
        uninstall NAME [-n NS] ; template NAME CHART [...] ; lint CHART [-f FILE]...

Reads KUBECONFIG like helm does.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import helm_python as helm


def merge(base: dict[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """Helm's value merging: maps merge key by key, everything else is replaced."""
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), dict):
            merged[key] = merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="helm")
    commands = top.add_subparsers(dest="command", required=True)

    def release_command(name: str, chart: bool = True) -> argparse.ArgumentParser:
        sub = commands.add_parser(name)
        sub.add_argument("release")
        if chart:
            sub.add_argument("chart")
            sub.add_argument("--set", action="append", default=[])
            sub.add_argument("-f", "--values", action="append", default=[])
        sub.add_argument("-n", "--namespace", default="default")
        return sub

    release_command("install").add_argument("--create-namespace", action="store_true")
    release_command("upgrade").add_argument("--reuse-values", action="store_true")
    release_command("template")
    release_command("uninstall", chart=False)
    lint = commands.add_parser("lint")
    lint.add_argument("chart")
    lint.add_argument("-f", "--values", action="append", default=[])
    return top


def values_of(args: argparse.Namespace) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for path in args.values:
        values = merge(values, helm.values_from_yaml(Path(path).read_text()))
    for expression in args.set:
        values = merge(values, helm.parse_set_string(expression))
    return values


def main(argv: Sequence[str]) -> int:
    args = parser().parse_args(argv)
    if args.command == "lint":
        report = helm.lint(args.chart, values_of(args), strict=True)
        for message in report["messages"]:
            print(f"[{message['severity']}] {message['path']}: {message['error']}")
        return 1 if report["errors"] else 0
    if args.command == "template":
        with helm.Chart.load(args.chart) as chart:
            rendered = chart.render(
                values_of(args), name=args.release, namespace=args.namespace, is_install=True
            )
        for path, text in sorted(rendered.items()):
            if not path.endswith("NOTES.txt") and text.strip():
                print(f"---\n# Source: {path}\n{text.strip()}")
        return 0
    with helm.Config(kubeconfig_path=os.environ.get("KUBECONFIG"), namespace=args.namespace) as c:
        if args.command == "install":
            release = c.install(
                args.chart,
                args.release,
                values_of(args),
                namespace=args.namespace,
                create_namespace=args.create_namespace,
            )
        elif args.command == "upgrade":
            release = c.upgrade(
                args.chart,
                args.release,
                values_of(args),
                namespace=args.namespace,
                reuse_values=args.reuse_values,
            )
        else:
            release = c.uninstall(args.release)
    print(json.dumps({k: v for k, v in release.items() if k != "manifest"}, default=str)[:2000])
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except helm.HelmError as error:
        print(f"Error: {error}", file=sys.stderr)
        sys.exit(1)
