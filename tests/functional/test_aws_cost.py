"""AWS calls per job on moto (docs/performance.md, "AWS cost per job"): the deterministic counts behind the bench's
`aws-cost` workload. Targets (issue "Benchmarks"): a plain job costs at most 4 DynamoDB writes, 1 RunTask and 3
handler invocations. The other counts are pinned at their measured values so that a change shows: if one moves,
check that it is intended, then update it here and in docs/performance.md.

Request units follow DynamoDB's size rules (`bench/aws_harness.TableModel`): the tests at the end pin the model
itself on items of known size."""

from __future__ import annotations

import json
from typing import Any

import pytest

from bench.aws_harness import (
    Call,
    TableModel,
    item_size,
    measure_aws_cost,
    read_units,
    write_units,
)


@pytest.fixture(scope="module")
def costs() -> dict[str, dict[str, Any]]:
    return measure_aws_cost(array_size=10, loaded=20)


def test_a_plain_job_costs_at_most_four_writes_and_one_run_task(costs: dict[str, dict[str, Any]]) -> None:
    for kind in ("plain", "plain_loaded"):
        per_job = costs[kind]["per_job"]
        assert per_job["dynamodb_writes"] <= 4, (kind, per_job)
        assert per_job["ecs_RunTask"] == 1, (kind, per_job)
        assert per_job["api_gateway_requests"] == 1, (kind, per_job)


@pytest.mark.xfail(
    strict=True,
    reason="target missed: a lone job takes 6 (API 1, ECS RUNNING and STOPPED 2, stream 2: the submit's wake and the "
    "end's reactions, dispatch 1); 4 is the sound floor, 3 needs dropping RUNNING or the serialized dispatcher "
    "(docs/adr/0009). 20 jobs together: 3.15",
)
def test_a_plain_job_costs_at_most_three_handler_invocations(costs: dict[str, dict[str, Any]]) -> None:
    assert costs["plain"]["per_job"]["handler_invocations"] <= 3


PINNED = {
    "plain": {
        "api_gateway_requests": 1.0,
        "dynamodb_reads": 15.0,
        "dynamodb_rru": 11.5,
        "dynamodb_writes": 4.0,
        "dynamodb_wru": 10.0,
        "dynamodb_wru_index": 6.0,
        "ecs_RunTask": 1.0,
        "ecs_task_events": 9.0,
        "eventbridge_events_billed": 1.0,
        "handler_invocations": 6.0,
        "lambda_dispatch": 1.0,
        "lambda_on_ecs_task_event": 2.0,
        "lambda_on_job_change": 2.0,
        "sqs_messages": 1.0,
        "stream_records": 4.0,
    },
    "plain_loaded": {
        "api_gateway_requests": 1.0,
        "dynamodb_reads": 6.45,
        "dynamodb_rru": 5.825,
        "dynamodb_writes": 4.0,
        "dynamodb_wru": 10.0,
        "dynamodb_wru_index": 6.0,
        "ecs_RunTask": 1.0,
        "ecs_task_events": 9.0,
        "eventbridge_events_billed": 1.0,
        "handler_invocations": 3.15,
        "lambda_dispatch": 0.05,
        "lambda_on_ecs_task_event": 2.0,
        "lambda_on_job_change": 0.1,
        "sqs_messages": 0.05,
        "stream_records": 4.0,
    },
    "deps3": {
        "api_gateway_requests": 1.0,
        "dynamodb_reads": 25.0,
        "dynamodb_rru": 24.0,
        "dynamodb_writes": 10.0,
        "dynamodb_wru": 24.0,
        "dynamodb_wru_index": 10.0,
        "ecs_RunTask": 1.0,
        "ecs_task_events": 9.0,
        "eventbridge_events_billed": 1.0,
        "handler_invocations": 7.0,
        "lambda_dispatch": 2.0,
        "lambda_on_ecs_task_event": 2.0,
        "lambda_on_job_change": 2.0,
        "sqs_messages": 2.0,
        "stream_records": 10.0,
    },
    "array_child": {
        "api_gateway_requests": 0.1,
        "dynamodb_reads": 7.1,
        "dynamodb_rru": 6.6,
        "dynamodb_writes": 5.2,
        "dynamodb_wru": 18.5,
        "dynamodb_wru_index": 12.3,
        "ecs_RunTask": 1.0,
        "ecs_task_events": 9.0,
        "eventbridge_events_billed": 1.1,
        "handler_invocations": 2.7,
        "lambda_dispatch": 0.2,
        "lambda_on_ecs_task_event": 2.0,
        "lambda_on_job_change": 0.4,
        "sqs_messages": 0.2,
        "stream_records": 5.2,
    },
}


