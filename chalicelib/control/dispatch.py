"""Dispatch: snapshot the store, plan one cycle (domain/scheduling.py), claim each placement.

A claim is the conditional write RUNNABLE -> STARTING; its Launch effect starts the attempt under the key
jobId#attempt. Two dispatchers racing on one job: one claim wins, the other sees a job that is no longer RUNNABLE
and does nothing, so no job is launched twice.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import replace

from chalicelib.control.context import Services
from chalicelib.control.react import Reactor
from chalicelib.domain import lifecycle, scheduling
from chalicelib.domain.errors import Conflict
from chalicelib.domain.jobs import ACTIVE, RUNNABLE, STARTING, Job
from chalicelib.store.jobs import order_key

# How many RUNNABLE jobs per queue one cycle looks at: enough to fill any CE; the next cycle sees the rest.
WINDOW = 256


def log_stream_name(job: Job, task_id: str) -> str:
    return f"{job.job_definition_name[:200]}/default/{task_id}"


class Dispatcher:
    def __init__(self, svc: Services, reactor: Reactor, new_task_id: Callable[[], str]) -> None:
        self.svc = svc
        self.reactor = reactor
        self.new_task_id = new_task_id

    def cycle(self) -> int:
        """One scheduling cycle. Returns the number of jobs placed."""
        queues = self.svc.repo.list_jqs()
        ces = {ce.arn: ce for ce in self.svc.repo.list_ces(None, 1000)}
        used: dict[str, float] = {ce.name: 0.0 for ce in ces.values()}
        runnable: dict[str, list[Job]] = {}
        for q in queues:
            for status in ACTIVE:
                for children in (False, True):
                    for job in self.svc.jobs.iter_queue(q.name, status, children=children):
                        if job.current is not None and job.current.compute_environment in used:
                            used[job.current.compute_environment] += job.vcpus
            if q.state == "ENABLED":
                top = self.svc.jobs.in_queue(q.name, RUNNABLE, limit=WINDOW)
                kids = self.svc.jobs.in_queue(q.name, RUNNABLE, children=True, limit=WINDOW)
                runnable[q.name] = sorted(top + kids, key=order_key)[:WINDOW]
        capacity = {
            ce.name: scheduling.CapacityView(ce.name, float(ce.max_vcpus), used[ce.name], ce.schedulable)
            for ce in ces.values()
        }
        views = [
            scheduling.QueueView(
                q.name,
                q.priority,
                q.state == "ENABLED",
                tuple(ces[a].name for a in q.ce_arns_in_order() if a in ces),
            )
            for q in queues
        ]
        jobs = {j.job_id: j for js in runnable.values() for j in js}
        job_views = {
            q: [scheduling.JobView(j.job_id, j.vcpus, j.status_reason) for j in js] for q, js in runnable.items()
        }
        result = scheduling.plan(views, capacity, job_views)
        for blocked in result.blocked:
            self._block(jobs[blocked.job_id], blocked.reason)
        placed = 0
        for placement in result.placements:
            job = jobs[placement.job_id]
            task_id = self.new_task_id()
            claim = lifecycle.Claim(placement.compute_environment, task_id, log_stream_name(job, task_id))
            after = self.reactor.apply(job.job_id, claim)
            if after is not None and after.status == STARTING and after.current and after.current.task_id == task_id:
                placed += 1
        return placed

    def _block(self, job: Job, reason: str) -> None:
        """Record why a RUNNABLE job waits (no state change, so no event)."""
        with contextlib.suppress(Conflict):  # it moved on meanwhile; the next cycle re-evaluates
            self.svc.jobs.save(replace(job, status_reason=reason))
