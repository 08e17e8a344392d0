"""The frame of the job pages inside Flower: routes, the page base class, templates, CSRF and
the read-only mode. Each module of `web/views/` registers its handlers here with `route()`;
`install()` puts them into Flower's route list before the app is built.

Flower is a Tornado application whose `flower.urls.handlers` list is read when the app is
built and rewritten there for `--url_prefix`, so routes added beforehand get the prefix too.
Pages are rendered on the server (they show their data with JavaScript off) in Flower's own
look: templates extend Flower's `base.html`, and one template loader searches ours first, then
Flower's, so our `navbar.html` (Flower's tabs plus the job tabs) is the navbar of Flower's own
pages as well. Must not read or change Redis itself: page modules call `store/`.
"""

from __future__ import annotations

import functools
import importlib
import os
import pkgutil
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, ClassVar, TypeVar
from urllib.parse import urlencode

import tornado.ioloop
import tornado.template
import tornado.web
from flower.views import BaseHandler
from tornado.routing import URLSpec

from worker_runtime.core.settings import SettingsError
from worker_runtime.web import paging, slot_controls, views
from worker_runtime.web.paging import Pager

READ_ONLY = "WORKERPOOL_PAGES_READ_ONLY"
TEMPLATES = Path(__file__).parent / "templates"

#: The job tabs of the navbar, in Sidekiq's order: (route name, label, path).
JOB_TABS: tuple[tuple[str, str, str], ...] = (
    ("dashboard", "Dashboard", "/dashboard"),
    ("busy", "Busy", "/busy"),
    ("queues", "Queues", "/queues"),
    ("scheduled", "Scheduled", "/scheduled"),
    ("retries", "Retries", "/retries"),
    ("dead", "Dead", "/dead"),
    ("cron", "Cron", "/cron"),
)

_routes: list[URLSpec] = []
T = TypeVar("T")


def route(pattern: str, handler: type[tornado.web.RequestHandler], name: str | None = None) -> None:
    """Register a page; page modules in web/views/ call this at import time."""
    if any(spec.regex.pattern == pattern + "$" for spec in _routes):
        raise ValueError(f"page route {pattern!r} is registered twice")
    _routes.append(URLSpec(pattern, handler, name=name))


def read_only(env: Mapping[str, str]) -> bool:
    raw = (env.get(READ_ONLY) or "").strip().lower()
    if raw in ("", "0", "false", "no"):
        return False
    if raw in ("1", "true", "yes"):
        return True
    raise SettingsError(f"{READ_ONLY}={raw!r} must be true or false")


def install(env: Mapping[str, str]) -> None:
    """Add the job pages to Flower (before `flower` builds its app); safe to call twice."""
    import flower.urls

    settings: dict[str, Any] = flower.urls.settings
    settings["workerpool_read_only"] = read_only(env)
    # Template functions every page sees, Flower's own included (its navbar is ours).
    settings["ui_methods"] = {"job_tabs": _job_tabs}
    settings["template_loader"] = FlowerAndOurLoader(
        [str(TEMPLATES), str(settings["template_path"])]
    )
    # Every module of web/views/ registers its pages at import (no list to keep in step).
    for module in pkgutil.iter_modules(views.__path__, f"{views.__name__}."):
        importlib.import_module(module.name)
    handlers: list[Any] = flower.urls.handlers
    slot_controls.install(handlers)
    known = {spec.regex.pattern for spec in handlers if isinstance(spec, URLSpec)}
    # Flower's last route is its catch-all 404 (r".*"): ours go before it.
    catch_all = len(handlers) - 1
    handlers[catch_all:catch_all] = [spec for spec in _routes if spec.regex.pattern not in known]


def _job_tabs(handler: tornado.web.RequestHandler) -> list[tuple[str, str, str]]:
    """(route name, label, href under `--url_prefix`) of each job tab, for the navbar."""
    prefix = _url_prefix(handler)
    return [(name, label, f"/{prefix}{path}" if prefix else path) for name, label, path in JOB_TABS]


def _url_prefix(handler: tornado.web.RequestHandler) -> str:
    options: Any = getattr(handler.application, "options", None)
    return str(getattr(options, "url_prefix", "") or "").strip("/")


