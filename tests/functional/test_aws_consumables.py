"""Consumable resources on the serverless runtime (moto, bench/aws_harness.py): a stock boto3 `batch` client against
the Chalice app on DynamoDB, SQS and ECS. Jobs needing the one unit of a resource run one at a time; the units are
taken in the dispatch Lambda's claim transaction and returned by the ECS task event's write."""

from __future__ import annotations

import pytest

from bench.aws_harness import Deployment, set_up

NEEDS_ONE = {"consumableResourceList": [{"consumableResource": "licence", "quantity": 1}]}


def _quantities(deployment: Deployment) -> tuple[int, int, int]:
    r = deployment.batch.describe_consumable_resource(consumableResource="licence")
    return r["totalQuantity"], r["inUseQuantity"], r["availableQuantity"]


def _dispatch_without_running(deployment: Deployment) -> None:
    """Deliver the stream and the wake messages, but no ECS task event: what is claimed stays claimed."""
    world = deployment.world
    while world.deliver_stream() or world.deliver_wakes():
        pass


@pytest.mark.parametrize("kind", ["REPLENISHABLE", "NON_REPLENISHABLE"])
def test_jobs_sharing_one_unit_run_one_at_a_time_on_the_serverless_runtime(deployment: Deployment, kind: str) -> None:
    # GIVEN a resource of one unit and three jobs needing 1
    batch = deployment.batch
    set_up(deployment)
    batch.create_consumable_resource(consumableResourceName="licence", totalQuantity=1, resourceType=kind)
    job_ids = [
        batch.submit_job(
            jobName=f"j{i}", jobQueue="q", jobDefinition="step", consumableResourcePropertiesOverride=NEEDS_ONE
        )["jobId"]
        for i in range(3)
    ]

    # WHEN the dispatcher runs but no task ends
    _dispatch_without_running(deployment)

    # THEN one job holds the unit and the others wait RUNNABLE, the head of the queue with the resource's reason
    jobs = batch.describe_jobs(jobs=job_ids)["jobs"]
    statuses = sorted(j["status"] for j in jobs)
    assert statuses == ["RUNNABLE", "RUNNABLE", "STARTING"], statuses
    head = next(j for j in jobs if j["status"] == "RUNNABLE")  # submission order
    assert head["statusReason"].startswith("CAPACITY:CONSUMABLE_RESOURCE - "), head
    assert _quantities(deployment) == (1, 1, 0)

    if kind == "NON_REPLENISHABLE":
        # each job uses its unit up: the total falls to 0 and the next job runs only once one is added
        for _ in range(2):
            deployment.world.settle()
            assert _quantities(deployment) == (0, 0, 0)
            batch.update_consumable_resource(consumableResource="licence", operation="ADD", quantity=1)
    # WHEN everything runs to the end
    deployment.world.settle()

    # THEN every job SUCCEEDED and the unit is back (replenishable) or used up (non-replenishable)
    assert [j["status"] for j in batch.describe_jobs(jobs=job_ids)["jobs"]] == ["SUCCEEDED"] * 3
    expected = (1, 0, 1) if kind == "REPLENISHABLE" else (0, 0, 0)
    assert _quantities(deployment) == expected
    listed = batch.list_jobs_by_consumable_resource(consumableResource="licence")["jobs"]
    assert sorted(j["jobStatus"] for j in listed) == ["SUCCEEDED"] * 3
