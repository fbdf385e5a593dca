"""A multi-container task on the process executor being stopped (TerminateJob, an attempt timeout) when the server is
SIGKILLed (docs/adr/0028): after the restart the job must end as it would have without the crash, with the stop's
reason as the attempt's and the job's status reason, never "Essential container in task exited".

The essential container traps SIGTERM and ends only once the test lets it (a go file): the stop is in flight when
the server dies. Each scenario runs twice, live (no crash) and with the SIGKILL, and both runs must agree. Every wait
is for a state (a file, a journal line, a job status), never for a time."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

from chalicelib.compute.local_processes import processes_of as _processes_of
from chalicelib.domain.jobs import TIMEOUT_REASON
from tests.e2e.conftest import setup_queue, unique, wait_terminal, wait_until
from tests.e2e.test_kill_restart import CLIENT, Server, serve
from tests.e2e.test_multi_container import container, register_task
from tests.multi_container_support import containers_of

pytestmark = pytest.mark.e2e

REASON = "stopped by the test"
RETRY_LOST = {"attempts": 2, "evaluateOnExit": [{"onStatusReason": "Host EC2*", "action": "RETRY"}]}


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    # short attempt timeouts are valid (AWS's minimum is 60)
    yield from serve(tmp_path, "--limit", "min-timeout-seconds=1")


def batch_of(server: Server) -> Any:
    session = boto3.session.Session(aws_access_key_id="k", aws_secret_access_key="s", region_name="us-east-1")
    return session.client("batch", endpoint_url=server.endpoint, config=CLIENT)


def _run(server: Server, tmp_path: Path, *, crash: bool, timeout: bool, let_end: bool = True) -> dict[str, Any]:
    """main (essential) traps SIGTERM: it marks `stopping`, then waits for the go file and exits 0 (it writes
    nothing once stopped: after a crash its output pipe is gone); side (non-essential) sleeps until stopped. Once
    both run the task is terminated (or its 5-second attempt timeout stops it: long enough for both to start);
    once main is stopping the server is SIGKILLed (`crash`), the go file is created (`let_end`: else main is still
    stopping at the restart), and the server started again. The job once terminal."""
    server.start()
    batch = batch_of(server)
    ready, stopping, go = tmp_path / "ready", tmp_path / "stopping", tmp_path / "go"
    trap = f"touch {stopping}; until [ -e {go} ]; do sleep 0.05; done; exit 0"
    main = container("main", f"trap '{trap}' TERM; touch {ready}; sleep 120 & wait", stopTimeout=120)
    side = container("side", "sleep 120", essential=False)
    jd = register_task(batch, main, side)
    queue, _ = setup_queue(batch, 4, name=unique("ce"))
    extra: dict[str, Any] = {"timeout": {"attemptDurationSeconds": 5}} if timeout else {}
    job_id = batch.submit_job(jobName="mcs", jobQueue=queue, jobDefinition=jd, retryStrategy=RETRY_LOST, **extra)[
        "jobId"
    ]
    journal = server.state / "work" / "journal"
    wait_until(lambda: ready.exists() and f"pid {job_id}#1/side " in journal.read_text(), "both containers to run")
    if not timeout:
        batch.terminate_job(jobId=job_id, reason=REASON)
    wait_until(stopping.exists, "main to be stopping", timeout=60)
    # (side is signalled after main: its end recorded, the stop has reached every member)
    wait_until(lambda: f"exit {job_id}#1/side " in journal.read_text(), "side to end on the stop")
    return end_the_stop(server, batch, job_id, go, crash=crash, let_end=let_end, exit_line=f"exit {job_id}#1/main ")


def end_the_stop(
    server: Server, batch: Any, job_id: str, go: Path, *, crash: bool, let_end: bool, exit_line: str
) -> dict[str, Any]:
    """With a stop in flight: SIGKILL the server (`crash`), let the stopping command end (`let_end`: the go file;
    else it is still stopping at the restart) and, once its exit is journaled (`exit_line`), start the server again.
    The job once terminal; no process of it is left."""
    journal = server.state / "work" / "journal"
    if crash:
        server.kill()
    if let_end:
        go.touch()
    if crash:
        if let_end:
            wait_until(lambda: exit_line in journal.read_text(), "the exit while the server is down")
        server.start()
    job: dict[str, Any] = wait_terminal(batch, [job_id], timeout=60)[job_id]
    go.touch()
    assert _processes_of(job_id, 1) == []
    assert "Traceback" not in server.output(), server.output()
    return job


def _attempt_exits(attempt: dict[str, Any]) -> dict[str, Any]:
    tasks = attempt.get("taskProperties") or [{}]
    return {c["name"]: c.get("exitCode") for c in tasks[0].get("containers") or []}


def _facts(job: dict[str, Any]) -> dict[str, Any]:
    attempts = job["attempts"]
    return {
        "status": job["status"],
        "statusReason": job.get("statusReason"),
        "attempts": [(a.get("statusReason"), _attempt_exits(a)) for a in attempts],
        "containers": {n: c.get("exitCode") for n, c in containers_of(job).items()},
    }


@pytest.mark.parametrize("timeout", [False, True], ids=["terminate", "timeout"])
@pytest.mark.parametrize("crash", [False, True], ids=["live", "sigkill"])
def test_a_stop_in_flight_when_the_server_dies_ends_as_it_would_have_live(
    server: Server, tmp_path: Path, crash: bool, timeout: bool
) -> None:
    # GIVEN a task being stopped (its essential container still finishing), WHEN the server is SIGKILLed (or not),
    # the container ends by itself (exit 0) and the server starts again
    facts = _facts(_run(server, tmp_path, crash=crash, timeout=timeout))
    # THEN the stop's reason is the job's and the attempt's, on the one attempt, with the containers' real exits
    reason = TIMEOUT_REASON if timeout else REASON
    assert facts == {
        "status": "FAILED",
        "statusReason": reason,
        "attempts": [(reason, {"main": 0, "side": 143})],
        "containers": {"main": 0, "side": 143},
    }


@pytest.mark.parametrize("timeout", [False, True], ids=["terminate", "timeout"])
def test_a_stop_still_in_flight_at_the_restart_is_finished_there(server: Server, tmp_path: Path, timeout: bool) -> None:
    # GIVEN a task being stopped, WHEN the server is SIGKILLed and starts again while the essential container is
    # still finishing
    facts = _facts(_run(server, tmp_path, crash=True, timeout=timeout, let_end=False))
    # THEN the restart finishes the stop (SIGKILL, as the grace period's end would have): the stop's reason is the
    # job's and the attempt's, the attempt is not a lost host (nor retried)
    reason = TIMEOUT_REASON if timeout else REASON
    assert facts == {
        "status": "FAILED",
        "statusReason": reason,
        "attempts": [(reason, {"main": 137, "side": 143})],
        "containers": {"main": 137, "side": 143},
    }
