"""N_TO_N dependents of an array that fails before all of its children exist must fail, not wait forever."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from chalicelib.domain.jobs import DEPENDENCY_FAILED, FAILED, child_id
from chalicelib.store.sqlite import SqliteItemStore
from tests.functional.plane import Plane

SIZE = 4


@pytest.fixture
def plane(tmp_path: Path) -> Iterator[Plane]:
    store = SqliteItemStore(str(tmp_path / "state.db"))
    yield Plane(store)
    store.close()


def a_queue(plane: Plane) -> tuple[str, str]:
    ce = plane.fargate_ce("ce", "subnet-1", "sg-1", spot=False, max_vcpus=2)
    queue = plane.queue("q", ce)
    plane.call("UpdateComputeEnvironment", computeEnvironment=ce, state="DISABLED")  # nothing is placed
    return queue, plane.job_definition("work")


def test_dependents_of_children_that_will_never_exist_fail_when_the_array_is_cancelled(plane: Plane) -> None:
    # GIVEN array A waiting on a plain job (so none of its children exist yet), and array B N_TO_N on A
    queue, jd = a_queue(plane)
    first = plane.submit(queue, jd, "first")
    a = plane.submit(queue, jd, "a", arrayProperties={"size": SIZE}, dependsOn=[{"jobId": first}])
    b = plane.submit(queue, jd, "b", arrayProperties={"size": SIZE}, dependsOn=[{"jobId": a, "type": "N_TO_N"}])
    assert plane.job(child_id(b, 0)).pending == (child_id(a, 0),)

    # WHEN A is cancelled before creating its children
    plane.call("TerminateJob", jobId=a, reason="not needed")  # CancelJob would wait for `first` (AWS's rule)

    # THEN every child of B fails for its missing dependency, and so does B
    for i in range(SIZE):
        child = plane.job(child_id(b, i))
        assert child.status == FAILED
        assert child.status_reason == f"{DEPENDENCY_FAILED}: {child_id(a, i)}"
    assert plane.job(b).status == FAILED


def test_an_n_to_n_array_submitted_after_its_dependency_failed_does_not_wait(plane: Plane) -> None:
    # GIVEN array A cancelled before any of its children existed
    queue, jd = a_queue(plane)
    first = plane.submit(queue, jd, "first")
    a = plane.submit(queue, jd, "a", arrayProperties={"size": SIZE}, dependsOn=[{"jobId": first}])
    plane.call("TerminateJob", jobId=a, reason="not needed")  # CancelJob would wait for `first` (AWS's rule)
    assert plane.job(a).status == FAILED

    # WHEN array B is submitted N_TO_N on A
    b = plane.submit(queue, jd, "b", arrayProperties={"size": SIZE}, dependsOn=[{"jobId": a, "type": "N_TO_N"}])

    # THEN B's children fail at once instead of waiting for children of A that will never exist
    assert all(plane.job(child_id(b, i)).status == FAILED for i in range(SIZE))
    assert plane.job(b).status == FAILED
