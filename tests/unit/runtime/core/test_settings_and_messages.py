"""Settings from the environment, and the message envelope."""

from __future__ import annotations

import base64
import json

import pytest

from worker_runtime.core.messages import build_message, decode_message
from worker_runtime.core.queues import UnknownQueueError, parse_queue_list
from worker_runtime.core.settings import Settings, SettingsError


def test_defaults_match_the_original_design() -> None:
    settings = Settings.from_env({})
    assert settings.broker_url == "redis://localhost:6379/0"
    assert settings.result_backend == settings.broker_url
    assert settings.timezone == "UTC"


def test_environment_variables_are_read() -> None:
    settings = Settings.from_env(
        {
            "CELERY_BROKER_URL": "redis://redis:6379/1",
            "CELERY_RESULT_BACKEND": "redis://redis:6379/2",
            "WORKER_PACKAGES": "myapp.workers, billing.workers",
            "WORKERPOOL_TIMEZONE": "Europe/Berlin",
            "WORKERPOOL_LOG_FORMAT": "json",
        }
    )
    assert settings.broker_url == "redis://redis:6379/1"
    assert settings.result_backend == "redis://redis:6379/2"
    assert settings.worker_packages == ("myapp.workers", "billing.workers")
    assert settings.zone.key == "Europe/Berlin"
    assert settings.log_format == "json"


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"CELERY_BROKER_URL": "amqp://guest@rabbit//"}, "CELERY_BROKER_URL"),
        ({"WORKERPOOL_TIMEZONE": "Mars/Olympus"}, "WORKERPOOL_TIMEZONE='Mars/Olympus'"),
        ({"WORKERPOOL_VISIBILITY_TIMEOUT": "soon"}, "WORKERPOOL_VISIBILITY_TIMEOUT='soon'"),
        ({"WORKERPOOL_VISIBILITY_TIMEOUT": "0"}, "greater than zero"),
        ({"WORKERPOOL_LOG_FORMAT": "xml"}, "'text' or 'json'"),
        ({"WORKERPOOL_CRON_SECONDS": "perhaps"}, "true or false"),
    ],
)
def test_bad_settings_name_the_variable(env: dict[str, str], message: str) -> None:
    with pytest.raises(SettingsError, match=message):
        Settings.from_env(env)


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("redis://host:notaport", "the port must be a number"),
        ("redis://host:99999/0", "the port must be a number"),
        ("redis://host/abc", "the database after the host must be a number"),
        ("redis://host/0/1", "the database after the host must be a number"),
        ("redis://a:6379/0redis://b:6379/0", "must be one URL, not several"),
        ("redis://a:6379/0,redis://b:6379/0", "must be one URL, not several"),
        ("redis://a:6379/0;redis://b:6379/0", "must be one URL, not several"),
        ("redis://a:6379/0 redis://b:6379/0", "must be one URL, not several"),
        ("redis://:6379/0", "names no host"),
    ],
)
def test_a_malformed_redis_url_is_one_line_naming_it(url: str, message: str) -> None:
    # Before: `/abc` silently meant database 0 and the others were raw tracebacks later.
    with pytest.raises(SettingsError) as info:
        Settings.from_env({"CELERY_BROKER_URL": url})
    text = str(info.value)
    assert "\n" not in text
    assert text.startswith(f"CELERY_BROKER_URL={url!r}")
    assert message in text


@pytest.mark.parametrize(
    "url",
    [
        "redis://localhost",
        "redis://localhost/",
        "redis://localhost:6379/15",
        "rediss://user:pw@cache.example:6380/2?ssl_cert_reqs=required",
        "redis://[::1]:6379/0",
        "unix:///run/redis.sock?db=3",
    ],
)
def test_well_formed_redis_urls_are_kept_as_given(url: str) -> None:
    assert Settings.from_env({"CELERY_BROKER_URL": url}).broker_url == url


@pytest.mark.parametrize(
    "url", ["http://user:s3cret@host", "redis://user:s3cret@host:port/0", "redis://:s3cret@h/x"]
)
def test_a_broker_password_is_not_echoed_in_errors(url: str) -> None:
    with pytest.raises(SettingsError) as info:
        Settings.from_env({"CELERY_BROKER_URL": url})
    assert "s3cret" not in str(info.value)
    assert "***@" in str(info.value)


def test_queue_lists_keep_priority_order_and_reject_unknown_names() -> None:
    assert parse_queue_list("low,critical") == ("critical", "low")
    with pytest.raises(UnknownQueueError, match="'urgent'"):
        parse_queue_list("critical,urgent")


def test_message_is_a_celery_protocol_2_envelope_for_the_queue() -> None:
    raw = build_message(
        task_name="app.Job", job_id="id-1", queue="low", args=[1], kwargs={"b": 2}, retries=2
    )
    envelope = json.loads(raw)
    assert envelope["headers"]["task"] == "app.Job"
    assert envelope["headers"]["retries"] == 2
    assert envelope["properties"]["delivery_info"] == {"exchange": "", "routing_key": "low"}
    body = json.loads(base64.b64decode(envelope["body"]))
    assert body[:2] == [[1], {"b": 2}]
    assert decode_message(raw) == {
        "id": "id-1",
        "task": "app.Job",
        "retries": 2,
        "queue": "low",
        "args": [1],
        "kwargs": {"b": 2},
    }
