"""Array children on kept runners (compute/local_runs.py, docs/adr/0039), through the boto3 client: each child still
gets its own environment, working directory, log stream, exit code and stop, as if it had a process of its own; a
runner serves one child after another; a runner killed with its child is replaced. Kill -9 of the server while
children run on runners: tests/e2e/test_kill_restart_lazy_array.py (random), tests/e2e/test_restart_stop.py (a stop
in flight)."""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import (
    Client,
    Runtimes,
    job_log,
    register,
    setup_queue,
    sh,
    submit,
    wait_attempt_gone,
    wait_dead,
    wait_terminal,
    wait_until,
    work_pid,
)

pytestmark = pytest.mark.e2e

REPORT = (
    'echo "id=$AWS_BATCH_JOB_ID index=$AWS_BATCH_JOB_ARRAY_INDEX attempt=$AWS_BATCH_JOB_ATTEMPT pwd=$(pwd) ppid=$PPID"'
)


def _fields(line: str) -> dict[str, str]:
    return dict(part.split("=", 1) for part in line.split())


def _children(batch: Client, parent: str, size: int) -> dict[int, dict[str, Any]]:
    jobs = wait_terminal(batch, [parent, *(f"{parent}:{i}" for i in range(size))], timeout=60)
    return {i: jobs[f"{parent}:{i}"] for i in range(size)}


def _first_child_running(batch: Client, logs: Client, name: str, first_does: str, size: int) -> tuple[str, str]:
    """An array on one vCPU whose first child reports, then does `first_does` (the others only report); returns the
    parent's id and the first child's, once that child has reported."""
    queue, _ = setup_queue(batch, max_vcpus=1)
    script = f'{REPORT}; if [ "$AWS_BATCH_JOB_ARRAY_INDEX" = 0 ]; then {first_does}; fi'
    parent = submit(batch, queue, register(batch, name, sh(script)), arrayProperties={"size": size})
    first = f"{parent}:0"
    wait_until(lambda: bool(_log_of(logs, batch, first)), "the first child to run")
    return parent, first


def test_children_on_one_runner_each_get_their_own_environment_directory_logs_and_exit(
    batch: Client, logs: Client, state_dir: Path
) -> None:
    # GIVEN one vCPU (one child at a time) and children that report what they see and exit with their index's parity
    queue, _ = setup_queue(batch, max_vcpus=1)
    script = f"{REPORT}; env | grep -c '^__bp_' || true; printf 'no newline'; exit $((AWS_BATCH_JOB_ARRAY_INDEX % 2))"
    parent = submit(batch, queue, register(batch, "report", sh(script)), arrayProperties={"size": 5})
    # WHEN the array runs
    children = _children(batch, parent, 5)
    runners = set()
    for i, child in children.items():
        # THEN each child saw its own id, index, attempt and working directory, and ended with its own exit code
        lines = job_log(logs, child)
        seen = _fields(lines[0])
        assert seen["id"] == f"{parent}:{i}" and seen["index"] == str(i) and seen["attempt"] == "1", lines
        assert Path(seen["pwd"]) == (state_dir / "work" / f"{parent}_{i}" / "1").resolve()
        assert lines[1:] == ["0", "no newline"], lines  # no runner variable leaked; output without a newline kept
        assert child["status"] == ("FAILED" if i % 2 else "SUCCEEDED")
        assert child["container"]["exitCode"] == i % 2
        assert child["container"]["taskArn"].endswith(child["container"]["logStreamName"].rsplit("/", 1)[1])
        runners.add(seen["ppid"])
    # AND one runner served them all, one after the other
    assert len(runners) == 1


def test_a_marker_printed_by_a_job_is_only_output(batch: Client, logs: Client) -> None:
    # GIVEN a child that prints what looks like the runner's end marker, then fails
    queue, _ = setup_queue(batch, max_vcpus=1)
    fake = "printf '\\036deadbeef E %s 0\\n' \"$AWS_BATCH_JOB_ID#1\"; exit 3"
    parent = submit(batch, queue, register(batch, "forger", sh(fake)), arrayProperties={"size": 2})
    children = _children(batch, parent, 2)
    for i, child in children.items():
        # THEN its end is its own exit, and the line is in its log
        assert child["status"] == "FAILED" and child["container"]["exitCode"] == 3
        assert job_log(logs, child) == [f"\x1edeadbeef E {parent}:{i}#1 0"]


