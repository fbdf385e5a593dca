"""Deleting job queues and compute environments (docs/adr/0021-deleting-queues-and-environments.md).

AWS: DeleteJobQueue — "You must first disable submissions for a queue with the UpdateJobQueue operation. All jobs in
the queue are eventually terminated when you delete a job queue." DeleteComputeEnvironment — "Before you can delete a
compute environment, you must set its state to DISABLED ... and disassociate it from any job queues"
(https://docs.aws.amazon.com/batch/latest/APIReference/API_DeleteJobQueue.html, .../API_DeleteComputeEnvironment.html).
Both resources pass through status DELETING (AWS's JQStatus / CEStatus enums) and are gone once nothing of theirs is
left:

1. Delete*: the record is rewritten with status DELETING and the time (`deleting_since`), one conditional write: the
   durable marker. From then on the dispatcher places nothing from the queue (or onto the environment), Update* is
   refused and the name stays taken, so a new queue of the same name can never pick up an old job (jobs name their
   queue).
2. `drain_queue` terminates every unfinished job of the queue with a reason, page by page, through the Reactor (the
   job as the index gave it is the read: a changed one is read again). `drain_ce` ends the attempts running on the
   environment: as a lost host on EC2/SPOT (AWS terminates the instances; the job's retry strategy decides), with a
   terminate on Fargate. A job already being terminated is left alone, or asked to stop again by the sweep once its
   stop is RESTOP_AFTER_MS old. One pass runs in the Delete request (INLINE_PASS jobs, INLINE_SECONDS; a failure
   there is logged, the deletion took effect with the marker); the repair sweep runs one over every DELETING
   resource until done, with one Budget for all of them (DRAIN_PASS jobs, and the Lambda's remaining time), so a
   crash midway loses nothing and a big queue is drained over several sweeps (AWS: "about 16 jobs each second").
3. The record is deleted, conditionally on its version, by a pass that found nothing left and started at least
   `Settings.deletion_grace_ms` after the marker: a SubmitJob that read the queue ENABLED before it was disabled
   (or a dispatch cycle that read the environment usable) may still write within its own timeout, and the job index
   lags; such a job is found and terminated by a later pass, never by a recreated queue. A managed EC2/SPOT
   environment's instances are released first (`Services.release_capacity`). Only then is the name free.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from chalicelib.control import resources
from chalicelib.control.capacity import managed_ec2
from chalicelib.control.context import Services
from chalicelib.control.react import Reactor
from chalicelib.domain import lifecycle
from chalicelib.domain.errors import Conflict, InvalidRequest
from chalicelib.domain.jobs import ACTIVE, PENDING, RUNNABLE, SUBMITTED, Job
from chalicelib.domain.model import DELETING, ComputeEnvironment
from chalicelib.domain.reasons import host_terminated_reason

log = logging.getLogger("batchplane.deletion")

UNFINISHED = (SUBMITTED, PENDING, RUNNABLE, *ACTIVE)
DRAIN_PASS = 500  # jobs one sweep terminates over all DELETING resources, at most (AWS: "about 16 jobs each second")
INLINE_PASS = 100  # ... and the Delete request itself, which must answer promptly
INLINE_SECONDS = 5.0  # ... within this long
SWEEP_RESERVE_MS = 10_000  # the sweep stops deleting when its Lambda has less than this left (its wake must run)
RESTOP_AFTER_MS = 120_000  # a terminated job still running this long after its terminate is asked to stop again
QUEUE_DELETING = "JobQueue is being deleted: its jobs are terminated"
CE_DELETING = "ComputeEnvironment is being deleted: its running jobs are terminated"


def queue_deleted_reason(name: str) -> str:
    return f"Terminated: job queue {name} was deleted"


def ce_deleted_reason(name: str) -> str:
    return f"Terminated: compute environment {name} was deleted"


def ce_host_gone_reason(name: str) -> str:
    """A job running on a deleted EC2/SPOT environment: its host goes away (`onStatusReason: "Host EC2*"` matches)."""
    return host_terminated_reason(f"of deleted compute environment {name}")


@dataclass
class Budget:
    """What deleting may still do: jobs, and time (`remaining_ms` above `reserve_ms`). One for the whole sweep, so
    many DELETING resources cannot add up past the Lambda's timeout; it remembers the jobs it handled, so a job of a
    DELETING queue running on a DELETING environment is stopped once."""

    jobs: int
    remaining_ms: Callable[[], int] | None = None
    reserve_ms: int = 0
    handled: set[str] = field(default_factory=set)

    def out_of_time(self) -> bool:
        return self.remaining_ms is not None and self.remaining_ms() < self.reserve_ms

    def spent(self) -> bool:
        return self.jobs <= 0 or self.out_of_time()

    def take(self, job_id: str) -> None:
        self.jobs -= 1
        self.handled.add(job_id)


def inline_budget() -> Budget:
    """The Delete request's pass: INLINE_PASS jobs within INLINE_SECONDS."""
    deadline = time.monotonic() + INLINE_SECONDS
    return Budget(INLINE_PASS, lambda: int((deadline - time.monotonic()) * 1000))


