"""Busy, Queues, Cron and the Dashboard in real headless Chromium, against a real
`workerpool flower`, real worker and beat processes and a real redis-server: each page shows
jobs made through the public API (`perform_async`, a running slow job, a cron worker), each
action changes Redis and the page that answers it, every page and action needs the login, a
POST without the CSRF token is refused, and Flower's pool-resize controls are gone.
Screenshots land in tests/artifacts/pages/."""

from __future__ import annotations

import base64
import time
import urllib.error
import urllib.request

import pytest
from playwright.sync_api import Page, expect

from tests.controlplane.waiting import wait_for
from tests.integration.conftest import Spawn
from tests.integration.runtime.jobs.recording import Echo, SleepyDefault
from tests.integration.scheduling.cronjobs.switchable import SCHEDULE, Switchable
from tests.integration.web.conftest import CREDENTIALS, Site, screenshot
from worker_runtime.core.keys import Keys
from worker_runtime.core.messages import decode_message
from worker_runtime.local.embedded_redis import free_port
from worker_runtime.runtime import Runtime
from worker_runtime.store import busy

pytestmark = pytest.mark.integration
KEYS = Keys()
PAGES = ("/dashboard", "/busy", "/queues", "/queues/default", "/cron")


def test_a_running_job_waiting_jobs_and_the_dashboard_in_the_browser(
    rt: Runtime, spawn: Spawn, site: Site, page: Page
) -> None:
    spawn("worker", "--concurrency=1")
    assert Echo.perform_async(user_id=7, data={}).get(timeout=60)["user_id"] == 7
    slow = SleepyDefault.perform_async(tag="in-the-browser", seconds=300)  # killed at teardown
    wait_for(
        lambda: any(
            j.id == slow.id for p in busy.pods(rt.redis, rt.keys, time.time()) for j in p.jobs
        ),
        timeout=30,
        message="the slow job to run",
    )
    waiting = [Echo.perform_async(user_id=i, data={"n": i}).id for i in range(3)]

    page.goto(site.at("/busy"))
    row = page.locator(f"#job-{slow.id}")
    expect(row).to_contain_text(SleepyDefault.task_name)
    expect(row).to_contain_text("in-the-browser")
    expect(page.locator("#busy-summary")).to_contain_text("1 of 1 slot(s) busy on 1 pod(s)")
    screenshot(page, "busy")

    page.goto(site.at("/dashboard"))
    expect(page.locator("#chart-minutes .chart-processed")).to_contain_text("1 processed")
    expect(page.locator("#redis-version")).to_have_text(str(rt.redis.info()["redis_version"]))
    screenshot(page, "dashboard")

    page.goto(site.at("/queues"))
    expect(page.locator("#queue-default .queue-depth")).to_have_text("3")
    screenshot(page, "queues")
    page.click("#queue-default a")
    expect(page.locator(".job-row")).to_have_count(3)
    expect(page.locator(".job-row").first).to_have_id(f"job-{waiting[0]}")
    screenshot(page, "queue")

    page.click(f"#job-{waiting[1]} button:has-text('Delete')")
    expect(page.locator("#notice")).to_contain_text(f"Deleted job {waiting[1]}")
    expect(page.locator(".job-row")).to_have_count(2)
    assert [decode_message(m)["id"] for m in rt.redis.lrange("default", 0, -1)][::-1] == [
        waiting[0],
        waiting[2],
    ]

    page.click("button:has-text('Clear queue')")
    expect(page.locator("#confirm")).to_contain_text("Delete all 2 job(s) waiting in default?")
    assert rt.redis.llen("default") == 2  # asking changed nothing
    page.click("text=Yes, do it")
    expect(page.locator("#notice")).to_contain_text("deleted 2 job(s)")
    expect(page.locator(".job-row")).to_have_count(0)
    assert rt.redis.llen("default") == 0


