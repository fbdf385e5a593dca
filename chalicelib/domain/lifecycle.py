"""The job state machine as data (spec §4.1). Pure.

`transition(job, event, now)` is the one function that decides a job's next state. It returns an `Outcome`: the new
job (None when the event changes nothing: a duplicate, a stale attempt, a state the event does not apply to) and
the effects `control/` must carry out after persisting it with one conditional write. Of those, the commands
(Launch, StopTask) are run from the outcome; the others are carried by the committed change and run, in both
runtimes, from `effects.effects_of(old, new)`, which tests/unit/test_effects.py holds equal to what this
module lists for every transition (docs/adr/0023-one-effects-pipeline.md).

`TRANSITIONS` lists, per event, the states it applies in; everything else is ignored. Ignoring is how duplicate and
out-of-order events become harmless: an event that already took effect finds the job in a state it does not apply
to, or an attempt number that is no longer current.
"""

from __future__ import annotations

from chalicelib.domain import arrays, conditions, ecs_task, nodes, retry

# The effects (domain/effects.py) are part of this module's vocabulary: `lifecycle.Publish`, `lifecycle.Outcome`.
from chalicelib.domain.effects import (
    UNCHANGED,
    CancelChildren,
    CreateChildren,
    Effect,
    Launch,
    LaunchNodes,
    NotifyDependents,
    NotifyParent,
    Outcome,
    Publish,
    PublishNode,
    StopTask,
    WakeDispatcher,
)

# So are the events (domain/job_events.py): `lifecycle.TaskStopped`.
from chalicelib.domain.job_events import (
    Cancel,
    CheckChildren,
    ChildFinished,
    ChildrenCreated,
    Claim,
    DependencyFailed,
    DependencySucceeded,
    Evaluate,
    Event,
    NodeStarted,
    NodeStopped,
    TaskStarted,
    TaskStopped,
    Terminate,
    TimedOut,
)
from chalicelib.domain.jobs import (
    CANCEL_PENDING,
    ESSENTIAL_EXITED,
    FAILED,
    PENDING,
    RUNNABLE,
    RUNNING,
    STARTING,
    SUBMITTED,
    SUCCEEDED,
    TIMEOUT_REASON,
    Attempt,
    Job,
    node_ended,
    node_task_recorded,
)
from chalicelib.domain.records import replace

__all__ = [  # the re-exported effects and events; everything defined below is public as well
    "UNCHANGED",
    "Cancel",
    "CancelChildren",
    "CheckChildren",
    "ChildFinished",
    "ChildrenCreated",
    "Claim",
    "CreateChildren",
    "DependencyFailed",
    "DependencySucceeded",
    "Effect",
    "Evaluate",
    "Event",
    "Launch",
    "LaunchNodes",
    "NodeStarted",
    "NodeStopped",
    "NotifyDependents",
    "NotifyParent",
    "Outcome",
    "Publish",
    "PublishNode",
    "StopTask",
    "TaskStarted",
    "TaskStopped",
    "Terminate",
    "TimedOut",
    "WakeDispatcher",
]

# Per event: the states it applies in. Anything else is ignored (UNCHANGED). The functions below decide the target.
TRANSITIONS: dict[str, frozenset[str]] = {
    "Evaluate": frozenset({SUBMITTED, PENDING}),
    "DependencySucceeded": frozenset({SUBMITTED, PENDING}),
    "DependencyFailed": frozenset({SUBMITTED, PENDING}),
    "Claim": frozenset({RUNNABLE}),
    "TaskStarted": frozenset({STARTING, RUNNING}),  # RUNNING: a multi-node job's repeated main node start
    "TaskStopped": frozenset({STARTING, RUNNING}),
    "NodeStopped": frozenset({STARTING, RUNNING}),
    "NodeStarted": frozenset({STARTING, RUNNING}),
    "Cancel": frozenset({SUBMITTED, PENDING, RUNNABLE}),
    "Terminate": frozenset({SUBMITTED, PENDING, RUNNABLE, STARTING, RUNNING}),
    "TimedOut": frozenset({RUNNING}),
    "ChildFinished": frozenset({PENDING}),
    "CheckChildren": frozenset({PENDING}),
    "ChildrenCreated": frozenset({PENDING}),
}


