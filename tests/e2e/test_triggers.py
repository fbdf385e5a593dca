"""Triggers under the local runtime: a file dropped into a bucket folder and a `rate(1 minute)` schedule each submit
jobs whose parameters carry their source; neither fires twice, across a restart too."""

from __future__ import annotations

import json
import os
import time
import urllib.request
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from chalicelib.domain import schedules
from chalicelib.runtime.local import LocalRuntime
from chalicelib.runtime.triggers import CTIME_SLACK_MS
from tests.e2e.conftest import (
    Client,
    ClientFactory,
    Runtimes,
    describe,
    job_log,
    register,
    setup_queue,
    wait_terminal,
    wait_until,
)

pytestmark = pytest.mark.e2e

MINUTE_MS = 60_000
POLL_S = 0.2  # the trigger runner's scan interval in these tests (1 s by default)


def fast(rt: LocalRuntime) -> LocalRuntime:
    rt.triggers.poll_seconds = POLL_S
    rt.triggers.wake()
    return rt


def a_few_scans() -> None:
    time.sleep(6 * POLL_S)


def create_trigger(endpoint: str, definition: dict[str, Any]) -> dict[str, Any]:
    request = urllib.request.Request(
        f"{endpoint}/v1/createtrigger",
        data=json.dumps(definition).encode(),
        method="POST",
        headers={"Content-Type": "application/json", "X-Amz-Date": "20260101T000000Z"},  # as SDKs send it
    )
    with urllib.request.urlopen(request, timeout=10) as resp:
        result: dict[str, Any] = json.loads(resp.read())
    return result


def jobs_named(batch: Client, queue: str, name: str) -> list[str]:
    ids = []
    for page in batch.get_paginator("list_jobs").paginate(
        jobQueue=queue, filters=[{"name": "JOB_NAME", "values": [name]}]
    ):
        ids += [s["jobId"] for s in page["jobSummaryList"]]
    return sorted(ids)


