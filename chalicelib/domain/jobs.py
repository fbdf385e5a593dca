"""Jobs and their attempts. Pure: stdlib only.

A Job is immutable; every change is a new Job produced by `lifecycle.transition` and persisted with one conditional
write. `attempts` holds finished attempts (Batch's `attempts[]`); the attempt in flight is `current`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from chalicelib.domain import digits
from chalicelib.domain.retry import RetryStrategy

SUBMITTED = "SUBMITTED"
PENDING = "PENDING"
RUNNABLE = "RUNNABLE"
STARTING = "STARTING"
RUNNING = "RUNNING"
SUCCEEDED = "SUCCEEDED"
FAILED = "FAILED"
STATUSES = (SUBMITTED, PENDING, RUNNABLE, STARTING, RUNNING, SUCCEEDED, FAILED)
TERMINAL = (SUCCEEDED, FAILED)
ACTIVE = (STARTING, RUNNING)

DEPENDENCY_FAILED = "Dependent Job failed"
ESSENTIAL_EXITED = "Essential container in task exited"
TIMEOUT_REASON = "Job attempt duration exceeded timeout"
# The statusReason of a PENDING job whose cancel waits for its dependencies (lifecycle.py, Cancel); the cancel's own
# reason follows, and becomes the statusReason once the job fails.
CANCEL_PENDING = "Cancel requested; the job fails once its dependencies complete. Reason: "


@dataclass(frozen=True)
class Timeout:
    """A job's timeout. `attempt_duration_seconds` None: not given. Built from the wire at submit (`from_wire`) and
    rendered back unchanged (`to_wire`), like the retry strategy (docs/adr/0025)."""

    attempt_duration_seconds: int | None = None

    @classmethod
    def from_wire(cls, timeout: Mapping[str, Any] | None) -> Timeout | None:
        """The typed timeout of a wire (or stored) JobTimeout; None for none or an empty one (`{}`)."""
        if not timeout:
            return None
        seconds = timeout.get("attemptDurationSeconds")
        return cls(int(seconds) if seconds is not None else None)

    def to_wire(self) -> dict[str, Any]:
        if self.attempt_duration_seconds is None:
            return {}
        return {"attemptDurationSeconds": self.attempt_duration_seconds}


@dataclass(frozen=True)
class Attempt:
    """One placement of a job: from claim (STARTING) to the task's stop."""

    number: int  # 1-based, AWS_BATCH_JOB_ATTEMPT
    task_id: str
    compute_environment: str  # CE name
    log_stream: str
    created_at: int
    started_at: int | None = None
    stopped_at: int | None = None
    exit_code: int | None = None
    reason: str | None = None  # the container's reason (e.g. OutOfMemoryError: ...)
    status_reason: str | None = None  # why the task stopped (Essential container in task exited, Host EC2 ...)
    container_instance_arn: str | None = None  # the ECS container instance it ran on (EC2 capacity; not Fargate)
    # A multi-container job's containers' ends: ({"name", "exitCode"?, "reason"?}, ...) (domain/ecs_task.py)
    containers: tuple[dict[str, Any], ...] = ()
    # A multi-node parallel job's nodes, by index ("0"): those that ended, {"exitCode", "reason", "statusReason",
    # "stoppedAt", "withMain": stopped because the main node ended}, and (ECS) the non-main nodes' own tasks,
    # {"taskId"} or {"taskArn", "logStream"} (domain/nodes.py `task_record`; `node_ended` tells the two apart).
    # None for other jobs.
    nodes: dict[str, dict[str, Any]] | None = None
    # The capacity it was placed on (its compute environment's FARGATE | FARGATE_SPOT | EC2 | SPOT; None:
    # unmanaged or unknown), what its cost is priced at (domain/cost.py).
    capacity: str | None = None
    # The run it was claimed in with other children of its array, which hold one slot between them (domain/runs.py,
    # docs/adr/0040); None for an attempt claimed on its own.
    run: str | None = None


@dataclass(frozen=True)
class Dependency:
    job_id: str | None
    type: str | None = None  # None (plain), N_TO_N, SEQUENTIAL


@dataclass(frozen=True)
class ArrayInfo:
    """On a parent: size (+ bookkeeping). On a child: index and the parent's id."""

    size: int | None = None
    index: int | None = None
    parent_id: str | None = None
    # Parent bookkeeping: children written so far, and terminal children by outcome.
    children_created: int = 0
    succeeded: int = 0
    failed: int = 0
    # One bit per child index, set when that child was counted: makes ChildFinished idempotent. Hex, so it stays
    # a plain JSON string. The bits start at `done_base` (a multiple of 8: every index below it was counted), and
    # full leading bytes are dropped as they fill, so the bitmap spans only the children still running
    # (domain/arrays.py; docs/adr/0031-lazy-array-children.md).
    done_bits: str = ""
    done_base: int = 0
    # Children written ahead of the finished ones, at most (0: all at once, as before ADR 0031).
    window: int = 0


