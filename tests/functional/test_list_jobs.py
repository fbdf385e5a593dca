"""ListJobs through the boto3 `batch` client: a status per call by default, filters across every status (newest
first), pagination, and a job listed once even when it changes status while the listing reads.

The CE is disabled so jobs wait in RUNNABLE: the listing sees exactly what the test submitted."""

from __future__ import annotations

import contextlib
import time
from dataclasses import replace
from typing import Any

import pytest

from chalicelib.control.sweep import SweepPolicy, sweep
from chalicelib.domain.errors import Conflict
from chalicelib.domain.jobs import SUBMITTED, Job
from chalicelib.runtime.local import LocalRuntime
from chalicelib.store.jobs import JobRepository, job_pk
from tests.functional.builders import BatchClient, disable_ce, make_fargate_ce, make_jd, make_queue


@pytest.fixture
def queue(batch: BatchClient) -> str:
    ce = make_fargate_ce(batch, "idle")
    disable_ce(batch, ce)
    return make_queue(batch, "q", [ce])


def submit(batch: BatchClient, queue: str, name: str, jd: str = "jd") -> str:
    return str(batch.submit_job(jobName=name, jobQueue=queue, jobDefinition=jd)["jobId"])


def listed(batch: BatchClient, **kwargs: Any) -> list[dict[str, Any]]:
    return [s for page in batch.get_paginator("list_jobs").paginate(**kwargs) for s in page["jobSummaryList"]]


def wait_runnable(batch: BatchClient, ids: list[str]) -> None:
    for _ in range(200):
        jobs = batch.describe_jobs(jobs=ids)["jobs"]
        if all(j["status"] == "RUNNABLE" for j in jobs):
            return
    raise AssertionError("jobs did not become RUNNABLE")


def test_job_name_filter_matches_exactly_or_by_prefix_case_folded_newest_first(batch: BatchClient, queue: str) -> None:
    make_jd(batch, "jd")
    ids = [submit(batch, queue, name) for name in ("etl-a", "etl-b", "report", "ETL-c")]
    wait_runnable(batch, ids)

    def names(value: str) -> list[str]:
        found = listed(batch, jobQueue=queue, filters=[{"name": "JOB_NAME", "values": [value]}])
        return [s["jobName"] for s in found]

    assert names("report") == ["report"]
    assert names("etl*") == ["ETL-c", "etl-b", "etl-a"]  # newest first, case-insensitive
    assert names("etl") == []


def test_filters_list_every_status_and_page_without_repeats(batch: BatchClient, queue: str) -> None:
    make_jd(batch, "jd")
    ids = [submit(batch, queue, f"n{i}") for i in range(7)]
    wait_runnable(batch, ids)
    assert listed(batch, jobQueue=queue) == []  # jobStatus defaults to RUNNING
    pages = list(
        batch.get_paginator("list_jobs").paginate(
            jobQueue=queue, filters=[{"name": "JOB_NAME", "values": ["n*"]}], PaginationConfig={"PageSize": 3}
        )
    )
    assert [len(p["jobSummaryList"]) for p in pages] == [3, 3, 1]
    found = [s["jobId"] for p in pages for s in p["jobSummaryList"]]
    assert found == list(reversed(ids))


def test_job_definition_filter_by_name_and_by_arn(batch: BatchClient, queue: str) -> None:
    first = make_jd(batch, "alpha")
    second = make_jd(batch, "alpha")
    make_jd(batch, "beta")
    a1 = submit(batch, queue, "x", first["jobDefinitionArn"])
    a2 = submit(batch, queue, "x", "alpha")
    b = submit(batch, queue, "x", "beta")
    wait_runnable(batch, [a1, a2, b])

    def ids(value: str) -> set[str]:
        return {
            s["jobId"] for s in listed(batch, jobQueue=queue, filters=[{"name": "JOB_DEFINITION", "values": [value]}])
        }

    assert ids("alpha") == {a1, a2}
    assert ids(second["jobDefinitionArn"]) == {a2}
    assert ids("b*") == {b}


