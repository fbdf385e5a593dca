"""Dispatch: snapshot the store, plan one cycle (domain/scheduling.py), record reasons, cancel expired jobs, claim.

A claim is the conditional write RUNNABLE -> STARTING; its Launch effect starts the attempt under the key
jobId#attempt. Two dispatchers racing on one job: one claim wins, the other sees a job that is no longer RUNNABLE
and does nothing, so no job is launched twice.

The snapshot is also what GetJobQueueSnapshot orders its front of queue with (`ordered_runnable`), so the two can
never disagree about the order.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, replace

from chalicelib.control.context import Services
from chalicelib.control.react import Reactor
from chalicelib.control.usage import policy_of
from chalicelib.domain import fairshare, lifecycle, scheduling
from chalicelib.domain.errors import Conflict
from chalicelib.domain.jobs import ACTIVE, RUNNABLE, STARTING, Job
from chalicelib.domain.model import ComputeEnvironment, JobQueue
from chalicelib.store.jobs import order_key
from chalicelib.store.usage import UsageRepository

# How many RUNNABLE jobs per queue one cycle looks at: enough to fill any CE; the next cycle sees the rest.
WINDOW = 256
# A FIFO queue first reads only what its free capacity could take (plus room for jobs that get a reason): reading
# and decoding the whole window on every cycle cost more than running the jobs. If that narrow read placed
# nothing although capacity is free (e.g. jobs that can never fit sit at the head), the cycle re-reads WINDOW.
NARROW_BASE = 16
NARROW_PER_VCPU = 4  # jobs as small as 0.25 vCPU
# A fair-share queue looks further, so that shares whose jobs were submitted after a long backlog of another
# share's are seen (the window is in submission order; see docs/adr/0005-fair-share.md).
FAIRSHARE_WINDOW = 1024


def log_stream_name(job: Job, task_id: str) -> str:
    return f"{job.job_definition_name[:200]}/default/{task_id}"


# -- the snapshot ----------------------------------------------------------------------------------------------


def active_jobs(svc: Services, queue: str) -> Iterator[Job]:
    """The queue's STARTING and RUNNING jobs, top-level and array children."""
    return svc.jobs.iter_statuses(queue, ACTIVE)


def runnable_jobs(svc: Services, queue: str, limit: int) -> list[Job]:
    """The first `limit` RUNNABLE jobs of a queue in submission order, top-level jobs and array children merged."""
    top = svc.jobs.in_queue(queue, RUNNABLE, limit=limit)
    kids = svc.jobs.in_queue(queue, RUNNABLE, children=True, limit=limit)
    return sorted(top + kids, key=order_key)[:limit]


def share_state(svc: Services, queue: JobQueue, active: Iterable[Job], now: int) -> fairshare.ShareState | None:
    """A fair-share queue's usage as of `now`; None for a FIFO queue."""
    policy = policy_of(svc, queue)
    if policy is None:
        return None
    running: dict[str, float] = {}
    for job in active:
        share = job.share_identifier or ""
        running[share] = running.get(share, 0.0) + job.vcpus
    history: dict[str, float] = {}
    if policy.share_decay_seconds > 0:
        history = fairshare.decayed(UsageRepository(svc.repo.items).get(queue.name), now, policy.share_decay_seconds)
    return fairshare.ShareState(policy, running, history)


def queue_view(
    queue: JobQueue, ces: dict[str, ComputeEnvironment], state: fairshare.ShareState | None
) -> scheduling.QueueView:
    return scheduling.QueueView(
        queue.name,
        queue.priority,
        queue.state == "ENABLED",
        tuple(ces[a].name for a in queue.ce_arns_in_order() if a in ces),
        fairshare=state,
        time_limit_actions=tuple(
            scheduling.TimeLimitAction(a["reason"], int(a["maxTimeSeconds"]), a["action"])
            for a in queue.job_state_time_limit_actions
        ),
    )


def job_view(job: Job) -> scheduling.JobView:
    return scheduling.JobView(
        job.job_id,
        job.vcpus,
        job.status_reason,
        memory=job.memory,
        share_identifier=job.share_identifier,
        scheduling_priority=job.scheduling_priority or 0,
        # A reason written before reason_since existed: its last write is the best estimate.
        reason_since=job.reason_since if job.reason_since is not None else job.updated_at,
    )


def window(state: fairshare.ShareState | None, free_vcpus: float | None = None) -> int:
    """How many RUNNABLE jobs to read: FAIRSHARE_WINDOW for fair share, WINDOW for FIFO, or (`free_vcpus` given)
    a FIFO read narrowed to what the free capacity could take."""
    if state is not None:
        return FAIRSHARE_WINDOW
    if free_vcpus is None:
        return WINDOW
    return min(WINDOW, NARROW_BASE + int(free_vcpus * NARROW_PER_VCPU))


def ordered_runnable(svc: Services, queue: JobQueue, active: Iterable[Job], now: int) -> list[Job]:
    """A queue's RUNNABLE jobs (within the window) in the order the dispatcher takes them."""
    state = share_state(svc, queue, active, now)
    jobs = {j.job_id: j for j in runnable_jobs(svc, queue.name, window(state))}
    view = queue_view(queue, {}, state)  # the order does not depend on the compute environments
    ordered = scheduling.dispatch_order(view, [job_view(j) for j in jobs.values()])
    return [jobs[v.job_id] for v in ordered]


