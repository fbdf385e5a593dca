"""CloudWatch Logs on the batchplane endpoint: a stock boto3 `logs` client reads the local job log streams."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from typing import Any

import boto3
import pytest

from chalicelib.api.logs_api import handle_logs
from chalicelib.compute.logs_port import LOG_GROUP, LogStore
from chalicelib.runtime.local import LocalRuntime
from tests.functional.builders import ACCOUNT, REGION, BatchClient
from tests.functional.conftest import CLIENT_CONFIG

LogsClient = Any  # botocore builds the client class at runtime
STREAM = "sleep-jd/default/6a1f0c6e-8d3b-4a44-9c2d-000000000001"


@pytest.fixture
def logs(boto_session: boto3.session.Session, endpoint: str) -> Iterator[LogsClient]:
    client = boto_session.client("logs", endpoint_url=endpoint, config=CLIENT_CONFIG)
    yield client
    client.close()


@pytest.fixture
def store(runtime: LocalRuntime) -> LogStore:
    assert runtime.services.logs is not None
    return runtime.services.logs


def _append(store: LogStore, n: int, stream: str = STREAM, first_ts: int = 1_700_000_000_000) -> None:
    batch = 5_000
    for start in range(0, n, batch):
        store.append(stream, [(first_ts + i, f"line {i}") for i in range(start, min(n, start + batch))])


def _get_all(logs: LogsClient, forward: bool, **kwargs: Any) -> tuple[list[str], int]:
    """Every event in one direction, following the token until it repeats (how boto3 users page). Returns the
    messages and the number of calls."""
    response = logs.get_log_events(logGroupName=LOG_GROUP, logStreamName=STREAM, startFromHead=forward, **kwargs)
    key = "nextForwardToken" if forward else "nextBackwardToken"
    messages = [e["message"] for e in response["events"]]
    calls = 1
    while True:
        token = response[key]
        response = logs.get_log_events(logGroupName=LOG_GROUP, logStreamName=STREAM, nextToken=token, **kwargs)
        calls += 1
        page = [e["message"] for e in response["events"]]
        messages = messages + page if forward else page + messages
        if response[key] == token:
            assert page == []
            return messages, calls
        assert calls < 1_000


def test_get_log_events_pages_both_ways_until_the_token_repeats(logs: LogsClient, store: LogStore) -> None:
    _append(store, 23)
    expected = [f"line {i}" for i in range(23)]
    assert _get_all(logs, forward=True, limit=5) == (expected, 6)
    assert _get_all(logs, forward=False, limit=5) == (expected, 6)

    head = logs.get_log_events(logGroupName=LOG_GROUP, logStreamName=STREAM, startFromHead=True, limit=2)
    assert [(e["timestamp"], e["message"]) for e in head["events"]] == [
        (1_700_000_000_000, "line 0"),
        (1_700_000_000_001, "line 1"),
    ]
    assert all(isinstance(e["ingestionTime"], int) for e in head["events"])
    tail = logs.get_log_events(logGroupName=LOG_GROUP, logStreamName=STREAM, limit=2)  # startFromHead defaults false
    assert [e["message"] for e in tail["events"]] == ["line 21", "line 22"]


def test_a_follower_sees_new_lines_with_the_forward_token(logs: LogsClient, store: LogStore) -> None:
    _append(store, 3)
    response = logs.get_log_events(logGroupIdentifier=LOG_GROUP, logStreamName=STREAM, startFromHead=True)
    token = response["nextForwardToken"]
    assert logs.get_log_events(logGroupName=LOG_GROUP, logStreamName=STREAM, nextToken=token)["events"] == []
    store.append(STREAM, [(1_800_000_000_000, "late line")])
    response = logs.get_log_events(logGroupName=LOG_GROUP, logStreamName=STREAM, nextToken=token)
    assert [e["message"] for e in response["events"]] == ["late line"]


def test_a_25000_line_stream_pages_in_full_pages(logs: LogsClient, store: LogStore) -> None:
    _append(store, 25_000)
    expected = [f"line {i}" for i in range(25_000)]
    first = logs.get_log_events(logGroupName=LOG_GROUP, logStreamName=STREAM, startFromHead=True)
    assert len(first["events"]) == 10_000  # the default limit is the maximum
    assert _get_all(logs, forward=True) == (expected, 4)  # 10000 + 10000 + 5000 + the empty confirming call
    assert _get_all(logs, forward=False) == (expected, 4)
    last = logs.get_log_events(logGroupName=LOG_GROUP, logStreamName=STREAM)
    assert last["events"][-1]["message"] == "line 24999" and len(last["events"]) == 10_000


def test_get_log_events_time_window(logs: LogsClient, store: LogStore) -> None:
    _append(store, 100, first_ts=0)
    response = logs.get_log_events(
        logGroupName=LOG_GROUP, logStreamName=STREAM, startTime=10, endTime=20, startFromHead=True
    )
    assert [e["timestamp"] for e in response["events"]] == list(range(10, 20))


def test_filter_log_events_with_patterns(logs: LogsClient, store: LogStore) -> None:
    store.append(
        STREAM,
        [
            (1, "INFO starting"),
            (2, "ERROR disk full on /dev/sda"),
            (3, "WARN disk almost full"),
            (4, "ERROR network down"),
            (5, "error lower case"),
        ],
    )
    store.append("other-jd/default/x", [(1, "ERROR elsewhere")])

    def messages(**kwargs: Any) -> list[str]:
        response = logs.filter_log_events(logGroupName=LOG_GROUP, logStreamNames=[STREAM], **kwargs)
        return [e["message"] for e in response["events"]]

    assert len(messages()) == 5
    assert messages(filterPattern="") == messages()
    assert messages(filterPattern="ERROR") == ["ERROR disk full on /dev/sda", "ERROR network down"]
    assert messages(filterPattern="disk full") == ["ERROR disk full on /dev/sda", "WARN disk almost full"]
    assert messages(filterPattern='"disk full"') == ["ERROR disk full on /dev/sda"]
    assert messages(filterPattern="ERROR -disk") == ["ERROR network down"]
    assert messages(filterPattern="?WARN ?INFO") == ["INFO starting", "WARN disk almost full"]
    assert messages(filterPattern="ERROR", startTime=3, endTime=5) == ["ERROR network down"]

    event = logs.filter_log_events(logGroupName=LOG_GROUP, logStreamNames=[STREAM], filterPattern="network")["events"]
    assert set(event[0]) == {"logStreamName", "timestamp", "message", "ingestionTime", "eventId"}
    assert event[0]["logStreamName"] == STREAM and event[0]["timestamp"] == 4
    everywhere = logs.filter_log_events(logGroupName=LOG_GROUP, filterPattern="ERROR")["events"]
    assert {e["logStreamName"] for e in everywhere} == {STREAM, "other-jd/default/x"}
    by_prefix = logs.filter_log_events(logGroupName=LOG_GROUP, logStreamNamePrefix="other-", filterPattern="ERROR")
    assert [e["message"] for e in by_prefix["events"]] == ["ERROR elsewhere"]
    assert messages(filterPattern="ERROR") == messages(filterPattern="ERROR")  # stable eventIds: see below
    again = logs.filter_log_events(logGroupName=LOG_GROUP, logStreamNames=[STREAM], filterPattern="network")["events"]
    assert again[0]["eventId"] == event[0]["eventId"]


def test_filter_log_events_pages_with_limit_and_token(logs: LogsClient, store: LogStore) -> None:
    _append(store, 25_000)
    pages = logs.get_paginator("filter_log_events").paginate(
        logGroupName=LOG_GROUP, logStreamNames=[STREAM], filterPattern="line", PaginationConfig={"PageSize": 7_000}
    )
    got = [e["message"] for page in pages for e in page["events"]]
    assert got == [f"line {i}" for i in range(25_000)]
    # Sparse matches with a small limit: each page stops right after its last match, nothing lost or repeated.
    pages = logs.get_paginator("filter_log_events").paginate(
        logGroupName=LOG_GROUP, logStreamNames=[STREAM], filterPattern='"line 2499"', PaginationConfig={"PageSize": 3}
    )
    ids: list[str] = []
    got = []
    for page in pages:
        assert len(page["events"]) <= 3
        ids += [e["eventId"] for e in page["events"]]
        got += [e["message"] for e in page["events"]]
    assert got == ["line 2499", *(f"line 2499{d}" for d in range(10))]
    assert len(set(ids)) == len(ids)
    # Dense matches with a small limit read only what the page needs.
    page = logs.filter_log_events(logGroupName=LOG_GROUP, logStreamNames=[STREAM], filterPattern="line", limit=2)
    assert [e["message"] for e in page["events"]] == ["line 0", "line 1"]
    page = logs.filter_log_events(
        logGroupName=LOG_GROUP, logStreamNames=[STREAM], filterPattern="line", limit=2, nextToken=page["nextToken"]
    )
    assert [e["message"] for e in page["events"]] == ["line 2", "line 3"]


def test_describe_log_streams(logs: LogsClient, store: LogStore) -> None:
    names = [f"jd-{c}/default/{i}" for c in "ab" for i in range(3)]
    for n, name in enumerate(names):
        store.append(name, [(1_000 + n, "x"), (2_000 + 10 * n, "y")])

    listed = logs.describe_log_streams(logGroupName=LOG_GROUP)["logStreams"]
    assert [s["logStreamName"] for s in listed] == names
    first = listed[0]
    assert first["firstEventTimestamp"] == 1_000 and first["lastEventTimestamp"] == 2_000
    assert first["creationTime"] > 0
    assert first["arn"] == f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:{LOG_GROUP}:log-stream:{names[0]}"

    prefixed = logs.describe_log_streams(logGroupName=LOG_GROUP, logStreamNamePrefix="jd-b/", descending=True)
    assert [s["logStreamName"] for s in prefixed["logStreams"]] == names[:2:-1]
    paged = logs.get_paginator("describe_log_streams").paginate(
        logGroupName=LOG_GROUP, PaginationConfig={"PageSize": 4}
    )
    assert [s["logStreamName"] for page in paged for s in page["logStreams"]] == names
    latest = logs.describe_log_streams(logGroupName=LOG_GROUP, orderBy="LastEventTime", descending=True, limit=2)
    assert [s["logStreamName"] for s in latest["logStreams"]] == [names[5], names[4]]
    assert "nextToken" in latest


def test_describe_log_groups(logs: LogsClient) -> None:
    groups = logs.describe_log_groups()["logGroups"]
    assert [g["logGroupName"] for g in groups] == [LOG_GROUP]
    assert groups[0]["arn"] == f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:{LOG_GROUP}:*"
    assert [g["logGroupName"] for g in logs.describe_log_groups(logGroupNamePrefix="/aws/batch")["logGroups"]] == [
        LOG_GROUP
    ]
    assert logs.describe_log_groups(logGroupNamePrefix="/other")["logGroups"] == []


def test_unknown_streams_and_groups_are_resource_not_found(logs: LogsClient, store: LogStore) -> None:
    _append(store, 1)
    with pytest.raises(logs.exceptions.ResourceNotFoundException):
        logs.get_log_events(logGroupName=LOG_GROUP, logStreamName="nope/default/1")
    with pytest.raises(logs.exceptions.ResourceNotFoundException):
        logs.get_log_events(logGroupName="/aws/lambda/x", logStreamName=STREAM)
    with pytest.raises(logs.exceptions.ResourceNotFoundException):
        logs.describe_log_streams(logGroupName="/nope")
    with pytest.raises(logs.exceptions.ResourceNotFoundException):
        logs.get_log_events(logGroupName=LOG_GROUP, logStreamName="../../state.db")


def test_bad_input_is_invalid_parameter(logs: LogsClient, store: LogStore) -> None:
    _append(store, 3)
    for token in ("f/1", "x/0", "garbage"):
        with pytest.raises(logs.exceptions.InvalidParameterException):
            logs.get_log_events(logGroupName=LOG_GROUP, logStreamName=STREAM, nextToken=token)
    with pytest.raises(logs.exceptions.InvalidParameterException):
        logs.filter_log_events(logGroupName=LOG_GROUP, filterPattern="{ $.level = 1 }")
    with pytest.raises(logs.exceptions.InvalidParameterException):
        logs.filter_log_events(logGroupName=LOG_GROUP, nextToken="not-a-token")
    with pytest.raises(logs.exceptions.InvalidParameterException):
        logs.filter_log_events(logGroupName=LOG_GROUP, logStreamNames=[STREAM], logStreamNamePrefix="s")
    with pytest.raises(logs.exceptions.InvalidParameterException):
        logs.describe_log_streams(logGroupName=LOG_GROUP, logStreamNamePrefix="s", orderBy="LastEventTime")


def test_unknown_operations_and_deployments_without_local_logs(runtime: LocalRuntime) -> None:
    headers = {"X-Amz-Target": "Logs_20140328.PutLogEvents", "Content-Type": "application/x-amz-json-1.1"}
    status, response_headers, body = handle_logs(runtime.services, headers, b"{}")
    assert (status, json.loads(body)["__type"]) == (400, "UnknownOperationException")
    assert response_headers["x-amzn-RequestId"]
    without_logs = dataclasses.replace(runtime.services, logs=None)
    headers["X-Amz-Target"] = "Logs_20140328.DescribeLogGroups"
    status, _, body = handle_logs(without_logs, headers, b"{}")
    assert status == 400
    assert json.loads(body)["__type"] == "ResourceNotFoundException"
    assert "CloudWatch Logs" in json.loads(body)["message"]


def test_the_batch_api_still_answers_on_the_same_endpoint(batch: BatchClient, logs: LogsClient) -> None:
    assert batch.describe_job_queues()["jobQueues"] == []
    assert logs.describe_log_groups()["logGroups"][0]["logGroupName"] == LOG_GROUP
