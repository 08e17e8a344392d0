"""The fixtures come from tests/integration/conftest.py (`redis_server`, `redis_url`, `env`,
`rt`, `spawn`): one redis-server per session, a flushed database per test, and real
`workerpool worker`/`beat` processes killed with their process groups at teardown.

Cron workers for these tests live in `cronjobs/`, not in the shared jobs package: a beat fires
every cron worker it loads, so each test loads only the module its scenario needs.
"""

from __future__ import annotations

from collections.abc import Mapping

from tests.integration.conftest import Proc, Spawn

READY = {"worker": "slot(s) consuming", "beat": "beat: Starting"}


def start_together(
    spawn: Spawn, *commands: tuple[str, ...], extra_env: Mapping[str, str] | None = None
) -> list[Proc]:
    """Start processes side by side (start-up dominates on a busy machine), then wait until
    each is up."""
    procs = [spawn(*command, extra_env=extra_env, ready="") for command in commands]
    for proc, command in zip(procs, commands, strict=True):
        proc.wait_for_output(READY[command[0]], timeout=60)
    return procs
