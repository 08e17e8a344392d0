"""HealthCheckWorker: checks an HTTP endpoint every 10 minutes and logs the outcome."""

from __future__ import annotations

import os
import urllib.error
import urllib.request
from typing import Any

from worker_runtime import Logger, Worker


class HealthCheckWorker(Worker):
    queue = "default"
    max_retries = 1
    cron_schedule = "*/10 * * * *"
    # A slow endpoint must not pile up checks behind each other.
    cron_overlap = "forbid"

    @classmethod
    def perform(cls, *args: Any, **kwargs: Any) -> dict[str, Any]:
        url = os.environ.get("HEALTH_CHECK_URL")
        if not url:
            Logger.warning(message="HEALTH_CHECK_URL is not set; nothing to check")
            return {"status": "unconfigured"}
        try:
            with urllib.request.urlopen(url, timeout=3) as response:
                status = int(response.status)
        except urllib.error.HTTPError as exc:
            status = exc.code
        except (urllib.error.URLError, TimeoutError) as exc:
            Logger.error(message=f"{url} is unhealthy: {exc}")
            return {"status": "unreachable", "url": url, "error": str(exc)}
        if status == 200:
            Logger.info(message=f"{url} is healthy")
            return {"status": "healthy", "url": url}
        Logger.error(message=f"{url} is unhealthy: status {status}")
        return {"status": "unhealthy", "url": url, "code": status}
