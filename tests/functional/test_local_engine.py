"""What makes the local engine cheap per job, over a real SQLite store: several events of one job applied with one
write (a short task's start and stop; a batch of finished children into their parent), the capacity in use kept in
memory, one dispatch cycle per placement, CAPACITY reasons written only to jobs that keep waiting, and queue and
compute environment lists read once until one is written.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest

from chalicelib.compute.port import NullLauncher
from chalicelib.control import dispatch, resources
from chalicelib.control import jobs as job_control
from chalicelib.control.context import RequestContext, Services
from chalicelib.control.dispatch import ActiveJobs, Dispatcher
from chalicelib.control.react import Reactor
from chalicelib.domain import lifecycle
from chalicelib.domain.jobs import FAILED, PENDING, RUNNABLE, RUNNING, STARTING, SUCCEEDED, TIMEOUT_REASON, Job
from chalicelib.domain.lifecycle import TaskStarted, TaskStopped
from chalicelib.domain.scheduling import MAX_RESOURCE, WAITING_FOR_CAPACITY
from chalicelib.runtime.engine import ChildCounts
from chalicelib.runtime.local import LocalConfig, LocalRepository
from chalicelib.runtime.plane import local_engine
from chalicelib.store.port import Item
from chalicelib.store.sqlite import SqliteItemStore

EXEC_ROLE = "arn:aws:iam::123456789012:role/ecsTaskExecutionRole"
CTX = RequestContext("us-east-1")
T0 = 1_700_000_000_000
GRACE_MS = 250


class FakeClock:
    def __init__(self) -> None:
        self.now = T0

    def now_ms(self) -> int:
        return self.now


class SequentialIds:
    def __init__(self) -> None:
        self._n = itertools.count(1)

    def new_id(self) -> str:
        return f"job-{next(self._n):04d}"


class CountingStore(SqliteItemStore):
    """Counts the writes (a transaction counts once) and the queries."""

    def __init__(self, path: str) -> None:
        super().__init__(path)
        self.writes = 0
        self.queries = 0

    def put(self, item: Item, expect: int | None) -> Item:
        self.writes += 1
        return super().put(item, expect)

    def transact(self, ops: Any) -> None:
        self.writes += 1
        super().transact(ops)

    def query(self, *args: Any, **kwargs: Any) -> list[Item]:
        self.queries += 1
        return super().query(*args, **kwargs)


class Published:
    """An event sink that keeps (jobId, status) of every state change."""

    def __init__(self) -> None:
        self.changes: list[tuple[str, str]] = []

    def publish(self, detail_type: str, resources: list[str], detail: dict[str, Any]) -> None:
        self.changes.append((detail["jobId"], detail["status"]))


@dataclass
class Plane:
    svc: Services
    store: CountingStore
    clock: FakeClock
    reactor: Reactor
    dispatcher: Dispatcher
    launcher: NullLauncher
    published: Published
    active: ActiveJobs

    def setup(self, max_vcpus: int = 2, vcpus: str = "1") -> None:
        res = {"type": "FARGATE", "maxvCpus": max_vcpus, "subnets": ["subnet-1"], "securityGroupIds": ["sg-1"]}
        resources.create_compute_environment(
            self.svc, CTX, {"computeEnvironmentName": "ce", "type": "MANAGED", "computeResources": res}
        )
        order = [{"order": 1, "computeEnvironment": "ce"}]
        resources.create_job_queue(
            self.svc, CTX, {"jobQueueName": "q", "priority": 1, "computeEnvironmentOrder": order}
        )
        self.jd("work", vcpus)

    def jd(self, name: str, vcpus: str = "1", memory: str = "2048", platform: str = "FARGATE") -> None:
        container = {
            "image": "busybox",
            "command": ["true"],
            "resourceRequirements": [{"type": "VCPU", "value": vcpus}, {"type": "MEMORY", "value": memory}],
            "executionRoleArn": EXEC_ROLE,
        }
        request = {"jobDefinitionName": name, "type": "container", "containerProperties": container}
        resources.register_job_definition(self.svc, CTX, {**request, "platformCapabilities": [platform]})

    def submit(self, jd: str = "work", **extra: Any) -> str:
        self.clock.now += 1
        req = {"jobName": "j", "jobQueue": "q", "jobDefinition": jd, **extra}
        return job_control.submit(self.svc, self.reactor, CTX, req).job_id

    def job(self, job_id: str) -> Job:
        job = self.svc.jobs.get(job_id)
        assert job is not None
        return job


@pytest.fixture
def plane(tmp_path: Path) -> Iterator[Plane]:
    store = CountingStore(str(tmp_path / "state.db"))
    clock, launcher, published, active = FakeClock(), NullLauncher(), Published(), ActiveJobs()
    svc = Services(repo=LocalRepository(store), clock=clock, ids=SequentialIds(), launcher=launcher, events=published)
    reactor = Reactor(svc, launcher, observe=active.changed)
    tasks = (f"task-{i}" for i in itertools.count(1))
    dispatcher = Dispatcher(
        svc, reactor, lambda: next(tasks), active=active, reason_grace_ms=GRACE_MS, consistent_reads=True
    )
    active.rebuild(svc)
    yield Plane(svc, store, clock, reactor, dispatcher, launcher, published, active)
    store.close()


# -- several events, one write ------------------------------------------------------------------------------------


def test_a_tasks_start_and_stop_are_applied_with_one_write_and_both_published(plane: Plane) -> None:
    plane.setup()
    job_id = plane.submit()
    plane.dispatcher.cycle()
    writes, plane.published.changes = plane.store.writes, []

    plane.clock.now += 5
    done = plane.reactor.apply_all(job_id, [TaskStarted(1), TaskStopped(1, 0)])

    assert plane.store.writes == writes + 1
    assert done is not None and done.status == SUCCEEDED and done.version == plane.job(job_id).version
    assert done.started_at == T0 + 6 and done.attempts[0].started_at == T0 + 6
    assert plane.published.changes == [(job_id, RUNNING), (job_id, SUCCEEDED)]


def test_a_duplicate_in_a_batch_changes_nothing(plane: Plane) -> None:
    plane.setup()
    job_id = plane.submit()
    plane.dispatcher.cycle()
    plane.reactor.apply(job_id, TaskStarted(1))
    writes, plane.published.changes = plane.store.writes, []

    # the start again, the stop, and the stop again: one write, one state change
    done = plane.reactor.apply_all(job_id, [TaskStarted(1), TaskStopped(1, 0), TaskStopped(1, 0)])

    assert plane.store.writes == writes + 1
    assert done is not None and done.status == SUCCEEDED and len(done.attempts) == 1
    assert plane.published.changes == [(job_id, SUCCEEDED)]
    assert plane.reactor.apply_all(job_id, [TaskStopped(1, 0)]) == done  # nothing applies: no write
    assert plane.store.writes == writes + 1


def test_finished_children_are_counted_into_their_parent_with_one_write(plane: Plane) -> None:
    plane.setup(max_vcpus=4)
    counted: list[tuple[str, lifecycle.ChildFinished]] = []
    reactor = Reactor(plane.svc, plane.launcher, count_child=lambda parent, event: counted.append((parent, event)))
    parent = job_control.submit(
        plane.svc,
        reactor,
        CTX,
        {"jobName": "a", "jobQueue": "q", "jobDefinition": "work", "arrayProperties": {"size": 3}},
    ).job_id
    children = [f"{parent}:{i}" for i in range(3)]
    for child, code in zip(children, (0, 0, 1), strict=True):
        reactor.apply(child, lifecycle.Claim("ce", "task", "stream"))
        reactor.apply_all(child, [TaskStarted(1), TaskStopped(1, code)])
    assert plane.job(parent).status == PENDING  # nothing counted yet: the events wait in `counted`
    writes = plane.store.writes

    reactor.apply_all(parent, [event for _, event in counted + counted])  # every child's twice: counted once

    assert plane.store.writes == writes + 1
    after = plane.job(parent)
    assert after.array is not None and (after.array.succeeded, after.array.failed) == (2, 1)
    assert after.status == FAILED and after.status_reason == "1 of 3 child jobs failed"


def test_an_event_applied_to_a_stale_read_reads_the_job_again(plane: Plane) -> None:
    plane.setup()
    job_id = plane.submit()
    stale = plane.job(job_id)
    plane.reactor.apply(job_id, lifecycle.Cancel("no longer needed"))

    after = plane.reactor.apply_all(job_id, [lifecycle.Claim("ce", "task-x", "stream")], read=stale)

    assert after is not None and after.status == FAILED and after.is_cancelled  # the claim did not apply
    assert plane.launcher.launched == []


def test_child_counts_are_due_after_their_delay_and_taken_once() -> None:
    woken: list[bool] = []
    counts = ChildCounts(lambda: woken.append(True))
    assert counts.due_in() is None

    counts.add("p", lifecycle.ChildFinished(0, True))
    counts.add("p", lifecycle.ChildFinished(1, False))
    counts.add("q", lifecycle.ChildFinished(0, True))

    assert woken == [True]  # the first one wakes the engine, which waits until they are due
    due = counts.due_in()
    assert due is not None and 0 < due <= 0.05
    assert counts.take() == {
        "p": [lifecycle.ChildFinished(0, True), lifecycle.ChildFinished(1, False)],
        "q": [lifecycle.ChildFinished(0, True)],
    }
    assert counts.take() == {} and counts.due_in() is None


# -- dispatch -----------------------------------------------------------------------------------------------------


def test_the_capacity_kept_in_memory_follows_claims_and_stops(plane: Plane) -> None:
    plane.setup(max_vcpus=2)
    ids = [plane.submit() for _ in range(4)]

    assert plane.dispatcher.cycles() == 2
    assert plane.active.used() == {"ce": 2.0}
    plane.reactor.apply_all(ids[0], [TaskStarted(1), TaskStopped(1, 0)])
    assert plane.active.used() == {"ce": 1.0}
    assert plane.dispatcher.cycles() == 1
    assert [j.status for j in map(plane.job, ids)] == [SUCCEEDED, STARTING, STARTING, RUNNABLE]

    rebuilt = ActiveJobs()
    rebuilt.rebuild(plane.svc)
    assert rebuilt.used() == plane.active.used() == {"ce": 2.0}
    assert rebuilt.get(ids[1]) == plane.active.get(ids[1]) == plane.job(ids[1])


def test_reports_of_one_job_arriving_in_the_other_order_change_nothing(plane: Plane) -> None:
    # GIVEN a job the dispatcher claimed (v3, STARTING) while another thread that had saved it RUNNABLE (v2) was
    # still about to report that save
    plane.setup(max_vcpus=2)
    job_id = plane.submit()
    runnable = plane.job(job_id)
    assert plane.dispatcher.cycles() == 1
    claimed = plane.job(job_id)
    assert claimed.version > runnable.version and plane.active.used() == {"ce": 1.0}
    # WHEN the older report arrives after the claim's THEN the job's vCPUs stay counted
    plane.active.changed(runnable)
    assert plane.active.used() == {"ce": 1.0} and plane.active.get(job_id) == claimed
    # AND once it finished, a late report of it running does not bring it back, across a rebuild too
    plane.reactor.apply_all(job_id, [TaskStarted(1), TaskStopped(1, 0)])
    assert plane.active.used() == {}
    plane.active.changed(replace(claimed, status=RUNNING))
    assert plane.active.used() == {}
    plane.active.rebuild(plane.svc)
    plane.active.changed(replace(claimed, status=RUNNING))
    assert plane.active.used() == {}


def test_the_capacity_is_read_from_the_store_until_it_is_rebuilt(plane: Plane) -> None:
    plane.setup(max_vcpus=1)
    first, second = plane.submit(), plane.submit()
    Dispatcher(plane.svc, plane.reactor, lambda: "task-a").cycle()  # another dispatcher: not followed here
    fresh = ActiveJobs()
    dispatcher = Dispatcher(plane.svc, plane.reactor, lambda: "task-b", active=fresh)

    assert fresh.used() is None
    assert dispatcher.cycle() == 0  # the store says the CE is full
    assert plane.job(first).status == STARTING and plane.job(second).status == RUNNABLE


def test_one_cycle_fills_the_free_capacity_and_no_empty_cycle_follows(
    plane: Plane, monkeypatch: pytest.MonkeyPatch
) -> None:
    plane.setup(max_vcpus=2)
    ids = [plane.submit() for _ in range(5)]
    snapshots: list[dispatch.Snapshot] = []
    taken = dispatch.snapshot

    def counted(*args: Any, **kwargs: Any) -> dispatch.Snapshot:
        snapshots.append(taken(*args, **kwargs))
        return snapshots[-1]

    monkeypatch.setattr(dispatch, "snapshot", counted)
    plane.svc.repo.list_jqs(), plane.svc.repo.list_ces(None, 1000)  # from now on LocalRepository keeps them
    queries = plane.store.queries

    assert plane.dispatcher.cycles() == 2

    assert len(snapshots) == 1
    # the cycle reads each RUNNABLE index once (top-level jobs, array children), for as many jobs as the free
    # capacity can take and one more
    assert plane.store.queries == queries + 2
    assert [plane.job(j).status for j in ids] == [STARTING, STARTING, RUNNABLE, RUNNABLE, RUNNABLE]


def test_small_jobs_are_placed_by_as_many_cycles_as_their_reads_need(plane: Plane) -> None:
    plane.setup(max_vcpus=1, vcpus="0.25")
    ids = [plane.submit() for _ in range(6)]

    assert plane.dispatcher.cycles() == 4

    assert [plane.job(j).status for j in ids] == [STARTING] * 4 + [RUNNABLE] * 2


def test_a_capacity_reason_is_written_only_once_the_job_has_waited_the_grace(plane: Plane) -> None:
    plane.setup(max_vcpus=1)
    plane.jd("huge", vcpus="4", memory="8192")
    first, waiting, huge = plane.submit(), plane.submit(), plane.submit("huge")
    plane.dispatcher.cycles()
    seen = plane.clock.now
    assert plane.job(first).status == STARTING
    assert plane.job(waiting).status_reason is None  # waits for capacity: not written yet
    assert plane.dispatcher.reasons_due_in(seen) == GRACE_MS

    plane.clock.now += GRACE_MS - 1
    plane.dispatcher.cycles()
    assert plane.job(waiting).status_reason is None
    assert plane.dispatcher.reasons_due_in(plane.clock.now) == 1

    plane.clock.now += 1
    plane.dispatcher.cycles()
    assert plane.job(waiting).status_reason == WAITING_FOR_CAPACITY
    assert plane.job(waiting).reason_since == seen  # since when it waits
    assert plane.dispatcher.reasons_due_in(plane.clock.now) is None
    assert plane.job(huge).status == RUNNABLE  # behind the head: not looked at


def test_a_job_placed_within_the_grace_never_gets_a_capacity_reason(plane: Plane) -> None:
    plane.setup(max_vcpus=1)
    first, second = plane.submit(), plane.submit()
    plane.dispatcher.cycles()
    writes = plane.store.writes

    plane.clock.now += GRACE_MS - 1
    plane.reactor.apply_all(first, [TaskStarted(1), TaskStopped(1, 0)])
    plane.dispatcher.cycles()

    assert plane.job(second).status == STARTING and plane.job(second).status_reason is None
    assert plane.store.writes == writes + 2  # the first job's start and stop, the second's claim: no reason
    assert plane.dispatcher.reasons_due_in(plane.clock.now) is None


def test_a_misconfiguration_reason_is_written_at_once(plane: Plane) -> None:
    plane.setup(max_vcpus=2)
    plane.jd("huge", vcpus="4", memory="8192")
    huge = plane.submit("huge")

    plane.dispatcher.cycles()

    assert plane.job(huge).status_reason == MAX_RESOURCE


# -- the engine ---------------------------------------------------------------------------------------------------


def wait_until(predicate: Any, what: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, what
        time.sleep(0.01)


def test_the_engine_applies_reported_task_events_on_its_thread(tmp_path: Path) -> None:
    store = CountingStore(str(tmp_path / "state.db"))
    launcher, published = NullLauncher(), Published()
    svc = Services(repo=LocalRepository(store), ids=SequentialIds(), launcher=launcher, events=published)
    engine = local_engine(replace(svc, wake=lambda: engine.wake()), LocalConfig(state_dir=tmp_path))
    plane = Plane(engine.svc, store, FakeClock(), engine.reactor, engine.dispatcher, launcher, published, engine.active)
    plane.setup()
    job_id = plane.submit()
    engine.start()
    try:
        wait_until(lambda: bool(launcher.launched), "the job to be claimed")

        def report() -> None:
            engine.report(job_id, TaskStarted(1))
            engine.report(job_id, TaskStopped(1, 0))

        reporter = threading.Thread(target=report)
        reporter.start()
        reporter.join()

        wait_until(lambda: plane.job(job_id).status == SUCCEEDED, "the events to be applied")
        assert [s for j, s in published.changes if j == job_id] == [RUNNABLE, STARTING, RUNNING, SUCCEEDED]
    finally:
        engine.stop()
        store.close()


def test_before_the_engine_starts_a_report_is_applied_at_once(tmp_path: Path) -> None:
    store = CountingStore(str(tmp_path / "state.db"))
    launcher = NullLauncher()
    svc = Services(repo=LocalRepository(store), ids=SequentialIds(), launcher=launcher)
    engine = local_engine(svc, LocalConfig(state_dir=tmp_path))
    plane = Plane(svc, store, FakeClock(), engine.reactor, engine.dispatcher, launcher, Published(), engine.active)
    plane.setup()
    job_id = plane.submit()
    engine.dispatcher.cycle()

    engine.report(job_id, TaskStarted(1))

    assert plane.job(job_id).status == RUNNING
    store.close()


def test_the_engine_times_out_a_running_attempt_at_its_deadline_without_waiting_for_a_sweep(tmp_path: Path) -> None:
    # GIVEN a job allowed 60 s per attempt, RUNNING under the engine (its clock is the control plane's, a fake one)
    store = CountingStore(str(tmp_path / "state.db"))
    clock, launcher = FakeClock(), NullLauncher()
    svc = Services(repo=LocalRepository(store), clock=clock, ids=SequentialIds(), launcher=launcher)
    engine = local_engine(replace(svc, wake=lambda: engine.wake()), LocalConfig(state_dir=tmp_path))
    plane = Plane(engine.svc, store, clock, engine.reactor, engine.dispatcher, launcher, Published(), engine.active)
    plane.setup()
    job_id = plane.submit(timeout={"attemptDurationSeconds": 60}, retryStrategy={"attempts": 3})
    engine.start()
    try:
        wait_until(lambda: bool(launcher.launched), "the job to be claimed")
        engine.report(job_id, TaskStarted(1))
        wait_until(lambda: plane.job(job_id).status == RUNNING, "the start to be applied")
        assert launcher.stopped == []

        # WHEN the clock passes startedAt + 60 s and the engine looks (any wake-up; its next sweep is far off)
        clock.now += 60_000
        engine.wake()

        # THEN the attempt is marked and its launcher asked to stop it with the timeout reason, once
        wait_until(lambda: launcher.stopped != [], "the attempt to be stopped")
        assert launcher.stopped == [(job_id, 1, TIMEOUT_REASON)]
        job = plane.job(job_id)
        assert job.current is not None and job.current.status_reason == TIMEOUT_REASON
        # ... and its stop, as the launcher reports it, fails the job without a retry
        engine.report(job_id, TaskStopped(1, 143, status_reason=TIMEOUT_REASON, timed_out=True))
        wait_until(lambda: plane.job(job_id).status == FAILED, "the stop to be applied")
        assert plane.job(job_id).status_reason == TIMEOUT_REASON
        assert len(plane.job(job_id).attempts) == 1
    finally:
        engine.stop()
        store.close()


# -- the repository ------------------------------------------------------------------------------------------------


def test_queue_and_ce_lists_are_read_again_only_after_one_is_written(plane: Plane) -> None:
    plane.setup()
    repo = plane.svc.repo
    assert [q.name for q in repo.list_jqs()] == ["q"]
    queries = plane.store.queries

    assert [q.name for q in repo.list_jqs()] == ["q"] and [c.name for c in repo.list_ces(None, 1000)] == ["ce"]
    assert [c.name for c in repo.list_ces(None, 1000)] == ["ce"]
    assert plane.store.queries == queries + 1  # the CE list once, the queue list not again

    resources.update_job_queue(plane.svc, {"jobQueue": "q", "priority": 7})
    assert [q.priority for q in repo.list_jqs()] == [7]
    assert plane.store.queries == queries + 2


class FailingOnce(NullLauncher):
    """A launcher whose first launch raises after the claim was written (as the Docker launcher re-raises an
    OSError for the sweep to launch that attempt again)."""

    def __init__(self) -> None:
        super().__init__()
        self.failed: list[str] = []

    def launch(self, spec: Any) -> None:
        if not self.failed:
            self.failed.append(spec.key)
            raise OSError("the engine did not answer")
        super().launch(spec)


def test_a_dispatch_cycle_that_raised_is_run_again_without_waiting_for_the_sweep(tmp_path: Path) -> None:
    # GIVEN an engine whose first launch raises, and two jobs with capacity for both (the sweep is 30 s away)
    store = CountingStore(str(tmp_path / "state.db"))
    launcher = FailingOnce()
    svc = Services(repo=LocalRepository(store), ids=SequentialIds(), launcher=launcher)
    engine = local_engine(replace(svc, wake=lambda: engine.wake()), LocalConfig(state_dir=tmp_path))
    plane = Plane(
        engine.svc, store, FakeClock(), engine.reactor, engine.dispatcher, launcher, Published(), engine.active
    )
    plane.setup()
    first, second = plane.submit(), plane.submit()
    # WHEN the engine runs: the cycle that claimed the first job raised before it reached the second
    engine.start()
    try:
        wait_until(lambda: launcher.failed == [f"{first}#1"], "the first launch to raise")
        # THEN the cycle is run again: the second job is launched, with no other write to wake the engine
        wait_until(lambda: [s.job_id for s in launcher.launched] == [second], "the second job to be launched")
        assert plane.job(first).status == STARTING  # claimed: the sweep launches it again under the same key
    finally:
        engine.stop()
        store.close()
