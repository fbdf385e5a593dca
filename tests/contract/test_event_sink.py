"""The EventSink port's contract (chalicelib/events/port.py), run against every sink: the local event bus and
EventBridge (on moto). What a consumer of "Batch Job State Change" events relies on, whichever runtime sends them."""

from __future__ import annotations

from typing import Any

from tests.contract.conftest import ACCOUNT, REGION, Sink

STATE_CHANGE = "Batch Job State Change"
# EventBridge's envelope. "account" too on AWS (the sender's) and on the local bus, but moto 5.2.5 leaves it out of
# what it hands an SQS target (it sets it, then its delivery drops it), so the contract cannot ask it of EventBridge.
ENVELOPE_KEYS = {"version", "id", "detail-type", "source", "time", "region", "resources", "detail"}


def job_arn(job_id: str) -> str:
    return f"arn:aws:batch:{REGION}:{ACCOUNT}:job/{job_id}"


def detail(job_id: str, status: str = "SUCCEEDED", **more: Any) -> dict[str, Any]:
    return {"jobId": job_id, "jobName": f"name-{job_id}", "status": status, **more}


def test_a_published_event_is_delivered_once_with_its_type_resources_and_detail(sink: Sink) -> None:
    sink.port.publish(STATE_CHANGE, [job_arn("j-1")], detail("j-1", "RUNNABLE"))

    (envelope,) = sink.delivered()
    assert envelope["detail-type"] == STATE_CHANGE
    assert envelope["resources"] == [job_arn("j-1")]
    assert envelope["detail"] == detail("j-1", "RUNNABLE")
    assert sink.delivered() == []  # once


def test_the_envelope_is_eventbridges(sink: Sink) -> None:
    sink.port.publish(STATE_CHANGE, [job_arn("j-1")], detail("j-1"))
    sink.port.publish(STATE_CHANGE, [job_arn("j-2")], detail("j-2"))

    first, second = sink.delivered()
    for envelope in (first, second):
        assert set(envelope) >= ENVELOPE_KEYS
        assert envelope["source"] == sink.source
        assert envelope["region"] == REGION
        assert isinstance(envelope["time"], str) and envelope["time"].endswith("Z")
    assert first["id"] != second["id"]


def test_every_event_of_a_burst_arrives_exactly_once(sink: Sink) -> None:
    ids = [f"j-{i:02d}" for i in range(25)]  # more than one PutEvents request holds
    for job_id in ids:
        sink.port.publish(STATE_CHANGE, [job_arn(job_id)], detail(job_id))

    delivered = sink.delivered()
    assert sorted(e["detail"]["jobId"] for e in delivered) == ids
    assert all(e["resources"] == [job_arn(e["detail"]["jobId"])] for e in delivered)


def test_the_detail_round_trips_json_types_and_unicode(sink: Sink) -> None:
    rich = detail(
        "j-ü",
        statusReason="Essential container in task exited — ✓ «done»",
        attempts=[{"container": {"exitCode": 0, "logStreamName": "jd/default/1"}, "startedAt": 1_700_000_000_000}],
        dependsOn=[],
        parameters={"k": "v", "empty": ""},
        container={"command": ["echo", "a b", "'quoted'"], "vcpus": 0.25, "privileged": False, "user": None},
    )
    sink.port.publish(STATE_CHANGE, [job_arn("j-ü")], rich)

    (envelope,) = sink.delivered()
    assert envelope["detail"] == rich


def test_a_large_detail_is_delivered_whole(sink: Sink) -> None:
    """A job's detail grows with its attempts and environment; 100 KB is well within EventBridge's 256 KB entry."""
    big = detail("j-big", container={"environment": [{"name": f"V{i}", "value": "x" * 90} for i in range(1_000)]})
    sink.port.publish(STATE_CHANGE, [job_arn("j-big")], big)

    (envelope,) = sink.delivered()
    assert envelope["detail"] == big


def test_an_event_without_resources_is_delivered(sink: Sink) -> None:
    sink.port.publish(STATE_CHANGE, [], detail("j-1"))

    (envelope,) = sink.delivered()
    assert envelope["resources"] == [] and envelope["detail"]["jobId"] == "j-1"
