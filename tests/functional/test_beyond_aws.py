"""batchplane's extensions beyond AWS Batch on the local runtime, through the doors a user has: a stock boto3
`batch` client, the AWS CLI, `batchplane up` (docs/adr/0029, README "Beyond AWS Batch"): lifted limits, conditional
dependencies (AFTER_ANY, AFTER_NOT_OK), idempotent SubmitJob (the `batchplane:clientToken` tag)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

from app import app
from chalicelib import cli
from chalicelib.domain.conditions import CONDITION_NOT_MET
from chalicelib.domain.idempotency import TOKEN_TAG
from chalicelib.domain.jobs import DEPENDENCY_FAILED
from chalicelib.domain.validation import parse_limits
from chalicelib.runtime.local import LocalConfig
from chalicelib.runtime.plane import build_local
from tests.functional.builders import (
    REGION,
    BatchClient,
    assert_rejected,
    disable_ce,
    make_fargate_ce,
    make_jd,
    make_queue,
    raw_operation,
    wait_for,
)
from tests.functional.conftest import CLIENT_CONFIG, STOP_TIMEOUT_S
from tests.runtimes import stop_runtime


def jobs(batch: BatchClient, *ids: str) -> dict[str, dict[str, Any]]:
    return {j["jobId"]: j for j in batch.describe_jobs(jobs=list(ids))["jobs"]}


def finished(batch: BatchClient, *ids: str) -> dict[str, dict[str, Any]]:
    def done() -> dict[str, dict[str, Any]] | None:
        found = jobs(batch, *ids)
        return found if all(j["status"] in ("SUCCEEDED", "FAILED") for j in found.values()) else None

    return dict(wait_for(done, f"{ids} to finish"))


@pytest.fixture
def queue(batch: BatchClient) -> str:
    make_jd(batch, "jd")
    return make_queue(batch, "q", [make_fargate_ce(batch, "ce", max_vcpus=4)])


def submit(batch: BatchClient, name: str, command: list[str] | None = None, **kwargs: Any) -> str:
    if command is not None:
        kwargs["containerOverrides"] = {"command": command}
    return str(batch.submit_job(jobName=name, jobQueue="q", jobDefinition="jd", **kwargs)["jobId"])


# -- conditional dependencies ---------------------------------------------------------------------------------------


def test_conditional_dependents_run_by_their_dependencys_outcome(batch: BatchClient, queue: str, endpoint: str) -> None:
    # GIVEN a job that fails and one that succeeds, each with plain, AFTER_ANY and AFTER_NOT_OK dependents
    bad = submit(batch, "bad", ["false"])
    good = submit(batch, "good", ["true"])
    dependents = {
        (parent, kind): submit(
            batch, f"{name}-{kind or 'plain'}", dependsOn=[{"jobId": parent, **({"type": kind} if kind else {})}]
        )
        for parent, name in ((bad, "bad"), (good, "good"))
        for kind in (None, "AFTER_ANY", "AFTER_NOT_OK")
    }

    # WHEN they all finish
    done = finished(batch, bad, good, *dependents.values())

    # THEN each dependent ran, or failed saying why, by its condition
    outcome = {key: (done[j]["status"], done[j].get("statusReason")) for key, j in dependents.items()}
    assert outcome[(bad, None)] == ("FAILED", f"{DEPENDENCY_FAILED}: {bad}")
    assert outcome[(bad, "AFTER_ANY")][0] == "SUCCEEDED"
    assert outcome[(bad, "AFTER_NOT_OK")][0] == "SUCCEEDED"
    assert outcome[(good, None)][0] == "SUCCEEDED"
    assert outcome[(good, "AFTER_ANY")][0] == "SUCCEEDED"
    assert outcome[(good, "AFTER_NOT_OK")] == ("FAILED", f"{CONDITION_NOT_MET}: {good} SUCCEEDED (AFTER_NOT_OK)")
    # ... DescribeJobs shows the condition as it was sent, and ListJobDependents (batchplane's graph) names it too
    assert done[dependents[(bad, "AFTER_ANY")]]["dependsOn"] == [{"jobId": bad, "type": "AFTER_ANY"}]
    listed = raw_operation(endpoint, "ListJobDependents", {"jobId": bad}).body["dependents"]
    assert sorted(listed, key=lambda d: d["jobId"]) == sorted(
        [
            {"jobId": dependents[(bad, None)]},
            {"jobId": dependents[(bad, "AFTER_ANY")], "type": "AFTER_ANY"},
            {"jobId": dependents[(bad, "AFTER_NOT_OK")], "type": "AFTER_NOT_OK"},
        ],
        key=lambda d: d["jobId"],
    )


def test_a_conditional_dependent_submitted_after_its_dependency_ended_is_decided_at_once(
    batch: BatchClient, queue: str
) -> None:
    good = submit(batch, "good", ["true"])
    finished(batch, good)

    late = submit(batch, "late", dependsOn=[{"jobId": good, "type": "AFTER_NOT_OK"}])

    assert jobs(batch, late)[late]["status"] == "FAILED"  # at once: written FAILED by the submit itself
    assert jobs(batch, late)[late]["statusReason"].startswith(CONDITION_NOT_MET)


def test_an_unknown_dependency_type_is_refused_naming_the_field(batch: BatchClient, queue: str) -> None:
    first = submit(batch, "first")
    assert_rejected(
        batch,
        lambda: submit(batch, "x", dependsOn=[{"jobId": first, "type": "AFTER_SOMETIMES"}]),
        "dependsOn[0].type",
        "AFTER_ANY",
    )


def aws_cli(endpoint: str, *args: str) -> subprocess.CompletedProcess[str]:
    path = Path(sys.executable).with_name("aws")
    assert path.exists(), "the AWS CLI (awscli, pinned in requirements-dev.txt) is not installed in this venv"
    env = {**os.environ, "AWS_DEFAULT_REGION": REGION, "AWS_PAGER": "", "AWS_ACCESS_KEY_ID": "testing"}
    env["AWS_SECRET_ACCESS_KEY"] = "testing"
    argv = [str(path), "batch", *args, "--endpoint-url", endpoint, "--output", "json"]
    return subprocess.run(argv, env=env, capture_output=True, text=True, timeout=120)


def test_the_aws_cli_sends_a_condition_and_a_client_token(batch: BatchClient, queue: str, endpoint: str) -> None:
    bad = submit(batch, "bad", ["false"])
    args = ("submit-job", "--job-name", "cleanup", "--job-queue", "q", "--job-definition", "jd")
    extensions = ("--depends-on", f"jobId={bad},type=AFTER_NOT_OK", "--tags", f"{TOKEN_TAG}=cli-1")

    first = aws_cli(endpoint, *args, *extensions)
    again = aws_cli(endpoint, *args, *extensions)  # a retry of the same command

    assert first.returncode == 0, first.stderr
    assert again.returncode == 0, again.stderr
    cleanup = json.loads(first.stdout)["jobId"]
    assert json.loads(again.stdout)["jobId"] == cleanup
    assert finished(batch, bad, cleanup)[cleanup]["status"] == "SUCCEEDED"


# -- idempotent SubmitJob -------------------------------------------------------------------------------------------


def test_a_retried_submit_with_a_client_token_returns_the_first_job(batch: BatchClient, queue: str) -> None:
    tags = {TOKEN_TAG: "nightly-2026-12-05", "team": "data"}
    first = batch.submit_job(jobName="nightly", jobQueue="q", jobDefinition="jd", tags=tags)
    again = batch.submit_job(jobName="nightly", jobQueue="q", jobDefinition="jd", tags=tags)

    assert (again["jobId"], again["jobArn"], again["jobName"]) == (first["jobId"], first["jobArn"], "nightly")
    finished(batch, first["jobId"])
    listed = [s["jobId"] for s in batch.list_jobs(jobQueue="q", jobStatus="SUCCEEDED")["jobSummaryList"]]
    assert listed == [first["jobId"]]  # one job, not two
    # ... the token stays a tag, as AWS would keep it
    assert batch.describe_jobs(jobs=[first["jobId"]])["jobs"][0]["tags"] == tags


def test_the_same_token_with_other_parameters_is_refused(batch: BatchClient, queue: str) -> None:
    first = submit(batch, "nightly", tags={TOKEN_TAG: "t-1"})
    message = assert_rejected(
        batch, lambda: submit(batch, "nightly", ["true"], tags={TOKEN_TAG: "t-1"}), TOKEN_TAG, first
    )
    assert "different parameters" in message
    assert submit(batch, "nightly", tags={TOKEN_TAG: "t-2"}) != first  # another token: another job


def test_concurrent_retries_with_one_token_make_one_job(
    batch: BatchClient, queue: str, make_client: Callable[[str], BatchClient]
) -> None:
    clients = [make_client(REGION) for _ in range(8)]
    ids: list[str] = []
    barrier = threading.Barrier(len(clients))

    def retry(client: BatchClient) -> None:
        barrier.wait()
        ids.append(
            client.submit_job(jobName="once", jobQueue="q", jobDefinition="jd", tags={TOKEN_TAG: "once"})["jobId"]
        )

    threads = [threading.Thread(target=retry, args=(c,)) for c in clients]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    assert len(ids) == len(clients) and len(set(ids)) == 1
    finished(batch, ids[0])
    assert [j["jobId"] for j in batch.list_jobs(jobQueue="q", jobStatus="SUCCEEDED")["jobSummaryList"]] == ids[:1]


# -- limits as settings ---------------------------------------------------------------------------------------------


def test_aws_quotas_are_the_default_and_the_refusal_names_the_limit(batch: BatchClient, queue: str) -> None:
    message = assert_rejected(
        batch, lambda: submit(batch, "big", arrayProperties={"size": 10_001}), "arrayProperties.size"
    )
    assert "10000" in message and "max-array-size" in message
    first = submit(batch, "first")
    deps = [{"jobId": first}] * 21
    assert "max-dependencies" in assert_rejected(batch, lambda: submit(batch, "many", dependsOn=deps), "dependsOn")


@pytest.fixture
def lifted(tmp_path: Path, boto_session: boto3.session.Session) -> Iterator[BatchClient]:
    limits = parse_limits(["max-array-size=20000", "max-dependencies=150", "max-submit-bytes=65536"])
    rt = build_local(LocalConfig(state_dir=tmp_path / "lifted", port=0, limits=limits), app)
    rt.start()
    client = boto_session.client("batch", region_name=REGION, endpoint_url=rt.endpoint, config=CLIENT_CONFIG)
    try:
        yield client
    finally:
        client.close()
        stop_runtime(rt, STOP_TIMEOUT_S)


def test_lifted_limits_take_bigger_arrays_and_more_dependencies(lifted: BatchClient) -> None:
    # GIVEN a queue whose compute environment is disabled (nothing runs) and 150 jobs waiting in it
    make_jd(lifted, "jd")
    ce = make_fargate_ce(lifted, "ce")
    make_queue(lifted, "q", [ce])
    disable_ce(lifted, ce)
    waiting = [submit(lifted, f"w{i}") for i in range(150)]

    # WHEN a job depends on all of them (more edges than one store transaction holds) and an array is over AWS's cap
    many = submit(lifted, "many", dependsOn=[{"jobId": j} for j in waiting])
    big = submit(lifted, "big", arrayProperties={"size": 20_000}, dependsOn=[{"jobId": waiting[0]}])

    # THEN both are accepted and wait; the one over the lifted limits is still refused, naming it
    assert {j["status"] for j in jobs(lifted, many, big).values()} == {"PENDING"}
    listed = raw_operation(lifted.meta.endpoint_url, "ListJobDependents", {"jobId": waiting[149]}).body
    assert listed["dependents"] == [{"jobId": many}]
    assert "max-array-size" in assert_rejected(
        lifted, lambda: submit(lifted, "bigger", arrayProperties={"size": 20_001}), "arrayProperties.size", "20000"
    )


def test_batchplane_up_refuses_a_limit_beyond_its_ceiling(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    argv = ["up", "--port", "0", "--state-dir", str(tmp_path), "--limit", "max-array-size=2000000"]
    assert cli.main(argv, app=app) == 2
    assert "max-array-size" in capsys.readouterr().err


def test_batchplane_up_reads_its_limits(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    seen: list[LocalConfig] = []

    class Stop(Exception):
        pass

    def capture(config: LocalConfig, app: Any) -> None:
        seen.append(config)
        raise Stop

    monkeypatch.setattr("chalicelib.runtime.plane.build_local", capture)  # what `up` builds its plane with
    argv = ["up", "--state-dir", str(tmp_path), "--limit", "max-array-size=1000000", "--limit", "max-dependencies=1000"]
    with pytest.raises(Stop):
        cli.main(argv, app=app)
    assert (seen[0].limits.max_array_size, seen[0].limits.max_dependencies) == (1_000_000, 1000)