def transition(job: Job, event: Event, now: int) -> Outcome:
    if isinstance(event, TaskStopped) and event.stop_nodes is not None and _over(job, event.attempt):
        # A multi-node attempt that is over, told again that it ended (its main node's STOPPED delivered again, or a
        # node task still running: task_events): ask its nodes' tasks to stop again, without a write. A crash between
        # the end's write and its StopTask left them running, and this redelivery is the repair (stopping twice is
        # harmless: only the tasks still running are asked).
        return Outcome(None, (StopTask(event.attempt, event.stop_nodes),))
    if job.status not in TRANSITIONS[type(event).__name__]:
        return UNCHANGED
    match event:
        case Evaluate():
            if job.status == PENDING and (job.pending or job.is_array_parent):
                return UNCHANGED  # still waiting (a parent's children are created by CreateChildren, not here)
            return _after_dependencies(job, now)
        case DependencySucceeded(job_id=dep) | DependencyFailed(job_id=dep):
            if dep not in job.pending:
                return UNCHANGED
            # AWS's dependency must succeed; a conditional one (domain/conditions.py) may need any end, or a failure
            succeeded, gone = isinstance(event, DependencySucceeded), isinstance(event, DependencyFailed) and event.gone
            condition = conditions.of(job.depends_on, dep)
            if conditions.met(condition, succeeded) and not (gone and condition == conditions.AFTER_NOT_OK):
                return _after_dependencies(replace(job, pending=tuple(p for p in job.pending if p != dep)), now)
            return _fail(job, now, conditions.reason(dep, condition, succeeded, gone=gone), children=True)
        case Claim():
            return _claim(job, event, now)
        case TaskStarted(attempt=n):
            if job.current is None or job.current.number != n:
                return UNCHANGED
            if job.status == RUNNING:
                return _main_node_again(job, event)
            current = replace(
                _with_task(job.current, event.task_arn, event.log_stream, event.container_instance_arn), started_at=now
            )
            started = replace(job, status=RUNNING, current=current, started_at=job.started_at or now, updated_at=now)
            if job.is_terminated:
                # Terminated while STARTING: its stop may have come before the task existed, so stop it now.
                return Outcome(started, (Publish(), StopTask(n, job.status_reason or "")))
            if event.main_address is not None and job.node_properties is not None:
                return Outcome(started, (Publish(), LaunchNodes(n, event.main_address)))
            return Outcome(started, (Publish(),))
        case TaskStopped(stop_nodes=why):
            stopped = _stopped(job, event, now)
            if why is None or stopped.job is None:
                return stopped
            return Outcome(stopped.job, (*stopped.effects, StopTask(event.attempt, why)))
        case NodeStopped():
            return _node_stopped(job, event, now)
        case NodeStarted():
            return _node_started(job, event, now)
        case Cancel(reason=why):
            if job.status == PENDING and job.pending:
                # AWS CancelJob: "A PENDING job is canceled after all dependency jobs are completed"
                # (https://docs.aws.amazon.com/batch/latest/APIReference/API_CancelJob.html). The request is recorded
                # (durably: the sweep re-settles PENDING jobs) and `_after_dependencies` carries it out; a dependency
                # that fails fails the job at once, as it would without the cancel, and so does one purged after its
                # retention before the job learned of its end ("Dependent Job failed: <id> no longer exists").
                if job.cancel_reason is not None:
                    return UNCHANGED
                requested = replace(job, cancel_reason=why, status_reason=CANCEL_PENDING + why, updated_at=now)
                return Outcome(requested)
            if job.is_array_parent:
                return _cancel_parent(job, why, now, terminate=False)
            return _fail(replace(job, is_cancelled=True), now, why, children=False)
        case Terminate(reason=why):
            if job.is_array_parent:
                return _cancel_parent(job, why, now, terminate=True)
            if job.status in (STARTING, RUNNING):
                if job.current is None:
                    return UNCHANGED
                if job.is_terminated:
                    # Terminated already: ask again (a stop is idempotent, and this heals one that found no task).
                    return Outcome(None, (StopTask(job.current.number, job.status_reason or why),))
                marked = replace(job, is_terminated=True, status_reason=why, updated_at=now)
                return Outcome(marked, (StopTask(job.current.number, why),))
            return _fail(replace(job, is_terminated=True), now, why, children=False)
        case TimedOut(attempt=n):
            if job.current is None or job.current.number != n:
                return UNCHANGED
            if job.current.status_reason == TIMEOUT_REASON:
                return Outcome(None, (StopTask(n, TIMEOUT_REASON),))  # marked already: only ask again to stop
            # Mark the attempt, so its stop (reported by whichever launcher) is a timeout and never retried.
            marked = replace(job, current=replace(job.current, status_reason=TIMEOUT_REASON), updated_at=now)
            return Outcome(marked, (StopTask(n, TIMEOUT_REASON),))
        case ChildFinished():
            return _child_finished(job, event, now)
        case CheckChildren():
            return _complete_parent(job, job, now) if job.is_array_parent else UNCHANGED
        case ChildrenCreated(count=count):
            if job.array is None or count <= job.array.children_created:
                return UNCHANGED
            return Outcome(replace(job, array=replace(job.array, children_created=count), updated_at=now))
    return UNCHANGED  # pragma: no cover - every event type is matched above


