"""A single-container job on the process executor being stopped (TerminateJob, an attempt timeout) when the server is
SIGKILLed: after the restart the attempt must end as it would have without the crash, with the stop's reason as its
statusReason and the command's real exit code (137 when the restart has to kill it, as the grace period's SIGKILL
would have), never as a lost host ("Host EC2 (instance local) terminated.", no exit code).

The command traps SIGTERM and ends only once the test lets it (a go file): the stop is in flight when the server
dies. Each scenario runs live (no crash) and with the SIGKILL, and both runs must agree. Every wait is for a state (a
file, a journal line, a job status), never for a time. The multi-container twin is
tests/e2e/test_restart_multi_container_stop.py."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from chalicelib.domain.jobs import TIMEOUT_REASON
from tests.e2e.conftest import register, setup_queue, sh, unique, wait_until
from tests.e2e.test_kill_restart import Server, serve
from tests.e2e.test_restart_multi_container_stop import REASON, RETRY_LOST, batch_of, end_the_stop

pytestmark = pytest.mark.e2e


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    # short attempt timeouts are valid (AWS's minimum is 60)
    yield from serve(tmp_path, "--limit", "min-timeout-seconds=1")


def _run(
    server: Server, tmp_path: Path, *, crash: bool, timeout: bool, code: int | None, array: bool = False
) -> dict[str, Any]:
    """The job's command traps SIGTERM: it marks `stopping`, waits for the go file and exits `code` (it writes
    nothing once stopped: after a crash its output pipe is gone). Once it runs it is terminated (or its 3-second
    attempt timeout stops it); once it is stopping the server is SIGKILLed (`crash`), the go file is created (unless
    `code` is None: it is still stopping at the restart) and the server started again. The job once terminal.

    `array`: the job is the first child of an array of 2 (the other exits at once), which runs on a runner
    (compute/local_runs.py) rather than under a supervisor of its own."""
    server.start()
    batch = batch_of(server)
    ready, stopping, go = tmp_path / "ready", tmp_path / "stopping", tmp_path / "go"
    trap = f"touch {stopping}; until [ -e {go} ]; do sleep 0.05; done; exit {code or 0}"
    extra: dict[str, Any] = {"timeout": {"attemptDurationSeconds": 3}} if timeout else {}
    others = 'if [ "${AWS_BATCH_JOB_ARRAY_INDEX:-0}" != 0 ]; then exit 0; fi; '
    jd = register(batch, unique("stop"), sh(f"{others}trap '{trap}' TERM; touch {ready}; sleep 120 & wait"), **extra)
    queue, _ = setup_queue(batch, 2, name=unique("ce"))
    more: dict[str, Any] = {"arrayProperties": {"size": 2}} if array else {}
    submitted = batch.submit_job(jobName="stop", jobQueue=queue, jobDefinition=jd, retryStrategy=RETRY_LOST, **more)
    job_id = f"{submitted['jobId']}:0" if array else submitted["jobId"]
    journal = server.state / "work" / "journal"
    wait_until(lambda: ready.exists() and f"pid {job_id}#1 " in journal.read_text(), "the command to run")
    if not timeout:
        batch.terminate_job(jobId=job_id, reason=REASON)
    wait_until(stopping.exists, "the command to be stopping", timeout=60)
    return end_the_stop(server, batch, job_id, go, crash=crash, let_end=code is not None, exit_line=f"exit {job_id}#1 ")


@pytest.mark.parametrize("timeout", [False, True], ids=["terminate", "timeout"])
@pytest.mark.parametrize("crash", [False, True], ids=["live", "sigkill"])
def test_an_array_child_stopped_when_the_server_dies_ends_as_it_would_have_live(
    server: Server, tmp_path: Path, crash: bool, timeout: bool
) -> None:
    # GIVEN an array child being stopped on its runner, WHEN the server is SIGKILLed (or not) and starts again
    facts = _facts(_run(server, tmp_path, crash=crash, timeout=timeout, code=143, array=True))
    # THEN it ends as a job of its own does (the runner journals as the supervisor does)
    reason = TIMEOUT_REASON if timeout else REASON
    assert facts == {"status": "FAILED", "statusReason": reason, "attempts": [(reason, 143)], "exitCode": 143}


def _facts(job: dict[str, Any]) -> dict[str, Any]:
    return {
        "status": job["status"],
        "statusReason": job.get("statusReason"),
        "attempts": [(a.get("statusReason"), a["container"].get("exitCode")) for a in job["attempts"]],
        "exitCode": job["container"].get("exitCode"),
    }


@pytest.mark.parametrize("code", [0, 143], ids=["exit0", "exit143"])
@pytest.mark.parametrize("timeout", [False, True], ids=["terminate", "timeout"])
@pytest.mark.parametrize("crash", [False, True], ids=["live", "sigkill"])
def test_a_stop_in_flight_when_the_server_dies_ends_as_it_would_have_live(
    server: Server, tmp_path: Path, crash: bool, timeout: bool, code: int
) -> None:
    # GIVEN a job being stopped (its command still finishing), WHEN the server is SIGKILLed (or not), the command
    # ends by itself and the server starts again
    facts = _facts(_run(server, tmp_path, crash=crash, timeout=timeout, code=code))
    # THEN the stop's reason is the job's and the attempt's, on the one attempt, with the command's real exit code
    # (an exit 0 after a stop is no success: the job was stopped)
    reason = TIMEOUT_REASON if timeout else REASON
    assert facts == {"status": "FAILED", "statusReason": reason, "attempts": [(reason, code)], "exitCode": code}


@pytest.mark.parametrize("timeout", [False, True], ids=["terminate", "timeout"])
def test_a_stop_still_in_flight_at_the_restart_is_finished_there(server: Server, tmp_path: Path, timeout: bool) -> None:
    # GIVEN a job being stopped, WHEN the server is SIGKILLed and starts again while its command is still finishing
    facts = _facts(_run(server, tmp_path, crash=True, timeout=timeout, code=None))
    # THEN the restart finishes the stop (SIGKILL, as the grace period's end would have): the stop's reason is the
    # job's and the attempt's, the attempt is not a lost host (nor retried)
    reason = TIMEOUT_REASON if timeout else REASON
    assert facts == {"status": "FAILED", "statusReason": reason, "attempts": [(reason, 137)], "exitCode": 137}