def test_a_job_changing_status_between_the_reads_of_a_listing_is_listed_once(
    batch: BatchClient, queue: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    make_jd(batch, "jd")
    job_id = submit(batch, queue, "moving")
    wait_runnable(batch, [job_id])
    # GIVEN a listing whose SUBMITTED read still sees the job as it was before it moved on (one read per status,
    # no snapshot across them: this is what a concurrent transition looks like to the listing)
    real = JobRepository.in_queue

    def racing_in_queue(self: JobRepository, queue_name: str, status: str, **kwargs: Any) -> list[Job]:
        found = real(self, queue_name, status, **kwargs)
        if status == SUBMITTED:
            current = self.get(job_id)
            assert current is not None
            found = [replace(current, status=SUBMITTED, version=current.version - 1), *found]
        return found

    monkeypatch.setattr(JobRepository, "in_queue", racing_in_queue)
    # THEN the job is listed once, as it is now
    found = listed(batch, jobQueue=queue, filters=[{"name": "JOB_NAME", "values": ["moving"]}])
    assert [(s["jobId"], s["status"]) for s in found] == [(job_id, "RUNNABLE")]


# -- STARTING and RUNNING share one index partition (store/jobs.py, docs/adr/0013) ---------------------------------


def _set_status(runtime: LocalRuntime, job_id: str, status: str) -> None:
    """Puts a waiting job in `status` in the store, as a claim or a task event would (the CE is disabled, so only
    the dispatcher's waiting reason may be written meanwhile: then read it again). An array child DescribeJobs shows
    RUNNABLE may not be written yet (docs/adr/0031: its parent's work queue writes it): waited for."""
    for _ in range(200):
        job = runtime.services.jobs.get(job_id)
        if job is None:
            time.sleep(0.01)
            continue
        with contextlib.suppress(Conflict):
            runtime.services.jobs.save(replace(job, status=status))
            return
    raise AssertionError(f"{job_id} kept changing")


def test_starting_and_running_jobs_are_listed_by_their_own_status_page_by_page(
    batch: BatchClient, queue: str, runtime: LocalRuntime
) -> None:
    make_jd(batch, "jd")
    ids = [submit(batch, queue, f"j{i}") for i in range(9)]
    wait_runnable(batch, ids)
    # GIVEN STARTING and RUNNING jobs interleaved in submission order, and one left RUNNABLE
    statuses = ["RUNNING", "STARTING", "STARTING", "RUNNING", "RUNNING", "STARTING", "RUNNING", "RUNNABLE", "RUNNING"]
    for job_id, status in zip(ids, statuses, strict=True):
        if status != "RUNNABLE":
            _set_status(runtime, job_id, status)

    def pages(status: str) -> list[list[str]]:
        paginator = batch.get_paginator("list_jobs")
        found = paginator.paginate(jobQueue=queue, jobStatus=status, PaginationConfig={"PageSize": 2})
        return [[s["jobId"] for s in page["jobSummaryList"]] for page in found]

    # THEN each status lists exactly its jobs, oldest first, full pages while more follow
    running = [j for j, s in zip(ids, statuses, strict=True) if s == "RUNNING"]
    starting = [j for j, s in zip(ids, statuses, strict=True) if s == "STARTING"]
    assert pages("RUNNING") == [running[0:2], running[2:4], running[4:]]
    assert pages("STARTING") == [starting[0:2], starting[2:]]
    assert [s["status"] for s in listed(batch, jobQueue=queue)] == ["RUNNING"] * 5  # the default status
    assert [s["jobId"] for s in listed(batch, jobQueue=queue, jobStatus="RUNNABLE")] == [ids[7]]


def test_an_array_counts_and_lists_its_starting_and_running_children_apart(
    batch: BatchClient, queue: str, runtime: LocalRuntime
) -> None:
    make_jd(batch, "jd")
    parent = str(
        batch.submit_job(jobName="a", jobQueue=queue, jobDefinition="jd", arrayProperties={"size": 5})["jobId"]
    )
    children = [f"{parent}:{i}" for i in range(5)]
    wait_runnable(batch, children)
    for child, status in zip(children, ["STARTING", "RUNNING", "RUNNING", "RUNNABLE", "STARTING"], strict=True):
        if status != "RUNNABLE":
            _set_status(runtime, child, status)

    summary = batch.describe_jobs(jobs=[parent])["jobs"][0]["arrayProperties"]["statusSummary"]
    assert (summary["STARTING"], summary["RUNNING"], summary["RUNNABLE"]) == (2, 2, 1)

    def ids(status: str) -> list[str]:
        return [
            s["jobId"] for s in listed(batch, arrayJobId=parent, jobStatus=status, PaginationConfig={"PageSize": 1})
        ]

    assert ids("RUNNING") == children[1:3]
    assert ids("STARTING") == [children[0], children[4]]


def test_active_jobs_indexed_by_an_earlier_version_are_moved_to_the_shared_partition(
    batch: BatchClient, queue: str, runtime: LocalRuntime
) -> None:
    make_jd(batch, "jd")
    job_id = submit(batch, queue, "old")
    wait_runnable(batch, [job_id])
    _set_status(runtime, job_id, "RUNNING")
    # GIVEN the job indexed the way versions before the ACTIVE partition did ("Q#<queue>#RUNNING")
    store = runtime.services.jobs.items
    item = store.get(job_pk(job_id), "")
    assert item is not None and item.gsi1 is not None and item.gsi1[0] == "Q#q#ACTIVE"
    store.put(replace(item, gsi1=("Q#q#RUNNING", item.gsi1[1])), expect=item.version)
    assert listed(batch, jobQueue=queue) == []  # invisible to everything that reads the active jobs
    # WHEN the repair sweep runs
    report = sweep(runtime.services, runtime.engine.reactor, runtime.services.clock.now_ms(), SweepPolicy())
    # THEN it is indexed as active again, and nothing else about it changed
    assert report.reindexed == 1
    assert [(s["jobId"], s["status"]) for s in listed(batch, jobQueue=queue)] == [(job_id, "RUNNING")]
    assert sweep(runtime.services, runtime.engine.reactor, runtime.services.clock.now_ms()).reindexed == 0


def test_a_filtered_page_reads_about_as_many_jobs_as_it_returns_not_the_whole_queue(
    batch: BatchClient, queue: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    make_jd(batch, "jd")
    ids = [submit(batch, queue, f"n{i}") for i in range(150)]
    wait_runnable(batch, ids[-1:])
    read: list[int] = []
    real = JobRepository.in_queue

    def counting(self: JobRepository, queue_name: str, status: str, **kwargs: Any) -> list[Job]:
        found = real(self, queue_name, status, **kwargs)
        read.append(len(found))
        return found

    monkeypatch.setattr(JobRepository, "in_queue", counting)
    page = batch.list_jobs(jobQueue=queue, filters=[{"name": "JOB_NAME", "values": ["n*"]}], maxResults=5)

    assert [s["jobName"] for s in page["jobSummaryList"]] == [f"n{i}" for i in range(149, 144, -1)]
    assert page.get("nextToken")
    assert sum(read) <= 50  # one read of the RUNNABLE partition's newest, not its 150 jobs