@dataclass(frozen=True)
class Job:
    job_id: str
    name: str
    arn: str
    queue: str  # queue name
    queue_arn: str
    job_definition_arn: str
    job_definition_name: str
    status: str
    created_at: int
    # What the job runs: the job definition's containerProperties with the submit overrides applied.
    container: dict[str, Any] = field(default_factory=dict)
    # A multi-container job runs these instead: the definition's ecsProperties with ecsPropertiesOverride applied.
    ecs_properties: dict[str, Any] | None = None
    parameters: dict[str, str] = field(default_factory=dict)
    retry_strategy: RetryStrategy | None = None
    timeout: Timeout | None = None
    depends_on: tuple[Dependency, ...] = ()
    pending: tuple[str, ...] = ()  # ids of dependencies not yet SUCCEEDED
    array: ArrayInfo | None = None
    vcpus: float = 1.0
    memory: int = 2048
    status_reason: str | None = None
    reason_since: int | None = None  # epoch ms the scheduler set status_reason (jobStateTimeLimitActions)
    started_at: int | None = None
    stopped_at: int | None = None
    attempts: tuple[Attempt, ...] = ()
    current: Attempt | None = None
    share_identifier: str | None = None
    scheduling_priority: int | None = None
    tags: dict[str, str] = field(default_factory=dict)
    propagate_tags: bool = False
    platform_capabilities: tuple[str, ...] = ()
    is_cancelled: bool = False
    is_terminated: bool = False
    cancel_reason: str | None = None  # a CancelJob of a PENDING job, waiting for its dependencies to complete
    # The consumable resources the job takes while an attempt is in flight: resource ARN -> units
    # (domain/consumables.py).
    consumable_resources: dict[str, int] = field(default_factory=dict)
    # The concurrency caps (scope -> limit, domain/caps.py) the current or last attempt was claimed under: its
    # claim took one from each scope's running count and its end gives it back (store/caps.py).
    caps: dict[str, int] = field(default_factory=dict)
    # A multi-node parallel job: its nodeProperties (definition + nodeOverrides; domain/nodes.py). On a node job
    # (a view, never stored), the node's index as well.
    node_properties: dict[str, Any] | None = None
    node_index: int | None = None
    updated_at: int = 0
    version: int = 0

    @property
    def is_array_parent(self) -> bool:
        return self.array is not None and self.array.size is not None

    @property
    def is_array_child(self) -> bool:
        return self.array is not None and self.array.index is not None

    @property
    def is_multinode(self) -> bool:
        """A multi-node parallel job (the parent: its nodes are views of it, domain/nodes.py)."""
        return self.node_properties is not None and self.node_index is None

    @property
    def terminal(self) -> bool:
        return self.status in TERMINAL

    @property
    def attempt_number(self) -> int:
        """The number the next (or current) attempt has."""
        return self.current.number if self.current else len(self.attempts) + 1

    @property
    def max_attempts(self) -> int:
        return self.retry_strategy.max_attempts if self.retry_strategy else 1

    @property
    def attempt_seconds(self) -> int | None:
        """How long an attempt may run (the timeout's attemptDurationSeconds); None: unlimited."""
        return self.timeout.attempt_duration_seconds if self.timeout else None

    @property
    def deadline(self) -> int | None:
        """Epoch ms at which the current attempt times out: its startedAt plus attemptDurationSeconds, as AWS counts
        it. None while no attempt runs (a STARTING attempt's clock has not started) or without a timeout. Derived
        from what is stored, so no timer is lost when the control plane restarts (docs/adr/0025)."""
        seconds, current = self.attempt_seconds, self.current
        if not seconds or current is None or current.started_at is None:
            return None
        return current.started_at + seconds * 1000

    def timed_out(self, now_ms: int) -> bool:
        """The job is RUNNING past its current attempt's deadline (marked already or not)."""
        deadline = self.deadline
        return self.status == RUNNING and deadline is not None and now_ms >= deadline

    @property
    def timeout_marked(self) -> bool:
        """The current attempt was found past its deadline and asked to stop (lifecycle.TimedOut)."""
        return self.current is not None and self.current.status_reason == TIMEOUT_REASON


# An `Attempt.nodes` record's keys that are not the node's end but its task (ECS: domain/nodes.py `task_record`)
NODE_TASK_KEYS = frozenset({"taskId", "taskArn", "logStream"})


def node_ended(record: Mapping[str, Any] | None) -> bool:
    """An `Attempt.nodes` record says the node ended: it holds more than the node's task (lifecycle `NodeStarted`
    records only that; every end records its statusReason, and older records held an end only)."""
    return record is not None and any(k not in NODE_TASK_KEYS for k in record)


def node_task_recorded(record: Mapping[str, Any] | None) -> bool:
    """An `Attempt.nodes` record holds the node's own task (lifecycle `NodeStarted`, or with its end)."""
    return record is not None and ("taskId" in record or "taskArn" in record)


def bitmap_has(bits: str, index: int) -> bool:
    byte = index // 8
    if byte * 2 + 2 > len(bits):
        return False
    return bool(int(bits[byte * 2 : byte * 2 + 2], 16) & (1 << (index % 8)))


def bitmap_set(bits: str, index: int) -> str:
    byte = index // 8
    raw = bytearray.fromhex(bits)
    if len(raw) <= byte:
        raw.extend(bytes(byte + 1 - len(raw)))
    raw[byte] |= 1 << (index % 8)
    return raw.hex()


def child_id(parent_id: str, index: int) -> str:
    return f"{parent_id}:{index}"


def split_child_id(job_id: str) -> tuple[str, int] | None:
    """`<parent>:<index>` -> (parent, index); None for a job id that is not an array child's."""
    parent, sep, index = job_id.rpartition(":")
    value = digits.parse(index)
    if not sep or value is None:
        return None
    return parent, value
