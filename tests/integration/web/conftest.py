"""The browser-test harness of the job pages: a real `workerpool flower` against the test's
Redis, and Debian's Chromium (installed here with apt-get when missing, never downloaded)
driven by Playwright, logged in with basic auth. Each page test saves a screenshot under
tests/artifacts/pages/ (gitignored) for a person to look at.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, Playwright, sync_playwright

from tests.controlplane.hostsetup import HostSetupError, ensure_packages
from tests.integration.conftest import Spawn
from worker_runtime.local.embedded_redis import free_port

CHROMIUM = "/usr/bin/chromium"
CREDENTIALS = ("admin", "s3cret-pages")
ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts" / "pages"
#: A page or an action answers within this; a page that hangs fails the test instead of it.
PAGE_TIMEOUT_MS = 20_000


@dataclass(frozen=True)
class Site:
    """A running `workerpool flower`: its base URL (prefix included) and its login."""

    url: str
    credentials: tuple[str, str] = CREDENTIALS

    def at(self, path: str) -> str:
        return f"{self.url}{path}"


@pytest.fixture(scope="session")
def playwright_driver() -> Iterator[Playwright]:
    try:
        ensure_packages(["chromium"], "the browser tests (tests/integration/web)")
    except HostSetupError as exc:
        # Never a skip: the browser tests are part of the suite.
        pytest.fail(f"{exc}\n(install it with: apt-get install -y chromium)", pytrace=False)
    with sync_playwright() as driver:
        yield driver


@pytest.fixture(scope="session")
def browser(playwright_driver: Playwright) -> Iterator[Browser]:
    browser = playwright_driver.chromium.launch(
        executable_path=CHROMIUM,
        # Tests run as root (no sandbox then); nothing in the test reaches the internet.
        args=["--no-sandbox", "--disable-background-networking", "--disable-dev-shm-usage"],
    )
    yield browser
    browser.close()


def start_flower(spawn: Spawn, *, prefix: str = "", read_only: bool = False) -> Site:
    port = free_port()
    extra = {"FLOWER_BASIC_AUTH": ":".join(CREDENTIALS)}
    if prefix:
        extra["FLOWER_URL_PREFIX"] = prefix
    if read_only:
        extra["WORKERPOOL_PAGES_READ_ONLY"] = "true"
    spawn("flower", f"--port={port}", extra_env=extra)
    base = f"http://127.0.0.1:{port}"
    return Site(f"{base}/{prefix.strip('/')}" if prefix else base)


@pytest.fixture
def site(spawn: Spawn) -> Site:
    """`workerpool flower` on the test's Redis, with the job pages."""
    return start_flower(spawn)


@pytest.fixture
def page(browser: Browser, site: Site) -> Iterator[Page]:
    """A logged-in tab (basic auth answered by the browser context)."""
    username, password = site.credentials
    context = browser.new_context(http_credentials={"username": username, "password": password})
    context.set_default_timeout(PAGE_TIMEOUT_MS)
    tab = context.new_page()
    yield tab
    context.close()


def screenshot(tab: Page, name: str) -> Path:
    """Save the whole page as tests/artifacts/pages/<name>.png (test artifacts, gitignored)."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{re.sub(r'[^A-Za-z0-9_.-]', '_', name)}.png"
    tab.screenshot(path=str(path), full_page=True)
    return path
