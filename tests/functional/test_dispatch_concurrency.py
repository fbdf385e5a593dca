"""Dispatch under concurrency (invariants 2 and 3 of the architecture): two dispatchers over one store, each with its
own connection, race on the same RUNNABLE jobs from two threads. Every job must be claimed exactly once and launched
once. Then: a crash between a claim and its launch is repaired by the sweep, with the same launch key.

Each test runs on SQLite (two connections to one file) and on DynamoDB (moto, two PynamoDB models on one table).
moto's backend is not thread-safe: its conditional put checks and writes without a lock, which real DynamoDB does
atomically per item. The fixture restores that guarantee by serialising moto's request handling (one lock around its
botocore stubber); the race between the dispatchers' read, decide and conditional write stays as wide as ever.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from moto import mock_aws
from moto.core.botocore_stubber import BotocoreStubber

from chalicelib.compute.port import NullLauncher, TaskSpec
from chalicelib.control.sweep import SweepPolicy, sweep
from chalicelib.domain.jobs import FAILED, RUNNABLE, STARTING
from chalicelib.store.dynamo import DynamoItemStore
from chalicelib.store.port import ItemStore
from chalicelib.store.sqlite import SqliteItemStore
from tests.functional.moto_env import aws_env, network  # noqa: F401 - aws_env is a fixture
from tests.functional.plane import Plane

REGION = "us-east-1"
JOBS = 40
StoreFactory = Callable[[], ItemStore]


def serialised_moto(monkeypatch: pytest.MonkeyPatch) -> None:
    """One request at a time through moto, as DynamoDB applies one conditional write to an item at a time."""
    lock = threading.Lock()
    handle = BotocoreStubber.__call__

    def locked(self: BotocoreStubber, *args: Any, **kwargs: Any) -> Any:
        with lock:
            return handle(self, *args, **kwargs)

    monkeypatch.setattr(BotocoreStubber, "__call__", locked)


@pytest.fixture(params=["sqlite", "dynamodb"])
def stores(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[StoreFactory]:
    """Makes connections to one shared store: each call is another client of the same data."""
    made: list[ItemStore] = []
    if request.param == "sqlite":

        def sqlite() -> ItemStore:
            made.append(SqliteItemStore(str(tmp_path / "state.db")))
            return made[-1]

        yield sqlite
    else:
        request.getfixturevalue("aws_env")
        serialised_moto(monkeypatch)
        with mock_aws():
            DynamoItemStore("batchplane", region=REGION).create_table()

            def dynamo() -> ItemStore:
                made.append(DynamoItemStore("batchplane", region=REGION))
                return made[-1]

            yield dynamo
    for store in made:
        store.close()


def a_backlog(plane: Plane, jobs: int = JOBS) -> list[str]:
    """A Fargate CE with room for every job, a queue, and `jobs` RUNNABLE jobs."""
    ce = plane.fargate_ce("fargate", "subnet-0a1b2c3d", "sg-0a1b2c3d", spot=False, max_vcpus=jobs * 4)
    queue = plane.queue("queue", ce)
    jd = plane.job_definition("work")
    return [plane.submit(queue, jd, f"job-{i}") for i in range(jobs)]


def race(*planes: Plane) -> list[int]:
    """Every plane's dispatcher runs cycles from its own thread, all released at once, until a cycle places
    nothing. Returns the jobs each placed."""
    start = threading.Barrier(len(planes))
    placed = [0] * len(planes)
    errors: list[BaseException] = []

    def run(i: int) -> None:
        try:
            start.wait()
            while n := planes[i].dispatcher.cycle():
                placed[i] += n
        except BaseException as e:  # reported by the main thread
            errors.append(e)

    threads = [threading.Thread(target=run, args=(i,), name=f"dispatcher-{i}") for i in range(len(planes))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not any(t.is_alive() for t in threads), "a dispatcher did not finish"
    assert not errors, errors
    return placed


def test_two_dispatchers_claim_and_launch_every_job_exactly_once(stores: StoreFactory) -> None:
    # GIVEN two control planes over one store (each its own connection), one launcher recording every launch asked
    launcher = NullLauncher()
    first, second = Plane(stores(), launcher), Plane(stores(), launcher)
    second.clock = first.clock
    job_ids = a_backlog(first)

    # WHEN both dispatch the same RUNNABLE jobs at the same time
    placed = race(first, second)

    # THEN every job is claimed once: STARTING on its first attempt, counted by exactly one dispatcher
    assert sum(placed) == JOBS
    jobs = [first.job(j) for j in job_ids]
    assert all(j.status == STARTING and j.current is not None and j.current.number == 1 for j in jobs)
    assert all(j.attempts == () for j in jobs)
    # ... and launched once: no launch was ever asked twice, and each launch is the claim that won
    assert sorted(launcher.calls) == sorted(f"{j}#1" for j in job_ids)
    task_ids = {s.job_id: s.task_id for s in launcher.launched}
    assert all(task_ids[j.job_id] == j.current.task_id for j in jobs if j.current)
    # ... and nothing is left for a third dispatcher
    assert Plane(stores(), launcher).dispatcher.cycle() == 0


class CrashingLauncher(NullLauncher):
    """The control plane dies after the claim's write, before the launch: `crash` launches raise."""

    def __init__(self) -> None:
        super().__init__()
        self.crash = 0
        self.fail_with: Exception | None = None

    def launch(self, spec: TaskSpec) -> None:
        if self.crash:
            self.crash -= 1
            raise RuntimeError("killed between claim and launch")
        if self.fail_with is not None:
            raise self.fail_with
        super().launch(spec)


