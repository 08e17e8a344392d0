"""The Cron page: every schedule beat declared (worker, expression, time zone, next and last
run with its result, enabled); enable, disable (durable, pool-wide: every beat honours it) and
run now. Reads and acts through `store/cron_state.py`, as `workerpool cron` does. Must not
talk to Redis directly.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime

import tornado.web

from worker_runtime import runtime
from worker_runtime.core.display import relative, stamp
from worker_runtime.store import cron_state
from worker_runtime.web.pages import JobPage, authenticated, route

ACTIONS = ("enable", "disable", "run-now")


class CronPage(JobPage):
    tab = "cron"

    @authenticated
    async def get(self) -> None:
        rt = runtime.current()
        found = await self.blocking(cron_state.entries, rt.redis, rt.keys, datetime.now(UTC))
        self.render_page(
            "cron.html",
            title="Cron",
            entries=found,
            actions=not self.read_only,
            action_url=self.page_url("/cron"),
            now=time.time(),
            relative=relative,
            stamp=stamp,
        )

    @authenticated
    async def post(self) -> None:
        self.refuse_if_read_only()
        act, _, task = self.get_body_argument("act", "").partition(":")
        if act not in ACTIONS or not task:
            raise tornado.web.HTTPError(400, f"unknown action {act!r}")
        rt = runtime.current()
        try:
            if act == "run-now":
                job_id = await self.blocking(
                    cron_state.run_now, rt.redis, rt.keys, task, time.time()
                )
                notice = f"{task}: enqueued job {job_id}."
            else:
                enable = act == "enable"
                await self.blocking(cron_state.set_enabled, rt.redis, rt.keys, task, enable)
                notice = f"{task}: {'enabled' if enable else 'disabled'}."
        except cron_state.CronScheduleError as exc:
            notice = str(exc)
        self.done("/cron", notice)


route(r"/cron", CronPage, name="cron")
