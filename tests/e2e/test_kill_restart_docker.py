"""The kill -9 test's container twin (issue 11, items 7 and 9): `batchplane up --executor docker` SIGKILLed while
its containers run, restarted on the same state directory each time, then left to finish.

Containers do not die with the server: at start it re-attaches to those still running and settles those that ended
while it was down, with their real exit code. So, unlike processes (test_kill_restart.py, where an attempt caught
running by a kill is a lost host), every job here must end SUCCEEDED on its first attempt, and no attempt may run
twice. Each container appends `<jobId>#<attempt> start` and `… done` to a ledger on a host volume (the server
allows the test's directory with --allow-host-path): the ledger counts real executions; DescribeJobs says what
batchplane believes; the engine's own list says which containers outlived which server.

The schedule is seeded (BATCHPLANE_KILL_SEED), the kills wait for containers to be running (never for a time),
and the assertions are about outcomes, never durations.
"""

from __future__ import annotations

import os
import random
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.docker_support import remove_containers
from tests.e2e.conftest import describe, sh
from tests.e2e.test_kill_restart import Server, client_with_queue, serve, wait_all_terminal

pytestmark = pytest.mark.e2e

SEED = int(os.environ.get("BATCHPLANE_KILL_SEED", "20240611"))
JOBS = 24
MAX_VCPUS = 6  # 1 vCPU per job: at most 6 containers at once
KILLS = 3
DOWN_S = (0.3, 1.5)  # how long the server stays dead, uniformly: some containers end meanwhile
FINISH_TIMEOUT_S = 60.0
IMAGE = "busybox:latest"  # built locally by scripts/docker-up.sh


@pytest.fixture
def server(tmp_path: Path, docker_engine: Any) -> Iterator[Server]:
    yield from serve(
        tmp_path,
        *("--executor", "docker", "--allow-host-path", str(tmp_path / "ledger")),
        after=lambda srv: remove_containers(docker_engine, srv.state),  # the safety net: whatever a failed run left
    )


def _ours(engine: Any, job_ids: list[str], *, running: bool = False) -> list[dict[str, Any]]:
    """The containers of `job_ids` (by their batchplane.job-id label), as the engine lists them."""
    found: list[dict[str, Any]] = []
    for job_id in job_ids:
        found += engine.containers(all=not running, filters={"label": f"batchplane.job-id={job_id}"})
    return found


def _reasons(batch: Any, ids: list[str]) -> set[str]:
    return {str(j.get("statusReason")) for j in describe(batch, ids).values()}


def _wait_running(batch: Any, ids: list[str], timeout: float = 30.0) -> bool:
    """Wait until a job is RUNNING (True) or every job has ended (False)."""
    deadline = time.monotonic() + timeout
    while True:
        statuses = Counter(j["status"] for j in describe(batch, ids).values())
        if statuses["RUNNING"]:
            return True
        if statuses["SUCCEEDED"] + statuses["FAILED"] == len(ids):
            return False
        assert time.monotonic() < deadline, f"no container started: {dict(statuses)} {_reasons(batch, ids)}"
        time.sleep(0.05)


def test_containers_outlive_a_sigkilled_server_and_each_job_runs_once(
    server: Server, tmp_path: Path, docker_engine: Any
) -> None:
    rng = random.Random(SEED)
    ledger_dir = tmp_path / "ledger"
    ledger_dir.mkdir()
    ledger = ledger_dir / "ledger"
    server.start()
    # GIVEN a queue on a small compute environment (jobs wait their turn, so kills catch some running) and a
    # definition whose containers sleep 1-3 s, logging to a ledger on a host volume (an EC2 definition on an EC2
    # compute environment: Fargate has no host volumes)
    batch, queue = client_with_queue(server, max_vcpus=MAX_VCPUS, platform="EC2")
    mark = 'echo "$AWS_BATCH_JOB_ID#$AWS_BATCH_JOB_ATTEMPT {}" >> /ledger/ledger'
    batch.register_job_definition(
        jobDefinitionName="sleeper",
        type="container",
        containerProperties={
            "image": IMAGE,
            "command": [*sh(f'{mark.format("start")}; sleep "$1"; {mark.format("done")}'), "job", "Ref::secs"],
            "resourceRequirements": [{"type": "VCPU", "value": "1"}, {"type": "MEMORY", "value": "2048"}],
            "volumes": [{"name": "ledger", "host": {"sourcePath": str(ledger_dir)}}],
            "mountPoints": [{"sourceVolume": "ledger", "containerPath": "/ledger"}],
        },
        parameters={"secs": "1"},
    )
    ids = [
        str(
            batch.submit_job(
                jobName=f"sleep-{n}",
                jobQueue=queue,
                jobDefinition="sleeper",
                parameters={"secs": rng.choice(["1", "2", "3"])},
                retryStrategy={"attempts": 2},
            )["jobId"]
        )
        for n in range(JOBS)
    ]

    # WHEN the server is SIGKILLed while containers run, stays down a moment, and is started again, a few times
    outlived: set[str] = set()
    for _ in range(KILLS):
        if not _wait_running(batch, ids):
            break  # all done before this kill: the kills before it are what this run tests
        server.kill()
        outlived |= {c["Labels"]["batchplane.job-id"] for c in _ours(docker_engine, ids, running=True)}
        time.sleep(rng.uniform(*DOWN_S))
        server.start()
    jobs = wait_all_terminal(batch, ids, FINISH_TIMEOUT_S)

    # THEN containers did outlive the server (else this tests nothing), and every job SUCCEEDED on its first attempt
    assert outlived, "no container was running at any kill: the schedule tests nothing"
    assert {i: (j["status"], len(j["attempts"])) for i, j in jobs.items()} == {i: ("SUCCEEDED", 1) for i in ids}
    assert all(j["attempts"][0]["container"]["exitCode"] == 0 for j in jobs.values())
    # AND the ledger shows each job's one attempt started once and finished once: nothing ran twice
    lines = ledger.read_text().splitlines()
    assert Counter(lines) == Counter([f"{i}#1 start" for i in ids] + [f"{i}#1 done" for i in ids])
    # AND every container is removed once its end is recorded and its logs drained
    deadline = time.monotonic() + 15
    while left := _ours(docker_engine, ids):
        assert time.monotonic() < deadline, [(c["Names"], c["State"]) for c in left]
        time.sleep(0.1)
    # AND the server never logged an unhandled error
    assert "Traceback" not in server.output(), server.output()