def _inline(name: str, one_pass: Callable[[], bool]) -> None:
    """The deletion took effect with its marker: a failure of the first pass must not answer an error (a client
    retrying would find it DELETING anyway); the sweep carries on."""
    try:
        one_pass()
    except Exception:
        log.exception("the first pass deleting %s failed; the sweep carries on", name)


def _due(job: Job, budget: Budget, restop: bool, now: int) -> bool:
    """Does this pass act on the job? Not when handled already in this sweep, nor while its terminate is under way
    (its task was asked to stop; an array parent waits for its children), except that the sweep asks a task again
    once that stop is RESTOP_AFTER_MS old (a stop that found no task, a lost request)."""
    if job.job_id in budget.handled:
        return False
    if not job.is_terminated:
        return True
    return restop and job.status in ACTIVE and now - job.updated_at >= RESTOP_AFTER_MS


def _remove(
    svc: Services,
    started: int,
    read: Callable[[], Any],
    delete: Callable[[Any], None],
    before: Callable[[Any], None] | None = None,
) -> bool:
    record = read()
    if record is None:
        return True
    if record.status != DELETING:
        return False
    since = record.deleting_since
    if since is not None and started - since < svc.settings.deletion_grace_ms:
        return False  # a request that read it before the marker may still write a job: a later pass removes it
    if before is not None:
        before(record)
    try:
        delete(record)  # conditional on the version read: a concurrent change leaves it for the next pass
    except Conflict:
        return False
    return True


# -- job queues ------------------------------------------------------------------------------------------------


def delete_job_queue(svc: Services, reactor: Reactor, req: dict[str, Any]) -> None:
    def attempt() -> str:
        jq = resources.get_jq(svc, req["jobQueue"])
        if jq.deleting:
            return jq.name  # asked again: the deletion goes on
        if jq.state != "DISABLED":
            raise InvalidRequest(f"jobQueue: {jq.name} must be DISABLED before it can be deleted")
        marked = dataclasses.replace(
            jq, status=DELETING, status_reason=QUEUE_DELETING, deleting_since=svc.clock.now_ms()
        )
        svc.repo.save_jq(marked)
        return jq.name

    name = resources.retry_on_conflict(attempt)
    _inline(name, lambda: drain_queue(svc, reactor, name, inline_budget()))


def drain_queue(
    svc: Services, reactor: Reactor, name: str, budget: Budget | None = None, *, restop: bool = False
) -> bool:
    """One pass over a DELETING queue. Returns True when the queue is gone (False when it is not being deleted)."""
    budget = budget or Budget(DRAIN_PASS)
    started = svc.clock.now_ms()
    jq = svc.repo.get_jq(name)
    if jq is None:
        return True
    if not jq.deleting:
        return False
    reason = queue_deleted_reason(name)
    for job in svc.jobs.iter_statuses(name, UNFINISHED):
        if not _due(job, budget, restop, started):
            continue
        if budget.spent():
            return False
        budget.take(job.job_id)
        reactor.apply_all(job.job_id, (lifecycle.Terminate(reason),), read=job)
    if next(iter(svc.jobs.iter_statuses(name, UNFINISHED)), None) is not None:
        return False  # running jobs end when their stop is reported; an array parent when its children have
    return _remove(svc, started, lambda: svc.repo.get_jq(name), svc.repo.delete_jq)


# -- compute environments --------------------------------------------------------------------------------------


