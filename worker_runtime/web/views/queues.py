"""The Queues page (each queue's depth, latency and rates) and one queue's page (its waiting
jobs, next to run first; delete one; clear the queue after a confirmation). Reads and acts
through `store/queues.py`, as `workerpool queues` does. Must not talk to Redis directly.
"""

from __future__ import annotations

import time

import tornado.web

from worker_runtime import runtime
from worker_runtime.core.display import cut, duration, stamp
from worker_runtime.core.queues import QUEUES
from worker_runtime.store import queues
from worker_runtime.web.pages import JobPage, authenticated, route
from worker_runtime.web.paging import DEFAULT_LIMIT, MAX_LIMIT


class QueuesPage(JobPage):
    tab = "queues"

    @authenticated
    async def get(self) -> None:
        rt = runtime.current()
        now = time.time()
        found = await self.blocking(queues.infos, rt.redis, now)
        self.render_page(
            "queues.html",
            title="Queues",
            queues=found,
            minutes=queues.RATE_MINUTES,
            duration=duration,
        )


class QueuePage(JobPage):
    tab = "queues"

    def _queue(self, name: str) -> str:
        if name not in QUEUES:
            raise tornado.web.HTTPError(404, f"no queue {name!r}")
        return name

    @authenticated
    async def get(self, name: str) -> None:
        queue = self._queue(name)
        offset = self.query_int("offset", 0)
        limit = self.query_int("limit", DEFAULT_LIMIT, low=1, high=MAX_LIMIT)
        rt = runtime.current()
        depth = int(await self.blocking(rt.redis.llen, queue))
        jobs = await self.blocking(queues.browse, rt.redis, queue, offset, limit)
        end = offset + len(jobs)
        path = f"/queues/{queue}"
        self.render_page(
            "queue.html",
            title=f"Queue {queue}",
            queue=queue,
            depth=depth,
            jobs=jobs,
            pager=self.pager(
                path,
                offset,
                limit,
                len(jobs),
                end if end < depth else None,
                depth,
                filtered=False,
                noun="waiting job",
            ),
            actions=not self.read_only,
            action_url=self.page_url(path),
            now=time.time(),
            cut=cut,
            duration=duration,
            stamp=stamp,
        )

    @authenticated
    async def post(self, name: str) -> None:
        self.refuse_if_read_only()
        queue = self._queue(name)
        path = f"/queues/{queue}"
        act, _, target = self.get_body_argument("act", "").partition(":")
        job_id, _, position = target.partition("@")
        near = int(position) if position.isdigit() else None
        rt = runtime.current()
        if act == "delete" and job_id:
            try:
                await self.blocking(queues.delete, rt.redis, queue, job_id, near)
            except queues.QueueError as exc:
                self.done(path, f"{exc} (already taken by a worker, or deleted)")
                return
            self.done(path, f"Deleted job {job_id}.")
        elif act == "clear":
            if self.get_body_argument("confirm", "") != "yes":
                depth = int(await self.blocking(rt.redis.llen, queue))
                self.render_page(
                    "confirm.html",
                    title=f"Queue {queue}",
                    question=f"Delete all {depth:,} job(s) waiting in {queue}? They never run.",
                    act="clear",
                    action_url=self.page_url(path),
                    cancel_url=self.page_url(path),
                )
                return
            cleared = await self.blocking(queues.clear, rt.redis, queue)
            self.done(path, f"Cleared {queue}: deleted {cleared:,} job(s).")
        else:
            raise tornado.web.HTTPError(400, f"unknown action {act!r}")


route(r"/queues", QueuesPage, name="queues")
route(r"/queues/([a-z]+)", QueuePage, name="queue")