def test_a_crash_between_claim_and_launch_is_repaired_by_the_sweep(stores: StoreFactory) -> None:
    # GIVEN a job claimed (STARTING) whose launch never happened
    launcher = CrashingLauncher()
    plane = Plane(stores(), launcher)
    (job_id,) = a_backlog(plane, jobs=1)
    launcher.crash = 1
    with pytest.raises(RuntimeError):
        plane.dispatcher.cycle()
    claimed = plane.job(job_id)
    assert claimed.status == STARTING and launcher.launched == []

    # WHEN a sweep runs within the grace period  THEN it leaves the claim alone (its launch may be under way)
    policy = SweepPolicy()
    plane.clock.advance(policy.starting_grace_ms - 1)
    assert sweep(plane.svc, plane.reactor, plane.clock.now_ms()).relaunched == []

    # WHEN one runs after it, from another control plane  THEN the attempt is launched, under the claim's key
    other = Plane(stores(), launcher, plane.clock)
    plane.clock.advance(1)
    report = sweep(other.svc, other.reactor, plane.clock.now_ms())
    assert report.relaunched == [f"{job_id}#1"] and report.errors == []
    (spec,) = launcher.launched
    assert (spec.key, spec.task_id) == (f"{job_id}#1", claimed.current.task_id if claimed.current else None)

    # ... and a later sweep finds the task and launches nothing more
    plane.clock.advance(policy.starting_grace_ms)
    assert sweep(plane.svc, plane.reactor, plane.clock.now_ms()).relaunched == []
    assert launcher.calls == [f"{job_id}#1"]
    assert plane.job(job_id).status == STARTING


def test_a_launch_that_keeps_failing_fails_to_start_and_the_retry_strategy_decides(stores: StoreFactory) -> None:
    launcher = CrashingLauncher()
    plane = Plane(stores(), launcher)
    (job_id,) = a_backlog(plane, jobs=1)
    launcher.crash, launcher.fail_with = 1, RuntimeError("cluster is gone")
    with pytest.raises(RuntimeError):
        plane.dispatcher.cycle()
    policy = SweepPolicy()

    # WHEN the relaunch fails before the deadline  THEN the job stays claimed and the error is reported
    plane.clock.advance(policy.starting_grace_ms)
    report = sweep(plane.svc, plane.reactor, plane.clock.now_ms())
    assert report.relaunched == [] and len(report.errors) == 1 and "cluster is gone" in report.errors[0]
    assert plane.job(job_id).status == STARTING

    # WHEN it still fails after the deadline  THEN the attempt fails to start (one attempt: the job fails)
    plane.clock.advance(policy.launch_deadline_ms)
    report = sweep(plane.svc, plane.reactor, plane.clock.now_ms())
    assert report.failed_to_start == [f"{job_id}#1"]
    job = plane.describe_one(job_id)
    assert job["status"] == FAILED
    assert job["attempts"][0]["statusReason"] == "Task failed to start"
    assert "cluster is gone" in job["attempts"][0]["container"]["reason"]


def test_a_launch_failing_to_start_is_retried_when_attempts_remain(stores: StoreFactory) -> None:
    launcher = CrashingLauncher()
    plane = Plane(stores(), launcher)
    ce = plane.fargate_ce("fargate", "subnet-0a1b2c3d", "sg-0a1b2c3d", spot=False)
    queue = plane.queue("queue", ce)
    jd = plane.job_definition("work")
    job_id = plane.submit(queue, jd, retryStrategy={"attempts": 2})
    launcher.crash, launcher.fail_with = 1, RuntimeError("no capacity")
    with pytest.raises(RuntimeError):
        plane.dispatcher.cycle()

    plane.clock.advance(SweepPolicy().launch_deadline_ms)
    sweep(plane.svc, plane.reactor, plane.clock.now_ms())

    assert plane.job(job_id).status == RUNNABLE
    launcher.fail_with = None
    assert plane.dispatch() == 1
    assert launcher.calls == [f"{job_id}#2"]


def test_a_claim_lost_to_a_stale_read_does_not_end_the_cycles_with_capacity_left(tmp_path: Path) -> None:
    """`Dispatcher.cycles` (the AWS dispatch invocation, the local engine) stops after a cycle that left nothing
    placeable. A claim that fails (the job left RUNNABLE after the snapshot read it: on AWS, gsi1 is eventually
    consistent) spent no capacity, so it must not count against what the cycle left."""
    store = SqliteItemStore(str(tmp_path / "state.db"))
    plane = Plane(store)
    ce = plane.fargate_ce("ce", "subnet-1", "sg-1", spot=False, max_vcpus=4)
    queue, jd = plane.queue("q", ce), plane.job_definition("work")
    jobs = [plane.submit(queue, jd, f"j{i}") for i in range(6)]
    # GIVEN the oldest job cancelled by someone else between the cycle's read and its claim
    real = plane.reactor.apply_all

    def cancelled_first(job_id: str, events: Any, read: Any = None) -> Any:
        if job_id == jobs[0] and plane.job(job_id).status == RUNNABLE:
            plane.call("CancelJob", jobId=job_id, reason="cancelled meanwhile")
        return real(job_id, events, read=read)

    plane.reactor.apply_all = cancelled_first  # type: ignore[method-assign]
    # WHEN the dispatcher runs its cycles
    placed = plane.dispatcher.cycles()
    # THEN the capacity the lost claim did not take is used: four jobs run, one waits
    assert plane.job(jobs[0]).status == FAILED
    assert placed == 4
    assert [plane.job(j).status for j in jobs[1:]] == [STARTING] * 4 + [RUNNABLE]
    store.close()
