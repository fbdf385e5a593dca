"""Cost per job, pure parts: an attempt's resource-seconds and its price at the capacity it ran on. (ADR 0030)"""

from __future__ import annotations

import dataclasses

import pytest

from chalicelib.domain import cost
from chalicelib.domain.jobs import Attempt, Job

HOUR_MS = 3_600_000


def a_job(*attempts: Attempt, vcpus: float = 2, memory: int = 4096, gpus: int = 0) -> Job:
    container = {"resourceRequirements": [{"type": "GPU", "value": str(gpus)}]} if gpus else {}
    return Job(
        job_id="j", name="j", arn="arn", queue="q", queue_arn="qa", job_definition_arn="jd", job_definition_name="jd",
        status="SUCCEEDED", created_at=0, container=container, vcpus=vcpus, memory=memory, attempts=attempts,
    )  # fmt: skip


def ran(capacity: str | None, ms: int = HOUR_MS, number: int = 1) -> Attempt:
    return Attempt(number, "t", "ce", "s", 0, started_at=0, stopped_at=ms, capacity=capacity)


def test_resource_seconds_are_the_attempts_time_by_the_jobs_size() -> None:
    job = a_job(ran(None), ran(None, number=2), gpus=1)
    got = cost.job_usage(job, None)
    assert (got.vcpu_seconds, got.gib_seconds, got.gpu_seconds, got.usd) == (14400, 28800, 7200, None)


def test_an_attempt_that_did_not_start_or_stop_counts_nothing() -> None:
    unstarted = dataclasses.replace(ran("FARGATE"), started_at=None)
    assert cost.job_usage(a_job(unstarted), "us-east-1") == cost.Usage()
    assert cost.member(a_job(unstarted), None) == {}


@pytest.mark.parametrize(
    ("capacity", "usd", "estimated"),
    [
        ("FARGATE", 2 * 0.04048 + 4 * 0.004445, False),
        ("FARGATE_SPOT", (2 * 0.04048 + 4 * 0.004445) * 0.30, True),
        ("EC2", 0.096, True),  # 2 vCPU / 4 GiB: the whole of an m5.large's vCPUs for an hour
        ("SPOT", 0.096 * 0.35, True),
    ],
)
def test_an_hour_is_priced_at_its_capacity(capacity: str, usd: float, estimated: bool) -> None:
    got = cost.job_usage(a_job(ran(capacity)), "eu-west-1")
    assert got.usd == pytest.approx(usd) and got.estimated is estimated
    assert cost.wire(got, "eu-west-1")["priceRegion"] == "us-east-1"  # no row of its own: us-east-1's prices


def test_fargate_bills_at_least_a_minute_and_unmanaged_capacity_is_not_priced() -> None:
    short = cost.job_usage(a_job(ran("FARGATE", ms=1000)), "us-east-1")
    assert short.vcpu_seconds == 2 and short.usd == pytest.approx((2 * 0.04048 + 4 * 0.004445) / 60)
    assert cost.job_usage(a_job(ran(None)), "us-east-1").usd is None


def test_totals_add_the_members_a_client_read_back() -> None:
    members = [cost.wire(cost.job_usage(a_job(ran("FARGATE")), "us-east-1"), "us-east-1")] * 2
    got = cost.total(members)
    assert got["vcpuSeconds"] == 14400 and got["costUsd"] == pytest.approx(2 * (2 * 0.04048 + 4 * 0.004445), abs=1e-5)
