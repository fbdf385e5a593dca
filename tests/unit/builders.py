"""Builders for the pure-domain unit tests: one valid object each, with keyword overrides.

A test states only what it is about: `a_job(status=RUNNABLE)`, `a_running_job(attempt=2, retry_strategy=retries(3))`,
`a_parent(3, created=3, succeeded=[0, 1])`. Everything else gets a sensible default.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from chalicelib.domain.jobs import (
    PENDING,
    RUNNING,
    SUBMITTED,
    ArrayInfo,
    Attempt,
    Job,
    Timeout,
    bitmap_set,
    child_id,
)
from chalicelib.domain.retry import RetryStrategy
from chalicelib.domain.scheduling import CapacityView, JobView, QueueView

ACCOUNT = "123456789012"
REGION = "us-east-1"
NOW = 1_700_000_000_000  # epoch ms
IMAGE = "public.ecr.aws/docker/library/busybox:latest"


def arn(kind: str, name: str) -> str:
    return f"arn:aws:batch:{REGION}:{ACCOUNT}:{kind}/{name}"


# -- jobs ------------------------------------------------------------------------------------------------------


def a_job(job_id: str = "job-1", **overrides: Any) -> Job:
    """A plain SUBMITTED job with one attempt allowed and no dependencies."""
    fields: dict[str, Any] = {
        "job_id": job_id,
        "name": "a-job",
        "arn": arn("job", job_id),
        "queue": "high",
        "queue_arn": arn("job-queue", "high"),
        "job_definition_arn": arn("job-definition", "sleep:1"),
        "job_definition_name": "sleep",
        "status": SUBMITTED,
        "created_at": NOW,
        "updated_at": NOW,
        "container": {"image": IMAGE, "command": ["sleep", "1"]},
    }
    fields.update(overrides)
    # A retry strategy or timeout may be given in its wire form (`retries(3)`, {"attemptDurationSeconds": 60}): the
    # job holds it typed, as submit builds it.
    if isinstance(fields.get("retry_strategy"), Mapping):
        fields["retry_strategy"] = RetryStrategy.from_wire(fields["retry_strategy"])
    if isinstance(fields.get("timeout"), Mapping):
        fields["timeout"] = Timeout.from_wire(fields["timeout"])
    return Job(**fields)


def an_attempt(number: int = 1, **overrides: Any) -> Attempt:
    """An attempt in flight (claimed, not yet started); pass started_at/stopped_at/exit_code for later stages."""
    fields: dict[str, Any] = {
        "number": number,
        "task_id": f"task-{number}",
        "compute_environment": "spot",
        "log_stream": f"sleep/default/task-{number}",
        "created_at": NOW,
    }
    fields.update(overrides)
    return Attempt(**fields)


def a_finished_attempt(number: int = 1, exit_code: int = 1, **overrides: Any) -> Attempt:
    return an_attempt(
        number,
        **{
            "started_at": NOW + 10,
            "stopped_at": NOW + 20,
            "exit_code": exit_code,
            "status_reason": "Essential container in task exited",
            **overrides,
        },
    )


def a_running_job(attempt: int = 1, status: str = RUNNING, **overrides: Any) -> Job:
    """A job on its `attempt`-th placement (earlier attempts finished and failed)."""
    current = an_attempt(attempt, started_at=NOW + 100 if status == RUNNING else None)
    fields: dict[str, Any] = {
        "status": status,
        "current": current,
        "attempts": tuple(a_finished_attempt(n) for n in range(1, attempt)),
        "started_at": NOW + 100 if status == RUNNING else None,
    }
    fields.update(overrides)
    return a_job(**fields)


def retries(attempts: int, *rules: Mapping[str, Any]) -> dict[str, Any]:
    """A retryStrategy: `retries(3, a_rule("EXIT", onExitCode="1"))`."""
    strategy: dict[str, Any] = {"attempts": attempts}
    if rules:
        strategy["evaluateOnExit"] = [dict(r) for r in rules]
    return strategy


def a_rule(action: str, **conditions: str) -> dict[str, Any]:
    """An evaluateOnExit entry: `a_rule("RETRY", onStatusReason="Host EC2*")`."""
    return {"action": action, **conditions}


def done_bits(indices: Iterable[int]) -> str:
    bits = ""
    for i in indices:
        bits = bitmap_set(bits, i)
    return bits


def a_parent(
    size: int,
    *,
    created: int = 0,
    succeeded: Sequence[int] = (),
    failed: Sequence[int] = (),
    job_id: str = "parent",
    **overrides: Any,
) -> Job:
    """An array parent of `size`, PENDING, with `created` children written and the given child indices counted."""
    array = ArrayInfo(
        size=size,
        children_created=created,
        succeeded=len(succeeded),
        failed=len(failed),
        done_bits=done_bits([*succeeded, *failed]),
    )
    fields: dict[str, Any] = {"status": PENDING, "array": array}
    fields.update(overrides)
    return a_job(job_id, **fields)


def a_child(parent_id: str, index: int, **overrides: Any) -> Job:
    fields: dict[str, Any] = {"array": ArrayInfo(index=index, parent_id=parent_id)}
    fields.update(overrides)
    return a_job(child_id(parent_id, index), **fields)


# -- SubmitJob and job definitions -----------------------------------------------------------------------------


def a_submit_request(**overrides: Any) -> dict[str, Any]:
    """A minimal valid SubmitJob request body (wire shape)."""
    req: dict[str, Any] = {"jobName": "a-job", "jobQueue": "high", "jobDefinition": "sleep"}
    req.update(overrides)
    return req


def a_container(**overrides: Any) -> dict[str, Any]:
    """A job definition's containerProperties."""
    container: dict[str, Any] = {
        "image": IMAGE,
        "command": ["echo", "Ref::greeting"],
        "environment": [{"name": "STAGE", "value": "dev"}, {"name": "COLOR", "value": "blue"}],
        "resourceRequirements": [{"type": "VCPU", "value": "1"}, {"type": "MEMORY", "value": "2048"}],
    }
    container.update(overrides)
    return container


def env(**variables: str) -> list[dict[str, str]]:
    return [{"name": k, "value": v} for k, v in variables.items()]


def resources(vcpus: str | None = None, memory: str | None = None) -> list[dict[str, str]]:
    reqs = []
    if vcpus is not None:
        reqs.append({"type": "VCPU", "value": vcpus})
    if memory is not None:
        reqs.append({"type": "MEMORY", "value": memory})
    return reqs


# -- scheduling snapshots --------------------------------------------------------------------------------------


def a_queue(name: str = "high", *ces: str, priority: int = 1, enabled: bool = True) -> QueueView:
    return QueueView(name=name, priority=priority, enabled=enabled, compute_environments=ces or ("spot",))


def a_ce(
    name: str = "spot", max_vcpus: float = 4, used: float = 0, *, schedulable: bool = True, valid: bool = True
) -> CapacityView:
    return CapacityView(name=name, max_vcpus=max_vcpus, used_vcpus=used, schedulable=schedulable, valid=valid)


def capacity(*ces: CapacityView) -> dict[str, CapacityView]:
    return {c.name: c for c in ces}


def a_runnable(job_id: str, vcpus: float = 1, status_reason: str | None = None) -> JobView:
    return JobView(job_id=job_id, vcpus=vcpus, status_reason=status_reason)
