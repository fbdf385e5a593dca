"""Job persistence: the key layout of jobs, array children and dependency edges (docs/adr/0002).

- job: pk "JOB#<id>", sk "".
- gsi1, by queue and status, FIFO by creation: top-level jobs ("Q#<queue>#<STATUS>", "<createdAt>#<id>");
  array children ("QC#<queue>#<STATUS>", "<createdAt>#<parent>#<index>") while not terminal only, so finished
  children do not bloat the queue partitions and ListJobs(jobQueue) never wades through them.
- gsi2, array children by parent and status: ("ARR#<parent>#<STATUS>", "<index>").
- dependency edge: pk "DEP#<dependency id>", sk "<dependent id>": a finished job finds its dependents by key.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from chalicelib.domain.jobs import TERMINAL, ArrayInfo, Attempt, Dependency, Job
from chalicelib.store.port import Item, ItemStore, Op, Put
from chalicelib.store.repository import expect_of

INDEX_WIDTH = 7
# How long a finished job stays describable on AWS before DynamoDB's TTL removes it (AWS Batch keeps them at least
# 7 days). Its dependency edges are kept: an edge may be read for as long as a dependent can be submitted.
RETENTION_SECONDS = 30 * 24 * 3600
TIME_WIDTH = 13


def job_pk(job_id: str) -> str:
    return f"JOB#{job_id}"


def queue_partition(queue: str, status: str, *, children: bool = False) -> str:
    return f"{'QC' if children else 'Q'}#{queue}#{status}"


def array_partition(parent_id: str, status: str) -> str:
    return f"ARR#{parent_id}#{status}"


def order_key(job: Job) -> str:
    if job.array is not None and job.array.index is not None:
        return f"{job.created_at:0{TIME_WIDTH}d}#{job.array.parent_id}#{job.array.index:0{INDEX_WIDTH}d}"
    return f"{job.created_at:0{TIME_WIDTH}d}#{job.job_id}"


_JOB_FIELDS = tuple(f.name for f in dataclasses.fields(Job) if f.name != "version")


def job_body(job: Job) -> dict[str, Any]:
    """The job as a JSON-ready dict. Not `dataclasses.asdict`: that deep-copies every nested dict and list, and
    it was the largest CPU cost of the local engine (3 s of 10 s for a 500-child array). The body is serialised at
    once and jobs are immutable, so sharing their dicts is safe."""
    body = {name: getattr(job, name) for name in _JOB_FIELDS}
    body["depends_on"] = [dict(vars(d)) for d in job.depends_on]
    body["attempts"] = [dict(vars(a)) for a in job.attempts]
    body["current"] = dict(vars(job.current)) if job.current else None
    body["array"] = dict(vars(job.array)) if job.array else None
    return body


def job_item(job: Job) -> Item:
    body = job_body(job)
    gsi1: tuple[str, str] | None
    gsi2: tuple[str, str] | None = None
    if job.is_array_child:
        assert job.array is not None and job.array.parent_id is not None and job.array.index is not None
        gsi1 = (
            None if job.status in TERMINAL else (queue_partition(job.queue, job.status, children=True), order_key(job))
        )
        gsi2 = (array_partition(job.array.parent_id, job.status), f"{job.array.index:0{INDEX_WIDTH}d}")
    else:
        gsi1 = (queue_partition(job.queue, job.status), order_key(job))
    return Item(job_pk(job.job_id), "", body, gsi1=gsi1, gsi2=gsi2, expires_at=expires_at(job))


def expires_at(job: Job) -> int | None:
    """A finished job's expiry (epoch seconds), RETENTION_SECONDS after it stopped; None while it is not finished."""
    if job.status not in TERMINAL:
        return None
    return (job.stopped_at or job.updated_at or job.created_at) // 1000 + RETENTION_SECONDS


