"""Dispatch: snapshot the store, plan one cycle (domain/scheduling.py), record reasons, cancel expired jobs, claim.

A claim is the conditional write RUNNABLE -> STARTING; its Launch effect starts the attempt under the key
jobId#attempt. Two dispatchers racing on one job: one claim wins, the other sees a job that is no longer RUNNABLE
and does nothing, so no job is launched twice.

The snapshot is also what GetJobQueueSnapshot orders its front of queue with (`ordered_runnable`), so the two can
never disagree about the order.

A runtime whose dispatcher is the only one (the local engine) keeps the vCPUs its active jobs hold in memory
(`ActiveJobs`) instead of reading every STARTING and RUNNING job on each cycle.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace

from chalicelib.control.active_jobs import ActiveJobs as ActiveJobs  # callers import both from here
from chalicelib.control.active_jobs import active_jobs as active_jobs
from chalicelib.control.context import Services
from chalicelib.control.react import Reactor
from chalicelib.control.run_sizes import RunSizes
from chalicelib.control.runnable_cache import RunnableCache
from chalicelib.control.usage import policy_of, scheduling_policy
from chalicelib.domain import caps, consumables, fairshare, lifecycle, platform, runs, scheduling
from chalicelib.domain.errors import Conflict
from chalicelib.domain.jobs import RUNNABLE, STARTING, Job
from chalicelib.domain.model import VALID, ComputeEnvironment, FairsharePolicy, JobQueue
from chalicelib.store.caps import CapRepository
from chalicelib.store.consumables import ConsumableRepository
from chalicelib.store.jobs import order_key
from chalicelib.store.usage import UsageRepository

# How many RUNNABLE jobs per queue one cycle looks at: enough to fill any CE; the next cycle sees the rest.
WINDOW = 256
# A FIFO queue first reads only what its free capacity could take if its jobs have 1 vCPU or more (plus one that may
# get a reason): reading and decoding more jobs than a cycle places cost more than running them. If the read was
# all placed and capacity is left (smaller jobs), the next cycle reads again; if it placed nothing although capacity
# is free (e.g. jobs that can never fit sit at the head), the cycle re-reads WINDOW.
NARROW_BASE = 1
NARROW_PER_VCPU = 1
# The reasons of a job that could run, but not now (domain/scheduling.py: WAITING_FOR_CAPACITY, ...RESERVATION).
CAPACITY = "CAPACITY:"
# A fair-share queue looks further, so that shares whose jobs were submitted after a long backlog of another
# share's are seen (the window is in submission order; see docs/adr/0005-fair-share.md).
FAIRSHARE_WINDOW = 1024


def log_stream_name(job: Job, task_id: str) -> str:
    return f"{job.job_definition_name[:200]}/default/{task_id}"


# -- the snapshot ----------------------------------------------------------------------------------------------


def runnable_jobs(svc: Services, queue: str, limit: int) -> list[Job]:
    """The first `limit` RUNNABLE jobs of a queue in submission order, top-level jobs and array children merged."""
    top = svc.jobs.in_queue(queue, RUNNABLE, limit=limit)
    kids = svc.jobs.in_queue(queue, RUNNABLE, children=True, limit=limit)
    return sorted(top + kids, key=order_key)[:limit]


def first_runnable(svc: Services, queue: str, limit: int, runnable: RunnableCache | None) -> list[Job]:
    """`runnable_jobs`, served by the only dispatcher's kept front of the queue when it has one (`RunnableCache`)."""
    return runnable.read(svc, queue, limit) if runnable is not None else runnable_jobs(svc, queue, limit)


def share_state(
    svc: Services, queue: JobQueue, active: Iterable[Job], now: int, policy: FairsharePolicy | bool | None = True
) -> fairshare.ShareState | None:
    """A fair-share queue's usage as of `now`; None for a FIFO queue. `policy`: the queue's, when already read."""
    if policy is True:
        policy = policy_of(svc, queue)
    if not isinstance(policy, FairsharePolicy):
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
        not queue.deleting,
        tuple(ces[a].name for a in queue.ce_arns_in_order() if a in ces),
        fairshare=state,
        time_limit_actions=tuple(
            scheduling.TimeLimitAction(a["reason"], int(a["maxTimeSeconds"]), a["action"])
            for a in queue.job_state_time_limit_actions
        ),
    )


