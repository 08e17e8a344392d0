"""The Scheduled, Retries and Dead pages in a real headless Chromium against a real
`workerpool flower`: each shows jobs made through the public API (`perform_in`, a worker that
fails until it dies), each action changes Redis and the page, every page and action needs the
login, and CSRF is enforced (a cross-origin form gets 403, a form without the token is
refused). Screenshots land in tests/artifacts/pages/.
"""

from __future__ import annotations

import contextlib
import signal
from collections.abc import Iterator

import psutil
import pytest
import requests
from celery.result import AsyncResult
from playwright.sync_api import Browser, Page, Route, expect
from playwright.sync_api import Error as PlaywrightError

from tests.controlplane.waiting import wait_for
from tests.integration.conftest import Spawn
from tests.integration.runtime.jobs.recording import AlwaysFails, Counted, Echo, FailsOften
from tests.integration.web.conftest import (
    CREDENTIALS,
    PAGE_TIMEOUT_MS,
    Site,
    screenshot,
    start_flower,
)
from worker_runtime.runtime import Runtime
from worker_runtime.store.browse import UnknownJobError
from worker_runtime.store.dead import DeadJobs
from worker_runtime.store.schedule_set import ScheduleSet
from worker_runtime.store.scheduled_jobs import ScheduledJobs

pytestmark = pytest.mark.integration

FAR = 10**10
#: A token pair Tornado accepts (cookie and form field equal): lets a request reach the login
#: check, so a 401 there is the login's, not the token's.
TOKEN = {"_xsrf": "test-token"}


def _row(page: Page, job_id: str) -> object:
    return page.locator(f"#job-{job_id}")


def test_the_scheduled_page_lists_filters_runs_now_and_deletes(
    rt: Runtime, page: Page, site: Site
) -> None:
    counted = [Counted.perform_in(600 + n, n=n) for n in range(3)]
    echo = Echo.perform_in(900, user_id=42, data={"to": "ada@example.com"})
    store = ScheduledJobs(rt.redis, rt.keys, "scheduled")

    page.goto(site.at("/scheduled"))
    expect(page.locator("tr.job-row")).to_have_count(4)
    first = page.locator(f"#job-{counted[0].id}")
    expect(first.locator(".job-class")).to_have_text(Counted.task_name)
    expect(first).to_contain_text("in 9m")
    expect(page.locator(f"#job-{echo.id} .job-args")).to_contain_text("ada@example.com")
    expect(page.locator(".jobs-pager-summary")).to_have_text("1-4 of 4 scheduled jobs")
    screenshot(page, "scheduled")

    page.fill("input[name=class]", "Echo")
    page.get_by_role("button", name="Filter").click()
    expect(page.locator("tr.job-row")).to_have_count(1)
    expect(page.locator(f"#job-{echo.id}")).to_have_count(1)
    page.get_by_role("link", name="Clear").click()

    first.get_by_role("button", name="Run now").click()
    expect(page.locator("#notice")).to_have_text("Queued to run now: 1 job(s).")
    expect(page.locator(f"#job-{counted[0].id}")).to_have_count(0)
    queued = rt.redis.lrange("default", 0, -1)
    assert len(queued) == 1
    assert counted[0].id.encode() in queued[0]

    page.locator(f"#job-{counted[1].id}").get_by_role("button", name="Delete").click()
    expect(page.locator("#notice")).to_have_text("Deleted: 1 job(s).")
    assert AsyncResult(counted[1].id, app=rt.app).status == "REVOKED"

    page.locator(f"#job-{counted[2].id} input[type=checkbox]").check()
    page.locator(f"#job-{echo.id} input[type=checkbox]").check()
    page.get_by_role("button", name="Delete ticked").click()
    expect(page.locator("#notice")).to_have_text("Deleted: 2 job(s).")
    expect(page.locator("tr.job-row")).to_have_count(0)
    assert store.count() == 0
    # Nothing deleted is left for a dispatcher to run.
    assert ScheduleSet(rt.redis, rt.keys).move_due(FAR) == 0
    assert rt.redis.llen("default") == 1