def drop(path: Path, text: str) -> None:
    """Write a file the way a person should: elsewhere (a dot-name), then rename it into place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.parent / f".{path.name}.part"
    partial.write_text(text)
    os.replace(partial, path)


def test_a_file_dropped_into_a_bucket_folder_submits_one_job_with_bucket_and_key(
    make_runtime: Runtimes, runtime: LocalRuntime, clients: ClientFactory, state_dir: Path
) -> None:
    fast(runtime)
    batch = clients("batch", runtime.endpoint)
    logs = clients("logs", runtime.endpoint)
    queue, _ = setup_queue(batch)
    register(batch, "ingest", ["echo", "got", "Ref::bucket", "Ref::key", "Ref::mode"], parameters={"mode": "x"})
    # GIVEN a trigger on csv files under incoming/ of bucket data-in
    create_trigger(
        runtime.endpoint,
        {
            "triggerName": "on-csv",
            "jobQueue": queue,
            "jobDefinition": "ingest",
            "jobName": "ingest",
            "parameters": {"mode": "fast"},
            "source": {"s3": {"bucket": "data-in", "prefix": "incoming/", "suffix": ".csv"}},
        },
    )
    bucket = state_dir / "buckets" / "data-in"
    # WHEN a csv lands under the prefix, next to files the trigger does not match
    drop(bucket / "incoming" / "2024" / "a.csv", "1,2,3\n")
    drop(bucket / "incoming" / "notes.txt", "not a csv\n")
    drop(bucket / "elsewhere" / "b.csv", "wrong prefix\n")
    wait_until(lambda: len(jobs_named(batch, queue, "ingest")) == 1, "the trigger to submit a job")
    # THEN one job ran, with the object's bucket and key as parameters (the trigger's own too)
    (job_id,) = jobs_named(batch, queue, "ingest")
    job = wait_terminal(batch, [job_id])[job_id]
    assert job["status"] == "SUCCEEDED"
    assert job["parameters"] == {
        "mode": "fast",
        "bucket": "data-in",
        "key": "incoming/2024/a.csv",
        "triggerName": "on-csv",
    }
    assert job_log(logs, job) == ["got data-in incoming/2024/a.csv fast"]

    # WHEN the same file stays there for more scans, and the server restarts
    a_few_scans()
    make_runtime.stop(runtime)
    again = fast(make_runtime.start())
    batch = clients("batch", again.endpoint)
    a_few_scans()
    # THEN it is not submitted again
    assert jobs_named(batch, queue, "ingest") == [job_id]

    # WHEN the object is written again (a new object, as an S3 overwrite is)
    drop(bucket / "incoming" / "2024" / "a.csv", "4,5,6\n")
    # THEN it fires once more
    wait_until(lambda: len(jobs_named(batch, queue, "ingest")) == 2, "the overwrite to submit a job")
    a_few_scans()
    assert len(jobs_named(batch, queue, "ingest")) == 2


def test_a_file_present_before_the_trigger_existed_does_not_fire(
    runtime: LocalRuntime, clients: ClientFactory, state_dir: Path
) -> None:
    fast(runtime)
    batch = clients("batch", runtime.endpoint)
    queue, _ = setup_queue(batch)
    register(batch, "ingest", ["true"])
    # GIVEN a file that was in the bucket folder before the trigger was created (beyond the timestamp slack)
    drop(state_dir / "buckets" / "archive" / "old.csv", "old\n")
    time.sleep(CTIME_SLACK_MS / 1000 + 0.2)
    create_trigger(
        runtime.endpoint,
        {
            "triggerName": "archive",
            "jobQueue": queue,
            "jobDefinition": "ingest",
            "jobName": "archived",
            "source": {"s3": {"bucket": "archive"}},
        },
    )
    # WHEN a new file arrives
    drop(state_dir / "buckets" / "archive" / "new.csv", "new\n")
    # THEN only the new one fires (S3 notifies objects created after the notification was set up)
    wait_until(lambda: len(jobs_named(batch, queue, "archived")) >= 1, "the new file to fire")
    a_few_scans()
    (job_id,) = jobs_named(batch, queue, "archived")
    assert describe(batch, [job_id])[job_id]["parameters"]["key"] == "new.csv"


class AheadClock:
    """The real clock plus an offset the test moves forward (the trigger timer's clock only)."""

    def __init__(self) -> None:
        self.offset_ms = 0

    def now_ms(self) -> int:
        return time.time_ns() // 1_000_000 + self.offset_ms


def test_a_rate_schedule_submits_a_job_per_fire_time_with_it_as_a_parameter(
    make_runtime: Runtimes, runtime: LocalRuntime, clients: ClientFactory
) -> None:
    batch = clients("batch", runtime.endpoint)
    queue, _ = setup_queue(batch)
    register(batch, "tick", ["echo", "tick at", "Ref::scheduledTime"])
    create_trigger(
        runtime.endpoint,
        {
            "triggerName": "every-minute",
            "jobQueue": queue,
            "jobDefinition": "tick",
            "jobName": "tick",
            "source": {"schedule": {"expression": "rate(1 minute)"}},
        },
    )
    # GIVEN the timer's clock a minute ahead (instead of waiting a minute)
    clock = AheadClock()
    runtime.triggers.use_clock(clock)
    fast(runtime)
    a_few_scans()
    assert jobs_named(batch, queue, "tick") == []  # nothing is due yet
    clock.offset_ms = MINUTE_MS + 500
    runtime.triggers.wake()
    # THEN the first fire submits a job carrying its fire time: one minute after the trigger's creation
    wait_until(lambda: len(jobs_named(batch, queue, "tick")) == 1, "the first tick")
    (first,) = jobs_named(batch, queue, "tick")
    job = wait_terminal(batch, [first])[first]
    assert job["status"] == "SUCCEEDED"
    assert job["parameters"]["triggerName"] == "every-minute"
    fire_time = job["parameters"]["scheduledTime"]
    assert fire_time.endswith("Z")
    # AND a minute later, the second; the time in between submits nothing more
    clock.offset_ms = 2 * MINUTE_MS + 500
    runtime.triggers.wake()
    wait_until(lambda: len(jobs_named(batch, queue, "tick")) == 2, "the second tick")
    jobs = describe(batch, jobs_named(batch, queue, "tick"))
    times = sorted(j["parameters"]["scheduledTime"] for j in jobs.values())
    assert times[0] == fire_time
    assert _ms(times[1]) - _ms(times[0]) == MINUTE_MS
    a_few_scans()
    assert len(jobs_named(batch, queue, "tick")) == 2


def _ms(iso: str) -> int:
    return int(datetime.strptime(iso, "%Y-%m-%dT%H:%M:%S%z").timestamp()) * 1000


def test_iso_round_trip() -> None:
    assert _ms(schedules.iso(1_718_098_200_000)) == 1_718_098_200_000