def _after_dependencies(job: Job, now: int) -> Outcome:
    if not job.pending and job.cancel_reason is not None:
        return _fail(replace(job, is_cancelled=True), now, job.cancel_reason, children=False)
    if job.pending:
        if job.status == PENDING:
            return Outcome(replace(job, updated_at=now))  # one fewer pending dependency; no state change
        return Outcome(replace(job, status=PENDING, updated_at=now), (Publish(),))
    if job.is_array_parent:
        # A parent never becomes RUNNABLE: it waits in PENDING for its children, which are created now.
        parked = replace(job, status=PENDING, updated_at=now)
        published: tuple[Effect, ...] = (Publish(),) if job.status != PENDING else ()
        return Outcome(parked, (*published, CreateChildren()))
    return Outcome(replace(job, status=RUNNABLE, status_reason=None, updated_at=now), (Publish(), WakeDispatcher()))


def _claim(job: Job, claim: Claim, now: int) -> Outcome:
    attempt = Attempt(
        number=len(job.attempts) + 1,
        task_id=claim.task_id,
        compute_environment=claim.compute_environment,
        log_stream=claim.log_stream,
        created_at=now,
        capacity=claim.capacity,
        run=claim.run,
    )
    claimed = replace(job, status=STARTING, current=attempt, status_reason=None, updated_at=now, caps=dict(claim.caps))
    return Outcome(claimed, (Publish(), Launch(attempt.number)))


def _over(job: Job, attempt: int) -> bool:
    """The job's attempt `attempt` has ended (it is among the finished attempts)."""
    return any(a.number == attempt for a in job.attempts)


def _stopped(job: Job, stop: TaskStopped, now: int) -> Outcome:
    current = job.current
    if current is None or current.number != stop.attempt:
        return UNCHANGED
    if stop.decide_exit and job.ecs_properties is not None:
        code, reason = ecs_task.exit_of_stopped_task(job.ecs_properties, stop.containers)
        stop = replace(stop, exit_code=code, reason=reason)
    if current.status_reason == TIMEOUT_REASON and not stop.timed_out:
        stop = replace(stop, timed_out=True, status_reason=None)  # TimedOut marked this attempt earlier
    status_reason = stop.status_reason or (TIMEOUT_REASON if stop.timed_out else ESSENTIAL_EXITED)
    finished = replace(
        _with_task(current, stop.task_arn, stop.log_stream, stop.container_instance_arn),
        nodes=nodes.at_end(current.nodes, stop.nodes),
        stopped_at=now,
        exit_code=stop.exit_code,
        reason=stop.reason,
        status_reason=status_reason,
        containers=(stop.containers or current.containers) if job.ecs_properties is not None else (),
    )
    base = replace(job, current=None, attempts=(*job.attempts, finished), updated_at=now)
    if stop.exit_code == 0 and not job.is_terminated and not stop.timed_out:
        done = replace(base, status=SUCCEEDED, status_reason=status_reason, stopped_at=now)
        return Outcome(done, _terminal_effects(done, succeeded=True))
    if job.is_terminated:
        return _fail(base, now, job.status_reason or status_reason, children=False)
    if stop.timed_out:
        return _fail(base, now, TIMEOUT_REASON, children=False)
    decision = retry.evaluate(job.retry_strategy, current.number, stop.exit_code, stop.reason, status_reason)
    if decision == "RETRY":
        again = replace(base, status=RUNNABLE, status_reason=status_reason)
        return Outcome(again, (Publish(), WakeDispatcher()))
    return _fail(base, now, status_reason, children=False)


def _main_node_again(job: Job, started: TaskStarted) -> Outcome:
    """A RUNNING multi-node job's main node reported running again (a redelivered event): ask for its other nodes'
    launch again, without a write (a launch a crash cut short is completed; the launches are idempotent), unless
    the attempt is being stopped (terminated, timed out)."""
    assert job.current is not None
    if started.main_address is None or job.node_properties is None or job.is_terminated or job.current.status_reason:
        return UNCHANGED
    return Outcome(None, (LaunchNodes(started.attempt, started.main_address),))


def _node_stopped(job: Job, stop: NodeStopped, now: int) -> Outcome:
    """Record a node's own end in the attempt (once: a duplicate report changes nothing). Its task, when this is
    the first event of the node to arrive, is recorded with it (a later NodeStarted then changes nothing)."""
    current = job.current
    held = (current.nodes or {}).get(str(stop.index)) if current is not None else None
    if current is None or current.number != stop.attempt or node_ended(held):
        return UNCHANGED
    ended = {"exitCode": stop.exit_code, "reason": stop.reason, "stoppedAt": now}
    ended["statusReason"] = stop.status_reason or ESSENTIAL_EXITED
    if stop.task_arn and not node_task_recorded(held):
        ended |= nodes.task_record(current, stop.task_arn, stop.log_stream)
    record = {**(held or {}), **{k: v for k, v in ended.items() if v is not None}}
    recorded = {**(current.nodes or {}), str(stop.index): record}
    return Outcome(replace(job, current=replace(current, nodes=recorded), updated_at=now), (PublishNode(stop.index),))