def test_cron_schedules_are_listed_disabled_enabled_and_run_in_the_browser(
    rt: Runtime, spawn: Spawn, site: Site, page: Page
) -> None:
    spawn("beat", extra_env={"WORKER_PACKAGES": "tests.integration.scheduling.cronjobs.switchable"})
    wait_for(lambda: rt.redis.hlen(KEYS.cron_last_job) == 1, timeout=30, message="a cron tick")
    task = Switchable.task_name
    row = f'[id="cron-{task}"]'

    page.goto(site.at("/cron"))
    expect(page.locator(row)).to_contain_text(SCHEDULE)
    expect(page.locator(f"{row} .cron-enabled")).to_have_text("yes")
    expect(page.locator(f"{row} .cron-result")).to_contain_text("PENDING")  # no worker runs
    screenshot(page, "cron")

    page.click(f"{row} button:has-text('Disable')")
    expect(page.locator("#notice")).to_contain_text(f"{task}: disabled.")
    expect(page.locator(f"{row} .cron-enabled")).to_have_text("no")
    assert rt.redis.sismember(KEYS.cron_disabled, task)

    page.click(f"{row} button:has-text('Enable')")
    expect(page.locator(f"{row} .cron-enabled")).to_have_text("yes")
    assert not rt.redis.sismember(KEYS.cron_disabled, task)

    page.click(f"{row} button:has-text('Run now')")
    notice = page.locator("#notice")
    expect(notice).to_contain_text(f"{task}: enqueued job ")
    job_id = notice.inner_text().rsplit(" ", 1)[-1].rstrip(".")
    assert job_id in [decode_message(m)["id"] for m in rt.redis.lrange(Switchable.queue, 0, -1)]


def _request(
    site: Site, path: str, *, login: bool, data: bytes | None = None, cookie: str = ""
) -> tuple[int, str]:
    """(status, the `_xsrf` cookie the answer set, if any)."""
    request = urllib.request.Request(site.at(path), data=data)
    if login:
        token = base64.b64encode(":".join(CREDENTIALS).encode()).decode()
        request.add_header("Authorization", f"Basic {token}")
    if cookie:
        request.add_header("Cookie", f"_xsrf={cookie}")
    try:
        with urllib.request.urlopen(request, timeout=20) as answer:
            set_cookie = answer.headers.get("Set-Cookie") or ""
            xsrf = set_cookie.partition("_xsrf=")[2].partition(";")[0]
            return int(answer.status), xsrf
    except urllib.error.HTTPError as error:
        return int(error.code), ""


def test_every_page_and_action_needs_the_login_and_the_csrf_token(
    rt: Runtime, site: Site, page: Page
) -> None:
    token = ""
    for path in PAGES:
        assert _request(site, path, login=False)[0] == 401, path
        status, token = _request(site, path, login=True)
        assert status == 200, path
    assert token, "the pages set Tornado's _xsrf cookie"
    Echo.perform_async(user_id=1, data={})
    for path, form in (("/queues/default", "act=clear&confirm=yes"), ("/cron", "act=run-now:x")):
        with_token = f"{form}&_xsrf={token}".encode()
        # A valid token without the login, then the login without a token: both refused.
        assert _request(site, path, login=False, data=with_token, cookie=token)[0] == 401, path
        assert _request(site, path, login=True, data=form.encode())[0] == 403, path
    assert rt.redis.llen("default") == 1

    # Flower's pool-resize API says why it cannot work; its buttons are hidden.
    grow = urllib.request.Request(site.at("/api/worker/pool/grow/slot-1@host"), data=b"n=1")
    grow.add_header("Authorization", "Basic " + base64.b64encode(b"admin:s3cret-pages").decode())
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(grow, timeout=20)
    assert refused.value.code == 400
    assert "job slots are fixed per worker pod" in refused.value.read().decode()
    page.goto(site.at("/workers"))
    hidden = page.evaluate(
        "() => { const s = document.createElement('section');"
        " s.className = 'worker-controls-panel'; document.body.append(s);"
        " return getComputedStyle(s).display; }"
    )
    assert hidden == "none"


def test_inspecting_a_pool_whose_slots_are_all_busy_logs_one_explained_line(
    rt: Runtime, spawn: Spawn
) -> None:
    spawn("worker", "--concurrency=1")
    slow = SleepyDefault.perform_async(tag="busy-inspect", seconds=300)  # killed at teardown
    wait_for(
        lambda: any(
            slow.id in {j.id for j in p.jobs} for p in busy.pods(rt.redis, rt.keys, time.time())
        ),
        timeout=30,
        message="every slot to be busy",
    )
    port = free_port()
    flower = spawn(
        "flower", f"--port={port}", extra_env={"FLOWER_BASIC_AUTH": ":".join(CREDENTIALS)}
    )
    site = Site(f"http://127.0.0.1:{port}")
    for _ in range(3):  # what the Workers page's refresh does
        assert _request(site, "/api/workers?refresh=1", login=True)[0] == 200
    wait_for(
        lambda: "workers did not answer inspect" in flower.output(),
        timeout=20,
        message="flower's explained line",
    )
    log = flower.output()
    assert log.count("workers did not answer inspect") == 1
    assert "Inspect method" not in log
