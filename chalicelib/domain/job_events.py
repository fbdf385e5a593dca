"""The events the job state machine applies (spec §4.1; domain/lifecycle.py `transition`). Pure data.

They are part of domain/lifecycle.py's vocabulary and imported from there (`lifecycle.TaskStopped`); this module
only holds them, as domain/effects.py holds the effects.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

# -- events ----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Evaluate:
    """Decide SUBMITTED -> PENDING/RUNNABLE from the job's own pending dependencies."""


@dataclass(frozen=True)
class DependencySucceeded:
    job_id: str


@dataclass(frozen=True)
class DependencyFailed:
    job_id: str
    gone: bool = False  # the dependency no longer exists (removed after its retention before its dependent learned)


@dataclass(frozen=True)
class Claim:
    """The dispatcher placed the job on a compute environment: RUNNABLE -> STARTING."""

    compute_environment: str
    task_id: str
    log_stream: str
    caps: tuple[tuple[str, int], ...] = ()  # the concurrency caps the job starts under (domain/caps.py)
    capacity: str | None = None  # the compute environment's resource type (what domain/cost.py prices)
    run: str | None = None  # the run it is claimed in with other children of its array (domain/runs.py)


@dataclass(frozen=True)
class TaskStarted:
    """The attempt's task runs. `task_arn` (ECS) replaces the task id the claim planned; `log_stream`, when not
    given with it, is the claim's stream prefix with the real task id (`<jd>/default/<ECS task id>`)."""

    attempt: int
    task_arn: str | None = None
    log_stream: str | None = None
    container_instance_arn: str | None = None  # ECS on EC2 capacity; None on Fargate
    # A multi-node job's main node runs at this address: the other nodes are to be launched with it (LaunchNodes;
    # None where the launcher runs the nodes itself, compute/nodes.py)
    main_address: str | None = None


@dataclass(frozen=True)
class TaskStopped:
    attempt: int
    exit_code: int | None
    reason: str | None = None  # container reason
    status_reason: str | None = None  # task stop reason; defaults to "Essential container in task exited"
    timed_out: bool = False
    task_arn: str | None = None  # as in TaskStarted: a STOPPED event may be the first one to arrive
    log_stream: str | None = None
    container_instance_arn: str | None = None
    # A multi-container task's containers' ends ({"name", "exitCode"?, "reason"?}; domain/ecs_task.py `results`)
    containers: tuple[dict[str, Any], ...] = ()
    # The exit code and reason are to be derived from `containers` and the job's essential containers (an ECS task
    # state change does not say which container ended the task: domain/ecs_task.py `exit_of_stopped_task`).
    decide_exit: bool = False
    nodes: dict[str, dict[str, Any]] | None = None  # a multi-node job: its nodes' ends (Attempt.nodes)
    # A multi-node job's attempt ends with this event while other nodes' tasks may run: stop them with this reason
    # (StopTask; None where the launcher stops the nodes itself, compute/nodes.py)
    stop_nodes: str | None = None


@dataclass(frozen=True)
class NodeStopped:
    """A node of a multi-node parallel job ended while its main node runs on (the job goes on)."""

    attempt: int
    index: int
    exit_code: int | None
    reason: str | None = None
    status_reason: str | None = None
    task_arn: str | None = None  # the node's task (ECS), recorded with its end when no NodeStarted came first
    log_stream: str | None = None


@dataclass(frozen=True)
class NodeStarted:
    """A node of a multi-node parallel job that is not the main node runs in its own task (ECS: docs/adr/0027): its
    task ARN and log stream are recorded in the attempt (`Attempt.nodes`), once. `log_stream` None: the attempt's
    stream prefix with the task's id, as for the main node's task (`lifecycle._with_task`)."""

    attempt: int
    index: int
    task_arn: str
    log_stream: str | None = None


@dataclass(frozen=True)
class Cancel:
    reason: str


@dataclass(frozen=True)
class Terminate:
    reason: str


@dataclass(frozen=True)
class TimedOut:
    """The current attempt ran past attemptDurationSeconds (found by a sweep; the local launcher times itself)."""

    attempt: int


@dataclass(frozen=True)
class ChildFinished:
    """An array child reached a terminal state (applies to the parent)."""

    index: int
    succeeded: bool


@dataclass(frozen=True)
class CheckChildren:
    """Re-check whether an array parent is complete (after its children were cancelled)."""


@dataclass(frozen=True)
class ChildrenCreated:
    """The parent's children up to `count` exist in the store."""

    count: int


Event = (
    Evaluate
    | DependencySucceeded
    | DependencyFailed
    | Claim
    | TaskStarted
    | TaskStopped
    | NodeStopped
    | NodeStarted
    | Cancel
    | Terminate
    | TimedOut
    | ChildFinished
    | CheckChildren
    | ChildrenCreated
)
