"""A stop (TerminateJob, the attempt's timeout) of a multi-container attempt on the process executor is journaled
before its members are signalled, and a recovery after a crash settles a stop that was in flight as the stop's end,
as the live coordinator would have (docs/adr/0028): the stop's reason is the task's, never "Essential container in
task exited" or a lost host; an essential member that ended the task before the stop came still ends it."""

from __future__ import annotations

import json
import signal
import uuid
from pathlib import Path
from typing import Any

import pytest

from chalicelib.compute import task_group
from chalicelib.compute.local_journal import Journal
from chalicelib.domain.jobs import TIMEOUT_REASON
from chalicelib.domain.lifecycle import TaskStarted, TaskStopped
from tests.functional.test_local_launcher import Local, journal_task, local, sleeper, task, wait_until

__all__ = ["local"]  # the fixture

REASON = 'stopped: "by the test"\nsecond line, é'  # any text: quotes, a newline, not ASCII


def _ecs(job_id: str) -> dict[str, Any]:
    spec = task(job_id, ("a", True, ["x"]))
    return {"task_arn": spec.local_task_arn, "container_instance_arn": spec.local_container_instance_arn}


def test_a_stop_is_journaled_once_before_the_members_are_signalled(local: Local) -> None:
    spec = task("job-1", ("a", True, ["sleep", "600"]), ("b", False, ["sleep", "600"]))
    local.launcher.launch(spec)
    journal = local.root / "journal"
    wait_until(lambda: "pid job-1#1/b " in journal.read_text(), "both members to run")
    local.launcher.stop("job-1", 1, REASON)
    local.launcher.stop("job-1", 1, "asked again")  # (the lifecycle asks again: only the first stop counts)
    wait_until(lambda: any(isinstance(e, TaskStopped) for _, e in local.events), "the stopped task to end")
    lines = journal.read_text().splitlines()
    stops = [line for line in lines if line.startswith("stop ")]
    assert stops == [f"stop job-1#1 {json.dumps(REASON)}"]
    assert lines.index(stops[0]) < min(i for i, line in enumerate(lines) if line.startswith("exit "))
    # AND the journal reads it back: the reason, and no exit before it
    read = Journal(journal)
    read.want("job-1")  # (it keeps only the lines of the jobs asked about)
    read.refresh()
    read.close()
    assert read.stops == {"job-1#1": (REASON, 0)}


@pytest.mark.parametrize("reason", [REASON, TIMEOUT_REASON], ids=["terminate", "timeout"])
def test_recover_settles_a_stop_in_flight_as_the_stops_end(local: Local, reason: str) -> None:
    # GIVEN a task being stopped when the server died: b (non-essential) ended on the SIGTERM, the essential a is
    # still finishing (unwatched: killed now), c never started
    job_id = f"task-{uuid.uuid4()}"
    spec = task(job_id, ("a", True, ["x"]), ("b", False, ["x"]), ("c", False, ["x"]))
    survivor = sleeper(AWS_BATCH_JOB_ID=job_id, AWS_BATCH_JOB_ATTEMPT="1")
    try:
        journal_task(
            local, spec, f"pid {job_id}#1/a {survivor.pid}",
            f"stop {spec.key} {json.dumps(reason)}", f"exit {job_id}#1/b 143",
        )  # fmt: skip
        # WHEN it is recovered
        assert local.launcher.recover(job_id, 1) is True
        # THEN a was killed, as the end of its grace period would have, and the task's end is the stop's
        assert survivor.wait(timeout=5) == -signal.SIGKILL
        ends = (
            {"name": "a", "exitCode": 137},
            {"name": "b", "exitCode": 143},
            {"name": "c", "reason": task_group.STOPPED_BEFORE_START},
        )
        stopped = TaskStopped(
            1, 137, status_reason=reason, timed_out=reason == TIMEOUT_REASON, containers=ends, **_ecs(job_id)
        )
        assert local.events == [(job_id, TaskStarted(1, **_ecs(job_id))), (job_id, stopped)]
    finally:
        survivor.kill()
        survivor.wait()


def test_recover_a_stop_whose_essential_member_ended_by_itself_meanwhile(local: Local) -> None:
    # GIVEN a stop in flight when the server died, after which the essential a ended by itself (0) unwatched
    job_id = f"task-{uuid.uuid4()}"
    spec = task(job_id, ("a", True, ["x"]), ("b", False, ["x"]))
    journal_task(
        local, spec, f"stop {spec.key} {json.dumps(REASON)}", f"exit {job_id}#1/b 143", f"exit {job_id}#1/a 0",
    )  # fmt: skip
    assert local.launcher.recover(job_id, 1) is True
    # THEN the stop ended the task (not a's exit): its reason is the task's, a's exit code the job's
    ends = ({"name": "a", "exitCode": 0}, {"name": "b", "exitCode": 143})
    stopped = TaskStopped(1, 0, status_reason=REASON, containers=ends, **_ecs(job_id))
    assert local.events == [(job_id, TaskStarted(1, **_ecs(job_id))), (job_id, stopped)]


def test_recover_a_stop_that_came_after_the_essential_member_ended_the_task(local: Local) -> None:
    # GIVEN an essential member that exited (3) before the stop came: it ended the task, the stop came too late
    job_id = f"task-{uuid.uuid4()}"
    spec = task(job_id, ("a", True, ["x"]), ("b", False, ["x"]))
    journal_task(
        local, spec, f"exit {job_id}#1/a 3", f"stop {spec.key} {json.dumps(REASON)}", f"exit {job_id}#1/b 143",
    )  # fmt: skip
    assert local.launcher.recover(job_id, 1) is True
    # THEN the task's end is a's, as the live coordinator decides (GroupRun._coordinate): no status reason of its own
    ends = ({"name": "a", "exitCode": 3}, {"name": "b", "exitCode": 143})
    stopped = TaskStopped(1, 3, containers=ends, **_ecs(job_id))
    assert local.events == [(job_id, TaskStarted(1, **_ecs(job_id))), (job_id, stopped)]


def test_a_stop_line_cut_short_or_unreadable_is_ignored(tmp_path: Path) -> None:
    path = tmp_path / "journal"
    path.write_text('stop j#1 "a\nstop j#2 not-json\nstop j#3 ["x"]\nstop j#4 "kept"\nstop j#4 "later"\nstop j#5 "cut')
    journal = Journal(path)
    journal.want("j")
    journal.refresh()
    journal.close()
    assert journal.stops == {"j#4": ("kept", 0)}
