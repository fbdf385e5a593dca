"""Concurrency caps and cost per job on the serverless runtime (moto, bench/aws_harness.py): a stock boto3 `batch`
client against the Chalice app on DynamoDB, SQS and ECS. A queue or an array at its cap holds its jobs back with the
cap's reason; the place is taken in the dispatch Lambda's claim transaction and given back by the ECS task event's
write. A finished job is priced at the capacity it ran on."""

from __future__ import annotations

import pytest

from bench.aws_harness import Deployment, set_up
from chalicelib.console.client import Api
from chalicelib.domain import cost
from tests.functional.test_aws_consumables import _dispatch_without_running

CAP = "batchplane:maxRunning"


def test_a_capped_queue_and_a_capped_array_hold_jobs_back_on_the_serverless_runtime(
    deployment: Deployment,
) -> None:
    # GIVEN queue "q" capped at 3, an array of 3 children capped at 1, and a plain job
    batch = deployment.batch
    set_up(deployment)
    queue_arn = batch.describe_job_queues(jobQueues=["q"])["jobQueues"][0]["jobQueueArn"]
    batch.tag_resource(resourceArn=queue_arn, tags={CAP: "3"})
    parent = batch.submit_job(
        jobName="array", jobQueue="q", jobDefinition="step", arrayProperties={"size": 3}, tags={CAP: "1"}
    )["jobId"]
    plain = batch.submit_job(jobName="plain", jobQueue="q", jobDefinition="step")["jobId"]
    children = [f"{parent}:{i}" for i in range(3)]

    # WHEN the dispatcher runs but no task ends
    _dispatch_without_running(deployment)

    # THEN one child and the plain job run, the other children wait with the array's reason
    jobs = {j["jobId"]: j for j in batch.describe_jobs(jobs=[*children, plain])["jobs"]}
    assert [jobs[c]["status"] for c in children] == ["STARTING", "RUNNABLE", "RUNNABLE"]
    assert jobs[plain]["status"] == "STARTING"
    assert jobs[children[1]]["statusReason"] == (
        f"CAPACITY:CONCURRENCY_LIMIT - The array job {parent} is at its limit of 1 running job(s) (tag {CAP})."
    )

    # WHEN two more plain jobs come  THEN one takes the queue's third place and the other waits with its reason
    more = [batch.submit_job(jobName=f"more{i}", jobQueue="q", jobDefinition="step")["jobId"] for i in range(2)]
    _dispatch_without_running(deployment)
    jobs = {j["jobId"]: j for j in batch.describe_jobs(jobs=more)["jobs"]}
    assert [jobs[j]["status"] for j in more] == ["STARTING", "RUNNABLE"]
    assert jobs[more[1]]["statusReason"] == (
        f"CAPACITY:CONCURRENCY_LIMIT - The job queue q is at its limit of 3 running job(s) (tag {CAP})."
    )

    # WHEN everything runs to the end  THEN every job SUCCEEDED
    deployment.world.settle()
    done = batch.describe_jobs(jobs=[*children, plain, *more])["jobs"]
    assert [j["status"] for j in done] == ["SUCCEEDED"] * 6


def test_a_finished_job_is_priced_at_its_capacity_on_the_serverless_runtime(deployment: Deployment) -> None:
    # GIVEN a 0.25 vCPU / 512 MiB job on the Fargate Spot environment of set_up, run to the end
    batch = deployment.batch
    set_up(deployment)
    job_id = batch.submit_job(jobName="priced", jobQueue="q", jobDefinition="step")["jobId"]
    deployment.world.settle()
    assert batch.describe_jobs(jobs=[job_id])["jobs"][0]["status"] == "SUCCEEDED"

    # WHEN the JSON itself is read (as `batchplane describe` does; boto3 drops the member)
    detail = Api(batch.meta.endpoint_url, "us-east-1").describe([job_id])[job_id]

    # THEN its resource-seconds match its attempt, priced as the Fargate Spot estimate (at least Fargate's minute)
    attempt = detail["attempts"][0]
    seconds = (attempt["stoppedAt"] - attempt["startedAt"]) / 1000
    got = detail["batchplaneCost"]
    assert got["vcpuSeconds"] == pytest.approx(0.25 * seconds, abs=0.001)
    assert got["memoryGiBSeconds"] == pytest.approx(0.5 * seconds, abs=0.001)
    hours = max(seconds, cost.MINIMUM_SECONDS) / 3600
    on_demand = (0.25 * 0.04048 + 0.5 * 0.004445) * hours
    assert got["costUsd"] == pytest.approx(on_demand * cost.FARGATE_SPOT_FRACTION, abs=1e-6)
    assert got["estimated"] is True and got["priceRegion"] == "us-east-1"
