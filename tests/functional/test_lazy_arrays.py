"""Arrays whose children are written lazily, a window ahead of the finished ones (docs/adr/0031), through the API:
SubmitJob writes one record whatever the size, children not written yet are described and listed as views of their
parent, cancel reaches them without writing them, and dependencies between children still hold."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from chalicelib.compute.port import NullLauncher
from chalicelib.control import lazy_children
from chalicelib.control.context import Settings
from chalicelib.domain.jobs import (
    ACTIVE,
    FAILED,
    PENDING,
    RUNNABLE,
    RUNNING,
    STARTING,
    SUBMITTED,
    SUCCEEDED,
    Job,
    child_id,
)
from chalicelib.domain.lifecycle import TaskStarted, TaskStopped
from chalicelib.domain.validation import Limits
from chalicelib.store.jobs import ACTIVE_PARTITION, JobRepository
from chalicelib.store.sqlite import SqliteItemStore
from tests.functional.plane import Plane

WINDOW = 4
UNFINISHED = (SUBMITTED, PENDING, RUNNABLE, *ACTIVE)


@pytest.fixture
def plane(tmp_path: Path) -> Iterator[Plane]:
    store = SqliteItemStore(str(tmp_path / "state.db"))
    settings = Settings(limits=Limits(max_array_size=1_000_000), array_window=WINDOW)
    yield Plane(store, NullLauncher(), settings=settings)
    store.close()


def a_queue(plane: Plane, *, enabled: bool = True) -> tuple[str, str]:
    ce = plane.fargate_ce("ce", "subnet-1", "sg-1", spot=False, max_vcpus=2)
    queue = plane.queue("q", ce)
    if not enabled:
        plane.call("UpdateComputeEnvironment", computeEnvironment=ce, state="DISABLED")
    return queue, plane.job_definition("work")


def written(plane: Plane, parent: str) -> int:
    """Children of `parent` in the store, unfinished."""
    return sum(plane.svc.jobs.children_counts(parent, UNFINISHED).values())


def summary(plane: Plane, job_id: str) -> dict[str, int]:
    counts: dict[str, int] = plane.describe_one(job_id)["arrayProperties"]["statusSummary"]
    return {k: v for k, v in counts.items() if v}


def run_all(plane: Plane, parents: list[str]) -> Counter[str]:
    """Dispatch and finish every launched task until nothing is left to place; how often each job was launched."""
    launcher = plane.launcher
    assert isinstance(launcher, NullLauncher)
    done = 0
    while True:
        plane.dispatch()
        fresh = launcher.launched[done:]
        if not fresh:
            break
        done += len(fresh)
        for spec in fresh:
            plane.on_task_event(spec.job_id, TaskStarted(spec.attempt))
            plane.on_task_event(spec.job_id, TaskStopped(spec.attempt, 0))
        for parent in parents:
            assert written(plane, parent) <= WINDOW  # the window holds: never more unfinished children written
    return Counter(spec.job_id for spec in launcher.launched)


def test_submitting_a_hundred_thousand_children_writes_a_window_of_them(plane: Plane) -> None:
    # GIVEN a queue whose compute environment places nothing
    queue, jd = a_queue(plane, enabled=False)
    # WHEN an array of 100,000 children is submitted
    parent = plane.submit(queue, jd, "big", arrayProperties={"size": 100_000})
    # THEN a window of children exists, and the rest are waiting views: RUNNABLE, as AWS shows them
    assert written(plane, parent) == WINDOW
    assert summary(plane, parent) == {RUNNABLE: 100_000}
    far = plane.describe_one(child_id(parent, 99_999))
    assert far["status"] == RUNNABLE and far["arrayProperties"] == {"index": 99_999}
    assert far["jobArn"].endswith(f"{parent}:99999") and far["jobQueue"].endswith("/q")
    near = plane.describe_one(child_id(parent, 1))
    assert near["status"] == RUNNABLE
    # AND an index outside the array is not a job
    assert plane.call("DescribeJobs", jobs=[child_id(parent, 100_000)])["jobs"] == []


def test_listing_pages_through_written_and_unwritten_children_once_each(plane: Plane) -> None:
    queue, jd = a_queue(plane, enabled=False)
    parent = plane.submit(queue, jd, "list", arrayProperties={"size": 30})
    seen: list[int] = []
    token: str | None = None
    while True:
        extra: dict[str, Any] = {"nextToken": token} if token else {}
        page = plane.call("ListJobs", arrayJobId=parent, jobStatus=RUNNABLE, maxResults=7, **extra)
        seen += [s["arrayProperties"]["index"] for s in page["jobSummaryList"]]
        token = page.get("nextToken")
        if not token:
            break
    assert seen == list(range(30))
    # AND a page deep into a large array is one call away
    big = plane.submit(queue, jd, "big", arrayProperties={"size": 1_000_000})
    first = plane.call("ListJobs", arrayJobId=big, jobStatus=RUNNABLE, maxResults=2)
    assert [s["jobId"] for s in first["jobSummaryList"]] == [child_id(big, 0), child_id(big, 1)]
    assert plane.call("ListJobs", arrayJobId=big, jobStatus=SUCCEEDED)["jobSummaryList"] == []


def test_every_child_runs_once_and_the_parent_succeeds(plane: Plane) -> None:
    queue, jd = a_queue(plane)
    parent = plane.submit(queue, jd, "run", arrayProperties={"size": 37})
    launched = run_all(plane, [parent])
    assert set(launched) == {child_id(parent, i) for i in range(37)}
    assert set(launched.values()) == {1}
    assert plane.describe_one(parent)["status"] == SUCCEEDED
    assert summary(plane, parent) == {SUCCEEDED: 37}
    assert plane.describe_one(child_id(parent, 36))["status"] == SUCCEEDED


def test_sequential_and_n_to_n_children_keep_their_order(plane: Plane) -> None:
    queue, jd = a_queue(plane)
    a = plane.submit(queue, jd, "a", arrayProperties={"size": 12}, dependsOn=[{"type": "SEQUENTIAL"}])
    b = plane.submit(queue, jd, "b", arrayProperties={"size": 12}, dependsOn=[{"jobId": a, "type": "N_TO_N"}])
    assert plane.describe_one(child_id(a, 9))["status"] == PENDING  # waits on its sibling
    assert plane.describe_one(child_id(b, 9))["status"] == PENDING
    launched = run_all(plane, [a, b])
    order = list(dict.fromkeys(spec.job_id for spec in plane.launcher.launched))  # type: ignore[attr-defined]
    assert set(launched.values()) == {1} and len(launched) == 24
    assert [j for j in order if j.startswith(f"{a}:")] == [child_id(a, i) for i in range(12)]
    for i in range(12):
        assert order.index(child_id(b, i)) > order.index(child_id(a, i))
    assert plane.describe_one(a)["status"] == plane.describe_one(b)["status"] == SUCCEEDED


def test_a_job_may_depend_on_a_child_not_written_yet(plane: Plane) -> None:
    queue, jd = a_queue(plane)
    parent = plane.submit(queue, jd, "a", arrayProperties={"size": 10})
    later = plane.submit(queue, jd, "later", dependsOn=[{"jobId": child_id(parent, 9)}])
    assert plane.describe_one(later)["status"] == PENDING
    run_all(plane, [parent])
    assert plane.describe_one(later)["status"] == SUCCEEDED


def test_cancelling_a_big_array_reaches_its_unwritten_children_without_writing_them(plane: Plane) -> None:
    queue, jd = a_queue(plane, enabled=False)
    parent = plane.submit(queue, jd, "big", arrayProperties={"size": 100_000})
    plane.call("CancelJob", jobId=parent, reason="not needed")
    assert plane.describe_one(parent)["status"] == FAILED
    gone = plane.describe_one(child_id(parent, 77_777))
    assert gone["status"] == FAILED and gone["statusReason"] == "not needed"
    assert summary(plane, parent) == {FAILED: 100_000}
    assert written(plane, parent) == 0
    assert len(plane.call("ListJobs", arrayJobId=parent, jobStatus=FAILED, maxResults=100)["jobSummaryList"]) == 100


def test_terminating_a_running_array_stops_the_written_children_and_fails_the_rest(plane: Plane) -> None:
    queue, jd = a_queue(plane)
    parent = plane.submit(queue, jd, "big", arrayProperties={"size": 1_000})
    plane.dispatch()
    plane.call("TerminateJob", jobId=parent, reason="stop")
    launcher = plane.launcher
    assert isinstance(launcher, NullLauncher)
    for job_id, attempt, _ in list(launcher.stopped):
        plane.on_task_event(job_id, TaskStopped(attempt, 143))
    assert plane.describe_one(parent)["status"] == FAILED
    assert summary(plane, parent) == {FAILED: 1_000}


def test_a_recount_reads_only_the_children_past_the_counted_base(plane: Plane) -> None:
    # GIVEN an array whose 37 children all finished and were counted (32 of them folded into the base)
    queue, jd = a_queue(plane)
    parent = plane.submit(queue, jd, "run", arrayProperties={"size": 37})
    run_all(plane, [parent])
    job = plane.job(parent)
    assert job.array is not None and job.array.done_base == 32
    # WHEN the sweep's recount looks for finished children the parent may have missed
    seen = [c.array.index for c in lazy_children.uncounted_finished(plane.svc, job, page=2) if c.array]
    # THEN it reads only those at or past the base, every one of them
    assert seen == [32, 33, 34, 35, 36]


def moving_a_child_after_reading(
    plane: Plane, monkeypatch: pytest.MonkeyPatch, partition_status: str, move: Any
) -> None:
    """`move()` runs once, right after a statusSummary reads the index partition of `partition_status`: a child
    leaves it before the next partition is read, as it does when the dispatcher or a task event runs meanwhile."""
    items = plane.svc.jobs.items  # `svc.jobs` is a new repository at each use, over the one item store
    count, iterate = items.count, JobRepository._iter_partition
    moved: list[bool] = []

    def after_first(partition: str) -> None:
        if not moved and partition.startswith("ARR#") and partition.endswith(f"#{partition_status}"):
            moved.append(True)
            move()

    def counting(index: Any, partition: str) -> int:
        n = count(index, partition)
        after_first(partition)
        return n

    def reading(self: JobRepository, index: Any, partition: str, page: int = 500) -> Iterator[Job]:
        read = list(iterate(self, index, partition, page))
        after_first(partition)
        return iter(read)

    monkeypatch.setattr(items, "count", counting)
    monkeypatch.setattr(JobRepository, "_iter_partition", reading)


def test_children_that_start_between_the_reads_of_a_summary_are_counted_once(
    plane: Plane, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN an array of 3 RUNNABLE children, none placed yet
    queue, jd = a_queue(plane)
    parent = plane.submit(queue, jd, "a", arrayProperties={"size": 3})
    # WHEN they are placed (RUNNABLE to STARTING) right after the summary read the RUNNABLE ones
    moving_a_child_after_reading(plane, monkeypatch, RUNNABLE, lambda: plane.dispatch())
    counts = summary(plane, parent)
    # THEN the summary still adds up to the size: no child is counted both RUNNABLE and STARTING
    assert sum(counts.values()) == 3, counts
    assert plane.svc.jobs.children_counts(parent, (STARTING,))[STARTING] == 2  # two did move


def test_a_child_retried_between_the_reads_of_a_summary_is_counted_once(
    plane: Plane, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN an array of 2 children that may be tried twice, both running
    queue, jd = a_queue(plane)
    parent = plane.submit(queue, jd, "a", arrayProperties={"size": 2}, retryStrategy={"attempts": 2})
    plane.dispatch()
    launcher = plane.launcher
    assert isinstance(launcher, NullLauncher)
    for spec in launcher.launched:
        plane.on_task_event(spec.job_id, TaskStarted(spec.attempt))
    first = launcher.launched[0]
    # WHEN one fails its first attempt (RUNNING back to RUNNABLE) right after the summary read the running ones
    moving_a_child_after_reading(
        plane, monkeypatch, ACTIVE_PARTITION, lambda: plane.on_task_event(first.job_id, TaskStopped(first.attempt, 1))
    )
    counts = summary(plane, parent)
    # THEN it is counted once, in the status it moved to
    assert counts == {RUNNABLE: 1, RUNNING: 1}