def job_view(job: Job, capped: tuple[tuple[str, int], ...] = ()) -> scheduling.JobView:
    return scheduling.JobView(
        job.job_id,
        job.vcpus,
        job.status_reason,
        memory=job.memory,
        share_identifier=job.share_identifier,
        scheduling_priority=job.scheduling_priority or 0,
        # A reason written before reason_since existed: its last write is the best estimate.
        reason_since=job.reason_since if job.reason_since is not None else job.updated_at,
        platform=platform.platform_of(job.platform_capabilities),
        consumables=tuple((consumables.name_of_arn(arn), n) for arn, n in job.consumable_resources.items()),
        multinode=job.is_multinode,
        caps=capped,
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
    full: frozenset[str] = frozenset()  # queues whose read was full (narrow or not): there may be more behind
    resources: dict[str, int] | None = None  # available units per consumable resource (read when a job names one)
    caps: dict[str, tuple[tuple[str, int], ...]] = field(default_factory=dict)  # job id -> its caps (if any)
    running: dict[str, int] | None = None  # running count per cap scope the jobs name (read when one does)


def snapshot(
    svc: Services,
    now: int,
    *,
    narrow: bool = False,
    active: ActiveJobs | None = None,
    runnable: RunnableCache | None = None,
) -> Snapshot:
    """The queues, the capacity in use (from `active` when given, else from the store) and the first RUNNABLE jobs of
    each queue not being deleted (from `runnable` when given): with `narrow`, as many as a FIFO queue's free
    capacity could take."""
    queues = svc.repo.list_jqs()
    ces = {ce.arn: ce for ce in svc.repo.list_ces(None, 1000)}
    actives: dict[str, Iterable[Job]] = {}
    held = active.used() if active is not None else None
    if held is None:
        for q in queues:
            actives[q.name] = list(active_jobs(svc, q.name))
        held_now = runs.held_vcpus(job for jobs in actives.values() for job in jobs)  # a run counts once
        used = {ce.name: held_now.get(ce.name, 0.0) for ce in ces.values()}
    else:
        used = {ce.name: held.get(ce.name, 0.0) for ce in ces.values()}
        # Only a fair-share queue reads its active jobs (their shares); for a FIFO queue this iterator stays unread.
        actives = {q.name: active_jobs(svc, q.name) for q in queues}
    views: list[scheduling.QueueView] = []
    ready: dict[str, list[Job]] = {}
    narrowed: set[str] = set()
    full: set[str] = set()
    capped: dict[str, tuple[tuple[str, int], ...]] = {}
    for q in queues:
        sp = scheduling_policy(svc, q)
        state = share_state(svc, q, actives[q.name], now, sp.fairshare if sp is not None else None)
        views.append(queue_view(q, ces, state))
        if not q.deleting:
            free = None
            if narrow:
                mine = [ces[a] for a in q.ce_arns_in_order() if a in ces and ces[a].schedulable]
                free = max(0.0, sum(float(ce.max_vcpus) - used[ce.name] for ce in mine))
            limit = window(state, free)
            jobs = first_runnable(svc, q.name, limit, runnable)
            ready[q.name] = jobs
            capped.update((j.job_id, c) for j in jobs if (c := caps.of_job(j, q, sp)))
            if len(jobs) == limit:
                full.add(q.name)
                if free and limit < WINDOW and state is None:
                    narrowed.add(q.name)  # capacity is free and there may be more jobs than were read
    capacity = {
        ce.name: scheduling.CapacityView(
            ce.name,
            float(ce.max_vcpus),
            used[ce.name],
            ce.schedulable,
            resource_type=ce.resource_type,
            valid=ce.status == VALID,
        )
        for ce in ces.values()
    }
    resources = None
    if any(job.consumable_resources for jobs in ready.values() for job in jobs):
        resources = {r.name: r.available_quantity for r in ConsumableRepository(svc.repo.items).list_all()}
    running = CapRepository(svc.repo.items).running(s for c in capped.values() for s, _ in c) if capped else None
    return Snapshot(views, capacity, ready, frozenset(narrowed), frozenset(full), resources, capped, running)


# -- the cycle -------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Outcome:
    placed: int
    cancelled: int
    more: bool  # a queue had more RUNNABLE jobs than the cycle read, and capacity left for them


class Dispatcher:
    """`reason_grace_ms`: a job that waits for capacity (a CAPACITY reason) gets its reason written only once it has
    waited that long, so a backlog that moves does not cost one write per job reaching the head of its queue. The
    runtime must then run a cycle when the first deferred reason is due (`reasons_due_in`).

    `consistent_reads`: the store's queries return what was last written (SQLite; not DynamoDB's indexes), so a
    claim is written against the job as the snapshot read it, without reading it again. `runnable`: the only
    dispatcher's RUNNABLE jobs kept between cycles (control/runnable_cache.py)."""

    def __init__(
        self,
        svc: Services,
        reactor: Reactor,
        new_task_id: Callable[[], str],
        *,
        active: ActiveJobs | None = None,
        reason_grace_ms: int = 0,
        consistent_reads: bool = False,
        runnable: RunnableCache | None = None,
        runs: RunSizes | None = None,
    ) -> None:
        self.svc = svc
        self.runnable = runnable
        self.runs = runs  # array children are claimed in runs (domain/runs.py)
        self.reactor = reactor
        self.new_task_id = new_task_id
        self.active = active  # the capacity in use, kept in memory by the only dispatcher (see ActiveJobs)
        self.reason_grace_ms = reason_grace_ms
        self.consistent_reads = consistent_reads
        self._waiting: dict[str, int] = {}  # job id -> since when it waits for capacity with its reason unwritten

    def cycle(self) -> int:
        """One scheduling cycle. Returns the number of jobs placed."""
        return self._run(place=True).placed

    def cycles(self, stop: Callable[[], bool] = lambda: False) -> int:
        """Cycles until one placed nothing, or no queue could take more than it read (a narrow read places what its
        free capacity could take, so another cycle right away would find nothing). Returns the number placed."""
        placed = 0
        while True:
            outcome = self._run(place=True)
            placed += outcome.placed
            if not outcome.placed or not outcome.more or stop():
                return placed

    def check_time_limits(self) -> int:
        """The repair sweep's part: plan, record reasons and apply jobStateTimeLimitActions, but claim nothing
        (for a runtime whose cycles only run on events). Returns the number of jobs cancelled."""
        return self._run(place=False).cancelled

    def _run(self, *, place: bool) -> _Outcome:
        now = self.svc.clock.now_ms()
        snap = snapshot(self.svc, now, narrow=place, active=self.active, runnable=self.runnable)
        result = self._plan(snap, now)
        queue_of = {j.job_id: q for q, js in snap.runnable.items() for j in js}
        if snap.narrowed - {queue_of[p.job_id] for p in result.placements}:
            # A full narrow window placed nothing although capacity is free: look at the whole window before
            # concluding that nothing fits (jobs that can never fit may fill the head of the queue).
            snap = snapshot(self.svc, now, active=self.active, runnable=self.runnable)
            result = self._plan(snap, now)
        jobs = {j.job_id: j for js in snap.runnable.values() for j in js}
        waiting, self._waiting = self._waiting, {}
        for blocked in result.blocked:
            since = now
            if self.reason_grace_ms and blocked.reason.startswith(CAPACITY):
                since = waiting.get(blocked.job_id, now)
                if now - since < self.reason_grace_ms:
                    self._waiting[blocked.job_id] = since
                    continue
            self._block(jobs[blocked.job_id], blocked.reason, since)
        cancelled = sum(self._expire(jobs[e.job_id], e) for e in result.expired)
        if self.runnable is not None and result.expired:
            self.runnable.forget()
        if not place:
            return _Outcome(0, cancelled, False)
        claimed: list[scheduling.Placement] = []
        taken = {p.job_id for p in result.placements}
        for n, placement in enumerate(result.placements):
            job = jobs[placement.job_id]
            slots = len(result.placements) - n  # (this one and those after it)
            members = [job, *self._followers(snap, job, placement.compute_environment, taken, slots)]
            run = self.new_task_id() if len(members) > 1 else None
            entries: list[tuple[str, tuple[lifecycle.Event, ...], Job | None]] = []
            tasks: list[str] = []
            for member in members:
                task_id = self.new_task_id()
                claim = lifecycle.Claim(
                    placement.compute_environment,
                    task_id,
                    log_stream_name(member, task_id),
                    snap.caps.get(member.job_id, ()),
                    snap.capacity[placement.compute_environment].resource_type,
                    run=run,
                )
                tasks.append(task_id)
                entries.append((member.job_id, (claim,), member if self.consistent_reads else None))
            try:
                if len(entries) == 1:
                    afters = [self.reactor.apply_all(job.job_id, entries[0][1], read=entries[0][2])]
                else:  # a run: its claims in one write (domain/runs.py)
                    afters = self.reactor.apply_many(entries)
            except BaseException:
                # The claim may be written and its launch have raised (the Docker launcher re-raises for the sweep
                # to launch again): kept, the STARTING job would wait at the head for the vCPUs it holds.
                if self.runnable is not None:
                    self.runnable.forget(job.queue)
                raise
            placed = False
            for member, task_id, after in zip(members, tasks, afters, strict=True):
                current = after.current if after is not None else None
                if after is not None and after.status == STARTING and current and current.task_id == task_id:
                    placed = True
                    if self.runnable is not None:
                        self.runnable.claimed(job.queue, member)
                elif self.runnable is not None:  # it moved on since it was read: so may others
                    self.runnable.forget(job.queue)
            if placed:
                claimed.append(placement)
        # A claim that failed (the job moved on since the snapshot read it) spent no capacity, and the snapshot was
        # stale: another cycle may place what it would have taken.
        more = len(claimed) < len(result.placements) or self._more(snap, claimed, jobs)
        return _Outcome(len(claimed), cancelled, more)

    def _followers(self, snap: Snapshot, job: Job, ce: str, taken: set[str], slots: int) -> list[Job]:
        """The children of `job`'s array that follow it in its queue, to claim with it in one run onto its slot
        (domain/runs.py): only with `runs`, in a FIFO queue where no job ahead of it waits, and no other queue that
        may use the compute environment has a RUNNABLE job (a run holds the slot until its last child ends). Stops
        at the first job of the queue that is not such a child. `taken`: placed or claimed in this cycle (added
        to). `slots`: this placement and the cycle's after it (the queue is read once for the runs of all)."""
        if self.runs is None or not runs.may_run_with_others(job) or job.array is None or snap.caps.get(job.job_id):
            return []  # (caps: each child of a run would take a place; its array's children all share its caps)
        want = self.runs.size(job.array.parent_id or "") - 1
        if want <= 0:
            return []
        mine = next((q for q in snap.queues if q.name == job.queue), None)
        if mine is None or mine.fairshare is not None:
            return []
        if any(q.name != job.queue and ce in q.compute_environments and snap.runnable.get(q.name) for q in snap.queues):
            return []
        limit = min(WINDOW, (want + 1) * slots + 8)
        ahead = first_runnable(self.svc, job.queue, limit, self.runnable)
        at = next((i for i, j in enumerate(ahead) if j.job_id == job.job_id), None)
        if at is None or any(j.job_id not in taken for j in ahead[:at]):
            return []  # a job ahead of it waits: the slot goes back to the plan after this child
        found: list[Job] = []
        parent = job.array.parent_id
        for other in ahead[at + 1 :]:
            if other.job_id in taken:
                continue
            if len(found) == want or other.array is None or other.array.parent_id != parent:
                break
            if other.vcpus != job.vcpus or other.memory != job.memory or not runs.may_run_with_others(other):
                break
            found.append(other)
            taken.add(other.job_id)
        return found

    def reasons_due_in(self, now: int) -> int | None:
        """Milliseconds until a deferred CAPACITY reason is due to be written (0: now); None when none waits."""
        if not self._waiting:
            return None
        return max(0, min(self._waiting.values()) + self.reason_grace_ms - now)

    @staticmethod
    def _more(snap: Snapshot, claimed: Sequence[scheduling.Placement], jobs: dict[str, Job]) -> bool:
        """Could a queue whose read was full place more with the capacity this cycle's claims left?"""
        left = {name: c.max_vcpus - c.used_vcpus for name, c in snap.capacity.items() if c.schedulable}
        for placement in claimed:
            left[placement.compute_environment] -= jobs[placement.job_id].vcpus
        return any(left.get(ce, 0.0) > 0 for q in snap.queues if q.name in snap.full for ce in q.compute_environments)

    @staticmethod
    def _plan(snap: Snapshot, now: int) -> scheduling.Plan:
        views = {q: [job_view(j, snap.caps.get(j.job_id, ())) for j in js] for q, js in snap.runnable.items()}
        return scheduling.plan(snap.queues, snap.capacity, views, now, snap.resources, snap.running)

    def _block(self, job: Job, reason: str, since: int) -> None:
        """Record why a RUNNABLE job waits, and since when (no state change, so no event)."""
        try:
            self.svc.jobs.save(replace(job, status_reason=reason, reason_since=since))
        except Conflict:  # it moved on meanwhile; the next cycle re-evaluates (reading the queue again)
            if self.runnable is not None:
                self.runnable.forget(job.queue)

    def _expire(self, job: Job, expired: scheduling.Expired) -> int:
        """Cancel a job a jobStateTimeLimitAction caught, unless it changed since the snapshot."""
        current = self.svc.jobs.get(job.job_id)
        if current is None or current.version != job.version:
            return 0
        after = self.reactor.apply(job.job_id, lifecycle.Cancel(expired.status_reason))
        return 1 if after is not None and after.is_cancelled else 0
