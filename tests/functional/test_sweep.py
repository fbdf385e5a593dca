"""The repair sweep (control/sweep.py) on the SQLite store with a recording launcher: what each mode touches and
what it leaves alone. The ECS side (relaunch through RunTask, a lost RUNNING event, timeouts) is in
test_aws_compute.py; a crash between claim and launch in test_dispatch_concurrency.py."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest

from chalicelib.compute.port import NullLauncher
from chalicelib.control.react import Reactor
from chalicelib.control.sweep import SweepPolicy, sweep
from chalicelib.domain import lifecycle
from chalicelib.domain.jobs import FAILED, PENDING, RUNNABLE, RUNNING, STARTING, SUCCEEDED, TIMEOUT_REASON, Job
from chalicelib.store.sqlite import SqliteItemStore
from tests.functional.plane import Plane

LOST = "Host EC2 (instance local) terminated."
STALE = SweepPolicy().pending_stale_ms


class CountingLauncher(NullLauncher):
    def __init__(self) -> None:
        super().__init__()
        self.recovered: list[str] = []

    def recover(self, job_id: str, attempt: int) -> bool:
        self.recovered.append(f"{job_id}#{attempt}")
        return super().recover(job_id, attempt)


@pytest.fixture
def plane(tmp_path: Path) -> Iterator[Plane]:
    store = SqliteItemStore(str(tmp_path / "state.db"))
    try:
        yield Plane(store, CountingLauncher())
    finally:
        store.close()


@pytest.fixture
def launcher(plane: Plane) -> CountingLauncher:
    assert isinstance(plane.launcher, CountingLauncher)
    return plane.launcher


def setup(plane: Plane, **jd: object) -> tuple[str, str]:
    ce = plane.fargate_ce("fargate", "subnet-0a1b2c3d", "sg-0a1b2c3d", spot=False)
    return plane.queue("queue", ce), plane.job_definition("work", **jd)


def running(plane: Plane, queue: str, jd: str, name: str = "job", **submit: object) -> str:
    job_id = plane.submit(queue, jd, name, **submit)
    plane.dispatch()
    plane.reactor.apply(job_id, lifecycle.TaskStarted(1))
    assert plane.job(job_id).status == RUNNING
    return job_id


def test_a_periodic_sweep_leaves_observed_work_alone(plane: Plane, launcher: CountingLauncher) -> None:
    queue, jd = setup(plane)
    busy = running(plane, queue, jd, "busy")
    fresh = plane.submit(queue, jd, "fresh")
    plane.dispatch()  # STARTING, just claimed

    report = sweep(plane.svc, plane.reactor, plane.clock.now_ms() + STALE * 100)

    # THEN a RUNNING attempt is not the sweep's business (its events come); a claim past its grace period is checked
    # with the launcher, which has its task: nothing to repair
    assert launcher.recovered == [f"{fresh}#1"]
    assert report.repaired == 0 and report.errors == []
    assert (plane.job(busy).status, plane.job(fresh).status) == (RUNNING, STARTING)
    assert launcher.calls == [f"{busy}#1", f"{fresh}#1"]


def test_at_a_restart_every_active_attempt_found_is_a_lost_host(plane: Plane, launcher: CountingLauncher) -> None:
    # GIVEN a running job with a retry left, a running one without, and a claim whose launch never happened
    queue, jd = setup(plane)
    retried = running(plane, queue, jd, "retried", retryStrategy={"attempts": 2})
    single = running(plane, queue, jd, "single")
    claimed = plane.submit(queue, jd, "claimed")
    plane.dispatch()
    launcher.launched = [s for s in launcher.launched if s.job_id != claimed]  # as if it never ran

    # WHEN the local runtime restarts (its launcher stops the processes it finds)
    report = sweep(plane.svc, plane.reactor, plane.clock.now_ms(), SweepPolicy(restart=True, lost_host="local"))

    # THEN found attempts failed as lost hosts, the retry strategy deciding; the claim was launched
    assert sorted(report.lost) == sorted([f"{retried}#1", f"{single}#1"])
    assert report.relaunched == [f"{claimed}#1"]
    assert plane.job(retried).status == RUNNABLE
    failed = plane.describe_one(single)
    assert (failed["status"], failed["statusReason"]) == (FAILED, LOST)
    assert failed["attempts"][0]["statusReason"] == LOST


def test_a_timed_out_attempt_is_marked_and_asked_to_stop_on_every_sweep(
    plane: Plane, launcher: CountingLauncher
) -> None:
    queue, jd = setup(plane)
    job_id = running(plane, queue, jd, timeout={"attemptDurationSeconds": 60})

    first = sweep(plane.svc, plane.reactor, plane.clock.now_ms() + 60_000)
    again = sweep(plane.svc, plane.reactor, plane.clock.now_ms() + 90_000)

    assert (first.timed_out, again.timed_out) == ([f"{job_id}#1"], [])  # reported once
    assert launcher.stopped == [(job_id, 1, TIMEOUT_REASON)] * 2  # asked again until the stop is reported
    job = plane.job(job_id)
    assert job.status == RUNNING and job.current is not None and job.current.status_reason == TIMEOUT_REASON

    plane.reactor.apply(job_id, lifecycle.TaskStopped(1, 143))
    assert plane.describe_one(job_id)["statusReason"] == TIMEOUT_REASON


class LossyReactor(Reactor):
    """Loses what a crash after a write loses: deferred fan-out and the parent's count of a finished child."""

    def run_effects(self, job: Job, effects: Iterable[lifecycle.Effect], *args: Any, **kwargs: Any) -> None:
        kept = [e for e in effects if not isinstance(e, lifecycle.NotifyParent)]
        super().run_effects(job, kept, *args, **kwargs)


