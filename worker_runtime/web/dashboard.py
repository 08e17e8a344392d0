"""Flower as `workerpool flower` runs it: basic auth on every page, `/metrics` included.

Flower serves `/metrics` (Prometheus) without authentication even when basic auth is on, and
the page names every worker. Prometheus scrapes with basic auth just as well, so the default
here puts it behind the same credentials; `FLOWER_METRICS_PUBLIC=true` is the explicit opt-out
for clusters that protect the endpoint another way (a NetworkPolicy, a sidecar). Must not
start Flower: the CLI does.
"""

from __future__ import annotations

from collections.abc import Mapping

from worker_runtime.core.settings import SettingsError

METRICS_PUBLIC = "FLOWER_METRICS_PUBLIC"


def check_credentials(basic_auth: str) -> str:
    """Return `basic_auth` if it is user:password with both parts, else raise naming it."""
    user, sep, password = basic_auth.partition(":")
    if not basic_auth:
        raise SettingsError(
            "Flower runs with authentication: set FLOWER_BASIC_AUTH=user:password (or --basic-auth)"
        )
    if not sep or not user or not password:
        shown = f"{user}:***" if password else basic_auth
        raise SettingsError(
            f"FLOWER_BASIC_AUTH={shown!r} must be user:password with a non-empty user and password"
        )
    return basic_auth


def metrics_public(env: Mapping[str, str]) -> bool:
    raw = (env.get(METRICS_PUBLIC) or "").strip().lower()
    if raw in ("", "0", "false", "no"):
        return False
    if raw in ("1", "true", "yes"):
        return True
    raise SettingsError(f"{METRICS_PUBLIC}={raw!r} must be true or false")


def protect_metrics() -> None:
    """Make Flower's `/metrics` handler require the same login as its other pages."""
    import tornado.web
    from flower.views.monitor import Metrics

    if not getattr(Metrics.get, "_workerpool_protected", False):
        protected = tornado.web.authenticated(Metrics.get)
        protected._workerpool_protected = True  # type: ignore[attr-defined]
        Metrics.get = protected