@pytest.mark.parametrize("kind", sorted(PINNED))
def test_the_calls_per_job_are_as_measured(costs: dict[str, dict[str, Any]], kind: str) -> None:
    per_job = costs[kind]["per_job"]
    measured = {k: per_job.get(k, 0) for k in PINNED[kind]}
    assert measured == PINNED[kind], json.dumps(measured, indent=4)
    # no ECS call but RunTask once the task definition is registered (no DescribeTasks, no ListTasks)
    assert {k for k in per_job if k.startswith("ecs_") and k != "ecs_task_events"} == {"ecs_RunTask"}, per_job


# $ per million jobs at list prices (bench/aws_harness.PRICES), API requests through the stack's function URL, the
# functions on arm64
PINNED_USD = {"plain": 13.388, "plain_loaded": 9.733, "deps3": 25.733, "array_child": 15.228}


@pytest.mark.parametrize("kind", sorted(PINNED_USD))
def test_the_cost_per_million_jobs_is_as_measured(costs: dict[str, dict[str, Any]], kind: str) -> None:
    usd = costs[kind]["usd_per_million"]
    assert usd["control_plane"] == PINNED_USD[kind], usd
    # the function URL has no request charge; the HTTP API adds $1.00 per million requests, the REST API $3.50
    requests = costs[kind]["per_job"]["api_gateway_requests"]
    assert usd["api_gateway"] == 0 and usd["control_plane"] == usd["without_api_gateway"]
    assert usd["with_http_api"] == round(usd["control_plane"] + requests * 1.0, 3)
    assert usd["with_rest_api"] == round(usd["control_plane"] + requests * 3.5, 3)


# -- the request-unit model ------------------------------------------------------------------------------------------

SCHEMA = {
    "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
    "GlobalSecondaryIndexes": [
        {
            "IndexName": "gsi1",
            "KeySchema": [{"AttributeName": "g1s", "KeyType": "RANGE"}, {"AttributeName": "g1p", "KeyType": "HASH"}],
            "Projection": {"ProjectionType": "ALL"},
        },
        {
            "IndexName": "keys",
            "KeySchema": [{"AttributeName": "g2p", "KeyType": "HASH"}],
            "Projection": {"ProjectionType": "KEYS_ONLY"},
        },
    ],
}


def an_item(body_bytes: int, **keys: str) -> dict[str, Any]:
    """pk "a", sk "b" (6 bytes), version 1 (9 bytes), body of `body_bytes` (4 + body_bytes), then index keys."""
    item = {"pk": {"S": "a"}, "sk": {"S": "b"}, "version": {"N": "1"}, "body": {"S": "x" * body_bytes}}
    item.update({k: {"S": v} for k, v in keys.items()})
    return item


def put(model: TableModel, item: dict[str, Any], transact: bool = False) -> Call:
    call = Call("dynamodb", "TransactWriteItems" if transact else "PutItem", {})
    params = {"TransactItems": [{"Put": {"Item": item}}]} if transact else {"Item": item}
    model.charge(call, params, {})
    return call


