"""ListJobs through the boto3 `batch` client: a status per call by default, filters across every status (newest
first), pagination, and a job listed once even when it changes status while the listing reads.

The CE is disabled so jobs wait in RUNNABLE: the listing sees exactly what the test submitted."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from chalicelib.domain.jobs import SUBMITTED, Job
from chalicelib.store.jobs import JobRepository
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
