"""The first RUNNABLE jobs of each queue, kept between dispatch cycles by the only dispatcher (the local engine).

Every cycle reads the first RUNNABLE jobs of each queue (`dispatch.runnable_jobs`: two index queries and the decode
of each job read). For an array whose children run for milliseconds that read was a ninth of the local server's
CPU per child (`make bench WORKLOAD=array-1000000`), and it read the same few children again and again as they
moved up the queue. This keeps what one read found and serves the next cycles from it while it is still the
queue's prefix:

- A read takes the first `n` jobs of both partitions (top-level jobs, array children) and keeps their merged list
  up to the *boundary*: the lower of the two last keys read (a partition read to its end has none). Up to the
  boundary the list is exactly what a new read would return, in the same order.
- The store tells what was put into those partitions since (store/port.py `PartitionWatch`): the lowest sort key
  written. A job that became RUNNABLE, or a RUNNABLE job that changed (a reason written), with a key at or below
  the boundary ends the kept list. One written beyond it (the next chunk of an array's children, a later
  submission) does not: it comes after everything kept, and the next read finds it once the kept jobs are used.
- The dispatcher removes what it claims (a claim that raised, written or not, drops the list). A job that another
  writer ended before it ran (cancelled, terminated, timed out in the queue) is reported by the reactor, which sees
  every job it saves (`changed`, from any thread): its queue's list is dropped. Waiting for its claim or reason
  write to fail instead could hold a queue back: a job at the head that waits for capacity gets no write while its
  reason stands, and the jobs behind it that would fit would wait for it.
- The engine drops every list at each periodic sweep: what a writer outside the reactor ends is seen by then.

A list served whole and used up is read again with twice as many jobs (up to MAX_AHEAD); after it ended for a
write, with as many as the cycles took from it (up to MAX_AHEAD). A queue whose prefix changes on every cycle
(independent submissions) reads what it read before.
"""

from __future__ import annotations

import bisect
import threading
from collections.abc import Callable
from dataclasses import dataclass

from chalicelib.control.context import Services
from chalicelib.domain.jobs import FAILED, RUNNABLE, Job
from chalicelib.store.jobs import order_key, queue_partition
from chalicelib.store.port import PartitionWatch

MAX_AHEAD = 256  # dispatch.WINDOW: a cycle never asks for more than that from a FIFO queue


@dataclass
class _Kept:
    jobs: list[Job]  # the queue's first RUNNABLE jobs in submission order, up to the boundary, minus claims
    keys: list[str]  # their order keys
    boundary: str | None  # None: both partitions were read to their end
    read: int  # how many were read from each partition
    taken: int = 0  # how many the dispatcher claimed from it


class RunnableCache:
    def __init__(self, store: PartitionWatch) -> None:
        self._store = store
        self._kept: dict[str, _Kept] = {}
        self._watches: dict[str, tuple[Callable[[], str | None], ...]] = {}  # per queue: its two partitions'
        self._lock = threading.Lock()
        self._ended: set[str] = set()  # queues where a job ended without running (`changed`), any thread

    def changed(self, job: Job) -> None:
        """The reactor saved `job` (on any thread). A job ended before it ran (cancelled or terminated while
        RUNNABLE) may be kept: its queue is read again. Any FAILED job counts (telling which were RUNNABLE would
        take a read): an array whose children fail reads its queue as often as it did before this cache."""
        if job.status == FAILED:
            with self._lock:
                self._ended.add(job.queue)

    def read(self, svc: Services, queue: str, limit: int) -> list[Job]:
        """The first `limit` RUNNABLE jobs of `queue` in submission order (as `dispatch.runnable_jobs`)."""
        if self._ended:
            with self._lock:
                ended, self._ended = self._ended, set()
            for name in ended:
                self._kept.pop(name, None)
        watches = self._watches.get(queue)
        if watches is None:  # from now on (a list is kept only once its watches are on)
            watches = self._watches[queue] = tuple(
                self._store.watch("gsi1", queue_partition(queue, RUNNABLE, children=kids)) for kids in (False, True)
            )
        written = [key for take in watches if (key := take()) is not None]
        low = min(written) if written else None
        kept = self._kept.get(queue)
        if kept is not None:
            unchanged = low is None or (kept.boundary is not None and low > kept.boundary)
            if unchanged and (len(kept.jobs) >= limit or kept.boundary is None):
                return kept.jobs[:limit]
            # Used up while unchanged: the queue moves through a stable backlog, read further ahead. Ended by a
            # write: read as far as the claims went last time.
            ahead = min(MAX_AHEAD, 2 * kept.read if unchanged else kept.taken)
            # The writes were taken from the watches: a read that fails must not leave this list to be served.
            del self._kept[queue]
        else:
            ahead = 0
        return self._fill(svc, queue, max(limit, ahead))[:limit]

    def _fill(self, svc: Services, queue: str, n: int) -> list[Job]:
        # The watches were taken before these reads (above): what is put from here on is seen by the next `read`.
        top = svc.jobs.in_queue(queue, RUNNABLE, limit=n)
        kids = svc.jobs.in_queue(queue, RUNNABLE, children=True, limit=n)
        ends = [order_key(part[-1]) for part in (top, kids) if len(part) == n]
        boundary = min(ends) if ends else None
        jobs = sorted(top + kids, key=order_key)
        keys = [order_key(j) for j in jobs]
        if boundary is not None:
            cut = bisect.bisect_right(keys, boundary)
            jobs, keys = jobs[:cut], keys[:cut]
        self._kept[queue] = _Kept(jobs, keys, boundary, n)
        return jobs

    def claimed(self, queue: str, job: Job) -> None:
        """The dispatcher claimed `job`: it is no longer RUNNABLE."""
        kept = self._kept.get(queue)
        if kept is None:
            return
        i = bisect.bisect_left(kept.keys, order_key(job))
        if i < len(kept.jobs) and kept.jobs[i].job_id == job.job_id:
            del kept.jobs[i], kept.keys[i]
            kept.taken += 1
        else:
            self.forget(queue)

    def forget(self, queue: str | None = None) -> None:
        """Read `queue` (every queue: None) again at its next cycle."""
        if queue is None:
            self._kept.clear()
        else:
            self._kept.pop(queue, None)
