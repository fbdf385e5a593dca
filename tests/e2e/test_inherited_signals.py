"""A server started with signals ignored (`nohup batchplane up &`) does not pass them on to its jobs: a job it starts
gets SIGHUP, SIGINT and SIGQUIT at their defaults, so a `kill -INT` or `kill -HUP` from the job's own tooling still
ends it (compute/spawn.py `stop_passing_ignored_signals_to_jobs`)."""

from __future__ import annotations

import signal
from collections.abc import Callable
from pathlib import Path

from tests.e2e.conftest import ClientFactory, CliServer, job_log, register, setup_queue, submit, wait_terminal

INHERITED = (signal.SIGHUP, signal.SIGINT, signal.SIGQUIT)


def ignored_by_the_job(status_line: str) -> set[signal.Signals]:
    """The signals a `SigIgn:` line of /proc/<pid>/status says are ignored."""
    mask = int(status_line.split()[1], 16)
    return {sig for sig in signal.Signals if sig > 0 and mask & (1 << (sig - 1))}


def test_a_job_of_a_server_started_with_signals_ignored_gets_them_at_their_defaults(
    cli_server: Callable[..., CliServer], clients: ClientFactory, state_dir: Path
) -> None:
    # GIVEN a server started as `nohup batchplane up &` from a script starts it: SIGHUP, SIGINT and SIGQUIT ignored
    server = cli_server(state_dir, ignoring=INHERITED)
    batch = clients("batch", server.endpoint)
    logs = clients("logs", server.endpoint)
    queue, _ = setup_queue(batch)
    # WHEN a job reports which signals it ignores
    jd = register(batch, "sigign", ["grep", "SigIgn", "/proc/self/status"])
    job_id = submit(batch, queue, jd, "sigign")
    job = wait_terminal(batch, [job_id])[job_id]
    # THEN it ignores none of them
    assert job["status"] == "SUCCEEDED", job.get("statusReason")
    (line,) = [line for line in job_log(logs, job) if line.startswith("SigIgn:")]
    assert ignored_by_the_job(line).isdisjoint(INHERITED), line
