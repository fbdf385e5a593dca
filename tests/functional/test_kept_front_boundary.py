"""The kept RUNNABLE front's boundary (control/runnable_cache.py): the lower of the last keys a read took from its two
partitions (top-level jobs, array children). Up to it the kept list is the queue's; a write at or below it ends the
list, one beyond it does not. These look at the edge itself: a write exactly at the boundary, and jobs submitted in
the same millisecond (order keys that differ only after the createdAt)."""

from __future__ import annotations

from pathlib import Path

from chalicelib.control import jobs as job_control
from chalicelib.control import tags
from chalicelib.control.context import Settings
from chalicelib.control.dispatch import runnable_jobs
from chalicelib.control.runnable_cache import RunnableCache
from chalicelib.store.jobs import order_key
from tests.functional.test_scheduler import CTX, build_plane


def test_a_job_rewritten_exactly_at_the_boundary_is_read_again(tmp_path: Path) -> None:
    # GIVEN a queue of four jobs, and a kept front of the first two: the second's key is the boundary
    plane, store = build_plane(tmp_path, kept=True)
    plane.ce("ce", max_vcpus=1)
    plane.queue("q", "ce")
    plane.jd()
    ids = [plane.submit("q") for _ in range(4)]
    cache = RunnableCache(store)
    assert [j.job_id for j in cache.read(plane.svc, "q", 2)] == ids[:2]

    # WHEN the job at the boundary is written in place (TagResource: it stays RUNNABLE, with a new version)
    tags.tag_resource(plane.svc, plane.job(ids[1]).arn, {"team": "b"})

    # THEN the next read gives it as stored, not as kept
    got = cache.read(plane.svc, "q", 2)
    assert [j.job_id for j in got] == ids[:2]
    assert got[1].version == plane.job(ids[1]).version
    assert got[1].tags == {"team": "b"}
    store.close()


def test_a_job_written_just_beyond_the_boundary_keeps_the_front_and_comes_after_it(tmp_path: Path) -> None:
    # Jobs of one millisecond: their keys differ only by id (top-level) or parent id and index (children).
    plane, store = build_plane(tmp_path, kept=True, settings=Settings(array_window=0))
    plane.ce("ce", max_vcpus=1)
    plane.queue("q", "ce")
    plane.jd()
    svc = plane.svc

    def submit(**extra: object) -> str:  # without the harness's millisecond between submissions
        req = {"jobName": "j", "jobQueue": "q", "jobDefinition": "work", **extra}
        return job_control.submit(svc, plane.reactor, CTX, req).job_id

    first, second = submit(), submit()
    cache = RunnableCache(store)
    assert [j.job_id for j in cache.read(svc, "q", 2)] == [first, second]  # the boundary: `second`'s key
    reads = 0
    real_query = store.query

    def counted(*args: object, **kwargs: object) -> object:
        nonlocal reads
        reads += 1
        return real_query(*args, **kwargs)  # type: ignore[arg-type]

    store.query = counted  # type: ignore[method-assign]

    # WHEN an array's children are written in that same millisecond, after `second` in key order
    parent = submit(arrayProperties={"size": 2})
    kids = sorted((j for j in runnable_jobs(svc, "q", 10) if j.array and j.array.parent_id == parent), key=order_key)
    assert len(kids) == 2 and all(order_key(k) > order_key(plane.job(second)) for k in kids)
    reads_before = reads

    # THEN the kept front still serves the first two without a read, and a longer read finds the children after them
    assert [j.job_id for j in cache.read(svc, "q", 2)] == [first, second]
    assert reads == reads_before
    longer = [j.job_id for j in cache.read(svc, "q", 4)]
    assert longer == [j.job_id for j in runnable_jobs(svc, "q", 4)] == [first, second, *(k.job_id for k in kids)]
    store.close()
