"""Cost per job through the API path, on both stores: every finished attempt's resource-seconds (vCPU, GiB, GPU) in
DescribeJobs' and ListJobs' extension member `batchplaneCost`; priced in US dollars on the AWS runtime (Fargate
on-demand at AWS's rate, Fargate Spot as an estimate), resource-seconds only on the local one; a retried job adds
its attempts; a stock boto3 client drops the member (botocore parses only modelled members). (docs/adr/0030)"""

from __future__ import annotations

import dataclasses

import botocore.session
import pytest

from chalicelib.domain import cost
from chalicelib.domain.lifecycle import TaskStarted, TaskStopped
from tests.functional.moto_env import aws_env, network  # noqa: F401 - fixtures
from tests.functional.plane import Plane
from tests.functional.test_dispatch_concurrency import StoreFactory, stores  # noqa: F401 - a fixture


def a_job_that_ran(plane: Plane, *, spot: bool = False, seconds: int = 90, attempts: int = 1) -> str:
    """A 1 vCPU / 2 GiB Fargate job whose attempts each ran `seconds` (the last succeeds, the others fail)."""
    ce = plane.fargate_ce("fargate", "subnet-0a1b2c3d", "sg-0a1b2c3d", spot=spot, max_vcpus=4)
    queue = plane.queue("queue", ce)
    jd = plane.job_definition("work")
    job_id = plane.submit(queue, jd, "job", retryStrategy={"attempts": attempts}, shareIdentifier=None)
    for n in range(1, attempts + 1):
        assert plane.dispatch() == 1
        plane.on_task_event(job_id, TaskStarted(n))
        plane.clock.advance(seconds * 1000)
        plane.on_task_event(job_id, TaskStopped(n, 0 if n == attempts else 1))
    return job_id


def test_a_finished_job_reports_its_resource_seconds_locally_without_a_price(stores: StoreFactory) -> None:  # noqa: F811
    plane = Plane(stores())
    job_id = a_job_that_ran(plane, attempts=2)
    detail = plane.describe_one(job_id)
    assert detail["status"] == "SUCCEEDED"
    # two attempts of 90 s, 1 vCPU and 2 GiB each
    assert detail[cost.MEMBER] == {"vcpuSeconds": 180.0, "memoryGiBSeconds": 360.0, "gpuSeconds": 0.0}
    listed = plane.call("ListJobs", jobQueue="queue", jobStatus="SUCCEEDED")["jobSummaryList"]
    assert listed[0][cost.MEMBER] == detail[cost.MEMBER]


def test_a_job_that_has_not_finished_an_attempt_has_no_member(stores: StoreFactory) -> None:  # noqa: F811
    plane = Plane(stores())
    ce = plane.fargate_ce("fargate", "subnet-0a1b2c3d", "sg-0a1b2c3d", spot=False, max_vcpus=4)
    job_id = plane.submit(plane.queue("queue", ce), plane.job_definition("work"))
    assert cost.MEMBER not in plane.describe_one(job_id)


@pytest.mark.parametrize(("spot", "usd", "estimated"), [(False, 0.001234, False), (True, 0.00037, True)])
def test_on_aws_a_fargate_attempt_is_priced_at_the_capacity_it_ran_on(
    stores: StoreFactory,  # noqa: F811
    spot: bool,
    usd: float,
    estimated: bool,
) -> None:
    # GIVEN the AWS runtime's settings (prices on) and a job that ran 90 s on Fargate (or Fargate Spot)
    plane = Plane(stores())
    plane.svc = dataclasses.replace(plane.svc, settings=dataclasses.replace(plane.svc.settings, price_jobs=True))
    job_id = a_job_that_ran(plane, spot=spot)
    # THEN the cost is 90 s of (1 vCPU x $0.04048 + 2 GiB x $0.004445) per hour, Spot at the documented estimate
    got = plane.describe_one(job_id)[cost.MEMBER]
    assert got["costUsd"] == pytest.approx(usd, abs=1e-6)
    assert got["estimated"] is estimated and got["priceRegion"] == "us-east-1"
    assert plane.job(job_id).attempts[0].capacity == ("FARGATE_SPOT" if spot else "FARGATE")


def test_a_stock_boto3_client_drops_the_member() -> None:
    # botocore parses only the members of the operation's output shape: what a client that ignores the extension
    # gets is AWS's JobDetail, unchanged.
    model = botocore.session.get_session().get_service_model("batch")
    detail = model.shape_for("JobDetail")
    assert cost.MEMBER not in detail.members
    assert cost.MEMBER not in model.shape_for("JobSummary").members