@contextlib.contextmanager
def _a_retry_waiting_and_a_dead_job(rt: Runtime, spawn: Spawn) -> Iterator[tuple[str, str]]:
    """A worker fails FailsOften until its retry waits seconds, and AlwaysFails until it dies;
    then the worker and its job slots are frozen (SIGSTOP: slots run in sessions of their own)
    so no dispatcher moves the retry and no slot runs a retried job while we look; killed at
    the end."""
    worker = spawn("worker", "--concurrency=1")
    often = FailsOften.perform_async(key="order-1").id
    dies = AlwaysFails.perform_async(key="k1").id
    dead = DeadJobs(rt.redis, rt.keys)
    retries = ScheduledJobs(rt.redis, rt.keys, "retry")

    def ready() -> bool:
        try:
            waiting = retries.get(often)
        except UnknownJobError:
            return False
        # The third retry waits 2-4 s (backoff), ample time to stop the worker.
        return waiting.retries >= 3 and dead.get(dies) is not None

    wait_for(ready, timeout=90, interval=0.05, message="a waiting retry and a dead job")
    supervisor = psutil.Process(worker.popen.pid)
    processes = [supervisor, *supervisor.children(recursive=True)]
    for process in processes:
        process.send_signal(signal.SIGSTOP)
    try:
        assert retries.get(often).retries >= 3
        yield often, dies
    finally:
        for process in processes:
            with contextlib.suppress(psutil.NoSuchProcess):
                process.kill()


def test_the_retries_and_dead_pages_show_a_failing_worker_and_act(
    rt: Runtime, spawn: Spawn, page: Page, site: Site
) -> None:
    with _a_retry_waiting_and_a_dead_job(rt, spawn) as (often, dies):
        _retries_and_dead_pages(rt, page, site, often, dies)


def _retries_and_dead_pages(rt: Runtime, page: Page, site: Site, often: str, dies: str) -> None:
    dead = DeadJobs(rt.redis, rt.keys)

    page.goto(site.at("/retries"))
    row = page.locator(f"#job-{often}")
    expect(row.locator(".job-class")).to_have_text(FailsOften.task_name)
    expect(row.locator(".job-error")).to_have_text("ConnectionError: smtp down for order-1")
    screenshot(page, "retries")
    row.get_by_role("button", name="Kill").click()
    expect(page.locator("#notice")).to_have_text("Moved to Dead: 1 job(s).")
    expect(page.locator(f"#job-{often}")).to_have_count(0)
    assert dead.show(often).error.startswith("Killed: killed from the Retries page")

    page.get_by_role("link", name="Dead", exact=True).click()
    expect(page.locator(f"#job-{dies} .job-error")).to_have_text("ValueError: boom k1")
    expect(page.locator(f"#job-{often}")).to_have_count(1)
    screenshot(page, "dead")

    page.locator(f"#job-{dies} a").click()
    expect(page.locator("#traceback")).to_contain_text("Traceback (most recent call last)")
    expect(page.locator("#traceback")).to_contain_text("ValueError: boom k1")
    expect(page.locator("#attempts tbody tr")).to_have_count(AlwaysFails.max_retries + 1)
    screenshot(page, "dead_job")
    page.get_by_role("button", name="Retry").click()
    expect(page.locator("#notice")).to_have_text("Requeued: 1 job(s).")
    assert dead.get(dies) is None
    assert any(dies.encode() in raw for raw in rt.redis.lrange("default", 0, -1))

    page.get_by_role("button", name="Delete all").click()
    expect(page.locator("#confirm")).to_contain_text("Delete every dead job: 1 job(s)?")
    assert dead.count() == 1, "deleted before the confirmation"
    screenshot(page, "dead_confirm")
    page.get_by_role("button", name="Yes, do it").click()
    expect(page.locator("#notice")).to_have_text("Deleted: 1 job(s).")
    assert dead.count() == 0


