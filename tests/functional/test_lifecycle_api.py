"""Lifecycle corners where batchplane now does what AWS Batch does (issue 12, items 1, 2, 3, 14, 15, 18), through a
stock boto3 `batch` client against the local runtime. Jobs are kept from running by a DISABLED compute environment,
so nothing here depends on a process; every wait is bounded."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path
from typing import Any

import boto3
import pytest

from app import app
from chalicelib.control import deletion
from chalicelib.domain.jobs import CANCEL_PENDING, DEPENDENCY_FAILED
from chalicelib.domain.scheduling import NO_ENABLED_CE
from chalicelib.runtime.local import LocalConfig, LocalRuntime
from chalicelib.runtime.plane import build_local
from tests.functional.builders import (
    REGION,
    BatchClient,
    describe_queue,
    disable_ce,
    disable_queue,
    make_ec2_ce,
    make_jd,
    make_queue,
)
from tests.functional.builders import wait_for as _wait_for  # bounded here by this module's WAIT_S
from tests.functional.conftest import CLIENT_CONFIG
from tests.runtimes import stop_runtime

WAIT_S = 10.0
wait_for = partial(_wait_for, timeout=WAIT_S)
GRACE_S = 0.2


@pytest.fixture
def make_batch(boto_session: boto3.session.Session) -> Iterator[Callable[[str], BatchClient]]:
    clients: list[BatchClient] = []

    def build(endpoint: str) -> BatchClient:
        client = boto_session.client("batch", region_name=REGION, endpoint_url=endpoint, config=CLIENT_CONFIG)
        clients.append(client)
        return client

    yield build
    for client in clients:
        client.close()


def job(batch: BatchClient, job_id: str) -> dict[str, Any]:
    return dict(batch.describe_jobs(jobs=[job_id])["jobs"][0])


def status(batch: BatchClient, job_id: str, wanted: str) -> dict[str, Any]:
    return dict(wait_for(lambda: (j := job(batch, job_id))["status"] == wanted and j, f"{job_id} {wanted}"))


@pytest.fixture
def held(batch: BatchClient) -> str:
    """A queue whose only compute environment is DISABLED: its jobs stay RUNNABLE."""
    ce = make_ec2_ce(batch, "ce")
    disable_ce(batch, ce)
    make_jd(batch, "jd", platformCapabilities=None)  # an EC2 definition, for the EC2 compute environment
    return make_queue(batch, "q", [ce])


def submit(batch: BatchClient, name: str, queue: str = "q", **kwargs: Any) -> str:
    return str(batch.submit_job(jobName=name, jobQueue=queue, jobDefinition="jd", **kwargs)["jobId"])


# -- item 15: an unknown jobId ---------------------------------------------------------------------------------


def test_cancel_and_terminate_of_an_unknown_job_answer_200_as_aws_does(batch: BatchClient) -> None:
    # AWS answers 200 {} (the wire log in aws/aws-cli#2551)
    for call in (batch.cancel_job, batch.terminate_job):
        resp = call(jobId="no-such-job", reason="r")
        assert resp["ResponseMetadata"]["HTTPStatusCode"] == 200
        assert {k: v for k, v in resp.items() if k != "ResponseMetadata"} == {}
        with pytest.raises(batch.exceptions.ClientException) as raised:
            call(jobId="", reason="r")
        assert "jobId" in raised.value.response["Error"]["Message"]
    # ... and the batch forms count an unknown id as done
    for many in (batch.cancel_jobs, batch.terminate_jobs):
        resp = many(jobs=["no-such-job"], reason="r")
        assert (resp["successful"], resp["errors"]) == (["no-such-job"], [])


# -- item 18: a typed dependency of a non-array job ------------------------------------------------------------


@pytest.mark.parametrize("kind", ["SEQUENTIAL", "N_TO_N"])
def test_a_typed_dependency_of_a_plain_job_waits_for_that_job(batch: BatchClient, held: str, kind: str) -> None:
    first = submit(batch, "first")
    second = submit(batch, "second", dependsOn=[{"jobId": first, "type": kind}])

    assert status(batch, second, "PENDING")["dependsOn"] == [{"jobId": first, "type": kind}]
    batch.terminate_job(jobId=first, reason="stop")
    assert status(batch, second, "FAILED")["statusReason"] == f"{DEPENDENCY_FAILED}: {first}"


# -- item 3: CancelJob of a PENDING job ------------------------------------------------------------------------


def test_cancel_of_a_pending_job_waits_for_its_dependencies_and_says_so(batch: BatchClient, held: str) -> None:
    # GIVEN a job PENDING on a RUNNABLE one
    first = submit(batch, "first")
    second = submit(batch, "second", dependsOn=[{"jobId": first}])
    status(batch, second, "PENDING")

    # WHEN it is cancelled THEN it stays PENDING ("A PENDING job is canceled after all dependency jobs are
    # completed"), and DescribeJobs says the cancel is pending
    batch.cancel_job(jobId=second, reason="not needed")
    pending = job(batch, second)
    assert (pending["status"], pending["statusReason"]) == ("PENDING", CANCEL_PENDING + "not needed")
    # ... asked again, nothing changes
    batch.cancel_job(jobId=second, reason="again")
    assert job(batch, second)["statusReason"] == CANCEL_PENDING + "not needed"

    # WHEN its dependency fails THEN it fails at once, as it would without the cancel
    batch.terminate_job(jobId=first, reason="stop")
    assert status(batch, second, "FAILED")["statusReason"] == f"{DEPENDENCY_FAILED}: {first}"


def test_terminate_of_a_pending_job_fails_it_at_once(batch: BatchClient, held: str) -> None:
    first = submit(batch, "first")
    second = submit(batch, "second", dependsOn=[{"jobId": first}])
    status(batch, second, "PENDING")

    batch.terminate_job(jobId=second, reason="now")

    assert (job(batch, second)["status"], job(batch, second)["statusReason"]) == ("FAILED", "now")


# -- item 2: DISABLED queues and compute environments ----------------------------------------------------------


def test_a_job_on_disabled_compute_environments_says_they_are_disabled(batch: BatchClient, held: str) -> None:
    waiting = submit(batch, "waiting")
    reason = wait_for(lambda: job(batch, waiting).get("statusReason"), "a reason")
    assert reason == NO_ENABLED_CE
    assert "invalid" not in reason


def test_a_disabled_queue_still_runs_the_jobs_it_holds(batch: BatchClient, held: str) -> None:
    # GIVEN a RUNNABLE job in a queue that is then DISABLED
    waiting = submit(batch, "waiting")
    disable_queue(batch, "q")
    with pytest.raises(batch.exceptions.ClientException):
        submit(batch, "late")
    # WHEN its compute environment is enabled THEN the job is placed (jobs already in the queue can finish)
    batch.update_compute_environment(computeEnvironment="ce", state="ENABLED")
    wait_for(lambda: job(batch, waiting)["status"] != "RUNNABLE", "the job placed")


# -- item 1: DeleteJobQueue ------------------------------------------------------------------------------------


@pytest.fixture
def graced(tmp_path: Path) -> Iterator[LocalRuntime]:
    """The local runtime with a short deletion grace (the default is a minute), so a test sees it run out."""
    rt = build_local(LocalConfig(state_dir=tmp_path / "graced", port=0, deletion_grace_seconds=GRACE_S), app)
    rt.start()
    try:
        yield rt
    finally:
        stop_runtime(rt, WAIT_S)


def test_deleting_a_queue_terminates_its_jobs_and_frees_the_name_after_the_grace(
    graced: LocalRuntime, make_batch: Callable[[str], BatchClient]
) -> None:
    # GIVEN a queue holding a RUNNABLE job and a PENDING one on it
    batch = make_batch(graced.endpoint)
    ce = make_ec2_ce(batch, "ce")
    disable_ce(batch, ce)
    make_jd(batch, "jd", platformCapabilities=None)  # EC2, as the queue's compute environment
    make_queue(batch, "q", [ce])
    waiting = submit(batch, "waiting")
    pending = submit(batch, "pending", dependsOn=[{"jobId": waiting}])
    status(batch, pending, "PENDING")
    disable_queue(batch, "q")

    # WHEN it is deleted
    batch.delete_job_queue(jobQueue="q")

    # THEN its jobs fail at once with the reason; the queue shows DELETING and keeps its name for the grace (a
    # request that read it before the delete may still write a job), as AWS shows DELETING for a while
    reason = deletion.queue_deleted_reason("q")
    for job_id in (waiting, pending):
        assert (job(batch, job_id)["status"], job(batch, job_id)["statusReason"]) == ("FAILED", reason)
    found = describe_queue(batch, "q")
    assert found is not None and found["status"] == "DELETING"
    with pytest.raises(batch.exceptions.ClientException) as raised:
        make_queue(batch, "q", ["ce"])
    assert "being deleted" in raised.value.response["Error"]["Message"]
    # WHEN a sweep pass runs after the grace THEN the queue is gone, and a new one of that name holds no old job
    wait_for(lambda: deletion.drain_queue(graced.services, graced.engine.reactor, "q"), "the queue removed")
    assert describe_queue(batch, "q") is None
    make_queue(batch, "q", ["ce"])
    assert batch.list_jobs(jobQueue="q", jobStatus="RUNNABLE")["jobSummaryList"] == []


# -- item 14: a queue without compute environments -------------------------------------------------------------


def test_a_queue_needs_a_compute_environment(batch: BatchClient) -> None:
    with pytest.raises(batch.exceptions.ClientException) as raised:
        batch.create_job_queue(jobQueueName="empty", priority=1, computeEnvironmentOrder=[])
    assert "computeEnvironmentOrder" in raised.value.response["Error"]["Message"]
    assert batch.describe_job_queues(jobQueues=["empty"])["jobQueues"] == []
