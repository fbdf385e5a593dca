"""Deleting job queues and compute environments (docs/adr/0021-deleting-queues-and-environments.md).

AWS: DeleteJobQueue — "You must first disable submissions for a queue with the UpdateJobQueue operation. All jobs in
the queue are eventually terminated when you delete a job queue." DeleteComputeEnvironment — "Before you can delete a
compute environment, you must set its state to DISABLED ... and disassociate it from any job queues"
(https://docs.aws.amazon.com/batch/latest/APIReference/API_DeleteJobQueue.html, .../API_DeleteComputeEnvironment.html).
Both resources pass through status DELETING (AWS's JQStatus / CEStatus enums) and are gone once nothing of theirs is
left:

1. Delete*: the record is rewritten with status DELETING, one conditional write: the durable marker. From then on
   the dispatcher places nothing from the queue (or onto the environment), Update* is refused and the name stays
   taken, so a new queue of the same name can never pick up an old job (jobs name their queue).
2. `drain_queue` terminates every unfinished job of the queue (`drain_ce`: every job active on the environment)
   with a reason, page by page, through `Reactor.apply`: a job already terminated is left alone (or, from the
   sweep, asked to stop again). One pass runs in the Delete request (INLINE_PASS jobs); the repair sweep runs one on
   every DELETING resource until done (DRAIN_PASS jobs each), so a crash midway loses nothing and a big queue is
   drained over several passes (AWS terminates "about 16 jobs each second").
3. Once no unfinished job is left (running ones end when their task's stop is reported), the record is deleted,
   conditional on its version; only then is the name free.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from typing import Any

from chalicelib.control import resources
from chalicelib.control.context import Services
from chalicelib.control.react import Reactor
from chalicelib.domain import lifecycle
from chalicelib.domain.errors import Conflict, InvalidRequest
from chalicelib.domain.jobs import ACTIVE, PENDING, RUNNABLE, SUBMITTED, Job
from chalicelib.domain.model import DELETING

log = logging.getLogger("batchplane.deletion")

UNFINISHED = (SUBMITTED, PENDING, RUNNABLE, *ACTIVE)
DRAIN_PASS = 500  # jobs terminated per sweep pass, at most (AWS: "about 16 jobs each second")
INLINE_PASS = 100  # ... and by the Delete request itself, which must answer promptly
QUEUE_DELETING = "JobQueue is being deleted: its jobs are terminated"
CE_DELETING = "ComputeEnvironment is being deleted: its running jobs are terminated"


def queue_deleted_reason(name: str) -> str:
    return f"Terminated: job queue {name} was deleted"


def ce_deleted_reason(name: str) -> str:
    return f"Terminated: compute environment {name} was deleted"


# -- job queues ------------------------------------------------------------------------------------------------


def delete_job_queue(svc: Services, reactor: Reactor, req: dict[str, Any]) -> None:
    def attempt() -> str:
        jq = resources.get_jq(svc, req["jobQueue"])
        if jq.deleting:
            return jq.name  # asked again: the deletion goes on
        if jq.state != "DISABLED":
            raise InvalidRequest(f"jobQueue: {jq.name} must be DISABLED before it can be deleted")
        svc.repo.save_jq(dataclasses.replace(jq, status=DELETING, status_reason=QUEUE_DELETING))
        return jq.name

    name = resources.retry_on_conflict(attempt)
    drain_queue(svc, reactor, name, INLINE_PASS)


def drain_queue(svc: Services, reactor: Reactor, name: str, budget: int | None = None, *, restop: bool = False) -> bool:
    """One pass over a DELETING queue (at most `budget` jobs, DRAIN_PASS by default). Returns True when the queue
    is gone (False when it is not being deleted)."""
    budget = DRAIN_PASS if budget is None else budget
    jq = svc.repo.get_jq(name)
    if jq is None:
        return True
    if not jq.deleting:
        return False
    reason = queue_deleted_reason(name)
    done = 0
    for job in svc.jobs.iter_statuses(name, UNFINISHED):
        if _terminated_already(job, restop):
            continue
        if done >= budget:
            return False
        reactor.apply(job.job_id, lifecycle.Terminate(reason))
        done += 1
    if next(iter(svc.jobs.iter_statuses(name, UNFINISHED)), None) is not None:
        return False  # running jobs end when their stop is reported; an array parent when its children have
    return _remove(lambda: svc.repo.get_jq(name), lambda jq: svc.repo.delete_jq(jq))


def _terminated_already(job: Job, restop: bool) -> bool:
    """A job whose terminate is under way: its task was asked to stop (the sweep asks again), or an array parent
    waiting for its terminated children."""
    return job.is_terminated and not (restop and job.status in ACTIVE)


def _remove(read: Callable[[], Any], delete: Callable[[Any], None]) -> bool:
    record = read()
    if record is None:
        return True
    if record.status != DELETING:
        return False
    try:
        delete(record)  # conditional on the version read: a concurrent change leaves it for the next pass
    except Conflict:
        return False
    return True


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
        # A queue being deleted no longer places jobs; it does not hold the environment back.
        users = [q.name for q in svc.repo.list_jqs() if ce.arn in q.ce_arns_in_order() and not q.deleting]
        if users:
            raise InvalidRequest(
                f"computeEnvironment: Cannot delete, found existing JobQueue relationship ({', '.join(users)})"
            )
        svc.repo.save_ce(dataclasses.replace(ce, status=DELETING, status_reason=CE_DELETING))
        return ce.name

    name = resources.retry_on_conflict(attempt)
    drain_ce(svc, reactor, name, INLINE_PASS)


def drain_ce(svc: Services, reactor: Reactor, name: str, budget: int | None = None, *, restop: bool = False) -> bool:
    """One pass over a DELETING compute environment: terminate the jobs active on it (placed before it was
    detached from its queues). Returns True when it is gone."""
    budget = DRAIN_PASS if budget is None else budget
    ce = svc.repo.get_ce(name)
    if ce is None:
        return True
    if ce.status != DELETING:
        return False
    reason = ce_deleted_reason(name)
    done, left = 0, False
    for queue in svc.repo.list_jqs():
        for job in svc.jobs.iter_statuses(queue.name, ACTIVE):
            if job.current is None or job.current.compute_environment != name:
                continue
            left = True
            if _terminated_already(job, restop):
                continue
            if done >= budget:
                return False
            reactor.apply(job.job_id, lifecycle.Terminate(reason))
            done += 1
    if left:
        return False  # they leave the environment when their stop is reported
    return _remove(lambda: svc.repo.get_ce(name), lambda ce: svc.repo.delete_ce(ce))


def drain_all(svc: Services, reactor: Reactor, budget: int | None = None) -> tuple[list[str], list[str]]:
    """The sweep's part: one pass over every DELETING queue and compute environment (stops asked again).
    Returns (names gone, errors)."""
    gone: list[str] = []
    errors: list[str] = []
    queues = [q.name for q in svc.repo.list_jqs() if q.deleting]
    ces = [ce.name for ce in svc.repo.list_ces(None, 1000) if ce.status == DELETING]
    for kind, names in (("queue", queues), ("ce", ces)):
        for name in names:
            try:
                if kind == "queue":
                    done = drain_queue(svc, reactor, name, budget, restop=True)
                else:
                    done = drain_ce(svc, reactor, name, budget, restop=True)
            except Exception as e:  # the next sweep tries again
                log.exception("deleting %s failed", name)
                errors.append(f"{name}: {type(e).__name__}: {e}")
                continue
            if done:
                gone.append(name)
    return gone, errors