def job_from_item(item: Item) -> Job:
    b: dict[str, Any] = dict(item.body)
    b["depends_on"] = tuple(Dependency(**d) for d in b["depends_on"])
    b["pending"] = tuple(b["pending"])
    b["attempts"] = tuple(Attempt(**a) for a in b["attempts"])
    b["current"] = Attempt(**b["current"]) if b["current"] else None
    b["array"] = ArrayInfo(**b["array"]) if b["array"] else None
    b["platform_capabilities"] = tuple(b["platform_capabilities"])
    return Job(**b, version=item.version)


def edge_item(dependency_id: str, dependent_id: str) -> Item:
    return Item(f"DEP#{dependency_id}", dependent_id, {})


class JobRepository:
    def __init__(self, items: ItemStore) -> None:
        self.items = items

    def get(self, job_id: str) -> Job | None:
        item = self.items.get(job_pk(job_id), "")
        return job_from_item(item) if item else None

    def get_many(self, job_ids: Sequence[str]) -> list[Job]:
        return [job_from_item(i) for i in self.items.batch_get([(job_pk(j), "") for j in job_ids])]

    def save(self, job: Job) -> Job:
        """One conditional write: create (version 0) or compare-and-set on the version read."""
        return dataclasses.replace(job, version=self.items.put(job_item(job), expect_of(job.version)).version)

    def create_with_edges(self, job: Job, dependencies: Sequence[str]) -> Job:
        """The job and its dependency edges, all or nothing."""
        ops: list[Op] = [Put(job_item(job), None)]
        ops += [Put(edge_item(dep, job.job_id), None) for dep in dependencies]
        self.items.transact(ops)
        return dataclasses.replace(job, version=1)

    def create_many(self, jobs: Sequence[Job], edges: Sequence[tuple[str, str]] = ()) -> None:
        ops: list[Op] = [Put(job_item(j), None) for j in jobs]
        ops += [Put(edge_item(dep, dependent), None) for dep, dependent in edges]
        self.items.transact(ops)

    def dependents(self, job_id: str, *, after: str | None = None, page: int = 500) -> Iterator[str]:
        """Ids of the jobs that depend on `job_id`, in id order, strictly after `after`."""
        while True:
            items = self.items.query("main", f"DEP#{job_id}", after=after, limit=page)
            yield from (i.sk for i in items)
            if len(items) < page:
                return
            after = items[-1].sk

    def in_queue(
        self,
        queue: str,
        status: str,
        *,
        children: bool = False,
        after: str | None = None,
        limit: int = 100,
        descending: bool = False,
    ) -> list[Job]:
        items = self.items.query(
            "gsi1", queue_partition(queue, status, children=children), after=after, limit=limit, descending=descending
        )
        return [job_from_item(i) for i in items]

    def children(self, parent_id: str, status: str, *, after: str | None = None, limit: int = 100) -> list[Job]:
        items = self.items.query("gsi2", array_partition(parent_id, status), after=after, limit=limit)
        return [job_from_item(i) for i in items]

    def count_children(self, parent_id: str, status: str) -> int:
        return self.items.count("gsi2", array_partition(parent_id, status))

    def iter_children(self, parent_id: str, status: str, page: int = 500) -> Iterator[Job]:
        after: str | None = None
        while True:
            batch = self.children(parent_id, status, after=after, limit=page)
            yield from batch
            if len(batch) < page:
                return
            last = batch[-1].array
            assert last is not None and last.index is not None
            after = f"{last.index:0{INDEX_WIDTH}d}"

    def iter_statuses(self, queue: str, statuses: Iterable[str]) -> Iterator[Job]:
        """Every job of a queue in these statuses, top-level jobs and array children (status by status)."""
        for status in statuses:
            for children in (False, True):
                yield from self.iter_queue(queue, status, children=children)

    def iter_queue(self, queue: str, status: str, *, children: bool = False, page: int = 500) -> Iterator[Job]:
        after: str | None = None
        while True:
            batch = self.in_queue(queue, status, children=children, after=after, limit=page)
            yield from batch
            if len(batch) < page:
                return
            after = order_key(batch[-1])
