"""The job record codec: what is stored is what `dataclasses.asdict` would give, except the retry strategy and
timeout, stored in their wire form (as when Job held them as dicts: docs/adr/0025); and it round-trips."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import pytest

from chalicelib.domain.jobs import ArrayInfo, Dependency, Timeout
from chalicelib.domain.retry import ExitRule, RetryStrategy
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
        retry_strategy=RetryStrategy(2, (ExitRule("retry", on_status_reason="Host EC2*"), ExitRule("exit", "*"))),
        timeout=Timeout(3600),
    )


def a_multi_container_job():  # type: ignore[no-untyped-def]
    ends = ({"name": "main", "exitCode": 0}, {"name": "side", "exitCode": 143, "reason": "stopped"})
    return dataclasses.replace(
        a_busy_job(),
        ecs_properties={"taskProperties": [{"containers": [{"name": "main", "image": "i"}]}]},
        attempts=(dataclasses.replace(an_attempt(1), containers=ends),),
    )


WIRE_RETRY = {
    "attempts": 2,
    "evaluateOnExit": [{"onStatusReason": "Host EC2*", "action": "retry"}, {"onStatusReason": "*", "action": "exit"}],
}


def test_body_matches_asdict() -> None:
    job = dataclasses.replace(
        a_multi_container_job(),
        cancel_reason="not needed",
        consumable_resources={"arn:aws:batch:r:1:consumable-resource/x": 2},
        caps={"Q#queue": 3},
    )
    expected = dataclasses.asdict(job)
    expected.pop("version")
    del expected["current"]["containers"]  # an attempt without containers' ends stores none (bytes in every item)
    expected.update(retry_strategy=WIRE_RETRY, timeout={"attemptDurationSeconds": 3600})
    for sparse in ("node_properties", "node_index"):  # None: not stored (a multi-node job's, below)
        expected.pop(sparse)
    for attempt in (*expected["attempts"], expected["current"]):
        attempt.pop("nodes")
        attempt.pop("capacity")  # None: not stored
        attempt.pop("run")  # None: not stored (a run's child stores its run: domain/runs.py)
    for lazy in ("done_base", "window"):  # 0: not stored (docs/adr/0031)
        expected["array"].pop(lazy)
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


@pytest.mark.parametrize(
    ("retry", "timeout"),
    [
        ({}, {}),  # what every job without either stored
        ({"attempts": 3}, {"attemptDurationSeconds": 60}),
        (
            {"attempts": 3, "evaluateOnExit": [{"onExitCode": "1*", "onReason": "*", "action": "RETRY"}]},
            {},
        ),  # an action stored uppercase (before submit normalised it) is kept as stored
        ({"evaluateOnExit": []}, {}),  # an empty list given renders back as given
    ],
)
def test_a_body_with_the_wire_dicts_an_earlier_version_wrote_reads_typed_and_writes_back_the_same(
    retry: dict[str, Any], timeout: dict[str, Any]
) -> None:
    # GIVEN a body as an earlier version wrote it: Job.retry_strategy and Job.timeout were these dicts
    body = {**job_body(a_busy_job()), "retry_strategy": retry, "timeout": timeout}
    item = dataclasses.replace(job_item(a_busy_job()), body=json.loads(json.dumps(body)), version=2)
    # WHEN it is read
    job = job_from_item(item)
    # THEN the job holds them typed, and writing it again stores the same dicts (keys in the model's order)
    assert job.retry_strategy == RetryStrategy.from_wire(retry)
    assert job.timeout == Timeout.from_wire(timeout)
    assert json.dumps(job_body(job), sort_keys=True) == json.dumps(body, sort_keys=True)


def test_a_multinode_job_round_trips_with_its_nodes() -> None:
    # GIVEN a multi-node job whose attempt recorded a node's own end WHEN stored and read back THEN it is the same
    np = {"numNodes": 2, "mainNode": 0, "nodeRangeProperties": [{"targetNodes": "0:1", "container": {"image": "i"}}]}
    nodes = {"1": {"exitCode": 5, "stoppedAt": 3}}
    job = a_job(node_properties=np, current=dataclasses.replace(an_attempt(1), nodes=nodes))
    item = job_item(job)
    assert "node_index" not in item.body and item.body["node_properties"] == np
    stored = dataclasses.replace(item, body=json.loads(json.dumps(item.body)), version=2)
    assert job_from_item(stored) == dataclasses.replace(job, version=2)
