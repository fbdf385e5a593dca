"""Durability of lazily written array children (docs/adr/0031): `batchplane up --array-window 16` SIGKILLed at
random points while an array of 400 runs (children are written 16 ahead of the finished ones, so most of them are
written by the restarted servers), restarted on the same state each time, then left to finish.

As in test_kill_restart.py, each child appends `<jobId> <attempt> start|ok` to one ledger. No child may be lost
(every index ends terminal, and the parent counts all 400), none may run an attempt twice or succeed twice."""

from __future__ import annotations

import random
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.conftest import EXEC_ROLE, sh
from tests.e2e.test_kill_restart import (
    FINISH_TIMEOUT_S,
    SEED,
    Server,
    client_with_queue,
    ledger_line,
    runs,
    serve,
    wait_all_terminal,
)

pytestmark = pytest.mark.e2e

SIZE, WINDOW, KILLS = 400, 16, 3


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    yield from serve(tmp_path, "--array-window", str(WINDOW))


def test_sigkill_mid_array_loses_no_child_and_runs_none_twice(server: Server, tmp_path: Path) -> None:
    rng = random.Random(SEED)
    ledger = tmp_path / "ledger"
    record = ledger_line(ledger)
    server.start()
    # GIVEN a queue on 8 vCPUs and a job definition that logs to the ledger
    batch, queue = client_with_queue(server, max_vcpus=8)
    batch.register_job_definition(
        jobDefinitionName="work",
        type="container",
        containerProperties={
            "image": "busybox",
            "command": sh(f"{record.format('start')}; sleep 0.1; {record.format('ok')}"),
            "resourceRequirements": [{"type": "VCPU", "value": "1"}, {"type": "MEMORY", "value": "2048"}],
            "executionRoleArn": EXEC_ROLE,
        },
        platformCapabilities=["FARGATE"],
    )
    # WHEN an array of 400 is submitted and the server is SIGKILLed at random points while it runs
    parent = batch.submit_job(
        jobName="lazy",
        jobQueue=queue,
        jobDefinition="work",
        arrayProperties={"size": SIZE},
        retryStrategy={"attempts": 3},
    )["jobId"]
    finished_at_kills = []
    for _ in range(KILLS):
        time.sleep(rng.uniform(1.0, 3.0))
        counts = batch.describe_jobs(jobs=[parent])["jobs"][0]["arrayProperties"]["statusSummary"]
        finished_at_kills.append(counts["SUCCEEDED"] + counts["FAILED"])
        server.kill()
        server.start()
    assert any(0 < n < SIZE - WINDOW for n in finished_at_kills), finished_at_kills  # killed mid-array

    # THEN the parent and every child end terminal
    children = [f"{parent}:{i}" for i in range(SIZE)]
    jobs = wait_all_terminal(batch, [parent, *children], FINISH_TIMEOUT_S)
    summary = jobs[parent]["arrayProperties"]["statusSummary"]
    assert sum(summary.values()) == SIZE and summary["SUCCEEDED"] + summary["FAILED"] == SIZE, summary
    # AND no attempt ran twice, and each child succeeded at most once, on its last attempt
    ran = runs(ledger)
    starts, oks = ran.starts, ran.oks
    assert ran.twice == [], "an attempt ran twice"
    assert set(oks) <= set(children)
    for child in children:
        job = jobs[child]
        if job["status"] == "SUCCEEDED":
            assert oks[child] == [len(job["attempts"])], (child, oks[child], job["attempts"])
        else:
            assert oks[child] == [], (child, job["statusReason"])
    # AND whatever ran was a child with an attempt on record (one claimed just before a kill may never have started)
    assert {job_id for job_id, _ in starts} <= {c for c in children if jobs[c]["attempts"]}
    assert all(a <= len(jobs[j]["attempts"]) for j, a in starts)
