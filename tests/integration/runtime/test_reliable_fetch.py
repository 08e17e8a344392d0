"""The take script (broker/fetch.py) on a real Redis: strict queue order, and the message and
its `unacked` record moved in one step, in exactly the form kombu's own restore reads back."""

from __future__ import annotations

import json

import pytest

from worker_runtime.broker.fetch import TAKE
from worker_runtime.core.messages import build_message
from worker_runtime.runtime import Runtime

pytestmark = pytest.mark.integration

KEYS = ["unacked", "unacked_index", "critical", "default", "low"]


def _text(reply: object) -> str:
    assert isinstance(reply, bytes), reply
    return reply.decode()


def _message(queue: str, job_id: str) -> str:
    return build_message(task_name="t.Task", job_id=job_id, queue=queue, args=[], kwargs={})


def test_takes_critical_then_default_then_low_and_records_each(rt: Runtime) -> None:
    take = rt.redis.register_script(TAKE)
    for queue in ("low", "default", "critical"):
        rt.redis.lpush(queue, _message(queue, f"job-{queue}"))

    taken = [take(keys=KEYS, args=[1000.0 + i, "1", "1", "1"]) for i in range(4)]

    assert [t[0] if t else None for t in taken] == [1, 2, 3, None]
    for _index, raw, tag in taken[:3]:
        envelope = json.loads(raw)
        assert tag.decode() == envelope["properties"]["delivery_tag"]
        # kombu's QoS.append writes [payload, exchange, routing_key]; restore_by_tag reads it.
        payload, exchange, routing_key = json.loads(_text(rt.redis.hget("unacked", tag)))
        assert payload == envelope
        assert routing_key == envelope["properties"]["delivery_info"]["routing_key"]
        assert exchange == envelope["properties"]["delivery_info"]["exchange"]
    assert rt.redis.zrange("unacked_index", 0, -1, withscores=True) == [
        (taken[0][2], 1000.0),
        (taken[1][2], 1001.0),
        (taken[2][2], 1002.0),
    ]


def test_a_taken_message_goes_back_with_kombus_own_restore(rt: Runtime) -> None:
    rt.redis.lpush("default", _message("default", "job-1"))
    _, raw, tag = rt.redis.register_script(TAKE)(keys=KEYS, args=[1.0, "1", "1", "1"])
    assert rt.redis.llen("default") == 0

    with rt.app.connection_for_write() as connection:
        connection.default_channel.qos.restore_by_tag(tag.decode(), leftmost=True)

    assert rt.redis.hlen("unacked") == 0
    back = json.loads(_text(rt.redis.rpop("default")))
    assert back["headers"]["id"] == json.loads(raw)["headers"]["id"]


def test_a_queue_consumed_without_acks_is_not_recorded(rt: Runtime) -> None:
    rt.redis.lpush("default", _message("default", "reply"))
    taken = rt.redis.register_script(TAKE)(keys=KEYS, args=[1.0, "1", "0", "1"])
    assert taken[0] == 2
    assert taken[2] is None
    assert rt.redis.hlen("unacked") == 0


def test_a_message_that_is_not_an_envelope_is_returned_unrecorded(rt: Runtime) -> None:
    rt.redis.lpush("default", b"not json")
    assert rt.redis.register_script(TAKE)(keys=KEYS, args=[1.0, "1", "1", "1"]) == [
        2,
        b"not json",
        None,
    ]
    assert rt.redis.hlen("unacked") == 0
