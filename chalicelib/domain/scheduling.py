"""One scheduling cycle over an immutable snapshot. Pure.

1. Queues in descending priority (ties: name), except those being deleted. A DISABLED queue still runs the jobs it
   holds: "If the job queue state is DISABLED, new jobs can't be added to the queue, but jobs already in the queue can
   finish" (JobQueueDetail.state, https://docs.aws.amazon.com/batch/latest/APIReference/API_JobQueueDetail.html).
2. Within a queue, RUNNABLE jobs in dispatch order (`order`): FIFO by submission; on a queue with a fair-share
   policy, the job of the share with the lowest weighted usage next (domain/fairshare.py).
3. For each job, the queue's compute environments in ascending `order`; the first ENABLED and VALID one that can
   run the job and has enough free vCPUs takes it (overflow to the next).
4. A job that can never run on its queue's compute environments is given its MISCONFIGURATION reason and skipped:
   more vCPUs than any of them has (COMPUTE_ENVIRONMENT_MAX_RESOURCE), or a memory size none of them can give
   (JOB_RESOURCE_REQUIREMENT, see `requirement_problem`). A job that could run but not now waits, with a CAPACITY
   reason, and blocks the rest of its queue (no backfill); the cycle goes on with the next queue. A queue with no
   usable compute environment gives its head an ACTION_REQUIRED reason: AWS's for invalid ones, batchplane's own
   (NO_ENABLED_CE) when they are valid but DISABLED.
4b. Consumable resources (domain/consumables.py): a job that fits a compute environment also needs the units of
   the resources it names. Not available now: it waits at the head of its queue with a CAPACITY reason, as it waits
   for vCPUs ("the job will wait in RUNNABLE state until all the required resources become available", user guide,
   resource-aware scheduling). A resource that no longer exists: a MISCONFIGURATION reason, and the job is skipped.
   The units a placement takes are gone for the rest of the cycle, across queues (resources are account-wide).
4c. Concurrency caps (domain/caps.py): a job under a cap whose scope already runs its limit waits with a
   CAPACITY:CONCURRENCY_LIMIT reason. A queue at its cap blocks the queue (nothing behind may start either); an
   array or a share at its cap is skipped, so the rest of the queue goes on (Slurm's `%N` does not hold other
   jobs back). Checked before vCPUs, so a capped job does not wait for capacity it could not use. A placement adds
   one to each of its scopes for the rest of the cycle.
5. Every job the cycle looked at and could not place has a reason; only a changed one is reported (`blocked`),
   so a waiting job is written once, not once per cycle.
6. jobStateTimeLimitActions (spec §5.6): a job so reported whose reason has matched an action's reason for
   maxTimeSeconds is `expired` (the dispatcher cancels it).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from chalicelib.domain import caps, consumables
from chalicelib.domain.fairshare import ShareOrder, ShareState, reservation_limit
from chalicelib.domain.model import EC2_TYPES, FARGATE_TYPES
from chalicelib.domain.platform import FARGATE_MEMORY, ce_platform

MAX_RESOURCE = (
    "MISCONFIGURATION:COMPUTE_ENVIRONMENT_MAX_RESOURCE - CE(s) associated with the job queue cannot meet the CPU "
    "requirement of the job."
)
RESOURCE_REQUIREMENT = (
    "MISCONFIGURATION:JOB_RESOURCE_REQUIREMENT - The job resource requirement (vCPU/memory/GPU) is higher than that "
    "can be met by the CE(s) attached to the job queue."
)
# AWS documents no reason for a platform mismatch (SubmitJob refuses it; a queue can only change under a queued
# job); this keeps the JOB_RESOURCE_REQUIREMENT code so jobStateTimeLimitActions on that reason still apply.
PLATFORM_MISMATCH = (
    "MISCONFIGURATION:JOB_RESOURCE_REQUIREMENT - The job's platform capability {platform} is not supported by the "
    "CE(s) attached to the job queue."
)
NO_VALID_CE = "ACTION_REQUIRED - CE(s) associated with the job queue are invalid."
# AWS documents no reason for a queue whose compute environments are all DISABLED ("the Batch scheduler doesn't
# attempt to place jobs within the environment", ComputeEnvironmentDetail.state); this one says what holds the job.
NO_ENABLED_CE = (
    "ACTION_REQUIRED - CE(s) associated with the job queue are DISABLED: enable one (UpdateComputeEnvironment) for "
    "the job to run."
)
NO_CE = "MISCONFIGURATION:JOB_QUEUE_NO_COMPUTE_ENVIRONMENT - the job queue has no compute environment."
# batchplane's own codes in AWS's shape. They deliberately match no jobStateTimeLimitActions reason: waiting for a
# busy compute environment is normal queueing, and AWS's CAPACITY:INSUFFICIENT_INSTANCE_CAPACITY means EC2 could not
# provide instances, which the scheduler cannot observe (docs/adr/0005-fair-share.md).
WAITING_FOR_CAPACITY = (
    "CAPACITY:COMPUTE_ENVIRONMENT_MAX_VCPUS - The job is at the head of the job queue, waiting for free vCPUs: the "
    "CE(s) associated with the job queue are at maxvCpus."
)
WAITING_FOR_RESERVATION = (
    "CAPACITY:FAIRSHARE_COMPUTE_RESERVATION - The job is at the head of the job queue, waiting: the free vCPUs are "
    "reserved for share identifiers that are not active (computeReservation)."
)
TIME_LIMIT_CANCEL = "Canceled by JobStateTimeLimit action due to reason: {reason}"
# The most memory per vCPU an EC2 instance type Batch can launch has (x2iedn, x2iezn, x1e: 32 GiB per vCPU).
MAX_EC2_MIB_PER_VCPU = 32 * 1024


@dataclass(frozen=True)
class CapacityView:
    name: str
    max_vcpus: float
    used_vcpus: float
    schedulable: bool
    resource_type: str | None = None  # EC2 | SPOT | FARGATE | FARGATE_SPOT; None: unmanaged (no memory rules)
    valid: bool = True  # status VALID (schedulable also needs state ENABLED)


@dataclass(frozen=True)
class TimeLimitAction:
    reason: str
    max_time_seconds: int
    action: str = "CANCEL"


@dataclass(frozen=True)
class QueueView:
    name: str
    priority: int
    enabled: bool  # dispatches: not being deleted (a DISABLED queue still runs the jobs it holds)
    compute_environments: tuple[str, ...]  # CE names in order
    fairshare: ShareState | None = None  # None: a FIFO queue
    time_limit_actions: tuple[TimeLimitAction, ...] = ()


@dataclass(frozen=True)
class JobView:
    job_id: str
    vcpus: float
    status_reason: str | None = None
    memory: int = 2048  # MiB
    share_identifier: str | None = None
    scheduling_priority: int = 0
    reason_since: int | None = None  # epoch ms: since when status_reason holds
    platform: str | None = None  # EC2 | FARGATE (the job definition's platformCapabilities); None: not checked
    consumables: tuple[tuple[str, int], ...] = ()  # (consumable resource name, units) the job takes when placed
    multinode: bool = False  # a multi-node parallel job (vcpus/memory: all its nodes together)
    caps: tuple[tuple[str, int], ...] = ()  # (scope, limit) of the concurrency caps it is under (domain/caps.py)


@dataclass(frozen=True)
class Placement:
    job_id: str
    compute_environment: str


@dataclass(frozen=True)
class Blocked:
    job_id: str
    reason: str


@dataclass(frozen=True)
class Expired:
    """A jobStateTimeLimitAction fires: cancel the job; `reason` is the action's reason."""

    job_id: str
    reason: str

    @property
    def status_reason(self) -> str:
        return TIME_LIMIT_CANCEL.format(reason=self.reason)