def _node_started(job: Job, start: NodeStarted, now: int) -> Outcome:
    """Record a non-main node's task (its ARN and log stream) in the attempt, once: a repeated RUNNING, or one after
    the node's STOPPED (which recorded the task already), changes nothing. Its RUNNING state change is published
    now, carrying its task (docs/adr/0027)."""
    current = job.current
    if current is None or current.number != start.attempt:
        return UNCHANGED
    held = (current.nodes or {}).get(str(start.index)) or {}
    if node_task_recorded(held) or node_ended(held):
        return UNCHANGED
    task = nodes.task_record(current, start.task_arn, start.log_stream)
    recorded = {**(current.nodes or {}), str(start.index): {**held, **task}}
    return Outcome(replace(job, current=replace(current, nodes=recorded), updated_at=now), (PublishNode(start.index),))


def _with_task(attempt: Attempt, task_arn: str | None, log_stream: str | None, instance: str | None) -> Attempt:
    """The attempt with the task the launcher reported (unchanged when it reported none)."""
    instance = instance or attempt.container_instance_arn  # (one copy: twice per task of a short child)
    if task_arn:
        prefix, sep, _ = attempt.log_stream.rpartition("/")
        derived = f"{prefix}/{task_arn.rsplit('/', 1)[-1]}" if sep else attempt.log_stream
        return replace(attempt, container_instance_arn=instance, task_id=task_arn, log_stream=log_stream or derived)
    if log_stream or instance != attempt.container_instance_arn:
        return replace(attempt, container_instance_arn=instance, log_stream=log_stream or attempt.log_stream)
    return attempt


def _fail(job: Job, now: int, reason: str, *, children: bool) -> Outcome:
    failed = replace(job, status=FAILED, status_reason=reason, stopped_at=now, current=None, updated_at=now)
    effects: tuple[Effect, ...] = _terminal_effects(failed, succeeded=False)
    if children and job.is_array_parent:
        effects += (CancelChildren(reason, terminate=False),)
    return Outcome(failed, effects)


def _terminal_effects(job: Job, *, succeeded: bool) -> tuple[Effect, ...]:
    effects: tuple[Effect, ...] = (Publish(), NotifyDependents(succeeded), WakeDispatcher())
    if job.is_array_child:
        effects += (NotifyParent(succeeded),)
    return effects


def _cancel_parent(job: Job, why: str, now: int, *, terminate: bool) -> Outcome:
    """Cancel/terminate reach every child; the parent fails once they are all done (spec §3.6).

    A terminate after a cancel still applies: the cancel left running children alone, the terminate stops them."""
    if job.is_terminated or (job.is_cancelled and not terminate):
        return UNCHANGED
    marked = replace(
        job, is_cancelled=job.is_cancelled or not terminate, is_terminated=terminate, status_reason=why, updated_at=now
    )
    if job.array is not None and job.array.children_created == 0:
        # No child exists yet: nothing to wait for.
        return _fail(marked, now, why, children=False)
    return Outcome(marked, (CancelChildren(why, terminate),))


def _child_finished(job: Job, done: ChildFinished, now: int) -> Outcome:
    array = job.array
    if array is None or array.size is None or not 0 <= done.index < array.size:
        return UNCHANGED
    if arrays.counted(array, done.index):
        return UNCHANGED  # a duplicate notification: this child was counted already
    counted = arrays.count(array, done.index, done.succeeded)
    return _complete_parent(job, replace(job, array=counted, updated_at=now), now)


def _complete_parent(job: Job, updated: Job, now: int) -> Outcome:
    """The parent finishes when every child that will ever exist is terminal: all of them, or after a cancel or
    terminate, those created so far (no more are created)."""
    counted = updated.array
    assert counted is not None and counted.size is not None
    stopped = job.is_cancelled or job.is_terminated
    expected = counted.children_created if stopped else counted.size
    if counted.succeeded + counted.failed < expected:
        return Outcome(updated) if updated is not job else UNCHANGED
    if counted.failed == 0 and not stopped:
        finished = replace(updated, status=SUCCEEDED, stopped_at=now, status_reason=None, updated_at=now)
        return Outcome(finished, _terminal_effects(finished, succeeded=True))
    reason = job.status_reason if stopped else None
    return _fail(updated, now, reason or f"{counted.failed} of {counted.size} child jobs failed", children=False)
