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


def test_a_broker_password_is_not_echoed_in_errors() -> None:
    with pytest.raises(SettingsError) as info:
        Settings.from_env({"CELERY_BROKER_URL": "http://user:s3cret@host"})
    assert "s3cret" not in str(info.value)


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
