"""Job persistence: the key layout of jobs, array children and dependency edges (docs/adr/0002).

- job: pk "JOB#<id>", sk "".
- gsi1, by queue and status, FIFO by creation: top-level jobs ("Q#<queue>#<STATUS>", "<createdAt>#<id>");
  array children ("QC#<queue>#<STATUS>", "<createdAt>#<parent>#<index>") while not terminal only, so finished
  children do not bloat the queue partitions and ListJobs(jobQueue) never wades through them.
- gsi2, array children by parent and status: ("ARR#<parent>#<STATUS>", "<index>").
- In both indexes STARTING and RUNNING share one partition, "ACTIVE" in place of the status (`index_status`): a job's
  STARTING -> RUNNING write then updates its index entries in place instead of moving them, which on DynamoDB is
  one index write unit instead of two per index (docs/adr/0013). Reads of either status read the ACTIVE partition
  and keep the jobs in that status; the dispatcher, the sweep and capacity want both and read it once.
- dependency edge: pk "DEP#<dependency id>", sk "<dependent id>": a finished job finds its dependents by key.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from chalicelib.domain.errors import Conflict
from chalicelib.domain.jobs import ACTIVE, TERMINAL, ArrayInfo, Attempt, Dependency, Job, Timeout
from chalicelib.domain.records import replace
from chalicelib.domain.retry import RetryStrategy
from chalicelib.store.caps import CapRepository
from chalicelib.store.consumables import ConsumableRepository, consumer_items
from chalicelib.store.port import MAX_TRANSACT_OPS, Index, Item, ItemStore, Op, Put
from chalicelib.store.repository import expect_of

INDEX_WIDTH = 7
# How long a finished job stays describable on AWS before DynamoDB's TTL removes it (AWS Batch keeps them at least
# 7 days).
RETENTION_SECONDS = 30 * 24 * 3600
# How long a dependency edge is kept after its dependent was submitted. An edge is written once and never updated,
# so it cannot expire with its dependent (whose end is unknown when the edge is written): it expires long after a
# dependent usually has. A dependent still waiting when its edge expires loses nothing: when the dependency ends,
# the repair sweep settles the stale PENDING job from its own list of dependencies (control/sweep.py, step 3).
EDGE_RETENTION_SECONDS = 3 * RETENTION_SECONDS
TIME_WIDTH = 13
ACTIVE_PARTITION = "ACTIVE"  # the index partitions' status for STARTING and RUNNING jobs
_INDEX_STATUS = {status: ACTIVE_PARTITION for status in ACTIVE}


def index_status(status: str) -> str:
    """The status an index partition is named by: STARTING and RUNNING share ACTIVE, every other is its own."""
    return _INDEX_STATUS.get(status, status)


def job_pk(job_id: str) -> str:
    return f"JOB#{job_id}"


def queue_partition(queue: str, status: str, *, children: bool = False) -> str:
    return f"{'QC' if children else 'Q'}#{queue}#{index_status(status)}"


def array_partition(parent_id: str, status: str) -> str:
    return f"ARR#{parent_id}#{index_status(status)}"


def _legacy_partitions(queue: str) -> Iterator[str]:
    """The index partitions STARTING and RUNNING jobs had before they shared ACTIVE (state written by an earlier
    version)."""
    for status in ACTIVE:
        for prefix in ("Q", "QC"):
            yield f"{prefix}#{queue}#{status}"


def order_key(job: Job) -> str:
    if job.array is not None and job.array.index is not None:
        return f"{job.created_at:0{TIME_WIDTH}d}#{job.array.parent_id}#{job.array.index:0{INDEX_WIDTH}d}"
    return f"{job.created_at:0{TIME_WIDTH}d}#{job.job_id}"


# `cancel_reason` is written only when set: None in nearly every job, it would cost every stored body its bytes
# (and break the run of fields the compression dictionary expects); a body without it reads back as None.
# So are `consumable_resources` (empty in nearly every job), `ecs_properties` (multi-container jobs only), a
# multi-node job's `node_properties`, and an attempt's `containers` and `nodes` (node views' `node_index` is never
# stored).
_SPARSE = ("cancel_reason", "consumable_resources", "caps", "ecs_properties", "node_properties", "node_index")
_JOB_FIELDS = tuple(f.name for f in dataclasses.fields(Job) if f.name not in ("version", *_SPARSE))


def _attempt_body(a: Attempt) -> dict[str, Any]:
    body = dict(vars(a))
    if not a.containers:
        del body["containers"]
    if a.nodes is None:
        del body["nodes"]
    if a.capacity is None:
        del body["capacity"]
    if a.run is None:
        del body["run"]
    return body


def _attempt(a: dict[str, Any]) -> Attempt:
    if "containers" in a:
        a = {**a, "containers": tuple(a["containers"])}
    return Attempt(**a)


def _array_body(array: ArrayInfo) -> dict[str, Any]:
    """The array bookkeeping; the lazy-children fields (docs/adr/0031) only when set, so a child's body and the
    bodies written before them stay as they were."""
    body = dict(vars(array))
    for name in ("done_base", "window"):
        if not body[name]:
            del body[name]
    return body


def job_body(job: Job) -> dict[str, Any]:
    """The job as a JSON-ready dict. Not `dataclasses.asdict`: that deep-copies every nested dict and list, and
    it was the largest CPU cost of the local engine (3 s of 10 s for a 500-child array). The body is serialised at
    once and jobs are immutable, so sharing their dicts is safe."""
    body = {name: getattr(job, name) for name in _JOB_FIELDS}
    # The retry strategy and timeout are stored in their wire form, as when Job held them as dicts: bodies written
    # before and after read the same, and the compression dictionary (store/dynamo.py) still finds them.
    body["retry_strategy"] = job.retry_strategy.to_wire() if job.retry_strategy else {}
    body["timeout"] = job.timeout.to_wire() if job.timeout else {}
    body["depends_on"] = [dict(vars(d)) for d in job.depends_on]
    body["attempts"] = [_attempt_body(a) for a in job.attempts]
    body["current"] = _attempt_body(job.current) if job.current else None
    body["array"] = _array_body(job.array) if job.array else None
    if job.cancel_reason is not None:
        body["cancel_reason"] = job.cancel_reason
    if job.consumable_resources:
        body["consumable_resources"] = job.consumable_resources
    if job.caps:
        body["caps"] = job.caps
    if job.ecs_properties is not None:
        body["ecs_properties"] = job.ecs_properties
    if job.node_properties is not None:
        body["node_properties"] = job.node_properties
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
    b["retry_strategy"] = RetryStrategy.from_wire(b.get("retry_strategy"))
    b["timeout"] = Timeout.from_wire(b.get("timeout"))
    b["depends_on"] = tuple(Dependency(**d) for d in b["depends_on"])
    b["pending"] = tuple(b["pending"])
    b["attempts"] = tuple(_attempt(a) for a in b["attempts"])
    b["current"] = _attempt(b["current"]) if b["current"] else None
    b["array"] = ArrayInfo(**b["array"]) if b["array"] else None
    b["platform_capabilities"] = tuple(b["platform_capabilities"])
    return Job(**b, version=item.version)


def edge_item(dependency_id: str, dependent_id: str, submitted_ms: int) -> Item:
    return Item(f"DEP#{dependency_id}", dependent_id, {}, expires_at=submitted_ms // 1000 + EDGE_RETENTION_SECONDS)


class JobRepository:
    def __init__(self, items: ItemStore) -> None:
        self.items = items

    def get(self, job_id: str) -> Job | None:
        item = self.items.get(job_pk(job_id), "")
        return job_from_item(item) if item else None

    def get_many(self, job_ids: Sequence[str]) -> list[Job]:
        return [job_from_item(i) for i in self.items.batch_get([(job_pk(j), "") for j in job_ids])]

    def save(self, job: Job) -> Job:
        """One conditional write: create (version 0) or compare-and-set on the version read. A job that names
        consumable resources takes or returns its units in the same transaction when its attempt starts or ends
        (store/consumables.py); `consumables.Unavailable` when the units it would take are not there. So does a job
        under concurrency caps with its places (store/caps.py; `caps.AtLimit`)."""
        if job.consumable_resources or job.caps:
            return self._save_with_units(job)
        return replace(job, version=self.items.put(job_item(job), expect_of(job.version)).version)

    def save_all(self, jobs: Sequence[Job]) -> list[Job]:
        """`save` for several jobs in one transaction (at most MAX_TRANSACT_OPS), all or nothing: `Conflict` when one
        of them changed since it was read. Not for jobs that take or return units (consumable resources, caps)."""
        if any(job.consumable_resources or job.caps for job in jobs):
            raise ValueError("save_all: a job with units to move is saved on its own (save)")
        self.items.transact([Put(job_item(job), expect_of(job.version)) for job in jobs])
        return [replace(job, version=job.version + 1) for job in jobs]

    def _save_with_units(self, job: Job) -> Job:
        expect = expect_of(job.version)
        stored = self.items.get(job_pk(job.job_id), "")
        if (stored.version if stored is not None else None) != expect:
            raise Conflict(job_pk(job.job_id), expect)  # the put would lose its condition anyway
        before = job_from_item(stored) if stored is not None else None
        moves = ConsumableRepository(self.items).unit_moves(before, job) if job.consumable_resources else []
        moves += CapRepository(self.items).cap_moves(before, job) if job.caps else []
        if not moves:
            return replace(job, version=self.items.put(job_item(job), expect).version)
        self.items.transact([Put(job_item(job), expect), *moves])
        return replace(job, version=job.version + 1)

    def create_with_edges(self, job: Job, dependencies: Sequence[str], claim: Put | None = None) -> Job:
        """The job, its dependency edges and its client-token `claim` (store/tokens.py), all or nothing. Edges that do
        not fit the one transaction (a lifted dependency limit, validation.SETTABLE_LIMITS) are written first: an
        edge to a job never written is harmless (a notification finds no job) and expires (EDGE_RETENTION_SECONDS)."""
        ops: list[Op] = [Put(job_item(job), None), *([claim] if claim is not None else [])]
        ops += [Put(item, None) for item in consumer_items(job, order_key(job))]
        edges: list[Op] = [Put(edge_item(dep, job.job_id, job.created_at), None) for dep in dependencies]
        room = max(0, MAX_TRANSACT_OPS - len(ops))
        early, edges = edges[: max(0, len(edges) - room)], edges[max(0, len(edges) - room) :]
        for start in range(0, len(early), MAX_TRANSACT_OPS):
            self.items.transact(early[start : start + MAX_TRANSACT_OPS])
        self.items.transact(ops + edges)
        return replace(job, version=1)

    def create_many(self, jobs: Sequence[Job], edges: Sequence[tuple[str, str]] = ()) -> None:
        ops: list[Op] = [Put(job_item(j), None) for j in jobs]
        submitted = {j.job_id: j.created_at for j in jobs}
        ops += [Put(edge_item(dep, dependent, submitted[dependent]), None) for dep, dependent in edges]
        self.items.transact(ops)

    def remove(self, job: Job) -> bool:
        """Delete a finished job and its dependency edges both ways (the edges first: a removal cut short leaves the
        job, to be removed again). False when the job changed since it was read (it is left alone)."""
        edges = list(self._iter_raw("main", f"DEP#{job.job_id}"))  # to the jobs that depend on it
        for dependency in job.depends_on:  # from the jobs it depends on
            edge = self.items.get(f"DEP#{dependency.job_id}", job.job_id)
            if edge is not None:
                edges.append(edge)
        for edge in edges:
            with contextlib.suppress(Conflict):  # removed meanwhile
                self.items.delete(edge.pk, edge.sk, edge.version)
        try:
            self.items.delete(job_pk(job.job_id), "", job.version)
        except Conflict:
            return False
        return True

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
        partition = queue_partition(queue, status, children=children)
        return self._in_status("gsi1", partition, status, after=after, limit=limit, descending=descending)

    def children(self, parent_id: str, status: str, *, after: str | None = None, limit: int = 100) -> list[Job]:
        return self._in_status("gsi2", array_partition(parent_id, status), status, after=after, limit=limit)

    def _in_status(
        self, index: Index, partition: str, status: str, *, after: str | None, limit: int, descending: bool = False
    ) -> list[Job]:
        """Up to `limit` jobs in `status` from its index partition, after the sort key `after`. A partition that
        holds other statuses too (ACTIVE) is read on past the jobs in the other one until `limit` are found."""
        if index_status(status) == status:
            items = self.items.query(index, partition, after=after, limit=limit, descending=descending)
            return [job_from_item(i) for i in items]
        page = max(limit, 100)
        found: list[Job] = []
        while len(found) < limit:
            items = self.items.query(index, partition, after=after, limit=page, descending=descending)
            found += [j for j in map(job_from_item, items) if j.status == status]
            if len(items) < page:
                break
            after = _sort_key(items[-1], index)
        return found[:limit]

    def count_children(self, parent_id: str, status: str) -> int:
        return self.children_counts(parent_id, (status,))[status]

    def children_counts(self, parent_id: str, statuses: Iterable[str]) -> dict[str, int]:
        """How many children of an array are in each of `statuses`; one read of each index partition.

        The partitions are read latest status first (`statuses` in lifecycle order, read backwards): a child that
        moves forward between two reads is then missed rather than counted twice. Only a retry (RUNNING back to
        RUNNABLE) can still be counted twice, and the caller bounds the sum (`Reactor.parent_counts`)."""
        counts = dict.fromkeys(statuses, 0)
        for shared in reversed(dict.fromkeys(index_status(s) for s in counts)):
            partition = array_partition(parent_id, shared)
            if shared in counts:
                counts[shared] = self.items.count("gsi2", partition)
                continue
            for job in self._iter_partition("gsi2", partition):
                if job.status in counts:
                    counts[job.status] += 1
        return counts

    def iter_children(self, parent_id: str, *statuses: str, page: int = 500) -> Iterator[Job]:
        """Every child of an array in these statuses; each index partition is read once (STARTING and RUNNING
        share one)."""
        for shared in dict.fromkeys(index_status(s) for s in statuses):
            partition = array_partition(parent_id, shared)
            yield from (j for j in self._iter_partition("gsi2", partition, page) if j.status in statuses)

    def iter_statuses(self, queue: str, statuses: Iterable[str]) -> Iterator[Job]:
        """Every job of a queue in these statuses, top-level jobs and array children; each index partition is read
        once (STARTING and RUNNING share one)."""
        wanted = tuple(statuses)
        for shared in dict.fromkeys(index_status(s) for s in wanted):
            for children in (False, True):
                for job in self._iter_partition("gsi1", queue_partition(queue, shared, children=children)):
                    if job.status in wanted:
                        yield job

    def iter_queue(self, queue: str, status: str, *, children: bool = False, page: int = 500) -> Iterator[Job]:
        partition = queue_partition(queue, status, children=children)
        yield from (j for j in self._iter_partition("gsi1", partition, page) if j.status == status)

    def _iter_partition(self, index: Index, partition: str, page: int = 500) -> Iterator[Job]:
        return map(job_from_item, self._iter_raw(index, partition, page))

    def move_legacy_active(self, queue: str) -> int:
        """Re-index the queue's STARTING and RUNNING jobs still in the partitions an earlier version gave each
        status (`_legacy_partitions`) into ACTIVE, so that a state directory or table written before keeps its
        active jobs visible to the dispatcher and the sweep. One query per legacy partition when there is nothing
        to move. A job written meanwhile (Conflict) is already in the new layout. Returns the jobs moved."""
        moved = 0
        for partition in _legacy_partitions(queue):
            for item in list(self._iter_raw("gsi1", partition)):
                with contextlib.suppress(Conflict):
                    self.items.put(job_item(job_from_item(item)), expect_of(item.version))
                    moved += 1
        return moved

    def _iter_raw(self, index: Index, partition: str, page: int = 500) -> Iterator[Item]:
        after: str | None = None
        while True:
            items = self.items.query(index, partition, after=after, limit=page)
            yield from items
            if len(items) < page:
                return
            after = _sort_key(items[-1], index)


def _sort_key(item: Item, index: Index) -> str:
    if index == "main":
        return item.sk
    keys = item.gsi1 if index == "gsi1" else item.gsi2
    assert keys is not None, f"{item.pk} was read from {index} without its key"
    return keys[1]