PAGES = ("/scheduled", "/retries", "/dead", "/dead/some-id")
ACTIONS = (
    ("/scheduled", "run-now:x"),
    ("/scheduled", "delete:x"),
    ("/retries", "kill:x"),
    ("/dead", "retry:x"),
    ("/dead", "delete-all"),
)


def test_every_page_and_every_action_needs_the_login(browser: Browser, site: Site) -> None:
    for path in PAGES:
        assert requests.get(site.at(path), timeout=30).status_code == 401, path
        wrong = requests.get(site.at(path), auth=("admin", "wrong"), timeout=30)
        assert wrong.status_code == 401, path
    for path, act in ACTIONS:
        form = {"act": act, **TOKEN}
        anonymous = requests.post(site.at(path), data=form, cookies=TOKEN, timeout=30)
        assert anonymous.status_code == 401, (path, act)
        logged_in = requests.post(
            site.at(path),
            data=form,
            cookies=TOKEN,
            auth=CREDENTIALS,
            timeout=30,
            allow_redirects=False,
        )
        assert logged_in.status_code in (200, 303), (path, act, logged_in.status_code)

    context = browser.new_context()  # no credentials: Chromium gets the 401 challenge
    try:
        with pytest.raises(PlaywrightError, match="ERR_INVALID_AUTH_CREDENTIALS"):
            context.new_page().goto(site.at("/dead"), timeout=PAGE_TIMEOUT_MS)
    finally:
        context.close()


def test_a_cross_origin_form_gets_403_and_a_form_without_the_token_is_refused(
    rt: Runtime, page: Page, site: Site
) -> None:
    job = Counted.perform_in(600, n=1)
    store = ScheduledJobs(rt.redis, rt.keys, "scheduled")
    attack = (
        f'<form method="post" action="{site.at("/scheduled")}">'
        f'<input name="act" value="delete:{job.id}"><button>go</button></form>'
    )

    def elsewhere(route: Route) -> None:
        route.fulfill(content_type="text/html", body=attack)

    page.route("http://elsewhere.test/**", elsewhere)
    page.goto("http://elsewhere.test/")
    with page.expect_response(lambda response: response.url.startswith(site.url)) as answer:
        page.click("button")
    assert answer.value.status == 403
    assert store.get(job.id).id == job.id

    no_token = requests.post(
        site.at("/scheduled"), data={"act": f"delete:{job.id}"}, auth=CREDENTIALS, timeout=30
    )
    assert no_token.status_code == 403
    assert store.get(job.id).id == job.id


def test_read_only_mode_hides_and_refuses_actions_under_a_url_prefix(
    rt: Runtime, spawn: Spawn, browser: Browser
) -> None:
    job = Counted.perform_in(600, n=1)
    site = start_flower(spawn, prefix="jobsui", read_only=True)
    username, password = site.credentials
    context = browser.new_context(http_credentials={"username": username, "password": password})
    try:
        page = context.new_page()
        page.goto(site.at("/scheduled"), timeout=PAGE_TIMEOUT_MS)
        expect(page.locator(f"#job-{job.id}")).to_have_count(1)
        expect(page.locator("#read-only")).to_be_visible()
        expect(page.get_by_role("button")).to_have_count(1)  # the filter's, nothing else
        screenshot(page, "read_only")
        page.get_by_role("link", name="Dead", exact=True).click()
        assert page.url.endswith("/jobsui/dead")
        expect(page.locator(".jobs-pager-summary")).to_have_text("0 dead jobs")
    finally:
        context.close()
    refused = requests.post(
        site.at("/scheduled"),
        data={"act": f"delete:{job.id}", **TOKEN},
        cookies=TOKEN,
        auth=CREDENTIALS,
        timeout=30,
    )
    assert refused.status_code == 403
    assert ScheduledJobs(rt.redis, rt.keys, "scheduled").get(job.id).id == job.id
