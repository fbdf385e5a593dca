"""Deleting a job queue on the AWS runtime (DynamoDB, the stream, the sweep Lambda) on moto, through a stock boto3
`batch` client against the API Lambda's code: its jobs are terminated, the name is freed only once they are, and a
deletion interrupted after its DELETING marker is finished by the sweep (docs/adr/0021)."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from typing import Any

import pytest

from bench.aws_harness import (
    AWS_ENV,
    AWS_ENV_UNSET,
    REGION,
    TABLE,
    Deployment,
    deployed,
    set_up,
)
from chalicelib.control import deletion
from chalicelib.domain.jobs import DEPENDENCY_FAILED
from chalicelib.domain.model import DELETING
from chalicelib.runtime import aws
from chalicelib.store.dynamo import DynamoItemStore
from chalicelib.store.repository import Repository

GONE = deletion.queue_deleted_reason("q")


@pytest.fixture
def deployment(monkeypatch: pytest.MonkeyPatch) -> Iterator[Deployment]:
    for name, value in AWS_ENV.items():
        monkeypatch.setenv(name, value)
    for name in AWS_ENV_UNSET:
        monkeypatch.delenv(name, raising=False)
    with deployed() as d:
        set_up(d)
        d.batch.update_compute_environment(computeEnvironment="spot", state="DISABLED")  # jobs stay RUNNABLE
        d.batch.create_job_queue(
            jobQueueName="other", priority=1, computeEnvironmentOrder=[{"order": 1, "computeEnvironment": "spot"}]
        )
        yield d


def submit(d: Deployment, name: str, queue: str = "q", **kwargs: Any) -> str:
    job_id = str(d.batch.submit_job(jobName=name, jobQueue=queue, jobDefinition="step", **kwargs)["jobId"])
    d.world.names[job_id] = name
    return job_id


def jobs(d: Deployment, *ids: str) -> dict[str, tuple[str, str | None]]:
    return {j["jobId"]: (j["status"], j.get("statusReason")) for j in d.batch.describe_jobs(jobs=list(ids))["jobs"]}


def queues(d: Deployment) -> dict[str, str]:
    return {q["jobQueueName"]: q["status"] for q in d.batch.describe_job_queues()["jobQueues"]}


def test_deleting_a_queue_terminates_its_jobs_on_the_aws_runtime(deployment: Deployment) -> None:
    d = deployment
    # GIVEN a RUNNABLE job, one PENDING on it, and a job of another queue PENDING on that one
    first = submit(d, "first")
    second = submit(d, "second", dependsOn=[{"jobId": first}])
    elsewhere = submit(d, "elsewhere", queue="other", dependsOn=[{"jobId": second}])
    d.world.settle()

    # WHEN the queue is disabled and deleted
    d.batch.update_job_queue(jobQueue="q", state="DISABLED")
    d.batch.delete_job_queue(jobQueue="q")
    d.world.settle()

    # THEN its jobs failed with the reason, the dependent elsewhere for its dependency, and the queue is gone
    assert jobs(d, first, second, elsewhere) == {
        first: ("FAILED", GONE),
        second: ("FAILED", GONE),
        elsewhere: ("FAILED", f"{DEPENDENCY_FAILED}: {second}"),
    }
    assert queues(d) == {"other": "VALID"}
    # ... and a new queue of that name holds none of the old jobs
    d.batch.create_job_queue(
        jobQueueName="q", priority=1, computeEnvironmentOrder=[{"order": 1, "computeEnvironment": "spot"}]
    )
    assert d.batch.list_jobs(jobQueue="q", jobStatus="RUNNABLE")["jobSummaryList"] == []


def test_a_deletion_interrupted_after_its_marker_is_finished_by_the_sweep(deployment: Deployment) -> None:
    d = deployment
    # GIVEN a queue with waiting jobs, marked DELETING by a DeleteJobQueue that died before terminating any
    waiting = [submit(d, f"w{i}") for i in range(3)]
    d.world.settle()
    repo = Repository(DynamoItemStore(TABLE, region=REGION))
    jq = repo.get_jq("q")
    assert jq is not None
    repo.save_jq(dataclasses.replace(jq, state="DISABLED", status=DELETING))
    assert queues(d)["q"] == DELETING
    assert "being deleted" in _error(d, lambda: submit(d, "late"))

    # WHEN the scheduled sweep runs
    aws.runtime().on_sweep()
    d.world.settle()

    # THEN the jobs are terminated and the queue is gone
    assert set(jobs(d, *waiting).values()) == {("FAILED", GONE)}
    assert "q" not in queues(d)


def _error(d: Deployment, call: Any) -> str:
    with pytest.raises(d.batch.exceptions.ClientException) as raised:
        call()
    return str(raised.value.response["Error"]["Message"])
