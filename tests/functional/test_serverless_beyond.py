"""batchplane's extensions beyond AWS Batch on the AWS runtime (DynamoDB, its stream, ECS on moto), through a stock
boto3 `batch` client against the API Lambda's code (docs/adr/0029): conditional dependencies released by the stream,
idempotent SubmitJob claimed in DynamoDB with the job's insert, limits lifted by the stack parameter `Limits`."""

from __future__ import annotations

from typing import Any

import pytest

from bench.aws_harness import Deployment, deployed, set_up
from chalicelib.domain.conditions import CONDITION_NOT_MET
from chalicelib.domain.idempotency import TOKEN_TAG
from chalicelib.domain.jobs import DEPENDENCY_FAILED
from chalicelib.store import tokens


@pytest.fixture
def deployment(deployment: Deployment) -> Deployment:
    """conftest's deployment, set up (queue "q", definition "step")."""
    set_up(deployment)
    return deployment


def submit(d: Deployment, name: str, **kwargs: Any) -> str:
    job_id = str(d.batch.submit_job(jobName=name, jobQueue="q", jobDefinition="step", **kwargs)["jobId"])
    d.world.names[job_id] = name
    return job_id


def outcome(d: Deployment, *ids: str) -> dict[str, tuple[str, str | None]]:
    return {j["jobId"]: (j["status"], j.get("statusReason")) for j in d.batch.describe_jobs(jobs=list(ids))["jobs"]}


def test_conditional_dependents_run_by_outcome_on_aws(deployment: Deployment) -> None:
    # GIVEN a job whose task fails and one whose task succeeds, each with plain, AFTER_ANY and AFTER_NOT_OK dependents
    d = deployment
    d.world.plan.outcomes = {"bad": ["fail"]}
    bad, good = submit(d, "bad"), submit(d, "good")
    dependents = {
        (parent, kind): submit(
            d, f"{parent[:4]}-{kind or 'plain'}", dependsOn=[{"jobId": parent, **({"type": kind} if kind else {})}]
        )
        for parent in (bad, good)
        for kind in (None, "AFTER_ANY", "AFTER_NOT_OK")
    }

    # WHEN the stream, the dispatcher and ECS's task events have run their course
    d.world.settle()

    # THEN each dependent ran, or failed saying why, by its condition
    seen = outcome(d, bad, good, *dependents.values())
    assert (seen[bad][0], seen[good][0]) == ("FAILED", "SUCCEEDED")
    got = {key: seen[job_id] for key, job_id in dependents.items()}
    assert got[(bad, None)] == ("FAILED", f"{DEPENDENCY_FAILED}: {bad}")
    assert got[(bad, "AFTER_ANY")][0] == got[(bad, "AFTER_NOT_OK")][0] == "SUCCEEDED"
    assert got[(good, None)][0] == got[(good, "AFTER_ANY")][0] == "SUCCEEDED"
    assert got[(good, "AFTER_NOT_OK")] == ("FAILED", f"{CONDITION_NOT_MET}: {good} SUCCEEDED (AFTER_NOT_OK)")


def test_a_retried_submit_returns_the_first_job_and_another_request_is_refused_on_aws(
    deployment: Deployment,
) -> None:
    d = deployment
    first = submit(d, "nightly", tags={TOKEN_TAG: "n-1"})

    assert submit(d, "nightly", tags={TOKEN_TAG: "n-1"}) == first
    with pytest.raises(d.batch.exceptions.ClientException) as e:
        submit(d, "nightly", tags={TOKEN_TAG: "n-1"}, parameters={"day": "tomorrow"})
    assert TOKEN_TAG in str(e.value) and first in str(e.value)

    d.world.settle()
    assert outcome(d, first)[first][0] == "SUCCEEDED"
    listed = d.batch.list_jobs(jobQueue="q", jobStatus="SUCCEEDED")["jobSummaryList"]
    assert [j["jobId"] for j in listed] == [first]


def test_a_retry_that_raced_the_first_submit_answers_with_its_job_on_aws(
    deployment: Deployment, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN a retry that read the token as free before the first submit wrote its claim (the race of concurrent
    # retries, made deterministic: moto's in-process DynamoDB does not take concurrent requests)
    d = deployment
    real = tokens.claim_of
    stale = iter([True, True])  # the first two reads of the claim: the first submit's and the racing retry's
    monkeypatch.setattr(
        tokens, "claim_of", lambda items, token: (None, None) if next(stale, False) else real(items, token)
    )

    # WHEN both submit
    first = submit(d, "once", tags={TOKEN_TAG: "once"})
    retry = submit(d, "once", tags={TOKEN_TAG: "once"})

    # THEN the retry lost the claim's condition in DynamoDB, wrote nothing, and answered with the first job
    assert retry == first
    d.world.settle()
    assert [j["jobId"] for j in d.batch.list_jobs(jobQueue="q", jobStatus="SUCCEEDED")["jobSummaryList"]] == [first]


def test_aws_quotas_are_the_default_on_aws(deployment: Deployment) -> None:
    with pytest.raises(deployment.batch.exceptions.ClientException) as e:
        submit(deployment, "big", arrayProperties={"size": 10_001})
    assert "arrayProperties.size" in str(e.value) and "max-array-size" in str(e.value)


def test_the_stack_parameter_lifts_limits(serverless_env: None) -> None:
    with deployed({"Limits": "max-array-size=20000,max-dependencies=120"}) as d:
        set_up(d)
        # GIVEN 120 jobs, WHEN a job depends on all of them (more edges than one DynamoDB transaction holds) and an
        # array is bigger than AWS's cap
        waiting = [submit(d, f"w{i}") for i in range(120)]
        many = submit(d, "many", dependsOn=[{"jobId": j} for j in waiting])
        big = submit(d, "big", arrayProperties={"size": 20_000}, dependsOn=[{"jobId": many}])
        # THEN both are accepted (the array, bigger than AWS allows, is not run here: creating 20,000 children on
        # moto is the array work's business), and `many` runs once all 120 have succeeded
        assert outcome(d, big)[big][0] == "PENDING"
        d.batch.terminate_job(jobId=big, reason="accepted; not run here")
        d.world.settle()
        assert outcome(d, many)[many][0] == "SUCCEEDED"
        with pytest.raises(d.batch.exceptions.ClientException) as e:
            submit(d, "bigger", arrayProperties={"size": 20_001})
        assert "20000" in str(e.value) and "max-array-size" in str(e.value)
