"""The Dashboard page: processed and failed jobs per minute for the last hour and per day for
30 days (bar charts drawn on the server as SVG, so they show with JavaScript off, each bar
titled with its figures), and the Redis server's version, memory and clients. Reads
`store/overview.py`. Must not talk to Redis directly.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from worker_runtime import runtime
from worker_runtime.core.display import stamp
from worker_runtime.store import overview
from worker_runtime.web.pages import JobPage, authenticated, route

WIDTH, HEIGHT = 720, 120


def bars(points: Sequence[overview.Point], unit: str) -> list[dict[str, object]]:
    """Geometry of one processed bar and one failed bar per point, scaled to the tallest."""
    top = max((p.processed for p in points), default=0) or 1
    step = WIDTH / max(1, len(points))
    out: list[dict[str, object]] = []
    for i, point in enumerate(points):
        ok = HEIGHT * point.processed / top
        bad = HEIGHT * point.failed / top
        out.append(
            {
                "x": round(i * step + 1, 1),
                "w": round(max(1.0, step - 2), 1),
                "ok_y": round(HEIGHT - ok, 1),
                "ok_h": round(ok, 1),
                "bad_y": round(HEIGHT - bad, 1),
                "bad_h": round(bad, 1),
                "title": f"{stamp(point.start)} ({unit}): {point.processed:,} processed, "
                f"{point.failed:,} failed",
            }
        )
    return out


class DashboardPage(JobPage):
    tab = "dashboard"

    @authenticated
    async def get(self) -> None:
        rt = runtime.current()
        minutes, days = await self.blocking(overview.history, rt.redis, time.time())
        info = await self.blocking(overview.redis_info, rt.redis)
        self.render_page(
            "overview.html",
            title="Dashboard",
            charts=[
                ("minutes", "Last hour, per minute", minutes, bars(minutes, "minute")),
                ("days", "Last 30 days, per day", days, bars(days, "day")),
            ],
            width=WIDTH,
            height=HEIGHT,
            redis=info,
        )


route(r"/dashboard", DashboardPage, name="dashboard")
