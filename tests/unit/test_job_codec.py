"""The job record codec: what is stored is exactly what `dataclasses.asdict` would give, and it round-trips."""

from __future__ import annotations

import dataclasses
import json

from chalicelib.domain.jobs import ArrayInfo, Dependency
from chalicelib.store.jobs import job_body, job_from_item, job_item
from tests.unit.builders import a_job, an_attempt


def a_busy_job():  # type: ignore[no-untyped-def]
    return a_job(
        current=an_attempt(2),
        attempts=(an_attempt(1),),
        array=ArrayInfo(size=4, children_created=2, done_bits="0f"),
        depends_on=(Dependency("x", None), Dependency(None, "SEQUENTIAL")),
        pending=("x",),
        container={"image": "i", "environment": [{"name": "A", "value": "1"}]},
    )


def a_multi_container_job():  # type: ignore[no-untyped-def]
    ends = ({"name": "main", "exitCode": 0}, {"name": "side", "exitCode": 143, "reason": "stopped"})
    return dataclasses.replace(
        a_busy_job(),
        ecs_properties={"taskProperties": [{"containers": [{"name": "main", "image": "i"}]}]},
        attempts=(dataclasses.replace(an_attempt(1), containers=ends),),
    )


def test_body_matches_asdict() -> None:
    job = dataclasses.replace(
        a_multi_container_job(),
        cancel_reason="not needed",
        consumable_resources={"arn:aws:batch:r:1:consumable-resource/x": 2},
    )
    expected = dataclasses.asdict(job)
    expected.pop("version")
    del expected["current"]["containers"]  # an attempt without containers' ends stores none (bytes in every item)
    assert json.dumps(job_body(job), sort_keys=True) == json.dumps(expected, sort_keys=True)


def test_a_job_without_a_pending_cancel_stores_no_cancel_reason() -> None:
    # GIVEN a job with no pending cancel WHEN it is encoded THEN its body has no cancel_reason (bytes in every item)
    job = a_busy_job()
    body = job_body(job)
    assert "cancel_reason" not in body
    assert "ecs_properties" not in body  # nor the fields of multi-container jobs
    assert all("containers" not in a for a in body["attempts"]) and "containers" not in body["current"]
    # ... and both that body and one an earlier version wrote (cancel_reason: null) read back as the same job
    for stored in (body, {**body, "cancel_reason": None}):
        item = dataclasses.replace(job_item(job), body=json.loads(json.dumps(stored)), version=3)
        assert job_from_item(item) == dataclasses.replace(job, version=3)


def test_round_trip_through_json() -> None:
    job = a_busy_job()
    item = job_item(job)
    stored = dataclasses.replace(item, body=json.loads(json.dumps(item.body)), version=7)
    assert job_from_item(stored) == dataclasses.replace(job, version=7)


def test_a_job_without_consumable_resources_stores_none_and_one_with_them_round_trips() -> None:
    assert "consumable_resources" not in job_body(a_busy_job())
    job = dataclasses.replace(a_busy_job(), consumable_resources={"arn:aws:batch:r:1:consumable-resource/x": 2})
    item = job_item(job)
    stored = dataclasses.replace(item, body=json.loads(json.dumps(item.body)), version=2)
    assert job_from_item(stored) == dataclasses.replace(job, version=2)


def test_a_multi_container_job_round_trips() -> None:
    job = a_multi_container_job()
    item = job_item(job)
    stored = dataclasses.replace(item, body=json.loads(json.dumps(item.body)), version=2)
    assert job_from_item(stored) == dataclasses.replace(job, version=2)
