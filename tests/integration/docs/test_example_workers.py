"""The example workers (worker_runtime/examples) do what they say, run inline against real
HTTP."""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator

import pytest

from worker_runtime.examples.data_processing_worker import DataProcessingWorker
from worker_runtime.examples.health_check_worker import HealthCheckWorker

pytestmark = pytest.mark.integration


class _Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200 if self.path == "/api/" else 503)
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def http_base() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_health_check_worker_reports_healthy_unhealthy_and_unreachable(
    http_base: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert HealthCheckWorker.cron_schedule == "*/10 * * * *"
    monkeypatch.setenv("HEALTH_CHECK_URL", f"{http_base}/api/")
    assert HealthCheckWorker.perform()["status"] == "healthy"
    monkeypatch.setenv("HEALTH_CHECK_URL", f"{http_base}/down")
    assert HealthCheckWorker.perform() == {
        "status": "unhealthy",
        "url": f"{http_base}/down",
        "code": 503,
    }
    monkeypatch.setenv("HEALTH_CHECK_URL", "http://127.0.0.1:9/")
    assert HealthCheckWorker.perform()["status"] == "unreachable"
    monkeypatch.delenv("HEALTH_CHECK_URL")
    assert HealthCheckWorker.perform() == {"status": "unconfigured"}


def test_data_processing_worker_returns_the_processed_record() -> None:
    result = DataProcessingWorker.perform(user_id=123, processing_options={"format": "json"})
    assert result["user_id"] == 123
    assert result["status"] == "completed"
    assert result["options"] == {"format": "json"}
