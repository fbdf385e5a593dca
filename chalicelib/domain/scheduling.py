"""One scheduling cycle over an immutable snapshot. Pure.

1. Queues in descending priority (ties: name), ENABLED only.
2. Within a queue, RUNNABLE jobs in FIFO order (the snapshot gives them in order).
3. For each job, the queue's compute environments in ascending `order`; the first ENABLED and VALID one with
   enough free vCPUs takes it (overflow to the next).
4. A job that fits no compute environment of its queue even when empty is blocked with AWS's
   MISCONFIGURATION:COMPUTE_ENVIRONMENT_MAX_RESOURCE reason and skipped; a job that fits but not now blocks the
   rest of its queue (FIFO: no backfill), and the cycle goes on with the next queue.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

MAX_RESOURCE = (
    "MISCONFIGURATION:COMPUTE_ENVIRONMENT_MAX_RESOURCE - CE(s) associated with the job queue cannot meet the CPU "
    "requirement of the job."
)
NO_VALID_CE = "ACTION_REQUIRED - CE(s) associated with the job queue are invalid."
NO_CE = "MISCONFIGURATION:JOB_QUEUE_NO_COMPUTE_ENVIRONMENT - the job queue has no compute environment."


@dataclass(frozen=True)
class CapacityView:
    name: str
    max_vcpus: float
    used_vcpus: float
    schedulable: bool


@dataclass(frozen=True)
class QueueView:
    name: str
    priority: int
    enabled: bool
    compute_environments: tuple[str, ...]  # CE names in order


@dataclass(frozen=True)
class JobView:
    job_id: str
    vcpus: float
    status_reason: str | None = None


@dataclass(frozen=True)
class Placement:
    job_id: str
    compute_environment: str


@dataclass(frozen=True)
class Blocked:
    job_id: str
    reason: str


@dataclass(frozen=True)
class Plan:
    placements: tuple[Placement, ...]
    blocked: tuple[Blocked, ...]


def plan(
    queues: Sequence[QueueView],
    capacity: Mapping[str, CapacityView],
    runnable: Mapping[str, Sequence[JobView]],
) -> Plan:
    used = {name: c.used_vcpus for name, c in capacity.items()}
    placements: list[Placement] = []
    blocked: list[Blocked] = []
    for queue in sorted(queues, key=lambda q: (-q.priority, q.name)):
        if not queue.enabled:
            continue
        ces = [capacity[n] for n in queue.compute_environments if n in capacity]
        usable = [c for c in ces if c.schedulable]
        for job in runnable.get(queue.name, ()):
            if not usable:
                reason = NO_VALID_CE if ces else NO_CE
                if job.status_reason != reason:
                    blocked.append(Blocked(job.job_id, reason))
                break
            if all(job.vcpus > c.max_vcpus for c in usable):
                if job.status_reason != MAX_RESOURCE:
                    blocked.append(Blocked(job.job_id, MAX_RESOURCE))
                continue
            target = next((c for c in usable if used[c.name] + job.vcpus <= c.max_vcpus), None)
            if target is None:
                break  # the head of this queue waits for capacity
            used[target.name] += job.vcpus
            placements.append(Placement(job.job_id, target.name))
    return Plan(tuple(placements), tuple(blocked))
