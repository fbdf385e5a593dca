"""The serverless runtime end to end on moto: SubmitJob to SUCCEEDED through the Chalice handlers and AWS adapters only.

A stock boto3 `batch` client talks HTTP to the Chalice app (the API Lambda's code, served by Chalice's local
gateway) running on the AWS runtime: DynamoDB (PynamoDB on moto), EventBridge and SQS (moto), ECS (moto's RunTask).
The harness (`bench/aws_harness.py`) plays AWS's part, as Lambda's event sources and EventBridge would:

- the table's stream: records are read from moto's dynamodbstreams and delivered to `on_job_change` in batches,
  honouring its partial-batch response;
- the dispatch queue: SQS FIFO messages are received and delivered to `dispatch`, then deleted;
- ECS: every task moto's RunTask started goes through ECS's task states (PROVISIONING to STOPPED, with the exit code
  or Spot interruption the scenario scripts for that attempt); the "ECS Task State Change" events the deployed rule's
  pattern matches are delivered to `on_ecs_task_event`.

Every AWS call the runtime makes is counted (a `provide-client-params` hook on every botocore client, like moto's own
stubber) and attributed to jobs by the keys it names. The test asserts the cost targets of a plain job (ADR 0003:
at most 4 DynamoDB writes, 1 RunTask), prints the counts per job in the run's summary and writes them to
build/serverless-e2e-calls.json for the bench.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bench.aws_harness import (
    SPOT_INTERRUPTED,
    Deployment,
    attribute,
    deployed,
    set_up,
)
from tests.functional.call_report import CALL_REPORT

REPORT = Path(__file__).resolve().parents[2] / "build" / "serverless-e2e-calls.json"


# -- the test ---------------------------------------------------------------------------------------------------------


@pytest.fixture
def deployment(serverless_env: None) -> Iterator[Deployment]:
    with deployed({"StateChangeEvents": "ALL"}) as d:  # every state change published, as AWS Batch does
        yield d


def test_a_job_dag_runs_to_success_on_the_serverless_runtime(
    deployment: Deployment, pytestconfig: pytest.Config
) -> None:
    world, batch, counter = deployment.world, deployment.batch, deployment.counter

    # GIVEN a Fargate Spot compute environment, a queue and a job definition, created through the API
    set_up(deployment)
    counter.calls.clear()

    # WHEN a DAG is submitted: prepare -> array of 3 -> (retried step, Spot-interrupted step) -> report
    def submit(name: str, **kwargs: Any) -> str:
        job_id = str(batch.submit_job(jobName=name, jobQueue="q", jobDefinition="step", **kwargs)["jobId"])
        world.names[job_id] = name
        return job_id

    prepare = submit("prepare")
    fan = submit("fan-out", arrayProperties={"size": 3}, dependsOn=[{"jobId": prepare}])
    world.plan.outcomes = {"flaky": ["fail", "ok"], "on-spot": ["spot", "ok"]}
    flaky = submit("flaky", dependsOn=[{"jobId": fan}], retryStrategy={"attempts": 2})
    on_spot = submit(
        "on-spot",
        dependsOn=[{"jobId": prepare}],
        retryStrategy={"attempts": 2, "evaluateOnExit": [{"onStatusReason": "Your Spot Task*", "action": "RETRY"}]},
    )
    report = submit("report", dependsOn=[{"jobId": flaky}, {"jobId": on_spot}])
    rounds = world.settle()

    # THEN every job SUCCEEDED, with the attempts the scenario asked for
    jobs = {j["jobName"]: j for j in batch.describe_jobs(jobs=[prepare, fan, flaky, on_spot, report])["jobs"]}
    assert {name: j["status"] for name, j in jobs.items()} == dict.fromkeys(
        ["prepare", "fan-out", "flaky", "on-spot", "report"], "SUCCEEDED"
    ), {name: j.get("statusReason") for name, j in jobs.items()}
    assert [a["container"]["exitCode"] for a in jobs["flaky"]["attempts"]] == [1, 0]
    assert [a["statusReason"] for a in jobs["on-spot"]["attempts"]] == [
        SPOT_INTERRUPTED,
        "Essential container in task exited",
    ]
    assert len(jobs["prepare"]["attempts"]) == 1 and len(jobs["report"]["attempts"]) == 1
    children = batch.list_jobs(arrayJobId=fan, jobStatus="SUCCEEDED")["jobSummaryList"]
    assert len(children) == 3
    assert jobs["fan-out"]["arrayProperties"]["statusSummary"]["SUCCEEDED"] == 3

    # ... every state change was published to EventBridge (SUBMITTED is never persisted, so never published)
    published = [
        json.loads(e["Detail"])
        for c in counter.calls
        if (c.service, c.operation) == ("events", "PutEvents")
        for e in c.params["Entries"]
    ]
    statuses_of_report = [d["status"] for d in published if d["jobId"] == report]
    assert statuses_of_report == ["PENDING", "RUNNABLE", "STARTING", "RUNNING", "SUCCEEDED"]
    assert {e["Source"] for c in counter.calls if c.operation == "PutEvents" for e in c.params["Entries"]} == {
        "batchplane"
    }

    # ... and a plain single-attempt job cost at most 4 DynamoDB writes and 1 RunTask (ADR 0003)
    for child in children:
        world.names[child["jobId"]] = f"fan-out:{child['jobId'].rsplit(':', 1)[1]}"
    per_job = attribute(counter, {name: job_id for job_id, name in world.names.items()})
    totals = counter.by_operation()
    pytestconfig.stash[CALL_REPORT] = _report(per_job, totals, world.invocations, rounds)
    for name in ("prepare", "fan-out:0", "fan-out:1", "fan-out:2"):  # no dependency, one attempt
        assert per_job[name]["dynamodb_writes"] <= 4, (name, per_job[name])
        assert per_job[name]["ecs_RunTask"] == 1, (name, per_job[name])
    # One more write per dependency (each completion is a compare-and-set on the dependent); one more claim,
    # RUNNING and stop per extra attempt.
    assert per_job["report"]["dynamodb_writes"] <= 4 + 2 and per_job["report"]["ecs_RunTask"] == 1, per_job["report"]
    for name, attempts in (("flaky", 2), ("on-spot", 2)):
        assert per_job[name]["ecs_RunTask"] == attempts, (name, per_job[name])
        assert per_job[name]["dynamodb_writes"] <= 4 + 1 + 3 * (attempts - 1), (name, per_job[name])


def _report(
    per_job: dict[str, Counter[str]], totals: Counter[str], invocations: Counter[str], rounds: int
) -> list[str]:
    """The table of AWS calls per job (printed at the end of the test run: tests/functional/conftest.py), also
    written to REPORT as JSON."""
    always = {"dynamodb_reads", "dynamodb_writes", "ecs_RunTask", "ecs_ListTasks"}  # ListTasks: 0 with clientToken
    kinds = sorted({k for counts in per_job.values() for k in counts} | always)
    width = max(len(n) for n in per_job) + 2
    lines = ["", "AWS calls per job (serverless e2e on moto):", " " * width + "  ".join(f"{k:>20}" for k in kinds)]
    for name in sorted(per_job):
        lines.append(f"{name:<{width}}" + "  ".join(f"{per_job[name][k]:>20}" for k in kinds))
    lines.append("totals: " + ", ".join(f"{op}={n}" for op, n in sorted(totals.items())))
    lines.append("Lambda invocations: " + ", ".join(f"{fn}={n}" for fn, n in sorted(invocations.items())))
    REPORT.parent.mkdir(parents=True, exist_ok=True)
    REPORT.write_text(
        json.dumps(
            {
                "per_job": {name: {k: counts[k] for k in kinds} for name, counts in sorted(per_job.items())},
                "totals": dict(sorted(totals.items())),
                "lambda_invocations": dict(sorted(invocations.items())),
                "harness_rounds": rounds,
            },
            indent=2,
        )
        + "\n"
    )
    return lines


def test_a_lazy_array_runs_each_child_once_on_the_serverless_runtime(
    serverless_env: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN the AWS runtime writing array children 3 ahead of the finished ones (docs/adr/0031)
    monkeypatch.setenv("BATCHPLANE_ARRAY_WINDOW", "3")
    with deployed({"StateChangeEvents": "ALL"}) as deployment:
        world, batch, counter = deployment.world, deployment.batch, deployment.counter
        set_up(deployment)
        # WHEN an array of 10 is submitted
        fan = str(
            batch.submit_job(jobName="fan", jobQueue="q", jobDefinition="step", arrayProperties={"size": 10})["jobId"]
        )
        # THEN before anything ran, the unwritten children are described and counted as RUNNABLE views
        far = batch.describe_jobs(jobs=[f"{fan}:9"])["jobs"]
        assert [(j["status"], j["arrayProperties"]["index"]) for j in far] == [("RUNNABLE", 9)]
        assert batch.describe_jobs(jobs=[fan])["jobs"][0]["arrayProperties"]["statusSummary"]["RUNNABLE"] == 10
        counter.calls.clear()
        world.settle()
        # AND every child ran exactly once, the stream writing the next ones as the first finished
        parent = batch.describe_jobs(jobs=[fan])["jobs"][0]
        assert parent["status"] == "SUCCEEDED" and parent["arrayProperties"]["statusSummary"]["SUCCEEDED"] == 10
        run = Counter(
            c.params["startedBy"] if "startedBy" in c.params else c.params.get("clientToken", "")
            for c in counter.calls
            if (c.service, c.operation) == ("ecs", "RunTask")
        )
        assert sum(run.values()) == 10 and set(run.values()) == {1}, run
        children = batch.list_jobs(arrayJobId=fan, jobStatus="SUCCEEDED")["jobSummaryList"]
        assert sorted(c["arrayProperties"]["index"] for c in children) == list(range(10))