def test_item_sizes_follow_dynamodbs_rules() -> None:
    assert item_size({"pk": {"S": "JOB#1"}, "version": {"N": "12"}}) == 2 + 5 + 7 + 2
    assert item_size({"n": {"N": "-0012300.0"}}) == 1 + 3  # "123": two bytes of digits, one more
    assert item_size({"b": {"B": b"\x00" * 10}, "t": {"BOOL": True}}) == 1 + 10 + 1 + 1
    assert item_size({"l": {"L": [{"S": "ab"}, {"N": "1"}]}}) == 1 + 3 + (1 + 2) + (1 + 2)
    assert item_size({"m": {"M": {"k": {"S": "v"}}}}) == 1 + 3 + (1 + 1 + 1)
    assert item_size(an_item(1009)) == 1028  # over 1 KB with the 15 bytes of keys and version, 4 bytes of "body"
    assert (write_units(1024), write_units(1025), write_units(0)) == (1, 2, 1)
    assert (read_units(4096, True), read_units(4097, True), read_units(4097, False), read_units(0, False)) == (
        1.0,
        2.0,
        1.0,
        0.5,
    )


def test_writes_cost_the_larger_item_and_every_index_entry_they_change() -> None:
    model = TableModel.of(SCHEMA)
    assert [g.keys for g in model.indexes] == [("g1p", "g1s"), ("g2p",)]
    # a new item in both indexes: 1 unit, 1 for gsi1 (ALL), 1 for the keys-only index
    created = put(model, an_item(100, g1p="Q#RUNNABLE", g1s="1", g2p="p"))
    assert (created.wru, created.index_wru) == (1, 2)
    # the gsi1 key changes on a 2 KB item: the table pays the larger (2), gsi1 a delete (1 KB) and a put (2 KB);
    # the keys-only entry is unchanged
    moved = put(model, an_item(1500, g1p="Q#STARTING", g1s="1", g2p="p"))
    assert (moved.wru, moved.index_wru) == (2, 1 + 2)
    # the body changes, no key does: the table and gsi1 rewrite it; the keys-only index does not see it
    same = put(model, an_item(1600, g1p="Q#STARTING", g1s="1", g2p="p"))
    assert (same.wru, same.index_wru) == (2, 2)
    # the item leaves both sparse indexes (a delete each) and shrinks: still the larger size for the table
    left = put(model, an_item(10))
    assert (left.wru, left.index_wru) == (2, 2 + 1)
    # a transactional put costs twice the table's units
    other = put(model, {**an_item(10), "pk": {"S": "z"}}, transact=True)
    assert (other.wru, other.index_wru) == (2, 0)


def test_a_lost_condition_costs_the_existing_item_and_writes_no_index() -> None:
    model = TableModel.of(SCHEMA)
    put(model, an_item(2000, g1p="x", g1s="1"))
    call = Call("dynamodb", "PutItem", {})
    model.charge(call, {"Item": an_item(10)}, {"Error": {"Code": "ConditionalCheckFailedException"}})
    assert (call.wru, call.index_wru) == (2, 0)


def test_reads_cost_by_the_bytes_they_return() -> None:
    model = TableModel.of(SCHEMA)
    small, big = an_item(100), an_item(5000)
    get = Call("dynamodb", "GetItem", {})
    model.charge(get, {"ConsistentRead": True}, {"Item": big})
    assert get.rru == 2.0
    missing = Call("dynamodb", "GetItem", {})
    model.charge(missing, {"ConsistentRead": True}, {})
    assert missing.rru == 1.0
    query = Call("dynamodb", "Query", {})
    model.charge(query, {"IndexName": "gsi1"}, {"Items": [big, small, small]})  # eventually consistent: half
    assert query.rru == 1.0
    batch = Call("dynamodb", "BatchGetItem", {})
    keys = [{"pk": {"S": str(i)}} for i in range(3)]
    model.charge(batch, {"RequestItems": {"t": {"Keys": keys, "ConsistentRead": True}}}, {"Responses": {"t": [big]}})
    assert batch.rru == 2.0 + 1.0 + 1.0  # the item found by its size, each key not found at least a unit
