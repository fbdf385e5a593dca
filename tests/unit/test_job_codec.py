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


def test_body_matches_asdict() -> None:
    job = dataclasses.replace(a_busy_job(), cancel_reason="not needed")
    expected = dataclasses.asdict(job)
    expected.pop("version")
    for sparse in ("node_properties", "node_index"):  # None: not stored (a multi-node job's, below)
        expected.pop(sparse)
    for attempt in (*expected["attempts"], expected["current"]):
        attempt.pop("nodes")
    assert json.dumps(job_body(job), sort_keys=True) == json.dumps(expected, sort_keys=True)


def test_a_job_without_a_pending_cancel_stores_no_cancel_reason() -> None:
    # GIVEN a job with no pending cancel WHEN it is encoded THEN its body has no cancel_reason (bytes in every item)
    job = a_busy_job()
    body = job_body(job)
    assert "cancel_reason" not in body
    # ... and both that body and one an earlier version wrote (cancel_reason: null) read back as the same job
    for stored in (body, {**body, "cancel_reason": None}):
        item = dataclasses.replace(job_item(job), body=json.loads(json.dumps(stored)), version=3)
        assert job_from_item(item) == dataclasses.replace(job, version=3)


def test_round_trip_through_json() -> None:
    job = a_busy_job()
    item = job_item(job)
    stored = dataclasses.replace(item, body=json.loads(json.dumps(item.body)), version=7)
    assert job_from_item(stored) == dataclasses.replace(job, version=7)


def test_a_multinode_job_round_trips_with_its_nodes() -> None:
    # GIVEN a multi-node job whose attempt recorded a node's own end WHEN stored and read back THEN it is the same
    np = {"numNodes": 2, "mainNode": 0, "nodeRangeProperties": [{"targetNodes": "0:1", "container": {"image": "i"}}]}
    nodes = {"1": {"exitCode": 5, "stoppedAt": 3}}
    job = a_job(node_properties=np, current=dataclasses.replace(an_attempt(1), nodes=nodes))
    item = job_item(job)
    assert "node_index" not in item.body and item.body["node_properties"] == np
    stored = dataclasses.replace(item, body=json.loads(json.dumps(item.body)), version=2)
    assert job_from_item(stored) == dataclasses.replace(job, version=2)
