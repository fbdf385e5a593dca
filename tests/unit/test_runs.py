"""Runs of array children (domain/runs.py, docs/adr/0040): their size, which jobs may be in one, the capacity they
hold, and the in-memory bookkeeping of the capacity in use (control/active_jobs.py) with them."""

from __future__ import annotations

import pytest

from chalicelib.control.active_jobs import ActiveJobs
from chalicelib.control.run_sizes import SMOOTHING, RunSizes
from chalicelib.domain import runs
from chalicelib.domain.jobs import RUNNABLE, STARTING, SUCCEEDED, Job
from tests.unit.builders import NOW, a_child, a_finished_attempt, a_job, a_running_job, an_attempt


def run_child(index: int, run: str | None, *, ce: str = "spot", vcpus: float = 1.0, version: int = 1) -> Job:
    return a_child(
        "arr",
        index,
        status=STARTING,
        current=an_attempt(1, task_id=f"t{index}", compute_environment=ce, run=run),
        vcpus=vcpus,
        version=version,
    )


@pytest.mark.parametrize(
    ("mean_ms", "size"),
    [(None, 1), (0.0, runs.MAX_RUN), (1.0, runs.MAX_RUN), (25.0, 10), (100.0, 2), (250.0, 1), (60_000.0, 1)],
)
def test_a_run_lasts_about_the_budget_by_the_durations_seen(mean_ms: float | None, size: int) -> None:
    # GIVEN an array whose children took mean_ms on average (None: none ended yet) THEN its runs take `size`
    assert runs.run_size(mean_ms) == size


def test_the_mean_follows_each_arrays_ended_children_only() -> None:
    # GIVEN the sizes tracker and children of two arrays
    sizes = RunSizes()
    assert sizes.size("arr") == 1  # nothing seen yet: runs of one
    # WHEN a child that is still running, and a top-level job, are saved THEN nothing is learnt
    sizes.observe(run_child(0, None))
    sizes.observe(a_running_job())
    assert sizes.size("arr") == 1
    # WHEN a child of "arr" ends after 2 ms THEN its runs grow to what fits the budget
    ended = a_child(
        "arr", 1, status=SUCCEEDED, attempts=(a_finished_attempt(1, 0, started_at=NOW, stopped_at=NOW + 2),)
    )
    sizes.observe(ended)
    assert sizes.size("arr") == runs.run_size(2.0) > 1
    # AND a child retried after a long attempt (back to RUNNABLE) pulls its array's mean up
    slow = a_child(
        "arr", 2, status=RUNNABLE, attempts=(a_finished_attempt(1, 1, started_at=NOW, stopped_at=NOW + 900),)
    )
    sizes.observe(slow)
    assert sizes.size("arr") == runs.run_size(2.0 + SMOOTHING * (900 - 2.0))
    assert sizes.size("other") == 1


def test_only_plain_single_container_array_children_may_share_a_run() -> None:
    child = a_child("arr", 0)
    assert runs.may_run_with_others(child)
    assert not runs.may_run_with_others(a_job())  # not a child
    assert not runs.may_run_with_others(a_child("arr", 0, consumable_resources={"arn:x": 1}))
    assert not runs.may_run_with_others(a_child("arr", 0, caps={"Q#q": 2}))
    assert not runs.may_run_with_others(a_child("arr", 0, container={"image": "i", "jobRoleArn": "arn:role"}))
    assert not runs.may_run_with_others(a_child("arr", 0, ecs_properties={"taskProperties": []}))


def test_a_runs_children_hold_one_slot_between_them() -> None:
    # GIVEN three children of one run, one of another run, and two claimed on their own, on two CEs
    jobs = [run_child(0, "r1"), run_child(1, "r1"), run_child(2, "r1"), run_child(3, "r2")]
    jobs += [run_child(4, None), run_child(5, None, ce="other", vcpus=2.0)]
    # THEN each run counts once, each job claimed alone counts for itself
    assert runs.held_vcpus(jobs) == {"spot": 3.0, "other": 2.0}


def test_the_capacity_kept_in_memory_counts_a_run_once_until_its_last_child_ends() -> None:
    # GIVEN the capacity in use, kept in memory, and a run of three children claimed
    active = ActiveJobs()
    active._held = {}  # (as after the first rebuild, with nothing active)
    members = [run_child(i, "r1") for i in range(3)]
    for job in members:
        active.changed(job)
    # THEN the run holds one vCPU
    assert active.used() == {"spot": 1.0} and active.holds_run("r1")
    # WHEN two of its children end (a report seen twice counts once)
    for job in members[:2]:
        done = a_child("arr", job.array.index or 0, status=SUCCEEDED, version=2, attempts=(job.current,))  # type: ignore[arg-type]
        active.changed(done)
        active.changed(done)
    # THEN it still holds its slot
    assert active.used() == {"spot": 1.0} and active.holds_run("r1")
    # WHEN the last one ends THEN the slot is free
    active.changed(a_child("arr", 2, status=SUCCEEDED, version=2, attempts=(members[2].current,)))  # type: ignore[arg-type]
    assert active.used() == {} and not active.holds_run("r1")
