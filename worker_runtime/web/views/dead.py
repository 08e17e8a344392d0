"""The Dead page and a dead job's page: one window of the dead set (most recent first, filtered
by worker and by text), a job's full traceback and attempt history; retry or delete per row or
for the ticked rows, and retry all / delete all after a confirmation page (no JavaScript
needed). Reads and acts through `store/dead.py`, as `workerpool dead` does. Must not talk to
Redis directly.
"""

from __future__ import annotations

import time
from typing import Any

import tornado.web

from worker_runtime import runtime
from worker_runtime.core.display import arguments, cut, relative, stamp
from worker_runtime.store.browse import UnknownJobError
from worker_runtime.store.dead import DeadJobError, DeadJobs
from worker_runtime.store.history import history
from worker_runtime.store.scheduled_jobs import matches
from worker_runtime.web.pages import JobPage, authenticated, route
from worker_runtime.web.paging import DEFAULT_LIMIT, MAX_LIMIT

PER_JOB = ("retry", "delete")
#: Actions on the whole set: a POST without `confirm=yes` answers with a confirmation page.
ON_ALL = {"retry-all": "Retry every dead job", "delete-all": "Delete every dead job"}
FORMAT = {"relative": relative, "stamp": stamp, "cut": cut, "arguments": arguments}


def _store() -> DeadJobs:
    rt = runtime.current()
    return DeadJobs(rt.redis, rt.keys, rt.settings.dead_max_jobs)


class DeadPage(JobPage):
    tab = "dead"

    @authenticated
    async def get(self) -> None:
        offset = self.query_int("offset", 0)
        limit = self.query_int("limit", DEFAULT_LIMIT, low=1, high=MAX_LIMIT)
        task = self.get_query_argument("class", "").strip()
        text = self.get_query_argument("q", "").strip()
        store = _store()
        match = (lambda job: matches(job, task, text)) if task or text else None
        shown = await self.blocking(lambda: store.window(offset, limit, match=match))
        pager = self.pager(
            "/dead",
            offset,
            limit,
            len(shown.items),
            shown.next_offset,
            shown.total,
            filtered=shown.filtered,
            noun="dead job",
            **{"class": task, "q": text},
        )
        self.render_page(
            "dead.html",
            title="Dead",
            jobs=shown.items,
            pager=pager,
            actions=not self.read_only,
            filter_class=task,
            filter_text=text,
            now=time.time(),
            action_url=self.page_url("/dead"),
            job_url=lambda job_id: self.page_url(f"/dead/{tornado.escape.url_escape(job_id)}"),
            **FORMAT,
        )

    @authenticated
    async def post(self) -> None:
        self.refuse_if_read_only()
        act, _, one = self.get_body_argument("act", "").partition(":")
        if act in ON_ALL:
            await self._on_all(act)
            return
        if act not in PER_JOB:
            raise tornado.web.HTTPError(400, f"unknown action {act!r}")
        ids = [one] if one else self.get_body_arguments("id")
        if not ids:
            self.done("/dead", "Nothing chosen: tick the jobs first.")
            return
        store = _store()
        try:
            if act == "delete":
                count = await self.blocking(store.delete, ids)
            else:
                count = await self.blocking(lambda: sum(store.retry(job_id) for job_id in ids))
        except (UnknownJobError, DeadJobError) as exc:
            self.done("/dead", str(exc))
            return
        if act == "retry" and count < len(ids):
            self.done("/dead", f"Requeued {count}; the others were no longer dead.")
            return
        verb = "Requeued" if act == "retry" else "Deleted"
        self.done("/dead", f"{verb}: {count} job(s).")

    async def _on_all(self, act: str) -> None:
        store = _store()
        if self.get_body_argument("confirm", "") != "yes":
            self.render_page(
                "confirm.html",
                title="Dead",
                question=f"{ON_ALL[act]}: {await self.blocking(store.count):,} job(s)?",
                act=act,
                action_url=self.page_url("/dead"),
                cancel_url=self.page_url("/dead"),
            )
            return
        if act == "delete-all":
            self.done("/dead", f"Deleted: {await self.blocking(store.purge)} job(s).")
        else:
            self.done("/dead", f"Requeued: {await self.blocking(store.retry_all)} job(s).")


class DeadJobPage(JobPage):
    tab = "dead"

    @authenticated
    async def get(self, job_id: str) -> None:
        store = _store()
        rt = runtime.current()

        def read() -> tuple[Any, Any]:
            job = store.get(job_id)
            return job, history(rt.redis, rt.keys, job_id) if job else []

        job, attempts = await self.blocking(read)
        if job is None:
            raise tornado.web.HTTPError(404, f"{job_id} is not in the dead set")
        self.render_page(
            "dead_job.html",
            title="Dead job",
            job=job,
            attempts=attempts,
            actions=not self.read_only,
            now=time.time(),
            action_url=self.page_url("/dead"),
            **FORMAT,
        )


route(r"/dead", DeadPage, name="dead")
route(r"/dead/([^/]+)", DeadJobPage, name="dead-job")
