"""A stop (TerminateJob, the attempt's timeout) of a single-container attempt on the process executor is journaled
before its command is signalled, and a recovery after a crash settles a stop that was in flight as the stop's end,
as the live launcher would have reported it: the stop's reason (a timeout flagged), the exit the command recorded
after the stop, or 137 when the recovery kills it. An exit recorded before the stop decides as without a stop.
(The multi-container twin: test_local_group_stop.py.)"""

from __future__ import annotations

import json
import signal
import uuid

import pytest

from chalicelib.compute.local import LocalLauncher
from chalicelib.compute.local_journal import Journal
from chalicelib.compute.logs import FileLogStore
from chalicelib.domain.jobs import TIMEOUT_REASON
from chalicelib.domain.lifecycle import TaskStarted, TaskStopped
from tests.functional.test_local_launcher import Local, local, sleeper, wait_until

__all__ = ["local"]  # the fixture

REASON = 'stopped: "by the test"\nsecond line, é'  # any text: quotes, a newline, not ASCII


def _journal(local: Local, job_id: str, *lines: str) -> None:
    """What an earlier run of the server (and the attempt's supervisor) left about attempt 1 of `job_id`."""
    (local.root / job_id / "1").mkdir(parents=True)
    with (local.root / "journal").open("a") as f:
        f.write("".join(f"{line}\n" for line in lines))


@pytest.mark.parametrize("reason", [REASON, TIMEOUT_REASON], ids=["terminate", "timeout"])
def test_a_stop_is_journaled_once_before_the_command_is_signalled(local: Local, reason: str) -> None:
    spec = local.spec(command=["sleep", "600"])
    local.launcher.launch(spec)
    wait_until(lambda: "pid job-1#1 " in (local.root / "journal").read_text(), "the command to run")
    local.launcher.stop("job-1", 1, reason)
    local.launcher.stop("job-1", 1, "asked again")  # (the lifecycle asks again: only the first stop counts)
    events = local.wait_events(2)
    ecs = {"task_arn": spec.local_task_arn, "container_instance_arn": spec.local_container_instance_arn}
    stopped = TaskStopped(1, 143, status_reason=reason, timed_out=reason == TIMEOUT_REASON, **ecs)
    assert events[1] == ("job-1", stopped)  # the live report a recovery matches
    lines = (local.root / "journal").read_text().splitlines()
    assert [line for line in lines if line.startswith("stop ")] == [f"stop job-1#1 {json.dumps(reason)}"]
    assert lines.index(f"stop job-1#1 {json.dumps(reason)}") < lines.index("exit job-1#1 143")
    read = Journal(local.root / "journal")
    read.want("job-1")  # (it keeps only the lines of the jobs asked about)
    read.refresh()
    read.close()
    assert read.stops == {"job-1#1": (reason, 0)}
    # AND a restart whose last server's reports were lost reports the same, ARNs and start included
    recovered: list[tuple[str, TaskStarted | TaskStopped]] = []
    restarted = LocalLauncher(
        local.root, FileLogStore(local.root.parent / "logs"), lambda j, e: recovered.append((j, e))
    )
    try:
        assert restarted.recover("job-1", 1) is True
    finally:
        restarted.shutdown()
    assert recovered == events


@pytest.mark.parametrize("reason", [REASON, TIMEOUT_REASON], ids=["terminate", "timeout"])
def test_recover_finishes_a_stop_in_flight_with_a_sigkill(local: Local, reason: str) -> None:
    # GIVEN an attempt being stopped when the server died, its command still finishing (unwatched)
    job_id = f"stop-{uuid.uuid4()}"
    survivor = sleeper(AWS_BATCH_JOB_ID=job_id, AWS_BATCH_JOB_ATTEMPT="1")
    try:
        _journal(local, job_id, f"pid {job_id}#1 {survivor.pid}", f"stop {job_id}#1 {json.dumps(reason)}")
        # WHEN it is recovered
        assert local.launcher.recover(job_id, 1) is True
        # THEN it is killed, as the end of its grace period would have, and the attempt's end is the stop's
        assert survivor.wait(timeout=5) == -signal.SIGKILL
        stopped = TaskStopped(1, 137, status_reason=reason, timed_out=reason == TIMEOUT_REASON)
        assert local.events == [(job_id, stopped)]
    finally:
        survivor.kill()
        survivor.wait()


@pytest.mark.parametrize("code", [0, 143])
def test_recover_settles_a_stop_whose_command_ended_meanwhile(local: Local, code: int) -> None:
    # GIVEN a stop in flight when the server died, after which the command ended (an exit 0 too: no success)
    job_id = f"stop-{uuid.uuid4()}"
    stop = f"stop {job_id}#1 {json.dumps(REASON)}"
    _journal(local, job_id, f"pid {job_id}#1 999999999", stop, f"exit {job_id}#1 {code}")
    assert local.launcher.recover(job_id, 1) is True
    assert local.events == [(job_id, TaskStopped(1, code, status_reason=REASON))]


def test_recover_a_stop_after_the_command_ended_leaves_the_exit_to_decide(local: Local) -> None:
    # GIVEN commands that ended before the stop came (the stop was too late): as without a stop, an exit 0 is a
    # success, any other end a lost host (the caller reports it: nothing here)
    ok, failed = f"stop-{uuid.uuid4()}", f"stop-{uuid.uuid4()}"
    _journal(local, ok, f"pid {ok}#1 999999999", f"exit {ok}#1 0", f"stop {ok}#1 {json.dumps(REASON)}")
    _journal(local, failed, f"pid {failed}#1 999999998", f"exit {failed}#1 3", f"stop {failed}#1 {json.dumps(REASON)}")
    assert local.launcher.recover(ok, 1) is True
    assert local.launcher.recover(failed, 1) is True
    assert local.events == [(ok, TaskStopped(1, 0))]


def test_recover_a_stop_of_a_command_that_never_ran_is_a_lost_host(local: Local) -> None:
    # GIVEN a stop journaled before the command was spawned, then a crash: no pid, no process
    job_id = f"stop-{uuid.uuid4()}"
    _journal(local, job_id, f"stop {job_id}#1 {json.dumps(REASON)}")
    assert local.launcher.recover(job_id, 1) is True
    assert local.events == []  # the caller's lost-host report ends it
