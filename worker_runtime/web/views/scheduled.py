"""The Scheduled and Retries pages (separate, as Sidekiq has them): one window of waiting jobs,
filtered by worker and by text; run now, delete, and for retries kill, per row or for the
checked rows. Reads and acts through `store/scheduled_jobs.py`, as `workerpool scheduled` and
`workerpool retries` do. Must not talk to Redis directly.
"""

from __future__ import annotations

import time
from typing import ClassVar

import tornado.web

from worker_runtime import runtime
from worker_runtime.core.display import arguments, cut, relative, stamp
from worker_runtime.store.browse import UnknownJobError
from worker_runtime.store.dead import DeadJobs
from worker_runtime.store.scheduled_jobs import Kind, ScheduledJobs
from worker_runtime.web.pages import JobPage, authenticated, route
from worker_runtime.web.paging import DEFAULT_LIMIT, MAX_LIMIT

ACTIONS: dict[Kind, tuple[str, ...]] = {
    "scheduled": ("run-now", "delete"),
    "retry": ("run-now", "delete", "kill"),
}


class WaitingJobsPage(JobPage):
    kind: ClassVar[Kind] = "scheduled"
    path: ClassVar[str] = "/scheduled"
    title: ClassVar[str] = "Scheduled"

    def _store(self) -> ScheduledJobs:
        rt = runtime.current()
        return ScheduledJobs(rt.redis, rt.keys, self.kind)

    @authenticated
    async def get(self) -> None:
        offset = self.query_int("offset", 0)
        limit = self.query_int("limit", DEFAULT_LIMIT, low=1, high=MAX_LIMIT)
        task = self.get_query_argument("class", "").strip()
        text = self.get_query_argument("q", "").strip()
        store = self._store()
        shown = await self.blocking(
            lambda: store.window(offset, limit, task=task or None, text=text or None)
        )
        pager = self.pager(
            self.path,
            offset,
            limit,
            len(shown.items),
            shown.next_offset,
            shown.total,
            filtered=shown.filtered,
            noun=store.noun,
            **{"class": task, "q": text},
        )
        self.render_page(
            "waiting_jobs.html",
            title=self.title,
            kind=self.kind,
            jobs=shown.items,
            pager=pager,
            actions=() if self.read_only else ACTIONS[self.kind],
            filter_class=task,
            filter_text=text,
            now=time.time(),
            relative=relative,
            stamp=stamp,
            cut=cut,
            arguments=arguments,
            action_url=self.page_url(self.path),
        )

    @authenticated
    async def post(self) -> None:
        self.refuse_if_read_only()
        act, _, one = self.get_body_argument("act", "").partition(":")
        ids = [one] if one else self.get_body_arguments("id")
        if act not in ACTIONS[self.kind]:
            raise tornado.web.HTTPError(400, f"unknown action {act!r}")
        if not ids:
            self.done(self.path, "Nothing chosen: tick the jobs first.")
            return
        store = self._store()
        rt = runtime.current()
        calls = {
            "run-now": lambda: store.run_now(ids),
            "delete": lambda: store.delete(ids, rt.settings.result_expires),
            "kill": lambda: store.kill(
                ids,
                "killed from the Retries page",
                DeadJobs(rt.redis, rt.keys, rt.settings.dead_max_jobs),
            ),
        }
        try:
            done = await self.blocking(calls[act])
        except UnknownJobError as exc:
            self.done(self.path, f"{exc} (already run, moved or deleted)")
            return
        verb = {"run-now": "Queued to run now", "delete": "Deleted", "kill": "Moved to Dead"}[act]
        self.done(self.path, f"{verb}: {len(done)} job(s).")


class RetriesPage(WaitingJobsPage):
    tab = "retries"
    kind = "retry"
    path = "/retries"
    title = "Retries"


class ScheduledPage(WaitingJobsPage):
    tab = "scheduled"


route(r"/scheduled", ScheduledPage, name="scheduled")
route(r"/retries", RetriesPage, name="retries")
