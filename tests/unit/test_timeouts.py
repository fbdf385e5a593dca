"""Attempt timeouts (docs/adr/0025): the typed timeout, the deadline derived from the stored job, and the deadlines
the local engine keeps of the attempts it holds."""

from __future__ import annotations

from dataclasses import replace

import pytest

from chalicelib.control.timeouts import Deadlines
from chalicelib.domain.jobs import RUNNING, STARTING, TIMEOUT_REASON, Timeout
from tests.unit.builders import NOW, a_job, a_running_job, an_attempt

STARTED = NOW + 100  # a_running_job's startedAt


@pytest.mark.parametrize("wire", [{"attemptDurationSeconds": 60}, {"attemptDurationSeconds": 2_147_483_647}])
def test_a_timeout_renders_back_to_the_wire_form_it_was_built_from(wire: dict[str, int]) -> None:
    typed = Timeout.from_wire(wire)
    assert typed is not None and typed.to_wire() == wire


def test_no_timeout_or_an_empty_one_is_none() -> None:
    assert Timeout.from_wire(None) is None
    assert Timeout.from_wire({}) is None


def test_the_deadline_counts_from_the_attempts_start() -> None:
    job = a_running_job(timeout={"attemptDurationSeconds": 60})

    assert job.deadline == STARTED + 60_000
    assert not job.timed_out(STARTED + 59_999)
    assert job.timed_out(STARTED + 60_000)


def test_a_job_without_a_timeout_or_a_started_attempt_has_no_deadline() -> None:
    assert a_running_job().deadline is None
    claimed = a_running_job(status=STARTING, timeout={"attemptDurationSeconds": 60})
    assert claimed.deadline is None  # the clock starts with the task, as AWS counts from startedAt
    assert not claimed.timed_out(NOW + 10**9)


def test_a_marked_attempt_is_still_timed_out_but_marked() -> None:
    job = a_running_job(timeout={"attemptDurationSeconds": 60})
    marked = replace(job, current=replace(job.current, status_reason=TIMEOUT_REASON))  # type: ignore[arg-type]

    assert (job.timeout_marked, marked.timeout_marked) == (False, True)
    assert marked.timed_out(STARTED + 60_000)


def test_deadlines_are_due_soonest_first_each_once() -> None:
    deadlines = Deadlines()
    late = a_running_job(timeout={"attemptDurationSeconds": 120}, job_id="late")
    soon = a_running_job(timeout={"attemptDurationSeconds": 60}, job_id="soon")
    for job in (late, soon, soon):  # a job reported twice (e.g. terminated while running)
        deadlines.changed(job)

    assert deadlines.next_due() == STARTED + 60_000
    assert deadlines.due(STARTED + 59_999) == []
    assert deadlines.due(STARTED + 60_000) == [("soon", 1)]
    assert deadlines.next_due() == STARTED + 120_000
    assert deadlines.due(STARTED + 10**6) == [("late", 1)]
    assert deadlines.next_due() is None


def test_jobs_without_a_deadline_or_marked_are_not_kept() -> None:
    deadlines = Deadlines()
    running = a_running_job(timeout={"attemptDurationSeconds": 60})
    marked = replace(running, current=replace(running.current, status_reason=TIMEOUT_REASON))  # type: ignore[arg-type]
    claimed = a_job(status=STARTING, current=an_attempt(1), timeout={"attemptDurationSeconds": 60})

    deadlines.rebuild([a_running_job(), marked, claimed])

    assert deadlines.next_due() is None
    deadlines.rebuild([running])
    assert deadlines.next_due() == STARTED + 60_000
    assert running.status == RUNNING