@dataclass(frozen=True)
class Plan:
    placements: tuple[Placement, ...]
    blocked: tuple[Blocked, ...]  # reasons to record (only those that changed)
    expired: tuple[Expired, ...] = ()


class FifoOrder:
    """The jobs of a FIFO queue, as given (submission order). Same protocol as fairshare.ShareOrder."""

    def __init__(self, jobs: Sequence[JobView]) -> None:
        self._jobs = jobs
        self._next = 0

    def peek(self) -> JobView | None:
        return self._jobs[self._next] if self._next < len(self._jobs) else None

    def take(self) -> None:
        self._next += 1

    skip = take


def order(queue: QueueView, jobs: Sequence[JobView]) -> FifoOrder | ShareOrder[JobView]:
    """The queue's RUNNABLE jobs (given in submission order) in the order the scheduler takes them."""
    return FifoOrder(jobs) if queue.fairshare is None else ShareOrder(queue.fairshare, jobs)


def dispatch_order(queue: QueueView, jobs: Sequence[JobView]) -> list[JobView]:
    """The order of `order` with every job placed in turn: the front of the queue GetJobQueueSnapshot shows."""
    ordered, taking = [], order(queue, jobs)
    while (job := taking.peek()) is not None:
        ordered.append(job)
        taking.take()
    return ordered


MULTINODE_UNSUPPORTED = (
    "MISCONFIGURATION:JOB_RESOURCE_REQUIREMENT - Multi-node parallel jobs are not supported on SPOT or UNMANAGED "
    "compute environments."
)