@dataclass(frozen=True)
class Snapshot:
    queues: list[scheduling.QueueView]
    capacity: dict[str, scheduling.CapacityView]
    runnable: dict[str, list[Job]]  # per queue, submission order
    narrowed: frozenset[str] = frozenset()  # queues whose narrow read was full: there may be more behind


def snapshot(svc: Services, now: int, *, narrow: bool = False) -> Snapshot:
    queues = svc.repo.list_jqs()
    ces = {ce.arn: ce for ce in svc.repo.list_ces(None, 1000)}
    used: dict[str, float] = {ce.name: 0.0 for ce in ces.values()}
    views: list[scheduling.QueueView] = []
    runnable: dict[str, list[Job]] = {}
    actives = {q.name: list(active_jobs(svc, q.name)) for q in queues}
    for active in actives.values():
        for job in active:
            if job.current is not None and job.current.compute_environment in used:
                used[job.current.compute_environment] += job.vcpus
    narrowed: set[str] = set()
    for q in queues:
        state = share_state(svc, q, actives[q.name], now)
        views.append(queue_view(q, ces, state))
        if q.state == "ENABLED":
            free = None
            if narrow:
                mine = [ces[a] for a in q.ce_arns_in_order() if a in ces and ces[a].schedulable]
                free = max(0.0, sum(float(ce.max_vcpus) - used[ce.name] for ce in mine))
            limit = window(state, free)
            runnable[q.name] = runnable_jobs(svc, q.name, limit)
            if free and len(runnable[q.name]) == limit < WINDOW and state is None:
                narrowed.add(q.name)  # capacity is free and there may be more jobs than were read
    capacity = {
        ce.name: scheduling.CapacityView(
            ce.name, float(ce.max_vcpus), used[ce.name], ce.schedulable, resource_type=ce.resource_type
        )
        for ce in ces.values()
    }
    return Snapshot(views, capacity, runnable, frozenset(narrowed))


# -- the cycle -------------------------------------------------------------------------------------------------


class Dispatcher:
    def __init__(self, svc: Services, reactor: Reactor, new_task_id: Callable[[], str]) -> None:
        self.svc = svc
        self.reactor = reactor
        self.new_task_id = new_task_id

    def cycle(self) -> int:
        """One scheduling cycle. Returns the number of jobs placed."""
        return self._run(place=True)

    def check_time_limits(self) -> int:
        """The repair sweep's part: plan, record reasons and apply jobStateTimeLimitActions, but claim nothing
        (for a runtime whose cycles only run on events). Returns the number of jobs cancelled."""
        return self._run(place=False)

    def _run(self, *, place: bool) -> int:
        now = self.svc.clock.now_ms()
        snap = snapshot(self.svc, now, narrow=place)
        result = self._plan(snap, now)
        queue_of = {j.job_id: q for q, js in snap.runnable.items() for j in js}
        if snap.narrowed - {queue_of[p.job_id] for p in result.placements}:
            # A full narrow window placed nothing although capacity is free: look at the whole window before
            # concluding that nothing fits (jobs that can never fit may fill the head of the queue).
            snap = snapshot(self.svc, now)
            result = self._plan(snap, now)
        jobs = {j.job_id: j for js in snap.runnable.values() for j in js}
        for blocked in result.blocked:
            self._block(jobs[blocked.job_id], blocked.reason, now)
        cancelled = sum(self._expire(jobs[e.job_id], e) for e in result.expired)
        if not place:
            return cancelled
        placed = 0
        for placement in result.placements:
            job = jobs[placement.job_id]
            task_id = self.new_task_id()
            claim = lifecycle.Claim(placement.compute_environment, task_id, log_stream_name(job, task_id))
            after = self.reactor.apply(job.job_id, claim)
            if after is not None and after.status == STARTING and after.current and after.current.task_id == task_id:
                placed += 1
        return placed

    @staticmethod
    def _plan(snap: Snapshot, now: int) -> scheduling.Plan:
        views = {q: [job_view(j) for j in js] for q, js in snap.runnable.items()}
        return scheduling.plan(snap.queues, snap.capacity, views, now)

    def _block(self, job: Job, reason: str, now: int) -> None:
        """Record why a RUNNABLE job waits, and since when (no state change, so no event)."""
        with contextlib.suppress(Conflict):  # it moved on meanwhile; the next cycle re-evaluates
            self.svc.jobs.save(replace(job, status_reason=reason, reason_since=now))

    def _expire(self, job: Job, expired: scheduling.Expired) -> int:
        """Cancel a job a jobStateTimeLimitAction caught, unless it changed since the snapshot."""
        current = self.svc.jobs.get(job.job_id)
        if current is None or current.version != job.version:
            return 0
        after = self.reactor.apply(job.job_id, lifecycle.Cancel(expired.status_reason))
        return 1 if after is not None and after.is_cancelled else 0
