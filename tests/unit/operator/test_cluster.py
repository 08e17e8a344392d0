"""The API module's pure parts: URL paths and the translation of HTTP outcomes."""

from __future__ import annotations

import json

import kopf
import pytest
from workerpool_operator.cluster import ApiRejected, _status_message, _translate, path


def test_paths_for_core_grouped_and_custom_resources() -> None:
    assert path("v1", "Secret", "apps", "x") == "/api/v1/namespaces/apps/secrets/x"
    assert path("apps/v1", "Deployment", "apps") == "/apis/apps/v1/namespaces/apps/deployments"
    assert path("workerpool.dev/v1alpha1", "WorkerPool", "apps", "shop") == (
        "/apis/workerpool.dev/v1alpha1/namespaces/apps/workerpools/shop"
    )


@pytest.mark.parametrize(
    ("code", "error", "reason"),
    [(422, ApiRejected, "ApplyRejected"), (400, ApiRejected, "ApplyRejected"),
     (403, ApiRejected, "Forbidden"), (409, kopf.TemporaryError, None),
     (500, kopf.TemporaryError, None), (429, kopf.TemporaryError, None)],
)  # fmt: skip
def test_http_failures_carry_retry_meaning(code: int, error: type, reason: str | None) -> None:
    translated = _translate(code, "Deployment apps/x", "boom")
    assert isinstance(translated, error)
    if reason is not None:
        assert isinstance(translated, ApiRejected)
        assert translated.reason == reason
        assert isinstance(translated, kopf.PermanentError)
    assert "Deployment apps/x" in str(translated)
    assert "boom" in str(translated)


def test_status_messages_are_never_taken_from_secret_errors() -> None:
    body = json.dumps({"message": 'data[password]: Invalid value: "hunter2"'}).encode()
    assert _status_message(body, "Secret apps/x") == ""
    assert _status_message(body, "Deployment apps/x").startswith("data[password]")
    assert _status_message(b"not json", "Deployment apps/x") == ""
