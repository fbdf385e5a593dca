"""Capacity of managed EC2 / SPOT compute environments (spec §5.5, ADR 0004).

Pure part: `allot` shares the RUNNABLE demand of the enabled queues among their compute environments the way the
dispatcher would place it (queue priority, then computeEnvironmentOrder, each CE up to its maxvCpus), and `decide`
turns one CE's running vCPUs and allotted demand into its desiredvCpus:

- busy (jobs placed on it or demand allotted to it): desired = clamp(ceil(running + demand), minvCpus, maxvCpus),
  never lower than the current desired: while any job is placed, no instance may go away under it;
- idle: scale in to minvCpus once it has been idle for `scalingPolicy.minScaleDownDelayMinutes` (at once without
  one). `idle_since` on the CE remembers when it became idle.

FARGATE / FARGATE_SPOT CEs take part in `allot` (demand they can take does not ask for instances) but get no decision:
their maxvCpus caps running vCPUs in the dispatcher, and there are no instances. Unmanaged CEs are the user's.

`reconcile(svc, groups)` reads the store, decides, sets each CE's group through the CapacityGroups port
(compute/capacity_port.py; on AWS the Auto Scaling adapter, compute/capacity_aws.py, injected by runtime/aws),
then records desiredvCpus and idle_since on the CE with one conditional write (a lost race re-reads and re-decides).
Run it periodically (a scheduled Lambda) and it is idempotent: an unchanged decision writes nothing.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from chalicelib.compute.capacity_port import CapacityGroups
from chalicelib.control.context import Services
from chalicelib.domain.errors import Conflict
from chalicelib.domain.jobs import ACTIVE, RUNNABLE
from chalicelib.domain.model import CE_HEALTHY, DELETING, EC2_TYPES, INVALID, VALID, ComputeEnvironment
from chalicelib.domain.runs import held_vcpus

log = logging.getLogger("batchplane.capacity")

RECONCILE_RETRIES = 5

# -- pure -----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CeLoad:
    """One compute environment as `allot` sees it."""

    name: str
    max_vcpus: float
    running_vcpus: float  # jobs STARTING or RUNNING on it
    schedulable: bool  # ENABLED and VALID: takes new jobs


@dataclass(frozen=True)
class QueueDemand:
    name: str
    priority: int
    compute_environments: tuple[str, ...]  # in computeEnvironmentOrder
    runnable_vcpus: tuple[float, ...]  # the RUNNABLE jobs' vCPUs, in the order the dispatcher takes them


def allot(queues: Sequence[QueueDemand], ces: Mapping[str, CeLoad]) -> dict[str, float]:
    """RUNNABLE vCPUs per CE: each job goes to the first CE of its queue (in order) that is schedulable and still
    has room for it under maxvCpus; a job no CE has room for asks for nothing. Higher-priority queues first."""
    room = {name: max(0.0, ce.max_vcpus - ce.running_vcpus) if ce.schedulable else 0.0 for name, ce in ces.items()}
    allotted = dict.fromkeys(ces, 0.0)
    for queue in sorted(queues, key=lambda q: -q.priority):
        order = [c for c in queue.compute_environments if c in room]
        for vcpus in queue.runnable_vcpus:
            if not any(room[c] > 0 for c in order):
                break  # every CE of the queue is full: the rest of it waits too
            target = next((c for c in order if room[c] >= vcpus), None)
            if target is not None:
                room[target] -= vcpus
                allotted[target] += vcpus
    return allotted


@dataclass(frozen=True)
class CeCapacity:
    """What `decide` needs of one managed EC2/SPOT compute environment."""

    name: str
    min_vcpus: int
    max_vcpus: int
    desired_vcpus: int
    idle_since: int | None
    scale_down_delay_ms: int
    running_vcpus: float
    demand_vcpus: float

    @classmethod
    def of(cls, ce: ComputeEnvironment, running: float, demand: float) -> CeCapacity:
        res = ce.compute_resources or {}
        delay = int((res.get("scalingPolicy") or {}).get("minScaleDownDelayMinutes") or 0)
        return cls(
            name=ce.name,
            min_vcpus=int(res.get("minvCpus") or 0),
            max_vcpus=int(res.get("maxvCpus") or 0),
            desired_vcpus=int(res.get("desiredvCpus") or 0),
            idle_since=ce.idle_since,
            scale_down_delay_ms=delay * 60_000,
            running_vcpus=running,
            demand_vcpus=demand,
        )


@dataclass(frozen=True)
class Decision:
    name: str
    previous_vcpus: int
    desired_vcpus: int
    idle_since: int | None
    action: str  # "scale-out" | "scale-in" | "hold"


def clamp(value: int, low: int, high: int) -> int:
    return max(low, min(value, max(low, high)))


def decide(ce: CeCapacity, now_ms: int) -> Decision:
    current = clamp(ce.desired_vcpus, ce.min_vcpus, ce.max_vcpus)
    busy = ce.running_vcpus > 0 or ce.demand_vcpus > 0
    if busy:
        needed = clamp(math.ceil(ce.running_vcpus + ce.demand_vcpus), ce.min_vcpus, ce.max_vcpus)
        desired, idle_since = max(current, needed), None
    else:
        idle_since = ce.idle_since if ce.idle_since is not None else now_ms
        waited = now_ms - idle_since >= ce.scale_down_delay_ms
        desired = ce.min_vcpus if waited else current
    if desired > ce.desired_vcpus:
        action = "scale-out"
    elif desired < ce.desired_vcpus:
        action = "scale-in"
    else:
        action = "hold"
    return Decision(ce.name, ce.desired_vcpus, desired, idle_since, action)


# -- reconcile ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CapacityChange:
    """The outcome of one reconcile for one CE: the decision, and what the Auto Scaling group says now."""

    compute_environment: str
    previous_vcpus: int
    desired_vcpus: int
    action: str
    group_desired: int | None = None  # the ASG's desired capacity after the reconcile (None: not known)
    error: str | None = None


def managed_ec2(ce: ComputeEnvironment) -> bool:
    return ce.ce_type == "MANAGED" and ce.resource_type in EC2_TYPES


def reconcile(svc: Services, groups: CapacityGroups) -> list[CapacityChange]:
    """Decide and apply the desired vCPUs of every managed EC2/SPOT compute environment."""
    ces = {ce.name: ce for ce in svc.repo.list_ces(None, 1000)}
    # A CE being deleted is left alone: its deletion releases its group (control/deletion.py), which a reconcile
    # must not size up again, nor make the CE VALID again (`_health`).
    targets = [ce for ce in ces.values() if managed_ec2(ce) and ce.status != DELETING]
    if not targets:
        return []
    now = svc.clock.now_ms()
    decisions = plan(svc, ces, now)
    try:
        current = groups.describe([ce.name for ce in targets])
    except Exception as e:
        log.exception("describing the Auto Scaling groups failed")
        return [CapacityChange(ce.name, _desired(ce), _desired(ce), "hold", error=str(e)) for ce in targets]
    changes = []
    for ce in targets:
        decision = decisions[ce.name]
        _health(svc, ce, groups.group_name(ce.name), has_group=ce.name in current)
        try:
            group = groups.apply(ce, decision.desired_vcpus, current.get(ce.name))
            _record(svc, ce.name, decision, now)
            changes.append(
                CapacityChange(ce.name, decision.previous_vcpus, decision.desired_vcpus, decision.action, group)
            )
        except Exception as e:  # one CE's failure must not stop the others; the next reconcile retries
            log.exception("capacity of %s failed", ce.name)
            changes.append(
                CapacityChange(ce.name, decision.previous_vcpus, decision.desired_vcpus, decision.action, error=str(e))
            )
    return changes


def plan(svc: Services, ces: Mapping[str, ComputeEnvironment], now_ms: int) -> dict[str, Decision]:
    """The decision for every managed EC2/SPOT CE, from the jobs in the store now."""
    queues = svc.repo.list_jqs()
    by_arn = {ce.arn: ce.name for ce in ces.values()}
    held = held_vcpus(job for q in queues for job in svc.jobs.iter_statuses(q.name, ACTIVE))
    running = {name: held.get(name, 0.0) for name in ces}
    loads = {name: CeLoad(name, float(ce.max_vcpus), running[name], ce.schedulable) for name, ce in ces.items()}
    demands = []
    for q in queues:
        if q.deleting:  # a DISABLED queue still runs the jobs it holds (domain/scheduling.py)
            continue
        order = tuple(by_arn[a] for a in q.ce_arns_in_order() if a in by_arn)
        room = sum(max(0.0, loads[c].max_vcpus - loads[c].running_vcpus) for c in order if loads[c].schedulable)
        demands.append(QueueDemand(q.name, q.priority, order, _runnable_vcpus(svc, q.name, room)))
    allotted = allot(demands, loads)
    return {
        name: decide(CeCapacity.of(ce, running[name], allotted[name]), now_ms)
        for name, ce in ces.items()
        if managed_ec2(ce)
    }


def _runnable_vcpus(svc: Services, queue: str, room: float) -> tuple[float, ...]:
    """The queue's RUNNABLE jobs' vCPUs, read only as far as its CEs have room (a deep queue costs no more)."""
    found: list[float] = []
    total = 0.0
    for job in svc.jobs.iter_statuses(queue, (RUNNABLE,)):
        if total >= room:
            break
        found.append(job.vcpus)
        total += job.vcpus
    return tuple(found)


def no_group_reason(ce: str, group: str) -> str:
    return (
        f"CLIENT_ERROR - no Auto Scaling group {group} provides this compute environment's instances; "
        f"deploy the stack with Ec2ComputeEnvironment={ce} (README, Deploy to AWS)"
    )


def _health(svc: Services, ce: ComputeEnvironment, group: str, *, has_group: bool) -> None:
    """A managed EC2/SPOT CE without its Auto Scaling group can run nothing: INVALID, saying why (its jobs then wait
    with a reason instead of failing at RunTask), and VALID again once the group exists. A CE made INVALID for
    another reason is left alone."""
    reason = no_group_reason(ce.name, group)
    if has_group == (ce.status == VALID) or (has_group and ce.status_reason != reason):
        return
    status, status_reason = (VALID, CE_HEALTHY) if has_group else (INVALID, reason)
    for _ in range(RECONCILE_RETRIES):
        latest = svc.repo.get_ce(ce.name)
        if latest is None or (latest.status, latest.status_reason) == (status, status_reason):
            return
        try:
            svc.repo.save_ce(dataclasses.replace(latest, status=status, status_reason=status_reason))
            log.warning("compute environment %s is now %s: %s", ce.name, status, status_reason)
            return
        except Conflict:
            continue


def _desired(ce: ComputeEnvironment) -> int:
    return int((ce.compute_resources or {}).get("desiredvCpus") or 0)


def _record(svc: Services, name: str, decision: Decision, now_ms: int) -> None:
    """desiredvCpus and idle_since on the CE: one conditional write; a lost race re-reads and re-decides only what
    this decision is about (an UpdateComputeEnvironment in between keeps its own changes)."""
    for _ in range(RECONCILE_RETRIES):
        ce = svc.repo.get_ce(name)
        if ce is None or ce.compute_resources is None:
            return
        res = ce.compute_resources
        low, high = int(res.get("minvCpus") or 0), int(res.get("maxvCpus") or 0)
        desired = clamp(decision.desired_vcpus, low, high)
        if res.get("desiredvCpus") == desired and ce.idle_since == decision.idle_since:
            return
        updated = dataclasses.replace(
            ce, compute_resources={**res, "desiredvCpus": desired}, idle_since=decision.idle_since
        )
        try:
            svc.repo.save_ce(updated)
            return
        except Conflict:
            continue
    raise Conflict(f"CE#{name}", None)
