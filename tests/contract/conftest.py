"""Every adapter of a port runs the same contract tests: add an adapter by adding an entry to the port's table.

- ItemStore (`store`): SQLite, DynamoDB on moto, and the AWS runtime's invocation cache (over SQLite, every test
  inside one invocation's scope, where it answers resource reads from memory).
- EventSink (`sink`): the local event bus, EventBridge on moto (read back through a rule to an SQS queue). NullSink,
  the runtime's default that drops every event, is no adapter of the port's promise (delivery) and is left out.
- LogStore (`logs`): the local runtime's files. On AWS the jobs' logs are CloudWatch Logs itself (the awslogs driver
  writes them and clients read them there): batchplane has no CloudWatch adapter of the port to test.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from chalicelib.compute.logs import FileLogStore
from chalicelib.compute.logs_port import LogStore
from chalicelib.events.local import LocalEventBus
from chalicelib.events.port import EventSink
from chalicelib.store.port import ItemStore
from chalicelib.store.sqlite import SqliteItemStore

REGION = "us-east-1"
ACCOUNT = "123456789012"


def _sqlite(tmp_path: Path) -> Iterator[ItemStore]:
    store = SqliteItemStore(str(tmp_path / "state.db"))
    yield store
    store.close()


@contextlib.contextmanager
def _moto() -> Iterator[None]:
    """moto's AWS in-process, with a fresh account per test."""
    from moto import mock_aws

    with pytest.MonkeyPatch.context() as env:
        env.setenv("AWS_DEFAULT_REGION", REGION)
        env.setenv("AWS_ACCESS_KEY_ID", "testing")
        env.setenv("AWS_SECRET_ACCESS_KEY", "testing")
        env.setenv("AWS_SESSION_TOKEN", "testing")
        # In-process moto does not know botocore's account-based endpoints (stack-findings).
        env.setenv("AWS_ACCOUNT_ID_ENDPOINT_MODE", "disabled")
        for name in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_DYNAMODB"):
            env.delenv(name, raising=False)
        with mock_aws():
            yield


def _dynamo(tmp_path: Path) -> Iterator[ItemStore]:
    """DynamoDB in-process under moto: a fresh account (and so a fresh table) per test."""
    from chalicelib.store.dynamo import DynamoItemStore

    with _moto():
        store = DynamoItemStore("batchplane-test", region=REGION)
        store.create_table(wait=True)
        yield store
        store.close()


def _invocation_cache(tmp_path: Path) -> Iterator[ItemStore]:
    """The AWS runtime's store (store/invocation_cache.py) within one invocation: it must keep the port's promises."""
    from chalicelib.store.invocation_cache import InvocationCache

    cache = InvocationCache(SqliteItemStore(str(tmp_path / "state.db")))
    with cache.scope():
        yield cache
    cache.close()


ADAPTERS = {"sqlite": _sqlite, "dynamo": _dynamo, "invocation_cache": _invocation_cache}


@pytest.fixture(params=sorted(ADAPTERS))
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ItemStore]:
    yield from ADAPTERS[request.param](tmp_path)


# -- EventSink ------------------------------------------------------------------------------------------------------

Envelope = dict[str, Any]


@dataclass
class Sink:
    """An EventSink under test and how to see what it delivered: `delivered()` returns the envelopes (EventBridge's
    shape: detail-type, source, account, region, resources, detail) that reached a consumer since the last call."""

    port: EventSink
    delivered: Callable[[], list[Envelope]]
    source: str  # the envelopes' source: aws.batch locally; EventBridge refuses `aws.` sources from PutEvents


def _local_bus(tmp_path: Path) -> Iterator[Sink]:
    bus = LocalEventBus(tmp_path / "events.jsonl", account=ACCOUNT, region=REGION)
    seen: list[Envelope] = []
    bus.subscribe(seen.append)

    def delivered() -> list[Envelope]:
        out = list(seen)
        seen.clear()
        return out

    yield Sink(bus, delivered, "aws.batch")
    bus.close()


def _eventbridge(tmp_path: Path) -> Iterator[Sink]:
    """EventBridge on moto: a rule on the bus for the sink's source, targeting an SQS queue the test reads."""
    import boto3

    from chalicelib.events.eventbridge import DEFAULT_SOURCE, EventBridgeSink

    with _moto():
        events, sqs = boto3.client("events", region_name=REGION), boto3.client("sqs", region_name=REGION)
        queue = sqs.create_queue(QueueName="batchplane-events")["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        events.put_rule(Name="batch-state", EventPattern=json.dumps({"source": [DEFAULT_SOURCE]}))
        events.put_targets(Rule="batch-state", Targets=[{"Id": "queue", "Arn": arn}])

        def delivered() -> list[Envelope]:
            out: list[Envelope] = []
            while True:
                got = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10).get("Messages") or []
                if not got:
                    return out
                for message in got:
                    out.append(json.loads(message["Body"]))
                    sqs.delete_message(QueueUrl=queue, ReceiptHandle=message["ReceiptHandle"])

        yield Sink(EventBridgeSink(lambda: boto3.client("events", region_name=REGION)), delivered, DEFAULT_SOURCE)


SINKS = {"local": _local_bus, "eventbridge": _eventbridge}


@pytest.fixture(params=sorted(SINKS))
def sink(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Sink]:
    yield from SINKS[request.param](tmp_path)


# -- LogStore -------------------------------------------------------------------------------------------------------


@dataclass
class Logs:
    """A LogStore under test; `reopen()` is a new instance on the same storage (a restarted server)."""

    port: LogStore
    reopen: Callable[[], LogStore]


def _files(tmp_path: Path) -> Iterator[Logs]:
    store = FileLogStore(tmp_path / "logs", clock=lambda: 5_000)
    yield Logs(store, lambda: FileLogStore(tmp_path / "logs", clock=lambda: 5_000))
    store.close()


LOG_STORES = {"files": _files}


@pytest.fixture(params=sorted(LOG_STORES))
def logs(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Logs]:
    yield from LOG_STORES[request.param](tmp_path)