def requirement_problem(job: JobView, ce: CapacityView) -> str | None:
    """Why a compute environment big enough in vCPUs can still never run the job (None: it can).

    - Fargate: the (vCPU, memory) pair must be a Fargate task size (the table validation uses at registration).
    - EC2 / SPOT: the memory must fit the largest instance the CE could launch, maxvCpus vCPUs at 32 GiB each.
    - Unmanaged: batchplane does not know the instances, so nothing is ruled out.
    Before all: the CE must run the job's platform (EC2 jobs on EC2/SPOT/unmanaged, FARGATE jobs on Fargate).
    """
    if job.platform is not None and ce_platform(ce.resource_type) != job.platform:
        return PLATFORM_MISMATCH.format(platform=job.platform)
    if job.multinode and ce.resource_type not in ("EC2", "FARGATE", "FARGATE_SPOT"):
        # "Multi-node parallel jobs aren't supported on UNMANAGED compute environments" / "... on compute
        # environments that use Spot Instances" (User Guide, MNP compute environments); the reason is batchplane's.
        return MULTINODE_UNSUPPORTED
    if ce.resource_type in FARGATE_TYPES:
        sizes = FARGATE_MEMORY.get(job.vcpus)
        if sizes is None or job.memory not in sizes:
            return (
                f"MISCONFIGURATION:JOB_RESOURCE_REQUIREMENT - {job.vcpus:g} vCPU with {job.memory} MiB of memory is "
                "not a valid Fargate task size."
            )
    elif ce.resource_type in EC2_TYPES and job.memory > ce.max_vcpus * MAX_EC2_MIB_PER_VCPU:
        return RESOURCE_REQUIREMENT
    return None


def plan(
    queues: Sequence[QueueView],
    capacity: Mapping[str, CapacityView],
    runnable: Mapping[str, Sequence[JobView]],
    now: int | None = None,
    resources: Mapping[str, int] | None = None,
    running: Mapping[str, int] | None = None,
) -> Plan:
    """One cycle. Without `now`, time-limit actions are not evaluated. `resources`: the available units of every
    consumable resource, by name (a job that names one not in it finds it gone). `running`: the jobs running under
    each concurrency-cap scope the jobs name (a scope not in it runs none)."""
    used = {name: c.used_vcpus for name, c in capacity.items()}
    available = dict(resources or {})
    counts = dict(running or {})
    placements: list[Placement] = []
    blocked: list[Blocked] = []
    expired: list[Expired] = []

    def waits(queue: QueueView, job: JobView, reason: str) -> None:
        if job.status_reason != reason:
            blocked.append(Blocked(job.job_id, reason))
        elif now is not None and job.reason_since is not None:
            action = next((a for a in queue.time_limit_actions if reason.startswith(a.reason)), None)
            if action is not None and now - job.reason_since >= action.max_time_seconds * 1000:
                expired.append(Expired(job.job_id, action.reason))

    for queue in sorted(queues, key=lambda q: (-q.priority, q.name)):
        if not queue.enabled:
            continue
        ces = [capacity[n] for n in queue.compute_environments if n in capacity]
        usable = [c for c in ces if c.schedulable]
        taking = order(queue, runnable.get(queue.name, ()))
        limit, queue_used = math.inf, 0.0
        if isinstance(taking, ShareOrder) and queue.fairshare is not None:
            limit = reservation_limit(queue.fairshare.policy, sum(c.max_vcpus for c in usable), taking.active_shares)
            queue_used = sum(queue.fairshare.running.values())
        while (job := taking.peek()) is not None:
            if not usable:
                waits(queue, job, NO_CE if not ces else NO_ENABLED_CE if any(c.valid for c in ces) else NO_VALID_CE)
                break
            big_enough = [c for c in usable if job.vcpus <= c.max_vcpus]
            problems = [requirement_problem(job, c) for c in big_enough]
            fitting = [c for c, problem in zip(big_enough, problems, strict=True) if problem is None]
            if not fitting:
                waits(queue, job, MAX_RESOURCE if not big_enough else next(p for p in problems if p))
                taking.skip()
                continue
            if (full := caps.at_limit(job.caps, counts)) is not None:
                waits(queue, job, caps.reason(*full))
                if full[0].startswith(caps.QUEUE + "#"):
                    break  # the queue runs its limit: nothing behind the head may start either
                taking.skip()
                continue
            if queue_used + job.vcpus > limit:
                waits(queue, job, WAITING_FOR_RESERVATION)
                break
            if job.consumables:
                short, missing = consumables.missing_or_short(job.consumables, available)
                if short is not None:
                    waits(queue, job, short)
                    if missing is not None:
                        taking.skip()
                        continue
                    break  # the head of this queue waits for units
            target = next((c for c in fitting if used[c.name] + job.vcpus <= c.max_vcpus), None)
            if target is None:
                waits(queue, job, WAITING_FOR_CAPACITY)
                break  # the head of this queue waits for capacity
            used[target.name] += job.vcpus
            queue_used += job.vcpus
            for name, units in job.consumables:
                available[name] -= units
            for scope, _ in job.caps:
                counts[scope] = counts.get(scope, 0) + 1
            placements.append(Placement(job.job_id, target.name))
            taking.take()
    return Plan(tuple(placements), tuple(blocked), tuple(expired))
