"""Lazy array children (docs/adr/0031-lazy-array-children.md): an array parent's children are written only a
window ahead of the finished ones, so SubmitJob is O(1) and neither memory nor the store grows with the children
still waiting. A child not written yet is a view computed from its parent (`child_view`), as a multi-node job's node
jobs are (domain/nodes.py). Pure.

The parent's `ArrayInfo` is the cursor: `children_created` (the next index to write; children are written in index
order), `succeeded` + `failed` (counted children), `done_bits` from `done_base` (which ones were counted, so a
repeated ChildFinished counts once). `window` (0: no window, every child written at once, the old behaviour)."""

from __future__ import annotations

from chalicelib.domain.jobs import (
    FAILED,
    PENDING,
    RUNNABLE,
    TERMINAL,
    ArrayInfo,
    Dependency,
    Job,
    bitmap_has,
    bitmap_set,
    child_id,
)
from chalicelib.domain.records import replace


def counted(array: ArrayInfo, index: int) -> bool:
    """Was the child at `index` counted into its parent already?"""
    return index < array.done_base or bitmap_has(array.done_bits, index - array.done_base)


def count(array: ArrayInfo, index: int, succeeded: bool) -> ArrayInfo:
    """The parent's bookkeeping with the child at `index` counted (the caller checked it was not). Full leading
    bytes of the bitmap are dropped into `done_base`: children finish roughly in index order (they are written and
    dispatched in it), so the bitmap stays about as long as the window, not the array."""
    bits = bitmap_set(array.done_bits, index - array.done_base)
    full = 0
    while bits[2 * full : 2 * full + 2] == "ff":
        full += 1
    return replace(
        array,
        succeeded=array.succeeded + (1 if succeeded else 0),
        failed=array.failed + (0 if succeeded else 1),
        done_bits=bits[2 * full :],
        done_base=array.done_base + 8 * full,
    )


def finished(array: ArrayInfo) -> int:
    return array.succeeded + array.failed


def write_until(array: ArrayInfo) -> int:
    """The index up to which children should exist now: all of them without a window; else `window` beyond the
    counted ones."""
    assert array.size is not None
    if array.window <= 0:
        return array.size
    return min(array.size, finished(array) + array.window)


def wants_children(array: ArrayInfo) -> bool:
    """Should more children be written? Below the low-water mark (half a window still unfinished), so a window is
    refilled in chunks, not one child per finished one."""
    assert array.size is not None
    if array.children_created >= array.size:
        return False
    if array.window <= 0:
        return True
    return array.children_created - finished(array) <= array.window // 2


def child_dependencies(parent: Job, index: int) -> list[str]:
    """The job ids a child waits on: the one before it (SEQUENTIAL), the same index of each N_TO_N array."""
    sequential = any(d.type == "SEQUENTIAL" for d in parent.depends_on)
    n_to_n = [d.job_id for d in parent.depends_on if d.type == "N_TO_N" and d.job_id]
    return ([child_id(parent.job_id, index - 1)] if sequential and index > 0 else []) + [
        child_id(d, index) for d in n_to_n
    ]


def has_child_dependencies(parent: Job) -> bool:
    return any(d.type in ("SEQUENTIAL", "N_TO_N") for d in parent.depends_on)


def virtual_status(parent: Job) -> str:
    """The status of a child not written yet: FAILED once its parent ended (it will never run), RUNNABLE when it
    will run as soon as it is dispatched (its parent waits on nothing, it waits on no sibling), else PENDING."""
    if parent.status in TERMINAL:
        return FAILED
    if parent.status == PENDING and not parent.pending and not has_child_dependencies(parent):
        stopped = parent.is_cancelled or parent.is_terminated
        return PENDING if stopped else RUNNABLE
    return PENDING


def is_virtual(parent: Job, index: int) -> bool:
    array = parent.array
    return array is not None and array.size is not None and array.children_created <= index < array.size


def child_view(parent: Job, index: int) -> Job:
    """The child at `index` (not written yet) as DescribeJobs and ListJobs show it, computed from its parent. Its
    fields are those `child` will write, so the view and the record agree but for status and times."""
    status = virtual_status(parent)
    view = child(parent, index, child_dependencies(parent, index), parent.updated_at)
    if status == FAILED:
        why = parent.status_reason or "Array parent job ended before this child was created"
        return replace(view, status=FAILED, status_reason=why, stopped_at=parent.stopped_at, pending=())
    return replace(view, status=status)


def child(parent: Job, index: int, deps: list[str], now: int) -> Job:
    """The record of the child at `index`, as written when its turn comes."""
    return replace(
        parent,
        job_id=child_id(parent.job_id, index),
        arn=f"{parent.arn}:{index}",
        status=PENDING if deps else RUNNABLE,
        created_at=now,
        updated_at=now,
        depends_on=tuple(Dependency(d, None) for d in deps),
        pending=tuple(deps),
        array=ArrayInfo(index=index, parent_id=parent.job_id),
        status_reason=None,
        version=0,
    )


def drop_excess(counts: dict[str, int], room: int) -> None:
    """Bound written children's `counts` (statuses in lifecycle order, read latest first) to the `room` left by the
    counted ones. A child read twice moved between two reads, so its later read, in an earlier status, is the true
    one: the excess is taken from the latest statuses."""
    excess = sum(counts.values()) - max(0, room)
    for status in reversed(counts):
        if excess <= 0:
            return
        taken = min(excess, counts[status])
        counts[status] -= taken
        excess -= taken


def virtual_counts(parent: Job) -> tuple[str, int]:
    """statusSummary's share of the children not written yet: (their status, how many)."""
    array = parent.array
    assert array is not None and array.size is not None
    return virtual_status(parent), max(0, array.size - array.children_created)


def virtual_indices(parent: Job, status: str, after: int | None, limit: int) -> range:
    """The indices of children not written yet that ListJobs(arrayJobId, jobStatus) lists, after `after`."""
    array = parent.array
    if array is None or array.size is None or virtual_status(parent) != status:
        return range(0)
    start = max(array.children_created, (after + 1) if after is not None else 0)
    return range(start, min(array.size, start + max(0, limit)))