class FlowerAndOurLoader(tornado.template.Loader):
    """Template loader over several folders, first match wins: ours, then Flower's."""

    def __init__(self, roots: list[str]) -> None:
        super().__init__(roots[0])
        self._roots = roots

    def _create_template(self, name: str) -> tornado.template.Template:
        for root in self._roots:
            path = os.path.join(root, name)
            if os.path.isfile(path):
                with open(path, "rb") as source:
                    return tornado.template.Template(source.read(), name=name, loader=self)
        raise FileNotFoundError(f"no template {name!r} in {self._roots}")


def authenticated(method: Callable[..., Any]) -> Callable[..., Any]:
    """Tornado's login check, typed: every page GET and every action POST carries it."""
    return tornado.web.authenticated(method)


class JobPage(BaseHandler):  # type: ignore[misc]
    """Base of every job page: Flower's login, both CSRF checks, read-only mode, rendering."""

    #: The navbar tab this page lights up (a JOB_TABS name).
    tab: ClassVar[str] = ""

    @property
    def read_only(self) -> bool:
        return bool(self.settings.get("workerpool_read_only", False))

    def check_xsrf_cookie(self) -> None:
        # Flower's check refuses cross-site requests by Sec-Fetch-Site/Origin (the guard when
        # a browser sends basic-auth credentials with another site's form), but with basic
        # auth alone it checks no token; Tornado's token check is added on top of it.
        BaseHandler.check_xsrf_cookie(self)
        tornado.web.RequestHandler.check_xsrf_cookie(self)

    def render_page(self, template: str, **values: Any) -> None:
        self.render(
            template,
            tab=self.tab,
            read_only=self.read_only,
            read_only_env=READ_ONLY,
            notice=self.get_query_argument("notice", ""),
            page_url=self.page_url,
            **values,
        )

    def page_url(self, path: str, **query: Any) -> str:
        """`path` under Flower's `--url_prefix`, with the non-empty `query` values."""
        prefix = _url_prefix(self)
        base = f"/{prefix}{path}" if prefix else path
        args = {key: value for key, value in query.items() if value not in (None, "")}
        return f"{base}?{urlencode(args)}" if args else base

    def refuse_if_read_only(self) -> None:
        if self.read_only:
            raise tornado.web.HTTPError(403, "the job pages are read-only (%s)", READ_ONLY)

    def done(self, path: str, notice: str, **query: Any) -> None:
        """Answer an action with the page that shows the new state (POST, redirect, GET)."""
        self.redirect(self.page_url(path, notice=notice, **query), status=303)

    async def blocking(self, call: Callable[..., T], *args: Any) -> T:
        """Run a Redis call off Tornado's loop so one slow read cannot stall every page."""
        loop = tornado.ioloop.IOLoop.current()
        return await loop.run_in_executor(None, functools.partial(call, *args))

    def pager(
        self,
        path: str,
        offset: int,
        limit: int,
        shown: int,
        next_offset: int | None,
        total: int,
        *,
        filtered: bool,
        noun: str,
        **query: Any,
    ) -> Pager:
        """First/Previous/Next links of a window. A filtered window's Next continues the scan
        where this one stopped; it has no Previous (First starts again)."""

        def at(start: int) -> str:
            return self.page_url(path, offset=start or None, limit=limit, **query)

        if filtered:
            summary = f"{shown:,} matching of {total:,} {noun}s"
            if next_offset is not None:
                summary += f" (looked at ranks {offset + 1:,}-{next_offset:,})"
        else:
            summary = paging.shown(offset, shown, total, noun)
        return Pager(
            summary=summary,
            first_url=at(0) if offset > 0 else None,
            prev_url=at(max(0, offset - limit)) if offset > 0 and not filtered else None,
            next_url=at(next_offset) if next_offset is not None else None,
        )

    def query_int(self, name: str, default: int, *, low: int = 0, high: int = 10**9) -> int:
        raw = self.get_query_argument(name, "")
        try:
            value = int(raw) if raw else default
        except ValueError as exc:
            raise tornado.web.HTTPError(400, f"{name}={raw!r} must be a whole number") from exc
        return min(max(value, low), high)
