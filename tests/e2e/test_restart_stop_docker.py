"""The Docker twin of test_restart_stop.py and test_restart_multi_container_stop.py: a job on the Docker executor (a
multi-container task, a single container) being stopped (TerminateJob, an attempt timeout) when the server is
SIGKILLed (docs/adr/0028, 0033). Containers outlive the server, and the restart re-attaches to them: the attempt must
end as it would have without the crash, with the stop's reason as the attempt's status reason, never "Essential
container in task exited" (the stop is kept in the attempt's marker).

The essential container traps SIGTERM and ends only once the test lets it (a go file on a host volume): the stop
is in flight when the server dies. Every wait is for a state (a file, a container's state, a job status), never for
a time."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

from chalicelib.domain.jobs import TIMEOUT_REASON
from tests.docker_support import TEST_IMAGE, remove_containers
from tests.e2e.conftest import setup_queue, unique, wait_terminal, wait_until
from tests.e2e.test_kill_restart import CLIENT, Server, serve
from tests.multi_container_support import containers_of, member

pytestmark = pytest.mark.e2e

REASON = "stopped by the test"
RETRY_LOST = {"attempts": 2, "evaluateOnExit": [{"onStatusReason": "Host EC2*", "action": "RETRY"}]}
MOUNT = [{"sourceVolume": "shared", "containerPath": "/shared"}]


@pytest.fixture
def server(tmp_path: Path, docker_engine: Any) -> Iterator[Server]:
    (tmp_path / "shared").mkdir()
    yield from serve(
        tmp_path,
        *("--executor", "docker", "--allow-host-path", str(tmp_path / "shared")),
        *("--limit", "min-timeout-seconds=1"),  # short attempt timeouts are valid (AWS's minimum is 60)
        after=lambda srv: remove_containers(docker_engine, srv.state),
    )


def _container(name: str, script: str, *, essential: bool = True, **props: Any) -> dict[str, Any]:
    return member(name, ["sh", "-c", script], image=TEST_IMAGE, memory="128", essential=essential, **props)


def _ended(engine: Any, job_id: str, name: str | None) -> bool:
    """Whether the container `name` of the job's task (its only container: None) has ended."""
    labels = [f"batchplane.job-id={job_id}", *([f"batchplane.container={name}"] if name else [])]
    return bool(engine.containers(all=True, filters={"label": labels, "status": "exited"}))


def _run(server: Server, engine: Any, shared: Path, *, crash: bool, timeout: bool, let_end: bool) -> dict[str, Any]:
    """main (essential) traps SIGTERM: it marks `stopping`, waits for the go file and exits 0; side (non-essential)
    exits 143 on its SIGTERM. Once both run the task is terminated (or its attempt timeout stops it); once main is
    stopping and side has ended, the server is SIGKILLed (`crash`), the go file is created (`let_end`: else main is
    still stopping at the restart; its stopTimeout, 20 s, then ends it) and the server started again."""
    server.start()
    session = boto3.session.Session(aws_access_key_id="k", aws_secret_access_key="s", region_name="us-east-1")
    batch = session.client("batch", endpoint_url=server.endpoint, config=CLIENT)
    trap = "touch /shared/stopping; until [ -e /shared/go ]; do sleep 0.05; done; exit 0"
    main = _container(
        "main", f"trap '{trap}' TERM; touch /shared/ready; sleep 120 & wait", mountPoints=MOUNT, stopTimeout=20
    )
    side = _container("side", "trap 'exit 143' TERM; touch /shared/side; sleep 120 & wait", essential=False,
                      mountPoints=MOUNT)  # fmt: skip
    task = {"containers": [main, side], "volumes": [{"name": "shared", "host": {"sourcePath": str(shared)}}]}
    jd = batch.register_job_definition(
        jobDefinitionName=unique("dmcs"), type="container", ecsProperties={"taskProperties": [task]}
    )["jobDefinitionArn"]
    queue, _ = setup_queue(batch, 4, name=unique("ec2"), platform="EC2")  # EC2: host volumes
    extra: dict[str, Any] = {"timeout": {"attemptDurationSeconds": 10}} if timeout else {}
    job_id = batch.submit_job(jobName="dmcs", jobQueue=queue, jobDefinition=jd, retryStrategy=RETRY_LOST, **extra)[
        "jobId"
    ]
    wait_until(lambda: (shared / "ready").exists() and (shared / "side").exists(), "both containers to run", 60)
    if not timeout:
        batch.terminate_job(jobId=job_id, reason=REASON)
    wait_until((shared / "stopping").exists, "main to be stopping", timeout=60)
    wait_until(lambda: _ended(engine, job_id, "side"), "side to end on the stop")
    if crash:
        server.kill()
    if let_end:
        (shared / "go").touch()
    if crash:
        if let_end:
            wait_until(lambda: _ended(engine, job_id, "main"), "main's end while the server is down")
        server.start()
    job: dict[str, Any] = wait_terminal(batch, [job_id], timeout=90)[job_id]
    (shared / "go").touch()
    assert "Traceback" not in server.output(), server.output()
    return job


