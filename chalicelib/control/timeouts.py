"""Attempt timeouts: one mechanism for every launcher (docs/adr/0025).

The control plane owns an attempt's deadline, `Job.deadline`: its startedAt plus the job's attemptDurationSeconds,
both stored with the job, so nothing is lost when the control plane restarts. No launcher times anything; when an
attempt is past its deadline, `lifecycle.TimedOut` marks it (statusReason "Job attempt duration exceeded timeout")
and asks its launcher to stop it with that reason (`StopTask`), as a TerminateJob does: a process gets SIGTERM, a
container `docker stop`, an ECS task StopTask; each reports its stop like any other, and the marked attempt fails the
job without a retry.

Two callers find expired attempts:
- the repair sweep (control/sweep.py, step 2), in both runtimes: on AWS the only one (the scheduled Lambda, once a
  minute, reading the active jobs it reads anyway: no extra call); it also asks again, every sweep, to stop a
  marked attempt whose stop was not reported yet;
- the local engine (runtime/engine.py), which keeps the deadlines of the RUNNING jobs it holds in memory
  (`Deadlines`, fed by `ActiveJobs`) and wakes at the soonest, so a local timeout is not a sweep period late.
"""

from __future__ import annotations

import heapq
import threading
from collections.abc import Iterable

from chalicelib.domain.jobs import Job


def _entry(job: Job) -> tuple[int, str, int] | None:
    """(deadline, job id, attempt) of a job whose running attempt will time out and is not marked yet."""
    deadline = job.deadline
    if deadline is None or job.timeout_marked or job.current is None:
        return None
    return deadline, job.job_id, job.current.number


class Deadlines:
    """The deadlines of running attempts, soonest first. Entries are candidates only: one whose attempt stopped,
    or was marked, stays until it is due, and `due` leaves it to the caller to check the job it names still
    runs that attempt (against ActiveJobs, which holds each job's latest version)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._heap: list[tuple[int, str, int]] = []

    def changed(self, job: Job) -> None:
        if (entry := _entry(job)) is not None:
            with self._lock:
                heapq.heappush(self._heap, entry)

    def rebuild(self, jobs: Iterable[Job]) -> None:
        heap = [entry for job in jobs if (entry := _entry(job)) is not None]
        heapq.heapify(heap)
        with self._lock:
            self._heap = heap

    def next_due(self) -> int | None:
        """Epoch ms of the soonest deadline; None when no attempt has one."""
        with self._lock:
            return self._heap[0][0] if self._heap else None

    def due(self, now_ms: int) -> list[tuple[str, int]]:
        """(job id, attempt) of every deadline reached, each once; they are forgotten."""
        found: dict[tuple[str, int], None] = {}
        with self._lock:
            while self._heap and self._heap[0][0] <= now_ms:
                _, job_id, attempt = heapq.heappop(self._heap)
                found[(job_id, attempt)] = None
        return list(found)
