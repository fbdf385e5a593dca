"""The job state machine (spec §4): `lifecycle.transition` over every row of `TRANSITIONS`, then the behaviours
each row stands for, then a property over random event sequences."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any, get_args

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chalicelib.domain.jobs import (
    ACTIVE,
    CANCEL_PENDING,
    DEPENDENCY_FAILED,
    ESSENTIAL_EXITED,
    FAILED,
    PENDING,
    RUNNABLE,
    RUNNING,
    STARTING,
    STATUSES,
    SUBMITTED,
    SUCCEEDED,
    TERMINAL,
    TIMEOUT_REASON,
    Attempt,
    Dependency,
    Job,
    bitmap_has,
)
from chalicelib.domain.lifecycle import (
    TRANSITIONS,
    UNCHANGED,
    Cancel,
    CancelChildren,
    CheckChildren,
    ChildFinished,
    ChildrenCreated,
    Claim,
    CreateChildren,
    DependencyFailed,
    DependencySucceeded,
    Effect,
    Evaluate,
    Event,
    Launch,
    NodeStarted,
    NodeStopped,
    NotifyDependents,
    NotifyParent,
    Outcome,
    Publish,
    PublishNode,
    StopTask,
    TaskStarted,
    TaskStopped,
    Terminate,
    TimedOut,
    WakeDispatcher,
    transition,
)
from tests.unit.builders import (
    NOW,
    a_child,
    a_job,
    a_parent,
    a_rule,
    a_running_job,
    an_attempt,
    retries,
)

LATER = NOW + 5_000
REASON = "stopped by the operator"
CLAIM = Claim(compute_environment="spot", task_id="task-new", log_stream="sleep/default/task-new")
FAILED_EFFECTS: tuple[Effect, ...] = (Publish(), NotifyDependents(False), WakeDispatcher())
SUCCEEDED_EFFECTS: tuple[Effect, ...] = (Publish(), NotifyDependents(True), WakeDispatcher())
HOST_GONE = "Host EC2 (instance i-0737c70432d64f82a) terminated."


def changed(outcome: Outcome) -> Job:
    """The new job of an outcome that must change the job."""
    assert outcome.job is not None, f"expected a new job, got {outcome}"
    return outcome.job


def apply(job: Job, *events: Event, start: int = LATER) -> Job:
    """Apply events in order (one ms apart), keeping the job as is when an event changes nothing."""
    for i, event in enumerate(events):
        job = transition(job, event, start + i).job or job
    return job


# -- the whole table -------------------------------------------------------------------------------------------

# Per event: a job that the event changes in every state the event applies in, and the event.
SAMPLES: dict[str, tuple[Callable[[str], Job], Event]] = {
    "Evaluate": (lambda s: a_job(status=s), Evaluate()),
    "DependencySucceeded": (lambda s: a_job(status=s, pending=("dep-1",)), DependencySucceeded("dep-1")),
    "DependencyFailed": (lambda s: a_job(status=s, pending=("dep-1",)), DependencyFailed("dep-1")),
    "Claim": (lambda s: a_job(status=s), CLAIM),
    "TaskStarted": (lambda s: a_job(status=s, current=an_attempt(1)), TaskStarted(1)),
    "TaskStopped": (lambda s: a_job(status=s, current=an_attempt(1)), TaskStopped(1, 0)),
    "NodeStopped": (lambda s: a_job(status=s, current=an_attempt(1)), NodeStopped(1, 1, 5)),
    "NodeStarted": (lambda s: a_job(status=s, current=an_attempt(1)), NodeStarted(1, 1, "arn:task/c/abc")),
    "Cancel": (lambda s: a_job(status=s), Cancel(REASON)),
    "Terminate": (lambda s: a_job(status=s, current=an_attempt(1)), Terminate(REASON)),
    "TimedOut": (lambda s: a_job(status=s, current=an_attempt(1)), TimedOut(1)),
    "ChildFinished": (lambda s: a_parent(2, created=2, status=s), ChildFinished(0, True)),
    "CheckChildren": (lambda s: a_parent(2, created=2, succeeded=[0, 1], status=s), CheckChildren()),
    "ChildrenCreated": (lambda s: a_parent(2, status=s), ChildrenCreated(2)),
}

# (event, state it applies in) -> (target state, or None for "no new job", exact effects). Every other cell of the
# 14 x 7 grid must be UNCHANGED.
EXPECTED: dict[tuple[str, str], tuple[str | None, tuple[Effect, ...]]] = {
    ("Evaluate", SUBMITTED): (RUNNABLE, (Publish(), WakeDispatcher())),
    ("Evaluate", PENDING): (RUNNABLE, (Publish(), WakeDispatcher())),
    ("DependencySucceeded", SUBMITTED): (RUNNABLE, (Publish(), WakeDispatcher())),
    ("DependencySucceeded", PENDING): (RUNNABLE, (Publish(), WakeDispatcher())),
    ("DependencyFailed", SUBMITTED): (FAILED, FAILED_EFFECTS),
    ("DependencyFailed", PENDING): (FAILED, FAILED_EFFECTS),
    ("Claim", RUNNABLE): (STARTING, (Publish(), Launch(1))),
    ("TaskStarted", STARTING): (RUNNING, (Publish(),)),
    ("TaskStarted", RUNNING): (
        None,
        (),
    ),  # only a multi-node job's repeated main node start asks something (LaunchNodes)
    ("TaskStopped", STARTING): (SUCCEEDED, SUCCEEDED_EFFECTS),
    ("TaskStopped", RUNNING): (SUCCEEDED, SUCCEEDED_EFFECTS),
    ("NodeStopped", STARTING): (STARTING, (PublishNode(1),)),
    ("NodeStopped", RUNNING): (RUNNING, (PublishNode(1),)),
    ("NodeStarted", STARTING): (STARTING, (PublishNode(1),)),
    ("NodeStarted", RUNNING): (RUNNING, (PublishNode(1),)),
    ("Cancel", SUBMITTED): (FAILED, FAILED_EFFECTS),
    ("Cancel", PENDING): (FAILED, FAILED_EFFECTS),
    ("Cancel", RUNNABLE): (FAILED, FAILED_EFFECTS),
    ("Terminate", SUBMITTED): (FAILED, FAILED_EFFECTS),
    ("Terminate", PENDING): (FAILED, FAILED_EFFECTS),
    ("Terminate", RUNNABLE): (FAILED, FAILED_EFFECTS),
    ("Terminate", STARTING): (STARTING, (StopTask(1, REASON),)),
    ("Terminate", RUNNING): (RUNNING, (StopTask(1, REASON),)),
    ("TimedOut", RUNNING): (RUNNING, (StopTask(1, TIMEOUT_REASON),)),
    ("ChildFinished", PENDING): (PENDING, ()),
    ("CheckChildren", PENDING): (SUCCEEDED, SUCCEEDED_EFFECTS),
    ("ChildrenCreated", PENDING): (PENDING, ()),
}


def test_the_table_names_every_event_type_and_only_those() -> None:
    # GIVEN the Event union  THEN TRANSITIONS (and this test's samples) cover exactly its members
    event_types = {cls.__name__ for cls in get_args(Event)}
    assert set(TRANSITIONS) == event_types
    assert set(SAMPLES) == event_types


@pytest.mark.parametrize("event_name", sorted(TRANSITIONS))
def test_the_table_lists_exactly_the_documented_states(event_name: str) -> None:
    documented = {status for (name, status) in EXPECTED if name == event_name}
    assert documented == TRANSITIONS[event_name]


@pytest.mark.parametrize("status", STATUSES)
@pytest.mark.parametrize("event_name", sorted(TRANSITIONS))
def test_every_event_in_every_state(event_name: str, status: str) -> None:
    # GIVEN a job in `status` that the event would change where it applies
    make, event = SAMPLES[event_name]
    job = make(status)

    # WHEN the event arrives
    outcome = transition(job, event, LATER)

    # THEN it gives the documented target and effects, or nothing at all where it does not apply
    if (event_name, status) not in EXPECTED:
        assert outcome == UNCHANGED
        return
    target, effects = EXPECTED[(event_name, status)]
    assert outcome.effects == effects
    if target is None:
        assert outcome.job is None
    else:
        assert changed(outcome).status == target
        assert changed(outcome).updated_at == LATER


@pytest.mark.parametrize("status", TERMINAL)
@pytest.mark.parametrize("event_name", sorted(TRANSITIONS))
def test_a_terminal_job_ignores_every_event(event_name: str, status: str) -> None:
    make, event = SAMPLES[event_name]
    assert transition(make(status), event, LATER) == UNCHANGED


# -- Evaluate and dependencies ---------------------------------------------------------------------------------


def test_evaluate_without_dependencies_makes_the_job_runnable_and_wakes_the_dispatcher() -> None:
    # GIVEN a submitted job without dependencies
    job = a_job(status=SUBMITTED, status_reason="left over")

    # WHEN it is evaluated
    outcome = transition(job, Evaluate(), LATER)

    # THEN it is RUNNABLE, published, and the dispatcher is woken
    assert changed(outcome).status == RUNNABLE
    assert changed(outcome).status_reason is None
    assert outcome.effects == (Publish(), WakeDispatcher())


def test_evaluate_with_pending_dependencies_parks_the_job_in_pending() -> None:
    job = a_job(status=SUBMITTED, pending=("dep-a", "dep-b"))

    outcome = transition(job, Evaluate(), LATER)

    assert changed(outcome).status == PENDING
    assert changed(outcome).pending == ("dep-a", "dep-b")
    assert outcome.effects == (Publish(),)


def test_evaluate_of_a_pending_job_still_waiting_changes_nothing() -> None:
    job = a_job(status=PENDING, pending=("dep-a",))

    assert transition(job, Evaluate(), LATER) == UNCHANGED


def test_evaluate_of_an_array_parent_parks_it_in_pending_and_creates_its_children() -> None:
    # GIVEN a submitted array parent without dependencies
    parent = a_parent(3, status=SUBMITTED)

    # WHEN it is evaluated
    outcome = transition(parent, Evaluate(), LATER)

    # THEN it waits in PENDING (never RUNNABLE) and its children are to be created
    assert changed(outcome).status == PENDING
    assert outcome.effects == (Publish(), CreateChildren())


def test_evaluate_of_an_array_parent_with_dependencies_waits_without_creating_children() -> None:
    parent = a_parent(3, status=SUBMITTED, pending=("dep-a",))

    outcome = transition(parent, Evaluate(), LATER)

    assert changed(outcome).status == PENDING
    assert outcome.effects == (Publish(),)


def test_evaluate_of_a_pending_array_parent_changes_nothing() -> None:
    assert transition(a_parent(3, status=PENDING), Evaluate(), LATER) == UNCHANGED


def test_the_last_dependency_of_an_array_parent_creates_its_children_without_a_new_state() -> None:
    # GIVEN a PENDING parent waiting on one dependency
    parent = a_parent(3, status=PENDING, pending=("dep-a",))

    # WHEN that dependency succeeds
    outcome = transition(parent, DependencySucceeded("dep-a"), LATER)

    # THEN it stays PENDING (no state change to publish) and its children are created
    assert changed(outcome).status == PENDING
    assert changed(outcome).pending == ()
    assert outcome.effects == (CreateChildren(),)


def test_dependency_succeeded_removes_only_that_dependency() -> None:
    # GIVEN a job waiting on two dependencies
    job = a_job(status=PENDING, pending=("dep-a", "dep-b"))

    # WHEN one of them succeeds
    outcome = transition(job, DependencySucceeded("dep-a"), LATER)

    # THEN only that one is gone; the job keeps waiting, with nothing to publish
    assert changed(outcome).pending == ("dep-b",)
    assert changed(outcome).status == PENDING
    assert outcome.effects == ()


def test_dependency_succeeded_is_idempotent() -> None:
    # GIVEN the first delivery was applied
    job = changed(transition(a_job(status=PENDING, pending=("dep-a", "dep-b")), DependencySucceeded("dep-a"), 1))

    # WHEN it is delivered again  THEN nothing changes
    assert transition(job, DependencySucceeded("dep-a"), 2) == UNCHANGED


def test_dependency_succeeded_for_an_unknown_job_changes_nothing() -> None:
    job = a_job(status=PENDING, pending=("dep-a",))

    assert transition(job, DependencySucceeded("someone-else"), LATER) == UNCHANGED


def test_the_last_dependency_succeeding_makes_the_job_runnable() -> None:
    job = a_job(status=PENDING, pending=("dep-a", "dep-b"))

    final = apply(job, DependencySucceeded("dep-b"), DependencySucceeded("dep-a"))

    assert final.status == RUNNABLE
    assert final.pending == ()


def test_a_dependency_succeeding_before_the_first_evaluation_moves_a_submitted_job_to_pending() -> None:
    job = a_job(status=SUBMITTED, pending=("dep-a", "dep-b"))

    outcome = transition(job, DependencySucceeded("dep-a"), LATER)

    assert changed(outcome).status == PENDING
    assert outcome.effects == (Publish(),)


def test_a_failed_dependency_fails_the_job() -> None:
    # GIVEN a job waiting on two dependencies
    job = a_job(status=PENDING, pending=("dep-a", "dep-b"))

    # WHEN one of them fails
    outcome = transition(job, DependencyFailed("dep-b"), LATER)

    # THEN the job fails without running, and its own dependents learn it failed
    failed = changed(outcome)
    assert failed.status == FAILED
    assert failed.status_reason is not None and failed.status_reason.startswith(DEPENDENCY_FAILED)
    assert "dep-b" in failed.status_reason
    assert failed.stopped_at == LATER
    assert failed.attempts == ()
    assert outcome.effects == FAILED_EFFECTS


def test_a_failed_dependency_that_is_not_pending_changes_nothing() -> None:
    job = a_job(status=PENDING, pending=("dep-a",))

    assert transition(job, DependencyFailed("dep-z"), LATER) == UNCHANGED


def test_a_failed_dependency_fails_an_array_parent_and_cancels_its_children() -> None:
    parent = a_parent(3, status=PENDING, pending=("dep-a",))

    outcome = transition(parent, DependencyFailed("dep-a"), LATER)

    assert changed(outcome).status == FAILED
    reason = changed(outcome).status_reason
    assert reason is not None
    assert outcome.effects == (*FAILED_EFFECTS, CancelChildren(reason, terminate=False))


def test_a_failed_dependency_of_an_array_child_also_notifies_its_parent() -> None:
    child = a_child("parent", 1, status=PENDING, pending=("parent:0",))

    outcome = transition(child, DependencyFailed("parent:0"), LATER)

    assert changed(outcome).status == FAILED
    assert outcome.effects == (*FAILED_EFFECTS, NotifyParent(False))


# -- Claim and TaskStarted -------------------------------------------------------------------------------------


def test_claim_starts_the_first_attempt() -> None:
    # GIVEN a runnable job that never ran
    job = a_job(status=RUNNABLE)

    # WHEN the dispatcher places it
    outcome = transition(job, CLAIM, LATER)

    # THEN it is STARTING on attempt 1 in that CE, and the attempt is to be launched
    claimed = changed(outcome)
    assert claimed.status == STARTING
    assert claimed.current == Attempt(
        number=1,
        task_id="task-new",
        compute_environment="spot",
        log_stream="sleep/default/task-new",
        created_at=LATER,
    )
    assert claimed.attempts == ()
    assert outcome.effects == (Publish(), Launch(1))


def test_claim_after_failed_attempts_numbers_the_next_attempt() -> None:
    # GIVEN a job back in RUNNABLE after two failed attempts, with the last failure's reason
    job = a_running_job(3, status=RUNNABLE, current=None, status_reason=ESSENTIAL_EXITED)
    assert len(job.attempts) == 2

    # WHEN it is claimed again
    outcome = transition(job, CLAIM, LATER)

    # THEN the new attempt is number len(attempts) + 1, and the old reason is cleared
    current = changed(outcome).current
    assert current is not None and current.number == 3
    assert changed(outcome).status_reason is None
    assert outcome.effects == (Publish(), Launch(3))


def test_task_started_moves_the_job_to_running() -> None:
    job = a_running_job(1, status=STARTING)

    outcome = transition(job, TaskStarted(1), LATER)

    running = changed(outcome)
    assert running.status == RUNNING
    assert running.started_at == LATER
    assert running.current is not None and running.current.started_at == LATER
    assert outcome.effects == (Publish(),)


def test_task_started_keeps_the_job_started_at_of_the_first_attempt() -> None:
    job = a_running_job(2, status=STARTING, started_at=NOW + 1)

    assert changed(transition(job, TaskStarted(2), LATER)).started_at == NOW + 1


def test_task_started_for_a_stale_attempt_is_ignored() -> None:
    # GIVEN a job on its second attempt
    job = a_running_job(2, status=STARTING)

    # WHEN the first attempt's start is reported late  THEN nothing changes
    assert transition(job, TaskStarted(1), LATER) == UNCHANGED


def test_task_started_twice_changes_nothing_the_second_time() -> None:
    job = apply(a_running_job(1, status=STARTING), TaskStarted(1))

    assert transition(job, TaskStarted(1), LATER + 10) == UNCHANGED


TASK_ARN = "arn:aws:ecs:us-east-1:123456789012:task/batchplane/c13b4cb40f1f4fe4a2971f76ae5a47ad"


def test_task_started_records_the_real_task_and_its_log_stream() -> None:
    # GIVEN a job claimed with a planned task id (log stream sleep/default/task-1)
    job = a_running_job(1, status=STARTING)

    # WHEN ECS reports the task running
    current = changed(transition(job, TaskStarted(1, task_arn=TASK_ARN), LATER)).current

    # THEN the attempt names the ECS task, and its log stream is the one awslogs writes: <jd>/default/<task id>
    assert current is not None
    assert current.task_id == TASK_ARN
    assert current.log_stream == "sleep/default/c13b4cb40f1f4fe4a2971f76ae5a47ad"


def test_a_log_stream_given_with_the_task_is_taken_as_it_is() -> None:
    job = a_running_job(1, status=STARTING)
    current = changed(transition(job, TaskStarted(1, TASK_ARN, log_stream="custom/stream"), LATER)).current
    assert current is not None and (current.task_id, current.log_stream) == (TASK_ARN, "custom/stream")


def test_task_started_without_a_task_keeps_the_claimed_one() -> None:
    current = changed(transition(a_running_job(1, status=STARTING), TaskStarted(1), LATER)).current
    assert current is not None and (current.task_id, current.log_stream) == ("task-1", "sleep/default/task-1")


def test_a_stop_arriving_before_the_start_records_the_task_too() -> None:
    # GIVEN a STARTING job whose RUNNING event is late  WHEN the STOPPED event (with the task) arrives first
    done = changed(transition(a_running_job(1, status=STARTING), TaskStopped(1, 0, task_arn=TASK_ARN), LATER))

    # THEN the finished attempt names the task, as it would have after RUNNING then STOPPED
    in_order = apply(a_running_job(1, status=STARTING), TaskStarted(1, TASK_ARN), TaskStopped(1, 0, task_arn=TASK_ARN))
    assert done.attempts[0].task_id == in_order.attempts[0].task_id == TASK_ARN
    assert done.attempts[0].log_stream == in_order.attempts[0].log_stream


# -- TaskStopped -----------------------------------------------------------------------------------------------


def test_exit_zero_succeeds_and_records_the_attempt() -> None:
    # GIVEN a job running its first attempt, started at NOW + 100
    job = a_running_job(1)

    # WHEN the container exits 0
    outcome = transition(job, TaskStopped(1, 0), LATER)

    # THEN the job SUCCEEDED with one finished attempt in attempts[]
    done = changed(outcome)
    assert done.status == SUCCEEDED
    assert done.status_reason == ESSENTIAL_EXITED
    assert done.stopped_at == LATER
    assert done.current is None
    assert done.attempts == (
        an_attempt(1, started_at=NOW + 100, stopped_at=LATER, exit_code=0, status_reason=ESSENTIAL_EXITED),
    )
    assert outcome.effects == SUCCEEDED_EFFECTS


def test_a_non_zero_exit_with_attempts_left_and_no_rule_is_retried() -> None:
    # GIVEN a job allowed 3 attempts, on its first
    job = a_running_job(1, retry_strategy=retries(3))

    # WHEN the container exits 1
    outcome = transition(job, TaskStopped(1, 1), LATER)

    # THEN it goes back to RUNNABLE with the failed attempt recorded
    again = changed(outcome)
    assert again.status == RUNNABLE
    assert again.status_reason == ESSENTIAL_EXITED
    assert again.current is None
    assert [(a.number, a.exit_code) for a in again.attempts] == [(1, 1)]
    assert outcome.effects == (Publish(), WakeDispatcher())


def test_a_non_zero_exit_on_the_last_attempt_fails_the_job() -> None:
    # GIVEN a job on its third and last attempt
    job = a_running_job(3, retry_strategy=retries(3))

    # WHEN the container exits 1
    outcome = transition(job, TaskStopped(1 + 2, 1), LATER)

    # THEN the job FAILED with all three attempts recorded
    failed = changed(outcome)
    assert failed.status == FAILED
    assert failed.status_reason == ESSENTIAL_EXITED
    assert [a.number for a in failed.attempts] == [1, 2, 3]
    assert outcome.effects == FAILED_EFFECTS


def test_without_a_retry_strategy_a_failure_is_final() -> None:
    outcome = transition(a_running_job(1), TaskStopped(1, 2), LATER)

    assert changed(outcome).status == FAILED


def test_an_exit_rule_fails_the_job_even_with_attempts_left() -> None:
    # GIVEN 3 attempts, but exit code 1 means "don't bother"
    job = a_running_job(1, retry_strategy=retries(3, a_rule("EXIT", onExitCode="1")))

    # WHEN the first attempt exits 1
    outcome = transition(job, TaskStopped(1, 1), LATER)

    # THEN the job fails at once
    assert changed(outcome).status == FAILED
    assert len(changed(outcome).attempts) == 1
    assert outcome.effects == FAILED_EFFECTS


def test_a_retry_rule_matching_the_host_going_away_retries() -> None:
    # GIVEN the common Spot pattern: retry a lost host, exit on anything else
    strategy = retries(3, a_rule("RETRY", onStatusReason="Host EC2*"), a_rule("EXIT", onReason="*"))
    job = a_running_job(1, retry_strategy=strategy)

    # WHEN the host is terminated under the attempt
    lost = transition(job, TaskStopped(1, None, status_reason=HOST_GONE), LATER)
    # ... or the container fails on its own
    crashed = transition(job, TaskStopped(1, 1, reason="OutOfMemoryError: Container killed"), LATER)

    # THEN the first is retried with the stop reason kept, the second is final
    assert changed(lost).status == RUNNABLE
    assert changed(lost).status_reason == HOST_GONE
    assert changed(lost).attempts[0].status_reason == HOST_GONE
    assert changed(crashed).status == FAILED
    assert changed(crashed).attempts[0].reason == "OutOfMemoryError: Container killed"


@pytest.mark.parametrize("exit_code", [137, 0])
def test_a_timed_out_attempt_fails_and_is_never_retried(exit_code: int) -> None:
    # GIVEN a job with attempts to spare
    job = a_running_job(1, retry_strategy=retries(5))

    # WHEN its attempt is stopped for exceeding the timeout
    outcome = transition(job, TaskStopped(1, exit_code, timed_out=True), LATER)

    # THEN it FAILED with the timeout reason, on the job and on the attempt
    failed = changed(outcome)
    assert failed.status == FAILED
    assert failed.status_reason == TIMEOUT_REASON
    assert failed.attempts[-1].status_reason == TIMEOUT_REASON
    assert outcome.effects == FAILED_EFFECTS


def test_a_timed_out_attempt_is_not_retried_even_by_a_matching_retry_rule() -> None:
    job = a_running_job(1, retry_strategy=retries(5, a_rule("RETRY", onExitCode="137")))

    outcome = transition(job, TaskStopped(1, 137, timed_out=True), LATER)

    assert changed(outcome).status == FAILED


def test_a_stop_for_a_stale_attempt_is_ignored() -> None:
    # GIVEN a job already on its second attempt
    job = a_running_job(2, retry_strategy=retries(3))

    # WHEN the first attempt's stop is delivered again  THEN nothing changes
    assert transition(job, TaskStopped(1, 1), LATER) == UNCHANGED


@pytest.mark.parametrize(("attempts", "exit_code"), [(1, 0), (1, 1), (3, 1)])
def test_a_duplicate_stop_changes_nothing_the_second_time(attempts: int, exit_code: int) -> None:
    # GIVEN the stop of attempt 1 was applied (SUCCEEDED, FAILED or back to RUNNABLE)
    job = apply(a_running_job(1, retry_strategy=retries(attempts)), TaskStopped(1, exit_code))

    # WHEN it is delivered again  THEN nothing changes
    assert transition(job, TaskStopped(1, exit_code), LATER + 10) == UNCHANGED


def test_a_duplicate_stop_after_the_retry_was_claimed_changes_nothing() -> None:
    job = apply(a_running_job(1, retry_strategy=retries(3)), TaskStopped(1, 1), CLAIM)
    assert job.status == STARTING

    assert transition(job, TaskStopped(1, 1), LATER + 10) == UNCHANGED


@pytest.mark.parametrize(("exit_code", "terminal"), [(0, SUCCEEDED), (1, FAILED)])
def test_stop_before_start_ends_in_the_same_terminal_state(exit_code: int, terminal: str) -> None:
    # GIVEN a claimed job
    job = a_running_job(1, status=STARTING)

    # WHEN its start and stop arrive in order, or the other way round
    in_order = apply(job, TaskStarted(1), TaskStopped(1, exit_code))
    reversed_ = apply(job, TaskStopped(1, exit_code), TaskStarted(1))

    # THEN both end in the same terminal state with one attempt
    assert in_order.status == reversed_.status == terminal
    assert len(in_order.attempts) == len(reversed_.attempts) == 1
    assert reversed_.current is None


def test_a_whole_retry_cycle_records_every_attempt_in_order() -> None:
    # GIVEN a runnable job allowed two attempts
    job = a_job(status=RUNNABLE, retry_strategy=retries(2))

    # WHEN both attempts run and fail
    final = apply(
        job,
        CLAIM,
        TaskStarted(1),
        TaskStopped(1, 3),
        CLAIM,
        TaskStarted(2),
        TaskStopped(2, 4),
    )

    # THEN the job FAILED with both attempts, each with its own exit code
    assert final.status == FAILED
    assert [(a.number, a.exit_code) for a in final.attempts] == [(1, 3), (2, 4)]
    assert all(a.started_at is not None and a.stopped_at is not None for a in final.attempts)


# -- Cancel, Terminate, TimedOut -------------------------------------------------------------------------------


@pytest.mark.parametrize("status", [SUBMITTED, PENDING, RUNNABLE])
def test_cancel_before_starting_fails_the_job(status: str) -> None:
    job = a_job(status=status)

    outcome = transition(job, Cancel(REASON), LATER)

    cancelled = changed(outcome)
    assert cancelled.status == FAILED
    assert cancelled.is_cancelled
    assert not cancelled.is_terminated
    assert cancelled.status_reason == REASON
    assert cancelled.stopped_at == LATER
    assert outcome.effects == FAILED_EFFECTS


def test_cancel_of_a_job_pending_on_dependencies_waits_for_them() -> None:
    # GIVEN a PENDING job with two dependencies not done
    job = a_job(status=PENDING, pending=("dep-a", "dep-b"))

    # WHEN it is cancelled THEN it stays PENDING, with the request recorded and said in its reason, and no effect
    outcome = transition(job, Cancel(REASON), LATER)
    requested = changed(outcome)
    assert (requested.status, requested.cancel_reason, requested.is_cancelled) == (PENDING, REASON, False)
    assert requested.status_reason == CANCEL_PENDING + REASON
    assert outcome.effects == ()
    # ... a second cancel changes nothing
    assert transition(requested, Cancel("other"), LATER) == UNCHANGED

    # WHEN one dependency succeeds THEN it still waits; WHEN the other does THEN it fails with the cancel's reason
    waiting = apply(requested, DependencySucceeded("dep-a"))
    assert (waiting.status, waiting.pending) == (PENDING, ("dep-b",))
    outcome = transition(waiting, DependencySucceeded("dep-b"), LATER)
    done = changed(outcome)
    assert (done.status, done.status_reason, done.is_cancelled) == (FAILED, REASON, True)
    assert outcome.effects == FAILED_EFFECTS


def test_a_pending_cancel_yields_to_a_failed_dependency() -> None:
    requested = apply(a_job(status=PENDING, pending=("dep-a",)), Cancel(REASON))

    failed = apply(requested, DependencyFailed("dep-a"))

    assert (failed.status, failed.status_reason) == (FAILED, f"{DEPENDENCY_FAILED}: dep-a")


@pytest.mark.parametrize("status", ACTIVE)
def test_cancel_of_a_started_job_changes_nothing(status: str) -> None:
    assert transition(a_running_job(1, status=status), Cancel(REASON), LATER) == UNCHANGED


def test_cancel_of_a_job_waiting_for_a_retry_is_final() -> None:
    job = apply(a_running_job(1, retry_strategy=retries(3)), TaskStopped(1, 1))
    assert job.status == RUNNABLE

    final = apply(job, Cancel(REASON), CLAIM)

    assert final.status == FAILED
    assert len(final.attempts) == 1


@pytest.mark.parametrize("status", [SUBMITTED, PENDING, RUNNABLE])
def test_terminate_before_starting_fails_the_job_at_once(status: str) -> None:
    outcome = transition(a_job(status=status), Terminate(REASON), LATER)

    assert changed(outcome).status == FAILED
    assert changed(outcome).is_terminated
    assert changed(outcome).status_reason == REASON
    assert outcome.effects == FAILED_EFFECTS


def test_terminate_of_a_running_job_stops_its_task_then_the_stop_fails_it() -> None:
    # GIVEN a running job with attempts to spare
    job = a_running_job(1, retry_strategy=retries(3))

    # WHEN it is terminated
    outcome = transition(job, Terminate(REASON), LATER)

    # THEN it is marked, still RUNNING, and its task is to be stopped
    marked = changed(outcome)
    assert marked.status == RUNNING
    assert marked.is_terminated
    assert outcome.effects == (StopTask(1, REASON),)

    # WHEN the task stops (even with exit 0)
    stopped = transition(marked, TaskStopped(1, 0), LATER + 1)

    # THEN the job FAILED with the terminate reason and is not retried
    failed = changed(stopped)
    assert failed.status == FAILED
    assert failed.status_reason == REASON
    assert len(failed.attempts) == 1
    assert stopped.effects == FAILED_EFFECTS


def test_a_second_terminate_of_a_running_job_only_asks_again_to_stop_the_task() -> None:
    # GIVEN a running job already terminated
    job = apply(a_running_job(1), Terminate(REASON))

    # WHEN it is terminated again
    outcome = transition(job, Terminate("again"), LATER + 10)

    # THEN the job is not changed (the first reason stays), but the stop is asked for again
    assert outcome == Outcome(None, (StopTask(1, REASON),))


def test_a_job_terminated_while_starting_is_stopped_again_when_its_task_starts() -> None:
    # GIVEN a job terminated while STARTING (its stop may have found no task yet)
    job = apply(a_running_job(1, status=STARTING), Terminate(REASON))

    # WHEN the task starts
    outcome = transition(job, TaskStarted(1), LATER + 10)

    # THEN it is RUNNING and its task is stopped again
    assert changed(outcome).status == RUNNING
    assert outcome.effects == (Publish(), StopTask(1, REASON))


def test_terminate_while_starting_is_remembered_through_the_start() -> None:
    job = a_running_job(1, status=STARTING, retry_strategy=retries(3))

    final = apply(job, Terminate(REASON), TaskStarted(1), TaskStopped(1, 143))

    assert final.status == FAILED
    assert final.status_reason == REASON


def test_timed_out_marks_the_attempt_and_asks_to_stop_the_task() -> None:
    outcome = transition(a_running_job(2, retry_strategy=retries(3)), TimedOut(2), LATER)

    assert outcome.job is not None and outcome.job.status == RUNNING
    assert outcome.job.current is not None and outcome.job.current.status_reason == TIMEOUT_REASON
    assert outcome.effects == (StopTask(2, TIMEOUT_REASON),)
    # a second TimedOut only repeats the stop request
    assert transition(outcome.job, TimedOut(2), LATER) == Outcome(None, (StopTask(2, TIMEOUT_REASON),))


def test_a_stop_after_timed_out_fails_without_retry_whatever_the_launcher_reports() -> None:
    # GIVEN a sweep found the attempt over its timeout  WHEN the task's stop arrives as a plain exit 143
    marked = transition(a_running_job(2, retry_strategy=retries(3)), TimedOut(2), LATER).job
    assert marked is not None
    final = transition(marked, TaskStopped(2, 143), LATER).job

    # THEN the job fails with the timeout reason and is not retried
    assert final is not None and final.status == FAILED
    assert final.status_reason == TIMEOUT_REASON


def test_child_finished_outside_the_array_is_ignored() -> None:
    parent = a_parent(3)
    assert transition(parent, ChildFinished(3, True), LATER) == UNCHANGED
    assert transition(parent, ChildFinished(-1, True), LATER) == UNCHANGED


def test_timed_out_for_a_stale_attempt_is_ignored() -> None:
    assert transition(a_running_job(2, retry_strategy=retries(3)), TimedOut(1), LATER) == UNCHANGED


# -- array children --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("exit_code", "succeeded"), [(0, True), (1, False)])
def test_a_child_reaching_a_terminal_state_notifies_its_parent(exit_code: int, succeeded: bool) -> None:
    child = a_child("parent", 4, status=RUNNING, current=an_attempt(1, started_at=NOW))

    outcome = transition(child, TaskStopped(1, exit_code), LATER)

    assert outcome.effects == (Publish(), NotifyDependents(succeeded), WakeDispatcher(), NotifyParent(succeeded))


def test_a_cancelled_child_notifies_its_parent_of_a_failure() -> None:
    outcome = transition(a_child("parent", 0, status=RUNNABLE), Cancel(REASON), LATER)

    assert outcome.effects == (*FAILED_EFFECTS, NotifyParent(False))


def test_a_child_being_retried_does_not_notify_its_parent() -> None:
    child = a_child("parent", 0, status=RUNNING, current=an_attempt(1), retry_strategy=retries(2))

    outcome = transition(child, TaskStopped(1, 1), LATER)

    assert outcome.effects == (Publish(), WakeDispatcher())


# -- array parents ---------------------------------------------------------------------------------------------


def test_a_parent_succeeds_when_every_child_succeeded() -> None:
    # GIVEN a parent of 3 whose children 0 and 1 succeeded
    parent = a_parent(3, created=3, succeeded=[0, 1])

    # WHEN the last child succeeds
    outcome = transition(parent, ChildFinished(2, True), LATER)

    # THEN the parent SUCCEEDED
    done = changed(outcome)
    assert done.status == SUCCEEDED
    assert done.stopped_at == LATER
    assert done.array is not None and (done.array.succeeded, done.array.failed) == (3, 0)
    assert outcome.effects == SUCCEEDED_EFFECTS


def test_a_parent_counts_a_child_and_waits_for_the_rest() -> None:
    parent = a_parent(3, created=3)

    outcome = transition(parent, ChildFinished(1, True), LATER)

    counted = changed(outcome)
    assert counted.status == PENDING
    assert counted.array is not None
    assert (counted.array.succeeded, counted.array.failed) == (1, 0)
    assert bitmap_has(counted.array.done_bits, 1)
    assert outcome.effects == ()


def test_a_parent_with_a_failed_child_waits_for_the_others_then_fails() -> None:
    # GIVEN a parent of 3
    parent = a_parent(3, created=3)

    # WHEN child 0 fails  THEN the parent still waits
    after_failure = changed(transition(parent, ChildFinished(0, False), LATER))
    assert after_failure.status == PENDING

    # WHEN the others succeed
    outcome = transition(apply(after_failure, ChildFinished(1, True)), ChildFinished(2, True), LATER + 9)

    # THEN the parent FAILED, saying how many children failed
    failed = changed(outcome)
    assert failed.status == FAILED
    assert failed.status_reason == "1 of 3 child jobs failed"
    assert outcome.effects == FAILED_EFFECTS


def test_a_duplicate_child_finished_is_not_counted_twice() -> None:
    # GIVEN child 0 was counted
    parent = apply(a_parent(2, created=2), ChildFinished(0, True))

    # WHEN its notification arrives again (with either outcome)  THEN nothing changes
    assert transition(parent, ChildFinished(0, True), LATER + 10) == UNCHANGED
    assert transition(parent, ChildFinished(0, False), LATER + 10) == UNCHANGED


def test_cancel_of_a_parent_cancels_its_children_and_waits_for_them() -> None:
    # GIVEN a parent of 3 with 2 children written so far
    parent = a_parent(3, created=2)

    # WHEN it is cancelled
    outcome = transition(parent, Cancel(REASON), LATER)

    # THEN it is marked and its children are to be cancelled; it stays PENDING until they are done
    marked = changed(outcome)
    assert marked.status == PENDING
    assert marked.is_cancelled
    assert outcome.effects == (CancelChildren(REASON, terminate=False),)

    # WHEN the two created children finish (one even succeeded)
    final = apply(marked, ChildFinished(0, True), ChildFinished(1, False))

    # THEN the parent FAILED with the cancel reason: no third child is ever created
    assert final.status == FAILED
    assert final.status_reason == REASON


def test_a_cancelled_parent_whose_children_are_already_done_fails_on_check_children() -> None:
    # GIVEN a parent whose 2 created children all succeeded before it was cancelled
    parent = apply(a_parent(3, created=2, succeeded=[0, 1]), Cancel(REASON))
    assert parent.status == PENDING

    # WHEN the children are re-checked
    outcome = transition(parent, CheckChildren(), LATER + 10)

    # THEN the parent FAILED
    assert changed(outcome).status == FAILED
    assert changed(outcome).status_reason == REASON
    assert outcome.effects == FAILED_EFFECTS


def test_check_children_of_a_parent_still_waiting_changes_nothing() -> None:
    parent = apply(a_parent(3, created=2, succeeded=[0]), Cancel(REASON))

    assert transition(parent, CheckChildren(), LATER + 10) == UNCHANGED


def test_cancel_of_a_parent_without_children_fails_it_at_once() -> None:
    outcome = transition(a_parent(3, created=0), Cancel(REASON), LATER)

    assert changed(outcome).status == FAILED
    assert changed(outcome).is_cancelled
    assert outcome.effects == FAILED_EFFECTS


def test_terminate_of_a_parent_terminates_its_children() -> None:
    outcome = transition(a_parent(3, created=3), Terminate(REASON), LATER)

    assert changed(outcome).is_terminated
    assert outcome.effects == (CancelChildren(REASON, terminate=True),)


def test_a_second_cancel_of_a_parent_changes_nothing() -> None:
    parent = apply(a_parent(3, created=3), Cancel(REASON))

    assert transition(parent, Cancel("again"), LATER + 10) == UNCHANGED


def test_children_created_only_moves_forward() -> None:
    # GIVEN a parent with 5 children written
    parent = a_parent(10, created=5)

    # WHEN a smaller or equal count arrives  THEN nothing changes
    assert transition(parent, ChildrenCreated(3), LATER) == UNCHANGED
    assert transition(parent, ChildrenCreated(5), LATER) == UNCHANGED

    # WHEN a larger one arrives  THEN the cursor moves, with no state change to publish
    outcome = transition(parent, ChildrenCreated(8), LATER)
    array = changed(outcome).array
    assert array is not None and array.children_created == 8
    assert changed(outcome).status == PENDING
    assert outcome.effects == ()


# -- property: random event sequences --------------------------------------------------------------------------

DEPS = ("dep-a", "dep-b")
RULES = (
    a_rule("RETRY", onStatusReason="Host EC2*"),
    a_rule("EXIT", onExitCode="1"),
    a_rule("retry", onExitCode="137"),
    a_rule("exit", onReason="*"),
)


STOPS = st.builds(
    TaskStopped,
    st.just(1),
    st.sampled_from([0, 0, 1, 137, None]),
    reason=st.sampled_from([None, "OutOfMemoryError: Container killed due to memory usage"]),
    status_reason=st.sampled_from([None, None, HOST_GONE]),
    timed_out=st.sampled_from([False, False, False, True]),
)


@st.composite
def scenarios(draw: st.DrawFn) -> tuple[Job, list[Event]]:
    """A fresh job (plain, array child or array parent) and the events a realistic run delivers to it: the script
    of a run (evaluation, dependencies, every attempt's claim/start/stop, or the children's progress), then delivered
    at least once and out of order: a few stray events (cancel, terminate, timeout, stale attempts) inserted,
    some events duplicated later on, some neighbours swapped."""
    kind = draw(st.sampled_from(["plain", "child", "parent"]))
    max_attempts = draw(st.integers(1, 4))
    strategy = retries(max_attempts, *draw(st.lists(st.sampled_from(RULES), max_size=3)))
    deps = tuple(draw(st.lists(st.sampled_from(DEPS), unique=True)))
    common: dict[str, Any] = {"status": SUBMITTED, "retry_strategy": strategy, "pending": deps}
    common["depends_on"] = tuple(Dependency(d) for d in deps)
    size = draw(st.integers(2, 4))
    if kind == "parent":
        job = a_parent(size, **common)
    elif kind == "child":
        job = a_child("parent", draw(st.integers(0, 3)), **common)
    else:
        job = a_job(**common)

    # The script of one run.
    script: list[Event] = [Evaluate()]
    for dep in deps:
        script.append(DependencyFailed(dep) if draw(st.integers(0, 9)) == 0 else DependencySucceeded(dep))
    if kind == "parent":
        created = sorted(draw(st.lists(st.integers(1, size), min_size=1, max_size=3, unique=True)))
        script += [ChildrenCreated(k) for k in [*created, size]]
        script += [ChildFinished(i, draw(st.sampled_from([True, True, False]))) for i in range(size)]
        script.append(CheckChildren())
    else:
        for n in range(1, max_attempts + 1):
            stop = replace(draw(STOPS), attempt=n)
            script += [Claim("spot", f"task-{n}", f"log-{n}"), TaskStarted(n), stop]

    # Delivery: strays, duplicates, neighbours swapped.
    attempt = st.integers(1, max_attempts + 1)
    strays = st.one_of(
        st.builds(Cancel, st.just("cancelled")),
        st.builds(Terminate, st.just("terminated")),
        st.builds(TimedOut, attempt),
        st.builds(TaskStarted, attempt),
        st.builds(TaskStopped, attempt, st.sampled_from([0, 1, None])),
        st.builds(ChildFinished, st.integers(0, size - 1), st.booleans()),
        st.builds(ChildrenCreated, st.integers(0, size)),
        st.just(CheckChildren()),
        st.just(Evaluate()),
    )
    events = list(script)
    for stray in draw(st.lists(strays, max_size=3)):
        events.insert(draw(st.integers(0, len(events))), stray)
    for _ in range(draw(st.integers(0, 6))):
        i = draw(st.integers(0, len(events) - 1))
        events.insert(draw(st.integers(i + 1, len(events))), events[i])
    for _ in range(draw(st.integers(0, 4))):
        i = draw(st.integers(0, len(events) - 2))
        events[i], events[i + 1] = events[i + 1], events[i]
    return job, events


@settings(max_examples=400, derandomize=True, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenarios())
def test_any_event_sequence_keeps_the_job_valid(scenario: tuple[Job, list[Event]]) -> None:
    job, events = scenario
    for step, event in enumerate(events):
        # WHEN the next event arrives
        outcome = transition(job, event, LATER + step)

        # THEN a terminal job never changes again
        if job.terminal:
            assert outcome == UNCHANGED
        after = outcome.job or job

        # ... the status is valid, and an array parent is never placed
        assert after.status in STATUSES
        if after.is_array_parent:
            assert after.status in (SUBMITTED, PENDING, SUCCEEDED, FAILED)
            assert after.attempts == () and after.current is None
            assert after.array is not None and after.array.size is not None
            assert after.array.succeeded + after.array.failed <= after.array.size

        # ... attempts[] only grows (earlier entries untouched), numbered 1..n, never beyond retryStrategy.attempts
        assert after.attempts[: len(job.attempts)] == job.attempts
        assert [a.number for a in after.attempts] == list(range(1, len(after.attempts) + 1))
        assert len(after.attempts) + (1 if after.current else 0) <= after.max_attempts

        # ... an attempt is in flight exactly while the job is STARTING or RUNNING
        assert (after.current is not None) == (after.status in ACTIVE)

        # ... a cancelled or terminated job never succeeds; a succeeded plain job's last attempt exited 0
        if after.is_cancelled or after.is_terminated:
            assert after.status != SUCCEEDED
        if after.status == SUCCEEDED and not after.is_array_parent:
            assert after.attempts[-1].exit_code == 0

        job = after
