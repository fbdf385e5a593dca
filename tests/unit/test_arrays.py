"""Lazy array children (domain/arrays.py, docs/adr/0031): the parent is the cursor, the bitmap stays short, and a
child not written yet is a view of its parent."""

from __future__ import annotations

from dataclasses import replace

from chalicelib.domain import arrays
from chalicelib.domain.effects import CreateChildren, effects_of
from chalicelib.domain.jobs import (
    FAILED,
    PENDING,
    RUNNABLE,
    RUNNING,
    STARTING,
    SUBMITTED,
    SUCCEEDED,
    ArrayInfo,
    Dependency,
)
from chalicelib.domain.lifecycle import ChildFinished, transition
from tests.unit.builders import a_parent


def test_counting_children_in_order_keeps_the_bitmap_empty() -> None:
    # GIVEN a parent of a million children
    array = ArrayInfo(size=1_000_000, children_created=1_000, window=1_000)
    # WHEN its first 1,000 children finish in index order
    for i in range(1_000):
        assert not arrays.counted(array, i)
        array = arrays.count(array, i, succeeded=i % 10 != 0)
    # THEN they are all counted, and the bitmap holds none of them
    assert all(arrays.counted(array, i) for i in range(1_000))
    assert not arrays.counted(array, 1_000)
    assert (array.succeeded, array.failed, array.done_base) == (900, 100, 1_000)
    assert len(array.done_bits) <= 2


def test_children_finished_out_of_order_are_counted_once() -> None:
    array = ArrayInfo(size=100)
    for i in [5, 1, 0, 2, 3, 4, 6, 7, 9]:
        array = arrays.count(array, i, succeeded=True)
    assert array.done_base == 8  # 0..7 folded into the base
    assert arrays.counted(array, 9) and not arrays.counted(array, 8)
    assert array.succeeded == 9


def test_a_repeated_child_finished_does_not_count_twice_below_the_base() -> None:
    # GIVEN a parent whose first 16 children were counted (folded into the base)
    parent = a_parent(100, created=20)
    for i in range(16):
        parent = transition(parent, ChildFinished(i, True), 1).job or parent
    assert parent.array is not None and parent.array.done_base == 16
    # WHEN one of them is reported again THEN nothing changes
    assert transition(parent, ChildFinished(3, True), 2).job is None


def test_children_are_written_a_window_ahead_and_refilled_at_half_a_window() -> None:
    parent = a_parent(1_000_000)
    windowed = replace(parent, array=ArrayInfo(size=1_000_000, window=100))
    assert windowed.array is not None
    assert arrays.write_until(windowed.array) == 100
    full = replace(windowed.array, children_created=100)
    assert not arrays.wants_children(full)
    half_done = replace(full, succeeded=50)
    assert arrays.wants_children(half_done) and arrays.write_until(half_done) == 150
    # AND the change that counted the 50th child carries CreateChildren; the 49th did not
    before, after = replace(windowed, array=replace(full, succeeded=49)), replace(windowed, array=half_done)
    assert CreateChildren() not in effects_of(None, before) or before.array is None
    assert CreateChildren() in effects_of(before, after)


def test_without_a_window_every_child_is_written_at_once() -> None:
    array = ArrayInfo(size=10_000)
    assert arrays.write_until(array) == 10_000 and arrays.wants_children(array)


def test_a_child_not_written_yet_is_a_view_of_its_parent() -> None:
    parent = a_parent(1_000_000, created=10)
    view = arrays.child_view(parent, 765_432)
    assert view.job_id == "parent:765432" and view.arn.endswith(":765432")
    assert view.array is not None and (view.array.index, view.array.parent_id) == (765_432, "parent")
    assert view.status == RUNNABLE
    assert arrays.is_virtual(parent, 765_432) and not arrays.is_virtual(parent, 9)


def test_a_sequential_childs_view_is_pending_on_the_one_before() -> None:
    parent = a_parent(10, depends_on=(Dependency(None, "SEQUENTIAL"),))
    view = arrays.child_view(parent, 4)
    assert view.status == PENDING and view.pending == ("parent:3",)


def test_a_child_of_an_ended_array_that_was_never_written_failed() -> None:
    parent = a_parent(10, created=3, status=FAILED, status_reason="stop it", stopped_at=5)
    view = arrays.child_view(parent, 7)
    assert (view.status, view.status_reason, view.stopped_at) == (FAILED, "stop it", 5)
    assert arrays.virtual_counts(parent) == (FAILED, 7)


def test_listing_children_not_written_yet_pages_by_index() -> None:
    parent = a_parent(1_000_000, created=10)
    assert arrays.virtual_indices(parent, RUNNABLE, None, 3) == range(10, 13)
    assert arrays.virtual_indices(parent, RUNNABLE, 999_998, 5) == range(999_999, 1_000_000)
    assert arrays.virtual_indices(parent, SUCCEEDED, None, 3) == range(0)


def test_drop_excess_takes_a_child_read_twice_from_its_latest_status() -> None:
    counts = {SUBMITTED: 0, PENDING: 1, RUNNABLE: 2, STARTING: 1, RUNNING: 2}
    arrays.drop_excess(counts, 4)
    assert counts == {SUBMITTED: 0, PENDING: 1, RUNNABLE: 2, STARTING: 1, RUNNING: 0}
    arrays.drop_excess(counts, 2)
    assert counts == {SUBMITTED: 0, PENDING: 1, RUNNABLE: 1, STARTING: 0, RUNNING: 0}
    arrays.drop_excess(counts, 5)  # room to spare: nothing changes
    assert counts == {SUBMITTED: 0, PENDING: 1, RUNNABLE: 1, STARTING: 0, RUNNING: 0}
    arrays.drop_excess(counts, -1)
    assert sum(counts.values()) == 0
