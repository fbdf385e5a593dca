"""The STARTING and RUNNING jobs of the only dispatcher's runtime (the local engine), kept in memory."""

from __future__ import annotations

import threading
from collections.abc import Iterator

from chalicelib.control.context import Services
from chalicelib.control.timeouts import Deadlines
from chalicelib.domain.jobs import ACTIVE, Job
from chalicelib.domain.runs import held_vcpus


def active_jobs(svc: Services, queue: str) -> Iterator[Job]:
    """The queue's STARTING and RUNNING jobs, top-level and array children."""
    return svc.jobs.iter_statuses(queue, ACTIVE)


class ActiveJobs:
    """The STARTING and RUNNING jobs (and so the vCPUs in use per compute environment), kept in memory by a runtime
    whose dispatcher is the only one. The store stays the truth: `rebuild` reads it (at start and on every sweep),
    and between rebuilds `changed` follows every job the runtime's reactor persists (`Reactor(observe=...)`).

    Jobs enter STARTING only by the dispatcher's claim and leave STARTING/RUNNING only by a task event or the sweep,
    but the reactor reports what it saved from every thread (the work queue's dependency notices, a Terminate's
    request thread), after the save: two reports of one job can arrive in the other order. So a report older than
    what is held, or than a removal seen, changes nothing (versions only grow); otherwise a RUNNABLE report
    crossing the claim's would drop a STARTING job and free its vCPUs twice. Held per job, so a change seen twice
    counts once. Removals are remembered for two rebuilds. Until the first rebuild, `used` is None: read the store."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._held: dict[str, Job] | None = None
        self._gone: dict[str, int] = {}  # job id -> version of its removal, since the last rebuild
        self._gone_before: dict[str, int] = {}  # ... and in the interval before it
        self._runs: dict[str, int] = {}  # run id -> its children held (domain/runs.py)
        self.deadlines = Deadlines()  # of the held RUNNING attempts (control/timeouts.py)

    def rebuild(self, svc: Services) -> None:
        read = [job for queue in svc.repo.list_jqs() for job in active_jobs(svc, queue.name) if job.current is not None]
        with self._lock:
            self._held = {job.job_id: job for job in read if self._removed_at(job.job_id) < job.version}
            self._gone_before, self._gone = self._gone, {}
            self._runs = {}
            for job in self._held.values():
                self._count_run(job, 1)
            self.deadlines.rebuild(self._held.values())

    def _removed_at(self, job_id: str) -> int:
        return max(self._gone.get(job_id, -1), self._gone_before.get(job_id, -1))

    def changed(self, job: Job) -> None:
        with self._lock:
            if self._held is None:
                return
            held = self._held.get(job.job_id)
            if (held is not None and held.version >= job.version) or self._removed_at(job.job_id) >= job.version:
                return  # an older report than one already seen
            if held is not None:
                self._count_run(held, -1)
            if job.status in ACTIVE and job.current is not None:
                self._held[job.job_id] = job
                self._count_run(job, 1)
                self.deadlines.changed(job)
            else:
                self._held.pop(job.job_id, None)
                self._gone[job.job_id] = job.version

    def _count_run(self, job: Job, n: int) -> None:
        run = job.current.run if job.current is not None else None
        if run is not None:
            left = self._runs.get(run, 0) + n
            if left > 0:
                self._runs[run] = left
            else:
                self._runs.pop(run, None)

    def holds_run(self, run: str) -> bool:
        """Is a child of this run (domain/runs.py) still STARTING or RUNNING? Then its slot is still held."""
        with self._lock:
            return run in self._runs

    def get(self, job_id: str) -> Job | None:
        """The job as last read or written here, if it is active (the store may hold a later version)."""
        with self._lock:
            return None if self._held is None else self._held.get(job_id)

    def used(self) -> dict[str, float] | None:
        """vCPUs in use per CE name; None before the first rebuild."""
        with self._lock:
            if self._held is None:
                return None
            return held_vcpus(self._held.values())  # (a run's children count once: domain/runs.py)