def delete_compute_environment(svc: Services, reactor: Reactor, req: dict[str, Any]) -> None:
    def attempt() -> str:
        ce = resources.get_ce(svc, req["computeEnvironment"])
        if ce.status == DELETING:
            return ce.name
        if ce.state != "DISABLED":
            raise InvalidRequest(
                f"computeEnvironment: {ce.name} must be DISABLED before it can be deleted (its state is {ce.state})"
            )
        # A queue being deleted no longer places jobs (and cannot be updated): it does not hold the environment back.
        queues = [q for q in svc.repo.list_jqs() if not q.deleting]
        users = [q.name for q in queues if ce.arn in q.ce_arns_in_order()]
        if users:
            raise InvalidRequest(
                f"computeEnvironment: Cannot delete, found existing JobQueue relationship ({', '.join(users)})"
            )
        # ... and none may attach it meanwhile: the marker is written only if every queue read is unchanged (AWS
        # allows 50 job queues per account, well within a transaction's 100 operations).
        marked = dataclasses.replace(ce, status=DELETING, status_reason=CE_DELETING, deleting_since=svc.clock.now_ms())
        svc.repo.save_ce_if_queues_unchanged(marked, queues)
        return ce.name

    name = resources.retry_on_conflict(attempt)
    _inline(name, lambda: drain_ce(svc, reactor, name, inline_budget()))


def drain_ce(svc: Services, reactor: Reactor, name: str, budget: Budget | None = None, *, restop: bool = False) -> bool:
    """One pass over a DELETING compute environment: end the attempts running on it (placed before it was detached
    from its queues). Returns True when it is gone."""
    budget = budget or Budget(DRAIN_PASS)
    started = svc.clock.now_ms()
    ce = svc.repo.get_ce(name)
    if ce is None:
        return True
    if ce.status != DELETING:
        return False
    left = False
    for queue in svc.repo.list_jqs():
        for job in svc.jobs.iter_statuses(queue.name, ACTIVE):
            if job.current is None or job.current.compute_environment != name:
                continue
            if not _due(job, budget, restop, started):
                left = True
                continue
            if budget.spent():
                return False
            budget.take(job.job_id)
            after = _end_attempt(reactor, ce, job)
            left = left or (after is not None and after.status in ACTIVE)
    if left:
        return False  # they leave the environment when their stop is reported
    release = svc.release_capacity if managed_ec2(ce) else None
    return _remove(svc, started, lambda: svc.repo.get_ce(name), svc.repo.delete_ce, release)


def _end_attempt(reactor: Reactor, ce: ComputeEnvironment, job: Job) -> Job | None:
    """Fargate: terminate the job (AWS wants a Fargate environment's jobs terminated before it is deleted). EC2 /
    SPOT: AWS terminates the instances, so the attempt ends as on a lost host and the job's retry strategy decides
    (its queue may have other environments): the task is stopped, then its stop recorded (as the sweep does for a
    lost host; a later report of that attempt's end changes nothing)."""
    assert job.current is not None
    if ce.is_fargate:
        return reactor.apply_all(job.job_id, (lifecycle.Terminate(ce_deleted_reason(ce.name)),), read=job)
    n, reason = job.current.number, ce_host_gone_reason(ce.name)
    reactor.launcher.stop(job.job_id, n, reason)
    return reactor.apply_all(job.job_id, (lifecycle.TaskStopped(n, None, status_reason=reason),), read=job)


# -- the sweep -------------------------------------------------------------------------------------------------


def drain_all(
    svc: Services, reactor: Reactor, remaining_ms: Callable[[], int] | None = None
) -> tuple[list[str], list[str]]:
    """The sweep's part: one pass over every DELETING queue and compute environment (stops asked again), within one
    Budget: DRAIN_PASS jobs and, when `remaining_ms` is given, the Lambda's time less SWEEP_RESERVE_MS.
    Returns (names gone, errors)."""
    budget = Budget(DRAIN_PASS, remaining_ms, SWEEP_RESERVE_MS)
    gone: list[str] = []
    errors: list[str] = []
    queues = [q.name for q in svc.repo.list_jqs() if q.deleting]
    ces = [ce.name for ce in svc.repo.list_ces(None, 1000) if ce.status == DELETING]
    passes: list[tuple[str, Callable[[str], bool]]] = [
        *((n, lambda n: drain_queue(svc, reactor, n, budget, restop=True)) for n in queues),
        *((n, lambda n: drain_ce(svc, reactor, n, budget, restop=True)) for n in ces),
    ]
    for name, one_pass in passes:
        if budget.out_of_time():
            break  # the next sweep goes on
        try:
            done = one_pass(name)
        except Exception as e:  # the next sweep tries again
            log.exception("deleting %s failed", name)
            errors.append(f"{name}: {type(e).__name__}: {e}")
            continue
        if done:
            gone.append(name)
    return gone, errors