def _facts(job: dict[str, Any]) -> dict[str, Any]:
    attempts = job["attempts"]
    exits = [
        {c["name"]: c.get("exitCode") for c in ((a.get("taskProperties") or [{}])[0].get("containers") or [])}
        for a in attempts
    ]
    return {
        "status": job["status"],
        "statusReason": job.get("statusReason"),
        "attempts": [(a.get("statusReason"), e) for a, e in zip(attempts, exits, strict=True)],
        "containers": {n: c.get("exitCode") for n, c in containers_of(job).items()},
    }


@pytest.mark.parametrize(
    ("crash", "timeout"), [(False, False), (True, False), (True, True)], ids=["live", "sigkill", "sigkill-timeout"]
)
def test_a_stop_in_flight_when_the_server_dies_ends_as_it_would_have_live(
    server: Server, tmp_path: Path, docker_engine: Any, crash: bool, timeout: bool
) -> None:
    # GIVEN a task being stopped (its essential container still finishing), WHEN the server is SIGKILLed (or not),
    # the container ends by itself (exit 0) and the server starts again
    job = _run(server, docker_engine, tmp_path / "shared", crash=crash, timeout=timeout, let_end=True)
    # THEN the stop's reason is the job's and the attempt's, on the one attempt, with the containers' real exits
    reason = TIMEOUT_REASON if timeout else REASON
    assert _facts(job) == {
        "status": "FAILED",
        "statusReason": reason,
        "attempts": [(reason, {"main": 0, "side": 143})],
        "containers": {"main": 0, "side": 143},
    }


def test_a_stop_still_in_flight_at_the_restart_is_finished_there(
    server: Server, tmp_path: Path, docker_engine: Any
) -> None:
    # GIVEN a task being stopped, WHEN the server is SIGKILLed and starts again while main is still finishing
    job = _run(server, docker_engine, tmp_path / "shared", crash=True, timeout=False, let_end=False)
    # THEN the stop still ends it (main killed at the end of its grace period: 137) with the stop's reason
    assert _facts(job) == {
        "status": "FAILED",
        "statusReason": REASON,
        "attempts": [(REASON, {"main": 137, "side": 143})],
        "containers": {"main": 137, "side": 143},
    }


@pytest.mark.parametrize("let_end", [True, False], ids=["ended-meanwhile", "still-stopping"])
def test_a_single_containers_stop_in_flight_ends_as_it_would_have_live(
    server: Server, tmp_path: Path, docker_engine: Any, let_end: bool
) -> None:
    # GIVEN a single-container job being stopped (its container still finishing), WHEN the server is SIGKILLed and
    # starts again once the container ended by itself (exit 0), or while it is still stopping (killed at the end of
    # its grace period: 137)
    shared = tmp_path / "shared"
    server.start()
    session = boto3.session.Session(aws_access_key_id="k", aws_secret_access_key="s", region_name="us-east-1")
    batch = session.client("batch", endpoint_url=server.endpoint, config=CLIENT)
    trap = "touch /shared/stopping; until [ -e /shared/go ]; do sleep 0.05; done; exit 0"
    jd = batch.register_job_definition(
        jobDefinitionName=unique("dstop"),
        type="container",
        containerProperties={
            "image": TEST_IMAGE,
            "command": ["sh", "-c", f"trap '{trap}' TERM; touch /shared/ready; sleep 120 & wait"],
            "resourceRequirements": [{"type": "VCPU", "value": "1"}, {"type": "MEMORY", "value": "128"}],
            "volumes": [{"name": "shared", "host": {"sourcePath": str(shared)}}],
            "mountPoints": [{"sourceVolume": "shared", "containerPath": "/shared"}],
        },
    )["jobDefinitionArn"]
    queue, _ = setup_queue(batch, 2, name=unique("ec2"), platform="EC2")
    job_id = batch.submit_job(jobName="dstop", jobQueue=queue, jobDefinition=jd, retryStrategy=RETRY_LOST)["jobId"]
    wait_until((shared / "ready").exists, "the container to run", 60)
    batch.terminate_job(jobId=job_id, reason=REASON)
    wait_until((shared / "stopping").exists, "the container to be stopping", timeout=60)
    server.kill()
    if let_end:
        (shared / "go").touch()
        wait_until(lambda: _ended(docker_engine, job_id, None), "its end while the server is down")
    server.start()
    job = wait_terminal(batch, [job_id], timeout=90)[job_id]
    (shared / "go").touch()
    assert "Traceback" not in server.output(), server.output()
    # THEN the stop's reason is the job's and the attempt's, with the container's real exit code
    code = 0 if let_end else 137
    facts = (
        job["status"],
        job.get("statusReason"),
        [(a.get("statusReason"), a["container"].get("exitCode")) for a in job["attempts"]],
    )
    assert facts == ("FAILED", REASON, [(REASON, code)])