def test_a_lost_dependency_notification_is_applied_once_the_dependent_is_stale(plane: Plane) -> None:
    queue, jd = setup(plane)
    lossy = Reactor(plane.svc, plane.launcher, defer=lambda work: None)  # notifications are deferred, then lost
    first = running(plane, queue, jd, "first")
    second = plane.submit(queue, jd, "second", dependsOn=[{"jobId": first}])
    lossy.apply(first, lifecycle.TaskStopped(1, 0))
    assert (plane.job(first).status, plane.job(second).status) == (SUCCEEDED, PENDING)

    assert sweep(plane.svc, plane.reactor, plane.clock.now_ms() + STALE - 1).settled == []
    report = sweep(plane.svc, plane.reactor, plane.clock.now_ms() + STALE)

    assert report.settled == [second]
    assert plane.job(second).status == RUNNABLE


def test_an_array_parent_gets_its_children_and_its_count_back(plane: Plane) -> None:
    queue, jd = setup(plane)
    lossy = LossyReactor(plane.svc, plane.launcher, defer=lambda work: None)
    inline = plane.svc
    plane.svc = dataclasses.replace(inline, defer=lambda work: None)  # SubmitJob defers the children's creation...
    parent = plane.submit(queue, jd, "array", arrayProperties={"size": 2})
    plane.svc = inline  # ... and the work is lost
    array = plane.job(parent).array
    assert array is not None and array.children_created == 0

    # WHEN a sweep finds the stale parent  THEN its children are written
    report = sweep(plane.svc, plane.reactor, plane.clock.now_ms() + STALE)
    assert report.recounted == [parent]
    plane.dispatch()
    children = [f"{parent}:{i}" for i in range(2)]
    assert {plane.job(c).status for c in children} == {STARTING}

    # WHEN both children finish but the parent never hears of it  THEN the next sweep counts them
    for child in children:
        lossy.apply(child, lifecycle.TaskStopped(1, 0))
    assert plane.job(parent).status == PENDING
    later = plane.clock.now_ms() + 2 * STALE
    sweep(plane.svc, plane.reactor, later)
    assert plane.job(parent).status == SUCCEEDED


def test_a_periodic_sweep_asks_the_launcher_about_at_most_max_checks_claims(
    plane: Plane, launcher: CountingLauncher
) -> None:
    # GIVEN three claims waiting (for capacity, say) well past the grace period
    queue, jd = setup(plane)
    for i in range(3):
        plane.submit(queue, jd, f"job-{i}")
    plane.dispatch()
    later = plane.clock.now_ms() + SweepPolicy().starting_grace_ms

    # WHEN a sweep may check two  THEN it checks two and leaves one for the next sweep
    report = sweep(plane.svc, plane.reactor, later, SweepPolicy(max_checks=2))
    assert (report.checked, report.deferred, len(launcher.recovered)) == (2, 1, 2)
    # ... a restart checks them all
    assert sweep(plane.svc, plane.reactor, later, SweepPolicy(restart=True, max_checks=2)).checked == 3
