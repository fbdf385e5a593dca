"""Concurrency caps end to end: real processes under the local runtime, through the stock boto3 batch client. An
array tagged `batchplane:maxRunning` = 2 never runs more than 2 children at once although the compute environment
has room for all of them; a queue tagged = 1 runs its jobs one at a time; the held-back jobs say why. Overlap is
asserted on the startedAt/stoppedAt batchplane records, never on wall-clock speed; every wait is bounded."""

from __future__ import annotations

import json
import os
import subprocess

import pytest

from chalicelib.runtime.local import LocalRuntime
from tests.e2e.conftest import Client, register, setup_queue, sh, submit, unique, wait_for, wait_terminal
from tests.e2e.test_auth import aws_cli
from tests.e2e.test_consumables import max_overlap

pytestmark = pytest.mark.e2e
CAP = "batchplane:maxRunning"


def test_an_array_runs_at_most_its_cap_of_children(batch: Client) -> None:
    # GIVEN a CE with room for 6 jobs and an array of 6 children capped at 2
    queue, _ = setup_queue(batch, max_vcpus=6)
    jd = register(batch, unique("nap"), sh("sleep 1"))
    parent = submit(batch, queue, jd, "array", arrayProperties={"size": 6}, tags={CAP: "2"})
    children = [f"{parent}:{i}" for i in range(6)]

    # WHEN they run  THEN a child waits with the cap's reason while two run
    held = wait_for(
        batch,
        children[2:3],
        lambda j: j["status"] in ("SUCCEEDED", "FAILED") or "CONCURRENCY_LIMIT" in str(j.get("statusReason")),
        "held back by the cap",
        30,
    )[children[2]]
    assert held["statusReason"] == (
        f"CAPACITY:CONCURRENCY_LIMIT - The array job {parent} is at its limit of 2 running job(s) (tag {CAP})."
    )
    jobs = wait_terminal(batch, children, timeout=60)

    # THEN all succeed and never more than 2 ran at once
    assert {j["status"] for j in jobs.values()} == {"SUCCEEDED"}
    assert max_overlap(list(jobs.values())) <= 2


def test_a_queue_capped_at_one_runs_its_jobs_one_at_a_time(batch: Client) -> None:
    queue, _ = setup_queue(batch, max_vcpus=6)
    batch.tag_resource(
        resourceArn=batch.describe_job_queues(jobQueues=[queue])["jobQueues"][0]["jobQueueArn"], tags={CAP: "1"}
    )
    jd = register(batch, unique("nap"), sh("sleep 0.5"))
    ids = [submit(batch, queue, jd, f"j{i}") for i in range(3)]
    jobs = wait_terminal(batch, ids, timeout=60)
    assert {j["status"] for j in jobs.values()} == {"SUCCEEDED"}
    assert max_overlap(list(jobs.values())) == 1


def test_the_aws_cli_sets_an_array_cap_with_its_tags_shorthand(batch: Client, runtime: LocalRuntime) -> None:
    # GIVEN a queue, and an array of 4 children submitted by the AWS CLI with --tags batchplane:maxRunning=1
    queue, _ = setup_queue(batch, max_vcpus=4)
    jd = register(batch, unique("nap"), sh("sleep 0.3"))
    env = {**os.environ, "AWS_DEFAULT_REGION": "us-east-1", "AWS_PAGER": ""}
    env.setdefault("AWS_ACCESS_KEY_ID", "testing")
    env.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
    argv = [aws_cli(), "batch", "submit-job", "--job-name", "array", "--job-queue", queue, "--job-definition", jd]
    argv += ["--array-properties", "size=4", "--tags", f"{CAP}=1", "--endpoint-url", runtime.endpoint]
    done = subprocess.run([*argv, "--output", "json"], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    parent = json.loads(done.stdout)["jobId"]

    # THEN the children run one at a time
    children = [f"{parent}:{i}" for i in range(4)]
    jobs = wait_terminal(batch, children, timeout=60)
    assert {j["status"] for j in jobs.values()} == {"SUCCEEDED"}
    assert max_overlap(list(jobs.values())) == 1