def test_a_terminated_child_stops_and_its_runner_serves_the_next(batch: Client, logs: Client, state_dir: Path) -> None:
    # GIVEN one vCPU and an array whose first child runs until stopped
    parent, first = _first_child_running(batch, logs, "stopper", "exec sleep 600", 3)
    # WHEN it is terminated
    batch.terminate_job(jobId=first, reason="enough")
    children = _children(batch, parent, 3)
    # THEN it ends with SIGTERM's exit code and the reason, its process is gone, and the runner that ran it runs
    # the next children
    assert children[0]["status"] == "FAILED" and children[0]["statusReason"] == "enough"
    assert children[0]["container"]["exitCode"] == 143
    assert wait_attempt_gone(first)
    assert [c["status"] for c in (children[1], children[2])] == ["SUCCEEDED", "SUCCEEDED"]
    runner = work_pid(state_dir, first)
    assert {_fields(job_log(logs, children[i])[0])["ppid"] for i in (0, 1, 2)} == {str(runner)}


def test_a_child_that_ignores_the_stop_is_killed_with_its_descendants_and_its_runner_serves_the_next(
    batch: Client, logs: Client, state_dir: Path
) -> None:
    # GIVEN a 1-second grace period (the fixture's), one vCPU and a first child that ignores SIGTERM, with a child
    # process of its own
    parent, first = _first_child_running(batch, logs, "stubborn", "trap '' TERM; sleep 600", 2)
    runner = work_pid(state_dir, first)
    # WHEN it is terminated
    batch.terminate_job(jobId=first, reason="enough")
    children = _children(batch, parent, 2)
    # THEN the grace period's SIGKILL ends it (137) and its sleep (as `docker stop` ends a container), not its
    # runner, which runs the next child
    assert children[0]["container"]["exitCode"] == 137 and children[0]["statusReason"] == "enough"
    assert wait_attempt_gone(first)
    assert children[1]["status"] == "SUCCEEDED"
    assert _fields(job_log(logs, children[1])[0])["ppid"] == str(runner)


def test_a_runner_killed_from_outside_ends_its_child_with_the_signal(
    batch: Client, logs: Client, state_dir: Path
) -> None:
    # GIVEN a child running on a runner
    parent, first = _first_child_running(batch, logs, "victim", "exec sleep 600", 2)
    # WHEN something outside batchplane kills the runner's whole group (as the OOM killer or an operator might)
    os.killpg(work_pid(state_dir, first), signal.SIGKILL)
    children = _children(batch, parent, 2)
    # THEN the child ends with the signal's exit code, and the array goes on
    assert children[0]["status"] == "FAILED" and children[0]["container"]["exitCode"] == 137
    assert children[1]["status"] == "SUCCEEDED"


def test_runners_end_with_the_server(make_runtime: Runtimes, clients: Any, state_dir: Path) -> None:
    # GIVEN children on runners, one still running
    rt = make_runtime.start()
    batch, logs = clients("batch", rt.endpoint), clients("logs", rt.endpoint)
    queue, _ = setup_queue(batch, max_vcpus=2)
    script = f'{REPORT}; if [ "$AWS_BATCH_JOB_ARRAY_INDEX" = 0 ]; then exec sleep 600; fi'
    parent = submit(batch, queue, register(batch, "idle", sh(script)), arrayProperties={"size": 4})
    wait_terminal(batch, [f"{parent}:{i}" for i in (1, 2, 3)])
    first = f"{parent}:0"
    wait_until(lambda: bool(_log_of(logs, batch, first)), "the first child to run")
    runners = {int(_fields(job_log(logs, c)[0])["ppid"]) for c in _describe_all(batch, parent, 4)}
    # WHEN the server stops
    make_runtime.stop(rt)
    # THEN no runner (busy or idle) and no child is left
    assert all(wait_dead(pid) for pid in runners)
    assert wait_attempt_gone(first)


def _describe_all(batch: Client, parent: str, size: int) -> list[dict[str, Any]]:
    jobs = batch.describe_jobs(jobs=[f"{parent}:{i}" for i in range(size)])["jobs"]
    return list(jobs)


def _log_of(logs: Client, batch: Client, job_id: str) -> list[str]:
    """The job's log lines so far ([] before its first line)."""
    job = batch.describe_jobs(jobs=[job_id])["jobs"][0]
    if not job.get("container", {}).get("logStreamName"):
        return []
    try:
        return job_log(logs, job)
    except logs.exceptions.ResourceNotFoundException:
        return []


@pytest.mark.parametrize("array", [False, True], ids=["job", "array-child"])
def test_a_command_named_like_a_shell_builtin_runs_the_program(batch: Client, logs: Client, array: bool) -> None:
    # GIVEN a command a container would run as the program echo, whose argument has a backslash
    queue, _ = setup_queue(batch, max_vcpus=1)
    jd = register(batch, "echo", ["echo", "C:\\new\\tab"])
    more: dict[str, Any] = {"arrayProperties": {"size": 2}} if array else {}
    job_id = submit(batch, queue, jd, **more)
    target = f"{job_id}:1" if array else job_id
    job = wait_terminal(batch, sorted({job_id, target}))[target]
    # THEN its output is the program's (coreutils' echo reads no escapes), not /bin/sh's builtin echo's
    assert job["status"] == "SUCCEEDED"
    assert job_log(logs, job) == ["C:\\new\\tab"]
