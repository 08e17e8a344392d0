"""The Busy page: every job running now, across all worker pods and slots, and each pod's
load (slots busy/total, memory, queues, version). Reads `store/busy.py`, what the duties
processes publish, as `workerpool busy` does; the same whichever Flower pod serves it.
Must not talk to Redis directly.
"""

from __future__ import annotations

import time

from worker_runtime import runtime
from worker_runtime.core.display import cut, duration, stamp
from worker_runtime.store import busy
from worker_runtime.web.pages import JobPage, authenticated, route
from worker_runtime.web.paging import DEFAULT_LIMIT, MAX_LIMIT


class BusyPage(JobPage):
    tab = "busy"

    @authenticated
    async def get(self) -> None:
        offset = self.query_int("offset", 0)
        limit = self.query_int("limit", DEFAULT_LIMIT, low=1, high=MAX_LIMIT)
        rt = runtime.current()
        now = time.time()
        pods = await self.blocking(busy.pods, rt.redis, rt.keys, now)
        # Bounded by the pool's slots, so the window is cut here, after one read of all pods.
        jobs = busy.running(pods)
        shown = jobs[offset : offset + limit]
        end = offset + len(shown)
        pager = self.pager(
            "/busy",
            offset,
            limit,
            len(shown),
            end if end < len(jobs) else None,
            len(jobs),
            filtered=False,
            noun="running job",
        )
        self.render_page(
            "busy.html",
            title="Busy",
            pods=pods,
            jobs=shown,
            slots=sum(p.slots for p in pods),
            running=len(jobs),
            pager=pager,
            now=now,
            cut=cut,
            duration=duration,
            stamp=stamp,
        )


route(r"/busy", BusyPage, name="busy")
