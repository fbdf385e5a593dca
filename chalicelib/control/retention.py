"""Retention: a finished job leaves the store once a retention period has passed since it stopped (docs/adr/0015).

On AWS, DynamoDB's TTL does this (`store/jobs.RETENTION_SECONDS`, 30 days, and the edges' own TTL). The local runtime
has no TTL: its engine runs `purge` with every periodic sweep. What goes with a job: its dependency edges both ways,
an array's children (theirs too), the log streams of its attempts, and what the launcher keeps per attempt
(`forget`). The job's item goes last, so a purge cut short by a crash is finished by the next one.

Finished top-level jobs are found in their queue's SUCCEEDED and FAILED index partitions, oldest created first: a
job stops after it was created, so the first one created after the cutoff ends the search of a partition. Jobs of
a queue that was deleted are not found (as on AWS, where a deleted queue's jobs stay until their TTL: here, kept).

Client-token claims of idempotent SubmitJob (store/tokens.py) hold 24 hours whatever the retention; on AWS their TTL
removes them, here each purge removes up to `budget` expired ones too (`purge_tokens`), the longest expired first.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from chalicelib.control.context import Services
from chalicelib.domain.jobs import STATUSES, TERMINAL, Job, child_id
from chalicelib.store import tokens

log = logging.getLogger("batchplane.retention")

DAY_MS = 24 * 3600 * 1000
UNFINISHED = tuple(s for s in STATUSES if s not in TERMINAL)
PAGE = 50  # jobs read at a time: usually the first one read was created after the cutoff, and the search ends


def purge(
    svc: Services,
    now_ms: int,
    retention_ms: int,
    *,
    forget: Callable[[Job], None],
    budget: int = 1000,
    stop: Callable[[], bool] = lambda: False,
) -> int:
    """Remove up to about `budget` jobs (an array counts its children) that stopped more than `retention_ms` ago,
    until `stop()` says otherwise, then up to `budget` expired client-token claims. Returns the number of jobs
    removed."""
    removed = _purge_jobs(svc, now_ms - retention_ms, forget, budget, stop)
    if not stop():
        purge_tokens(svc, now_ms, budget=budget, stop=stop)
    return removed


def purge_tokens(svc: Services, now_ms: int, *, budget: int = 1000, stop: Callable[[], bool] = lambda: False) -> int:
    """Remove up to `budget` client-token claims expired at `now_ms`. Returns the number removed."""
    removed = 0
    while removed < budget and not stop():
        limit = min(PAGE, budget - removed)
        batch = tokens.expired(svc.repo.items, now_ms, limit)
        gone = sum(tokens.remove(svc.repo.items, claim) for claim in batch)
        removed += gone
        if len(batch) < limit or not gone:  # the last expired ones; or all taken over meanwhile: next sweep
            break
    if removed:
        log.info("removed %d expired client-token claims", removed)
    return removed


def _purge_jobs(
    svc: Services, cutoff: int, forget: Callable[[Job], None], budget: int, stop: Callable[[], bool]
) -> int:
    removed = 0
    for queue in svc.repo.list_jqs():
        for status in TERMINAL:
            for job in svc.jobs.iter_queue(queue.name, status, page=PAGE):
                if job.created_at >= cutoff:
                    break
                if (job.stopped_at or job.updated_at) >= cutoff or not _removable(svc, job):
                    continue
                removed += _remove(svc, job, forget)
                if removed >= budget or stop():
                    return removed
    return removed


def _removable(svc: Services, job: Job) -> bool:
    """Not while a job still waits for it: its notification may be queued, and once the job and its edge are gone
    the dependent would learn of it only as a dependency that no longer exists. Not an array whose children are not
    all finished (a child claimed while its parent was being cancelled)."""
    if job.is_array_parent and any(svc.jobs.iter_children(job.job_id, *UNFINISHED)):
        return False
    ids = [job.job_id]
    if job.is_array_parent and job.array is not None:
        ids += [child_id(job.job_id, i) for i in range(job.array.children_created)]
    for dependency in ids:
        dependents = list(svc.jobs.dependents(dependency))
        if any(dependency in d.pending for d in svc.jobs.get_many(dependents)):
            return False
    return True


def _remove(svc: Services, job: Job, forget: Callable[[Job], None]) -> int:
    removed = 0
    if job.is_array_parent:
        for child in list(svc.jobs.iter_children(job.job_id, *TERMINAL)):
            removed += _remove(svc, child, forget)
    attempts = {a.number: a for a in (*job.attempts, *((job.current,) if job.current else ()))}
    for attempt in attempts.values():
        if svc.logs is not None and attempt.log_stream:
            svc.logs.delete(attempt.log_stream)
    forget(job)
    if not svc.jobs.remove(job):
        log.info("%s changed while it was being removed; left for the next purge", job.job_id)
        return removed
    return removed + 1
