"""DescribeJobs and ListJobs(arrayJobId) of array children that are not written yet (docs/adr/0031): their parent
is the one read they need (domain/arrays.py `child_view`), so a million waiting children cost nothing until they
are dispatched or asked about."""

from __future__ import annotations

from collections.abc import Iterator

from chalicelib.control.context import Services
from chalicelib.domain import arrays
from chalicelib.domain.jobs import FAILED, SUCCEEDED, Job, split_child_id
from chalicelib.store.jobs import INDEX_WIDTH


def views(svc: Services, job_ids: list[str]) -> dict[str, Job]:
    """The children among `job_ids` (none of which was found in the store) that their array has not written yet,
    as views of it. A child written between the two reads (its parent says so) is read again."""
    wanted = {j: parsed for j in job_ids if (parsed := split_child_id(j)) is not None}
    if not wanted:
        return {}
    parents = {p.job_id: p for p in svc.jobs.get_many(list({parent for parent, _ in wanted.values()}))}
    out: dict[str, Job] = {}
    written: list[str] = []
    for job_id, (parent_id, index) in wanted.items():
        parent = parents.get(parent_id)
        if parent is None or parent.array is None or parent.array.size is None or not 0 <= index < parent.array.size:
            continue
        if arrays.is_virtual(parent, index):
            out[job_id] = arrays.child_view(parent, index)
        else:
            written.append(job_id)
    out.update({j.job_id: j for j in svc.jobs.get_many(written)})
    return out


def list_children(
    svc: Services, parent: Job, status: str, cursor: str | None, limit: int
) -> tuple[list[Job], str | None]:
    """One page of an array's children in `status`, in index order: the written ones (from the store's index of
    children by status) below the parent's cursor as read, then the ones not written yet as views. The page cursor
    is the last index listed, so a page boundary may fall anywhere in a million children without reading them."""
    assert parent.array is not None
    written_until = parent.array.children_created
    after = int(cursor) if cursor else None
    page: list[Job] = []
    if after is None or after + 1 < written_until:
        stored = svc.jobs.children(parent.job_id, status, after=cursor, limit=limit)
        page = [c for c in stored if c.array is not None and (c.array.index or 0) < written_until]
    if len(page) < limit:
        last = page[-1].array.index if page and page[-1].array else after
        page += [arrays.child_view(parent, i) for i in arrays.virtual_indices(parent, status, last, limit - len(page))]
    more = (
        len(page) == limit and page[-1].array is not None and (page[-1].array.index or 0) + 1 < (parent.array.size or 0)
    )
    return page, (f"{page[-1].array.index:0{INDEX_WIDTH}d}" if more and page[-1].array else None)


def uncounted_finished(svc: Services, parent: Job, page: int = 500) -> Iterator[Job]:
    """The finished children a parent may not have counted yet: those at or after its `done_base` (every index
    below was counted), read in index order from the index of children by status. A restart's recount of an array
    that finished 900,000 of its children reads a window of them, not all."""
    assert parent.array is not None
    base = parent.array.done_base
    for status in (SUCCEEDED, FAILED):
        after = f"{base - 1:0{INDEX_WIDTH}d}" if base else None
        while True:
            batch = svc.jobs.children(parent.job_id, status, after=after, limit=page)
            yield from batch
            if len(batch) < page or batch[-1].array is None:
                break
            after = f"{batch[-1].array.index:0{INDEX_WIDTH}d}"
