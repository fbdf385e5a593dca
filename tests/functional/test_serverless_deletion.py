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
from chalicelib.control.context import SystemClock
from chalicelib.domain.jobs import DEPENDENCY_FAILED
from chalicelib.domain.model import DELETING
from chalicelib.runtime import plane
from chalicelib.store.dynamo import DynamoItemStore
from chalicelib.store.repository import Repository

GONE = deletion.queue_deleted_reason("q")


@pytest.fixture
def deployment(monkeypatch: pytest.MonkeyPatch, serverless_env: None) -> Iterator[Deployment]:
    monkeypatch.setenv("BATCHPLANE_DELETION_GRACE_SECONDS", "0")  # an empty queue goes at once (no grace)
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
    plane.aws_runtime().on_sweep()
    d.world.settle()

    # THEN the jobs are terminated and the queue is gone
    assert set(jobs(d, *waiting).values()) == {("FAILED", GONE)}
    assert "q" not in queues(d)


def _error(d: Deployment, call: Any) -> str:
    with pytest.raises(d.batch.exceptions.ClientException) as raised:
        call()
    return str(raised.value.response["Error"]["Message"])


def test_a_job_waiting_in_a_disabled_queue_is_placed_when_another_job_frees_capacity(deployment: Deployment) -> None:
    d = deployment
    # GIVEN a compute environment with room for one job, a job A running on it, and a job B of another queue waiting
    # for that room; B's queue is then DISABLED (it still runs the jobs it holds)
    d.batch.create_compute_environment(
        computeEnvironmentName="tiny",
        type="MANAGED",
        computeResources={
            "type": "FARGATE_SPOT",
            "maxvCpus": 1,
            "subnets": [d.world.subnet],
            "securityGroupIds": [d.world.sg],
        },
    )
    for name in ("a", "b"):
        d.batch.create_job_queue(
            jobQueueName=name, priority=1, computeEnvironmentOrder=[{"order": 1, "computeEnvironment": "tiny"}]
        )
    d.world.plan.outcomes["first"] = ["ok"]
    first = submit(d, "first", queue="a", containerOverrides=ONE_VCPU)
    no_task_events(d)
    assert jobs(d, first)[first][0] == "STARTING"
    held = submit(d, "held", queue="b", containerOverrides=ONE_VCPU)
    no_task_events(d)
    assert jobs(d, held)[held][0] == "RUNNABLE"
    d.batch.update_job_queue(jobQueue="b", state="DISABLED")

    # WHEN A runs to its end and everything it causes is delivered (no sweep)
    d.world.settle()

    # THEN its end woke the dispatcher, which placed B: it ran too
    assert {j: status for j, (status, _) in jobs(d, first, held).items()} == {first: "SUCCEEDED", held: "SUCCEEDED"}


ONE_VCPU = {"resourceRequirements": [{"type": "VCPU", "value": "1"}, {"type": "MEMORY", "value": "2048"}]}


def no_task_events(d: Deployment) -> None:
    """Deliver stream records and wakes until none is left, holding back every task's progress."""
    for _ in range(10):
        if not (d.world.deliver_stream() | d.world.deliver_wakes()):
            return
    raise AssertionError("the control plane did not settle")


def test_on_aws_an_empty_queue_stays_deleting_until_a_sweep_after_the_grace(monkeypatch: pytest.MonkeyPatch) -> None:
    # GIVEN the AWS runtime with its default deletion grace (a minute), a queue and a job of it, all settled
    for name, value in AWS_ENV.items():
        monkeypatch.setenv(name, value)
    for name in AWS_ENV_UNSET:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv("BATCHPLANE_DELETION_GRACE_SECONDS", raising=False)
    with deployed() as d:
        set_up(d)
        d.batch.update_compute_environment(computeEnvironment="spot", state="DISABLED")
        waiting = submit(d, "waiting")
        d.world.settle()

        # WHEN the queue is disabled and deleted, and the sweep runs at once
        d.batch.update_job_queue(jobQueue="q", state="DISABLED")
        d.batch.delete_job_queue(jobQueue="q")
        plane.aws_runtime().on_sweep()
        d.world.settle()

        # THEN its job is terminated, but the queue stays DELETING (a SubmitJob that read it before may still write)
        assert jobs(d, waiting) == {waiting: ("FAILED", GONE)}
        assert queues(d)["q"] == DELETING
        # WHEN the sweep runs a minute later THEN the queue is gone
        now = SystemClock.now_ms
        monkeypatch.setattr(SystemClock, "now_ms", lambda self: now(self) + 61_000)
        plane.aws_runtime().on_sweep()
        assert "q" not in queues(d)
