"""The API module's pure parts: URL paths and the translation of HTTP outcomes."""

from __future__ import annotations

import json

import pytest
from workerpool_operator.cluster import _status_message, _translate, path
from workerpool_operator.errors import ApiRejected, ApiUnavailable


def test_paths_for_core_grouped_and_custom_resources() -> None:
    assert path("v1", "Secret", "apps", "x") == "/api/v1/namespaces/apps/secrets/x"
    assert path("apps/v1", "Deployment", "apps") == "/apis/apps/v1/namespaces/apps/deployments"
    assert path("workerpool.dev/v1alpha1", "WorkerPool", "apps", "shop") == (
        "/apis/workerpool.dev/v1alpha1/namespaces/apps/workerpools/shop"
    )


@pytest.mark.parametrize(
    ("code", "error", "reason", "permanent"),
    [(422, ApiRejected, "ApplyRejected", True), (400, ApiRejected, "ApplyRejected", True),
     # RBAC is fixed outside the pool: retried like any transient failure, wherever it occurs.
     (403, ApiRejected, "Forbidden", False), (409, ApiUnavailable, "Conflict", False),
     (500, ApiUnavailable, "Http500", False), (429, ApiUnavailable, "Http429", False)],
)  # fmt: skip
def test_http_failures_carry_retry_meaning(
    code: int, error: type, reason: str, permanent: bool
) -> None:
    translated = _translate(code, "Deployment apps/x", "boom")
    assert type(translated) is error
    assert (translated.reason, translated.permanent) == (reason, permanent)
    assert "Deployment apps/x" in str(translated)
    assert "boom" in str(translated)


def test_status_messages_are_never_taken_from_secret_errors() -> None:
    body = json.dumps({"message": 'data[password]: Invalid value: "hunter2"'}).encode()
    assert _status_message(body, "Secret apps/x") == ""
    assert _status_message(body, "Deployment apps/x").startswith("data[password]")
    assert _status_message(b"not json", "Deployment apps/x") == ""


def test_a_quota_refusal_names_the_quota_instead_of_blaming_rbac() -> None:
    """Issue 24: an object-count quota was reported with advice to check RBAC."""
    message = (
        'secrets "shop-redis" is forbidden: exceeded quota: objects, requested: '
        "count/secrets=1, used: count/secrets=10, limited: count/secrets=10"
    )
    body = json.dumps({"reason": "Forbidden", "message": message}).encode()
    assert _status_message(body, "Secret apps/shop-redis") == message
    translated = _translate(403, "Secret apps/shop-redis", message)
    assert (translated.reason, translated.permanent) == ("QuotaExceeded", False)
    assert "exceeded quota: objects" in str(translated)
    assert "RBAC" not in str(translated)
