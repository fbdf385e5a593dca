"""Translate EventBridge events from ECS and EC2 into lifecycle events (spec §6.2, §6.3). Pure: stdlib + domain.

Which attempt a task runs is encoded in the task's `group`, `batchplane:<jobId>:<attempt>`, set by RunTask
(`ecs.EcsLauncher`). Tags are not part of ECS task state change events (aws/containers-roadmap#2329, #1515);
`startedBy` allows only [A-Za-z0-9_/-] and 36 characters by parts of the ECS documentation (a job id with its
attempt does not fit); `group` is a plain field of the Task object that every task state change event carries.

The same translation reads a DescribeTasks `Task`: an event's `detail` has the Task's shape (its timestamps are ISO
strings instead of epoch numbers; none is read here).

| ECS lastStatus | lifecycle event |
|---|---|
| PROVISIONING, PENDING, ACTIVATING | nothing: the job is STARTING already |
| RUNNING (also with desiredStatus STOPPED: a Fargate Spot termination notice, a StopTask in progress) | TaskStarted |
| DEACTIVATING, STOPPING, DEPROVISIONING | nothing: the STOPPED event follows |
| STOPPED | TaskStopped(exitCode and reason of the essential container, status_reason = stoppedReason) |

ECS emits a task state change whenever lastStatus or desiredStatus changes: nine for a task that runs and exits
(PROVISIONING, PENDING, ACTIVATING, RUNNING; RUNNING again with desiredStatus STOPPED once the container exited;
DEACTIVATING, STOPPING, DEPROVISIONING, STOPPED). The EventBridge rule (`task_pattern`) passes on only the two this
module turns into lifecycle events, RUNNING while desired RUNNING, and STOPPED, so the others never invoke a Lambda.
RUNNING with desiredStatus STOPPED is left out too: it follows the first RUNNING (or comes when a stop was asked
before the task ran), and the STOPPED event that follows decides the attempt. A lost RUNNING is repaired by the
sweep, which asks ECS for the state of attempts STARTING for long (control/sweep.py).

Both lifecycle events carry the task's ARN: the attempt records it (DescribeJobs `taskArn`) and its log stream
`<jd>/default/<ECS task id>`.

`status_reason` is the task's `stoppedReason`, unchanged, as AWS Batch surfaces it: "Essential container in task
exited", "Host EC2 (instance i-…) terminated." for a reclaimed EC2 (Spot) host, "Your Spot Task was interrupted." for
Fargate Spot, the StopTask reason for a stop batchplane asked for. Only when ECS gives no stoppedReason is one derived
from the `stopCode`. A task stopped with the timeout reason is reported `timed_out`.

Delivery is at least once and unordered; a translation depends on the event alone, so duplicates translate
identically, and the state machine ignores events for states/attempts they no longer apply to. `detail.version`
(ECS increments it on every change of the task) is returned for logging and ordering checks.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from chalicelib.domain import digits
from chalicelib.domain.jobs import ESSENTIAL_EXITED, TIMEOUT_REASON
from chalicelib.domain.lifecycle import TaskStarted, TaskStopped

# Batch's reason texts live in the domain (control/ and runtime/ use them too); re-exported here for the ECS code.
from chalicelib.domain.reasons import FARGATE_SPOT_INTERRUPTED as FARGATE_SPOT_INTERRUPTED
from chalicelib.domain.reasons import TASK_FAILED_TO_START as TASK_FAILED_TO_START
from chalicelib.domain.reasons import host_terminated_reason as host_terminated_reason

TASK_STATE_CHANGE = "ECS Task State Change"
SPOT_INTERRUPTION_WARNING = "EC2 Spot Instance Interruption Warning"
INSTANCE_STATE_CHANGE = "EC2 Instance State-change Notification"

CONTAINER_NAME = "default"  # the one container of a batchplane task definition (log stream <jd>/default/<task id>)
GROUP_PREFIX = "batchplane:"
MAX_GROUP = 255

SPOT_STOP_CODES = ("TerminationNotice", "SpotInterruption")

_STARTED = frozenset({"RUNNING"})
_STOPPED = "STOPPED"


@dataclass(frozen=True)
class TaskEvent:
    """One ECS task state change, as the lifecycle event for the attempt the task runs."""

    job_id: str
    attempt: int
    event: TaskStarted | TaskStopped
    version: int | None = None  # detail.version: the task's change counter
    task_arn: str | None = None


# -- identity of a task ----------------------------------------------------------------------------------------


def task_group(job_id: str, attempt: int) -> str:
    """The RunTask `group` of an attempt: `batchplane:<jobId>:<attempt>`."""
    group = f"{GROUP_PREFIX}{job_id}:{attempt}"
    if len(group) > MAX_GROUP:
        raise ValueError(f"job id too long for an ECS task group: {job_id[:40]}...")
    return group


def parse_group(group: object) -> tuple[str, int] | None:
    """(job id, attempt) of a batchplane task group; None for any other group (tasks batchplane did not start)."""
    if not isinstance(group, str) or not group.startswith(GROUP_PREFIX):
        return None
    job_id, sep, attempt = group[len(GROUP_PREFIX) :].rpartition(":")
    number = digits.parse(attempt)
    if not sep or not job_id or number is None or number < 1:
        return None
    return job_id, number


def log_stream_name(job_definition_name: str, task_arn: str) -> str:
    """The awslogs stream of a task: `<prefix>/<container>/<ECS task id>`, the prefix being the job definition name
    (the same form as AWS Batch's `logStreamName`)."""
    return f"{job_definition_name[:200]}/{CONTAINER_NAME}/{task_arn.rsplit('/', 1)[-1]}"


# -- ECS task state change ---------------------------------------------------------------------------------------


def task_event(event: Mapping[str, Any]) -> TaskEvent | None:
    """Translate an EventBridge "ECS Task State Change" envelope; None for other events, tasks batchplane did not
    start, and states that change nothing (PROVISIONING, PENDING, ...)."""
    if event.get("detail-type") != TASK_STATE_CHANGE or event.get("source") not in (None, "aws.ecs"):
        return None
    detail = event.get("detail")
    return task_state(detail) if isinstance(detail, Mapping) else None


def task_state(task: Mapping[str, Any]) -> TaskEvent | None:
    """Translate a Task: an event's `detail` or an element of DescribeTasks' `tasks`."""
    identity = parse_group(task.get("group"))
    if identity is None:
        return None
    job_id, attempt = identity
    last = task.get("lastStatus")
    raw_arn = task.get("taskArn")
    arn = raw_arn if isinstance(raw_arn, str) and raw_arn else None
    lifecycle_event: TaskStarted | TaskStopped
    raw_instance = task.get("containerInstanceArn")  # present for tasks on EC2 capacity, absent on Fargate
    instance = raw_instance if isinstance(raw_instance, str) and raw_instance else None
    if last in _STARTED:
        lifecycle_event = TaskStarted(attempt, task_arn=arn, container_instance_arn=instance)
    elif last == _STOPPED:
        lifecycle_event = replace(_stopped(task, attempt, arn), container_instance_arn=instance)
    else:
        return None
    version = task.get("version")
    return TaskEvent(
        job_id,
        attempt,
        lifecycle_event,
        version=version if isinstance(version, int) and not isinstance(version, bool) else None,
        task_arn=arn,
    )


def essential_container(task: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The container whose exit decides the attempt: batchplane's (named `default`), else the first one."""
    containers = [c for c in task.get("containers") or [] if isinstance(c, Mapping)]
    for c in containers:
        if c.get("name") == CONTAINER_NAME:
            return c
    return containers[0] if containers else None


def _container_ends(task: Mapping[str, Any]) -> tuple[dict[str, Any], ...]:
    """A multi-container task's containers' ends ({"name", "exitCode"?, "reason"?}); () for batchplane's
    single-container tasks (one container named `default`)."""
    containers = [c for c in task.get("containers") or [] if isinstance(c, Mapping)]
    if len(containers) <= 1 and all(c.get("name") == CONTAINER_NAME for c in containers):
        return ()
    ends = []
    for c in containers:
        end: dict[str, Any] = {"name": str(c.get("name"))}
        if isinstance(c.get("exitCode"), int) and not isinstance(c.get("exitCode"), bool):
            end["exitCode"] = c["exitCode"]
        if isinstance(c.get("reason"), str) and c["reason"]:
            end["reason"] = c["reason"][:255]
        ends.append(end)
    return tuple(ends)


def _stopped(task: Mapping[str, Any], attempt: int, task_arn: str | None) -> TaskStopped:
    stopped = _single_stopped(task, attempt, task_arn)
    ends = _container_ends(task)
    # A multi-container job's task: the job's exit follows its essential containers, which only the job's definition
    # names (the lifecycle decides; for a single-container job it keeps the exit of `default`).
    return replace(stopped, containers=ends, decide_exit=True) if ends else stopped


def _single_stopped(task: Mapping[str, Any], attempt: int, task_arn: str | None) -> TaskStopped:
    container = essential_container(task) or {}
    code = container.get("exitCode")
    exit_code = code if isinstance(code, int) and not isinstance(code, bool) else None
    reason = container.get("reason")
    stopped_reason = task.get("stoppedReason")
    status_reason = stopped_reason if isinstance(stopped_reason, str) and stopped_reason else _derived_reason(task)
    return TaskStopped(
        attempt,
        exit_code,
        reason=reason if isinstance(reason, str) and reason else None,
        status_reason=status_reason,
        timed_out=status_reason == TIMEOUT_REASON,
        task_arn=task_arn,
    )


def _derived_reason(task: Mapping[str, Any]) -> str | None:
    """A statusReason when ECS gave no stoppedReason (not seen in practice; kept so retry rules still match)."""
    stop_code = task.get("stopCode")
    if stop_code in SPOT_STOP_CODES:
        fargate = task.get("launchType") == "FARGATE" or task.get("capacityProviderName") in ("FARGATE_SPOT", "FARGATE")
        return FARGATE_SPOT_INTERRUPTED if fargate else host_terminated_reason("unknown")
    if stop_code == "TaskFailedToStart":
        return TASK_FAILED_TO_START
    if stop_code == "EssentialContainerExited":
        return ESSENTIAL_EXITED
    return None


# -- EC2 ----------------------------------------------------------------------------------------------------------


def spot_interruption(event: Mapping[str, Any]) -> str | None:
    """The instance id of an "EC2 Spot Instance Interruption Warning" (any instance-action: terminate, stop and
    hibernate all take the host away), else None. The warning comes ~2 minutes ahead and is best effort; the tasks'
    own STOPPED events decide the jobs."""
    if event.get("detail-type") != SPOT_INTERRUPTION_WARNING:
        return None
    return _instance_id(event)


def instance_terminated(event: Mapping[str, Any]) -> str | None:
    """The instance id of an "EC2 Instance State-change Notification" with state `terminated`, else None."""
    if event.get("detail-type") != INSTANCE_STATE_CHANGE:
        return None
    detail = event.get("detail")
    if not isinstance(detail, Mapping) or detail.get("state") != "terminated":
        return None
    return _instance_id(event)


def _instance_id(event: Mapping[str, Any]) -> str | None:
    if event.get("source") not in (None, "aws.ec2"):
        return None
    detail = event.get("detail")
    instance = detail.get("instance-id") if isinstance(detail, Mapping) else None
    return instance if isinstance(instance, str) and instance else None


# -- rule patterns ------------------------------------------------------------------------------------------------


def task_pattern() -> dict[str, Any]:
    """The EventBridge pattern of the task state changes `task_event` acts on: batchplane's tasks (by group) that
    became RUNNING (and are meant to run) or STOPPED. The rule of app.py; infra adds the stack's cluster."""
    return {
        "source": ["aws.ecs"],
        "detail-type": [TASK_STATE_CHANGE],
        "detail": {
            "group": [{"prefix": GROUP_PREFIX}],
            "$or": [{"lastStatus": sorted(_STARTED), "desiredStatus": sorted(_STARTED)}, {"lastStatus": [_STOPPED]}],
        },
    }


def task_rule_pattern(cluster_arn: str) -> dict[str, Any]:
    """`task_pattern` for the tasks of one cluster."""
    pattern = task_pattern()
    pattern["detail"] = {"clusterArn": [cluster_arn], **pattern["detail"]}
    return pattern
