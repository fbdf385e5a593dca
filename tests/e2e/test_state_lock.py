"""One `batchplane up` per state directory (runtime/state_lock.py): a second server on a directory in use exits 2
and says who holds it, without touching the state; the lock goes with its server however it ends, and a job that
outlives its server does not hold it."""

from __future__ import annotations

import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from chalicelib.runtime.state_lock import StateDirInUse, StateLock
from tests.e2e.conftest import (
    ClientFactory,
    CliServer,
    register,
    setup_queue,
    sh,
    submit,
    wait_status,
    wait_terminal,
)

ROOT = Path(__file__).resolve().parents[2]


def second_server(state: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "app", "up", "--port", "0", "--state-dir", str(state), "--executor", "process"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_a_second_server_on_a_state_directory_in_use_is_refused_and_the_lock_goes_with_the_first(
    cli_server: Callable[[Path], CliServer], clients: ClientFactory, state_dir: Path
) -> None:
    # GIVEN a server on a state directory, running a job that outlives it
    first = cli_server(state_dir)
    batch = clients("batch", first.endpoint)
    queue, _ = setup_queue(batch)
    job_id = submit(batch, queue, register(batch, "long", sh("sleep 600")))
    wait_status(batch, [job_id], "RUNNING")
    # WHEN a second server is started on the same directory
    refused = second_server(state_dir)
    # THEN it exits 2, naming the directory and the first server's pid, and the first one serves on, its job intact
    assert refused.returncode == 2, refused.stdout + refused.stderr
    assert f"the state directory {state_dir} is in use by process {first.proc.pid}" in refused.stderr
    assert batch.describe_jobs(jobs=[job_id])["jobs"][0]["status"] == "RUNNING"
    # WHEN the first server is SIGKILLed (its job's process runs on)
    first.proc.send_signal(signal.SIGKILL)
    first.proc.wait(timeout=10)
    # THEN a server starts on the directory at once, and recovers the job (a lost host, as after any crash)
    again = cli_server(state_dir)
    done = wait_terminal(clients("batch", again.endpoint), [job_id], timeout=60)[job_id]
    assert done["status"] == "FAILED" and done["statusReason"].startswith("Host EC2"), done.get("statusReason")


def test_the_lock_is_one_holder_at_a_time_within_a_process_too(tmp_path: Path) -> None:
    held = StateLock.acquire(tmp_path)
    try:
        StateLock.acquire(tmp_path)
    except StateDirInUse as e:
        assert "in use by process" in str(e)
    else:
        raise AssertionError("a second holder was let in")
    held.release()
    held.release()  # again: nothing
    StateLock.acquire(tmp_path).release()
