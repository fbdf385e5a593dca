"""The DynamoDB adapter's storage format (docs/adr/0011), on moto: bodies of at least COMPRESS_FROM bytes are stored
deflated with a frozen preset dictionary, smaller ones as JSON text; items written either way read back the same,
from the table and from a stream image; a transaction of one write is sent as that write."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import boto3
import pytest
from moto import mock_aws

from bench.aws_harness import CallCounter, TableModel
from chalicelib.domain.effects import effects_of
from chalicelib.domain.errors import Conflict
from chalicelib.runtime import stream
from chalicelib.store import dynamo
from chalicelib.store.dynamo import DynamoItemStore
from chalicelib.store.jobs import EDGE_RETENTION_SECONDS, RETENTION_SECONDS, JobRepository, job_item
from chalicelib.store.port import Item, Put
from tests.functional.moto_env import MOTO_ENV
from tests.unit.builders import a_running_job

TABLE = "store-format"


@pytest.fixture
def table(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[DynamoItemStore, Any, CallCounter]]:
    for name, value in MOTO_ENV.items():
        monkeypatch.setenv(name, value)
    for name in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_DYNAMODB"):
        monkeypatch.delenv(name, raising=False)
    with mock_aws():
        raw = boto3.client("dynamodb", region_name="us-east-1")  # made before the counter: not counted
        counter = CallCounter()
        with counter.installed():
            store = DynamoItemStore(TABLE, region="us-east-1")
            store.create_table(wait=False)
            counter.table = TableModel.of(raw.describe_table(TableName=TABLE)["Table"])
            yield store, raw, counter


def stored(raw: Any, pk: str) -> dict[str, Any]:
    item: dict[str, Any] = raw.get_item(TableName=TABLE, Key={"pk": {"S": pk}, "sk": {"S": "#"}})["Item"]
    return item


def test_a_job_is_stored_compressed_under_a_write_unit_and_reads_back_the_same(
    table: tuple[DynamoItemStore, Any, CallCounter],
) -> None:
    store, raw, counter = table
    item = job_item(a_running_job())
    assert len(json.dumps(item.body, separators=(",", ":"))) > 1024  # a running job's JSON: over 1 KB
    body = json.loads(json.dumps(item.body))  # as JSON has it (lists, not tuples)

    store.put(item, None)

    attributes = stored(raw, item.pk)
    assert "body" not in attributes and attributes["bz"]["B"][0] == 1  # format 1: deflate, dictionary v1
    (put,) = [c for c in counter.calls if c.operation == "PutItem"]
    assert (put.wru, put.index_wru) == (1, 1)  # the table and gsi1 each pay one unit, not two
    got = store.get(item.pk, "")
    assert got is not None and got.body == body
    (found,) = store.query("gsi1", item.gsi1[0] if item.gsi1 else "")
    assert found.body == body


def test_a_small_body_stays_readable_json(table: tuple[DynamoItemStore, Any, CallCounter]) -> None:
    store, raw, _ = table
    store.put(Item("DEP#a", "b", {}), None)
    store.put(Item("JQ", "q", {"name": "q", "priority": 1}), None)

    queue = raw.get_item(TableName=TABLE, Key={"pk": {"S": "JQ"}, "sk": {"S": "#q"}})["Item"]
    assert json.loads(queue["body"]["S"]) == {"name": "q", "priority": 1} and "bz" not in queue


def test_items_written_as_json_text_before_still_read(table: tuple[DynamoItemStore, Any, CallCounter]) -> None:
    store, raw, _ = table
    item = job_item(a_running_job())
    raw.put_item(
        TableName=TABLE,
        Item={
            "pk": {"S": item.pk},
            "sk": {"S": "#"},
            "version": {"N": "3"},
            "body": {"S": json.dumps(item.body)},
        },
    )

    got = store.get(item.pk, "")

    assert got is not None and got.body == json.loads(json.dumps(item.body)) and got.version == 3


def test_the_first_dictionary_is_frozen() -> None:
    # Compressed with format 1 when it was introduced: editing _ZDICT_V1 would make stored items unreadable.
    golden = bytes.fromhex(
        "01432a7bd2f37380eec6992fb1e5c3a4d2e2caa4fc0ad42a283539231f289201744cbe12b00da504acb8418a2b46c1a0024ab500"
    )
    assert dynamo.decode_body(None, golden) == {
        "job_id": "golden",
        "status": "SUCCEEDED",
        "container": {"image": "busybox", "command": ["echo", "hello"]},
        "note": "x" * 400,
    }


def test_the_stream_reads_a_compressed_image() -> None:
    job = replace(a_running_job(), version=2)
    image = dynamo.image(replace(job_item(job), version=2))
    assert "bz" in image and isinstance(image["bz"]["B"], str)  # base64, as in a Lambda event

    record = {"dynamodb": {"Keys": {"pk": image["pk"], "sk": image["sk"]}, "SequenceNumber": "1", "NewImage": image}}
    change = stream.decode(record)

    assert change is not None and change.new == job


def test_a_transaction_of_one_write_is_that_write(table: tuple[DynamoItemStore, Any, CallCounter]) -> None:
    store, _, counter = table
    item = job_item(a_running_job())

    store.transact([Put(item, None)])

    assert [c.operation for c in counter.calls if c.service == "dynamodb"][-1] == "PutItem"
    with pytest.raises(Conflict):
        store.transact([Put(item, None)])  # the same condition: it must not exist
    assert store.get(item.pk, "") is not None


def test_a_finished_job_expires_after_the_retention_and_a_live_one_never(
    table: tuple[DynamoItemStore, Any, CallCounter],
) -> None:
    store, raw, _ = table
    running = a_running_job()
    finished = replace(running, job_id="job-2", status="SUCCEEDED", stopped_at=1_700_000_123_456)

    store.put(job_item(running), None)
    stored_finished = store.put(job_item(finished), None)

    # the TTL attribute the table's TimeToLiveSpecification names (infra/), in epoch seconds
    assert "ttl" not in stored(raw, job_item(running).pk)
    assert stored(raw, job_item(finished).pk)["ttl"] == {"N": str(1_700_000_123 + RETENTION_SECONDS)}
    read = store.get(job_item(finished).pk, "")
    assert read is not None and read.expires_at == stored_finished.expires_at == 1_700_000_123 + RETENTION_SECONDS
    # a stream image carries it too, and an expired item's REMOVE record has no effect
    assert dynamo.image_item(dynamo.image(stored_finished)).expires_at == stored_finished.expires_at
    removed = {"dynamodb": {"Keys": {"pk": {"S": stored_finished.pk}}, "OldImage": dynamo.image(stored_finished)}}
    change = stream.decode(removed)
    assert change is not None and change.new is None and effects_of(change.old, change.new) == ()


def test_dependency_edges_expire_long_after_their_dependent_was_submitted(
    table: tuple[DynamoItemStore, Any, CallCounter],
) -> None:
    store, raw, _ = table
    dependent = replace(a_running_job(), job_id="dependent", status="PENDING", created_at=1_700_000_000_999)

    JobRepository(store).create_with_edges(dependent, ["dep-a", "dep-b"])

    for dependency in ("dep-a", "dep-b"):
        edge = raw.get_item(TableName=TABLE, Key={"pk": {"S": f"DEP#{dependency}"}, "sk": {"S": "#dependent"}})["Item"]
        assert edge["ttl"] == {"N": str(1_700_000_000 + EDGE_RETENTION_SECONDS)}
    assert EDGE_RETENTION_SECONDS > RETENTION_SECONDS  # outlives a dependent that finished soon after submission
    assert list(JobRepository(store).dependents("dep-a")) == ["dependent"]
