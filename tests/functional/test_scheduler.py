"""The scheduler over a real SQLite store: Reactor + Dispatcher, NullLauncher (tasks are driven by hand), an injected
clock. Queue priority, capacity, blocking reasons (written once), jobStateTimeLimitActions, fair share with its
usage history, and GetJobQueueSnapshot's front in dispatch order.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import random
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from chalicelib.compute.port import NullLauncher
from chalicelib.control import (
    dispatch,
    resources,
    snapshot,
)
from chalicelib.control import jobs as job_control
from chalicelib.control.context import RequestContext, Services, Settings
from chalicelib.control.dispatch import Dispatcher, runnable_jobs
from chalicelib.control.react import Reactor
from chalicelib.control.runnable_cache import RunnableCache
from chalicelib.domain import lifecycle
from chalicelib.domain.jobs import ACTIVE, FAILED, RUNNABLE, STARTING, Job
from chalicelib.domain.scheduling import (
    MAX_RESOURCE,
    NO_ENABLED_CE,
    PLATFORM_MISMATCH,
    WAITING_FOR_CAPACITY,
)
from chalicelib.store.repository import Repository
from chalicelib.store.sqlite import SqliteItemStore
from chalicelib.store.usage import UsageRepository

EXEC_ROLE = "arn:aws:iam::123456789012:role/ecsTaskExecutionRole"
CTX = RequestContext("us-east-1")
T0 = 1_700_000_000_000
IMAGE = "public.ecr.aws/docker/library/busybox:latest"


class FakeClock:
    def __init__(self, now: int = T0) -> None:
        self.now = now

    def now_ms(self) -> int:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += int(seconds * 1000)


class SequentialIds:
    """Ids in submission order, so FIFO order is readable in assertions."""

    def __init__(self) -> None:
        self._n = itertools.count(1)

    def new_id(self) -> str:
        return f"job-{next(self._n):04d}"


@dataclass
class Plane:
    svc: Services
    clock: FakeClock
    reactor: Reactor
    dispatcher: Dispatcher
    launcher: NullLauncher

    # -- resources --
    def ce(self, name: str, max_vcpus: int = 2, *, kind: str = "FARGATE", state: str = "ENABLED") -> None:
        res = {"type": kind, "maxvCpus": max_vcpus, "subnets": ["subnet-1"], "securityGroupIds": ["sg-1"]}
        if kind in ("EC2", "SPOT"):
            res.update(instanceTypes=["optimal"], instanceRole="ecsInstanceRole", minvCpus=0)
        resources.create_compute_environment(
            self.svc, CTX, {"computeEnvironmentName": name, "type": "MANAGED", "computeResources": res}
        )
        if state != "ENABLED":  # a CE is created ENABLED
            self.set_ce_state(name, state)

    def set_ce_state(self, name: str, state: str) -> None:
        resources.update_compute_environment(self.svc, {"computeEnvironment": name, "state": state})

    def queue(self, name: str, *ces: str, priority: int = 1, **extra: Any) -> None:
        order = [{"order": i + 1, "computeEnvironment": ce} for i, ce in enumerate(ces)]
        req = {"jobQueueName": name, "priority": priority, "computeEnvironmentOrder": order, **extra}
        resources.create_job_queue(self.svc, CTX, req)

    def policy(self, name: str, *weights: tuple[str, float], decay: int = 0, reservation: int = 0) -> str:
        fairshare = {
            "shareDecaySeconds": decay,
            "computeReservation": reservation,
            "shareDistribution": [{"shareIdentifier": s, "weightFactor": w} for s, w in weights],
        }
        return resources.create_scheduling_policy(self.svc, CTX, {"name": name, "fairsharePolicy": fairshare}).arn

    def jd(self, name: str = "work", vcpus: str = "1", memory: str = "2048", platform: str = "FARGATE") -> None:
        container = {
            "image": IMAGE,
            "command": ["true"],
            "resourceRequirements": [{"type": "VCPU", "value": vcpus}, {"type": "MEMORY", "value": memory}],
            "executionRoleArn": EXEC_ROLE,
        }
        request = {"jobDefinitionName": name, "type": "container", "containerProperties": container}
        resources.register_job_definition(self.svc, CTX, {**request, "platformCapabilities": [platform]})

    def move_queue(self, queue: str, ce: str) -> None:
        order = [{"order": 1, "computeEnvironment": ce}]
        resources.update_job_queue(self.svc, {"jobQueue": queue, "computeEnvironmentOrder": order})

    # -- jobs --
    def submit(self, queue: str, jd: str = "work", **extra: Any) -> str:
        self.clock.advance(0.001)
        req = {"jobName": "j", "jobQueue": queue, "jobDefinition": jd, **extra}
        return job_control.submit(self.svc, self.reactor, CTX, req).job_id

    def job(self, job_id: str) -> Job:
        job = self.svc.jobs.get(job_id)
        assert job is not None
        return job

    def run(self, job_id: str) -> None:
        self.reactor.apply(job_id, lifecycle.TaskStarted(self.job(job_id).attempt_number))

    def finish(self, job_id: str, exit_code: int = 0) -> None:
        self.reactor.apply(job_id, lifecycle.TaskStopped(self.job(job_id).attempt_number, exit_code))

    def started(self) -> list[str]:
        """Job ids in the order they were claimed (launched)."""
        return [spec.job_id for spec in self.launcher.launched]

    def active_vcpus(self, queue: str) -> float:
        return sum(
            j.vcpus
            for status in ACTIVE
            for children in (False, True)
            for j in self.svc.jobs.iter_queue(queue, status, children=children)
        )


def build_plane(
    tmp_path: Path, *, kept: bool, settings: Settings | None = None, reason_grace_ms: int = 0
) -> tuple[Plane, SqliteItemStore]:
    """A plane on a SQLite store whose dispatcher reads the RUNNABLE jobs on every cycle, or (`kept`) keeps them
    between cycles, told of every saved job by the reactor, as runtime/plane.py wires the local engine's."""
    store = SqliteItemStore(str(tmp_path / "state.db"))
    clock, launcher = FakeClock(), NullLauncher()
    svc = Services(repo=Repository(store), clock=clock, ids=SequentialIds(), launcher=launcher)
    if settings is not None:
        svc = dataclasses.replace(svc, settings=settings)
    cache = RunnableCache(store) if kept else None
    reactor = Reactor(svc, launcher, observe=cache.changed if cache else None)
    tasks = (f"task-{i}" for i in itertools.count(1))
    dispatcher = Dispatcher(svc, reactor, lambda: next(tasks), reason_grace_ms=reason_grace_ms, runnable=cache)
    return Plane(svc, clock, reactor, dispatcher, launcher), store


@pytest.fixture(params=["read", "kept"])
def plane(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Plane]:
    """Each scheduling rule holds whether the dispatcher reads every queue's RUNNABLE jobs on every cycle (AWS) or
    keeps them between cycles (the local engine: control/runnable_cache.py)."""
    built, store = build_plane(tmp_path, kept=request.param == "kept")
    yield built
    store.close()


# -- priority and capacity -------------------------------------------------------------------------------------


def test_a_high_priority_queue_is_served_before_a_low_one_sharing_its_ce(plane: Plane) -> None:
    # GIVEN one 2-vCPU CE shared by a high- and a low-priority queue, low's jobs submitted first
    plane.ce("shared", 2)
    plane.queue("low", "shared", priority=1)
    plane.queue("high", "shared", priority=10)
    plane.jd()
    low = [plane.submit("low") for _ in range(2)]
    high = [plane.submit("high") for _ in range(2)]

    # WHEN a cycle runs
    placed = plane.dispatcher.cycle()

    # THEN the high queue's jobs take the CE and low's head waits, with a reason
    assert placed == 2
    assert plane.started() == high
    assert plane.job(low[0]).status_reason == WAITING_FOR_CAPACITY
    assert plane.job(low[1]).status_reason is None  # behind the head: not looked at


def test_capacity_is_never_exceeded_and_freed_capacity_is_reused(plane: Plane) -> None:
    plane.ce("ce", 2)
    plane.queue("q", "ce")
    plane.jd()
    ids = [plane.submit("q") for _ in range(5)]

    plane.dispatcher.cycle()
    plane.dispatcher.cycle()
    assert plane.active_vcpus("q") == 2

    plane.run(ids[0])
    plane.finish(ids[0])
    plane.dispatcher.cycle()

    assert plane.started() == ids[:3]
    assert plane.active_vcpus("q") == 2


def test_a_waiting_reason_is_written_once_not_every_cycle(plane: Plane) -> None:
    plane.ce("ce", 1)
    plane.queue("q", "ce")
    plane.jd()
    first, second = plane.submit("q"), plane.submit("q")
    plane.dispatcher.cycle()
    version = plane.job(second).version

    for _ in range(5):
        plane.dispatcher.cycle()

    assert plane.job(first).status == STARTING
    assert plane.job(second).version == version
    assert plane.job(second).reason_since == T0 + 2


def test_the_reason_clears_when_the_job_is_placed(plane: Plane) -> None:
    plane.ce("ce", 1)
    plane.queue("q", "ce")
    plane.jd()
    first, second = plane.submit("q"), plane.submit("q")
    plane.dispatcher.cycle()
    plane.run(first)
    plane.finish(first)

    plane.dispatcher.cycle()

    assert plane.job(second).status == STARTING
    assert plane.job(second).status_reason is None


# -- misconfiguration reasons ----------------------------------------------------------------------------------


def test_a_job_larger_than_the_ce_gets_max_resource_and_does_not_block(plane: Plane) -> None:
    plane.ce("ce", 2)
    plane.queue("q", "ce")
    plane.jd("huge", vcpus="4", memory="8192")
    plane.jd()
    huge = plane.submit("q", "huge")
    small = plane.submit("q")

    plane.dispatcher.cycle()

    assert plane.job(huge).status == RUNNABLE
    assert plane.job(huge).status_reason == MAX_RESOURCE
    assert plane.started() == [small]


def test_a_job_whose_queue_moved_to_another_platform_gets_a_misconfiguration_reason(plane: Plane) -> None:
    # GIVEN an EC2 job queued on an EC2 queue (SubmitJob refuses a platform the queue cannot run)
    plane.ce("ec2", 4, kind="EC2", state="DISABLED")
    plane.ce("fargate", 4)
    plane.queue("q", "ec2")
    plane.jd("ec2-work", platform="EC2")
    job = plane.submit("q", "ec2-work")
    # WHEN the queue is moved onto a Fargate compute environment before the job was placed
    plane.move_queue("q", "fargate")
    plane.dispatcher.cycle()

    # THEN it never runs there: it waits with AWS's JOB_RESOURCE_REQUIREMENT code, naming the platform
    assert plane.started() == []
    assert plane.job(job).status_reason == PLATFORM_MISMATCH.format(platform="EC2")


def test_more_memory_than_an_ec2_ce_could_launch_gets_job_resource_requirement(plane: Plane) -> None:
    plane.ce("ec2", 2, kind="EC2")
    plane.queue("q", "ec2")
    plane.jd("fat", vcpus="1", memory=str(65 * 1024), platform="EC2")
    fat = plane.submit("q", "fat")

    plane.dispatcher.cycle()

    reason = plane.job(fat).status_reason
    assert reason is not None and reason.startswith("MISCONFIGURATION:JOB_RESOURCE_REQUIREMENT")


def test_a_queue_whose_ces_are_disabled_holds_its_head_with_action_required(plane: Plane) -> None:
    plane.ce("ce", 2, state="DISABLED")
    plane.queue("q", "ce")
    plane.jd()
    job = plane.submit("q")

    plane.dispatcher.cycle()
    assert plane.job(job).status_reason == NO_ENABLED_CE  # VALID but DISABLED: not "invalid"

    plane.set_ce_state("ce", "ENABLED")
    plane.dispatcher.cycle()
    assert plane.job(job).status == STARTING


def test_a_disabled_queue_still_runs_the_jobs_it_holds(plane: Plane) -> None:
    # AWS JobQueueDetail.state: "new jobs can't be added to the queue, but jobs already in the queue can finish"
    plane.ce("ce", 1)
    plane.queue("q", "ce")
    plane.jd()
    first, second = plane.submit("q"), plane.submit("q")
    resources.update_job_queue(plane.svc, {"jobQueue": "q", "state": "DISABLED"})

    plane.dispatcher.cycle()
    assert plane.job(first).status == STARTING
    # the second waits for room, with a true reason
    assert (plane.job(second).status, plane.job(second).status_reason) == (RUNNABLE, WAITING_FOR_CAPACITY)


# -- jobStateTimeLimitActions ----------------------------------------------------------------------------------


def limited(reason: str, seconds: int = 600) -> dict[str, Any]:
    return {
        "jobStateTimeLimitActions": [
            {"reason": reason, "state": "RUNNABLE", "maxTimeSeconds": seconds, "action": "CANCEL"}
        ]
    }


def test_a_job_blocked_past_max_time_seconds_is_cancelled(plane: Plane) -> None:
    # GIVEN a queue that cancels jobs stuck on MAX_RESOURCE for 600 s, and a job too big for its CE
    plane.ce("ce", 2)
    plane.queue("q", "ce", **limited("MISCONFIGURATION:COMPUTE_ENVIRONMENT_MAX_RESOURCE"))
    plane.jd("huge", vcpus="4", memory="8192")
    huge = plane.submit("q", "huge")
    plane.dispatcher.cycle()

    # WHEN 599 s pass, it still waits; at 600 s the cycle cancels it
    plane.clock.advance(599)
    plane.dispatcher.cycle()
    assert plane.job(huge).status == RUNNABLE
    plane.clock.advance(1)
    plane.dispatcher.cycle()

    # THEN it FAILED with AWS's reason
    job = plane.job(huge)
    assert job.status == FAILED
    assert job.status_reason == (
        "Canceled by JobStateTimeLimit action due to reason: MISCONFIGURATION:COMPUTE_ENVIRONMENT_MAX_RESOURCE"
    )


def test_the_sweep_applies_time_limits_without_placing_anything(plane: Plane) -> None:
    # GIVEN an EC2 job left on a queue that then moved to Fargate (JOB_RESOURCE_REQUIREMENT: it can never run)
    plane.ce("ec2", 4, kind="EC2", state="DISABLED")
    plane.ce("fargate", 4)
    plane.queue("q", "ec2", **limited("MISCONFIGURATION:JOB_RESOURCE_REQUIREMENT", 900))
    plane.jd("odd", platform="EC2")
    plane.jd()
    odd = plane.submit("q", "odd")
    plane.move_queue("q", "fargate")
    plane.dispatcher.check_time_limits()  # the sweep records the reason, and claims nothing
    normal = plane.submit("q")
    plane.clock.advance(900)

    cancelled = plane.dispatcher.check_time_limits()

    assert cancelled == 1
    assert plane.job(odd).status == FAILED
    assert plane.job(normal).status == RUNNABLE
    assert plane.started() == []


def test_a_time_limit_for_another_reason_does_not_apply(plane: Plane) -> None:
    plane.ce("ce", 2)
    plane.queue("q", "ce", **limited("MISCONFIGURATION:JOB_RESOURCE_REQUIREMENT"))
    plane.jd("huge", vcpus="4", memory="8192")
    huge = plane.submit("q", "huge")
    plane.dispatcher.cycle()

    plane.clock.advance(86_400)
    plane.dispatcher.cycle()

    assert plane.job(huge).status == RUNNABLE


def test_a_busy_queue_is_never_cancelled_by_an_insufficient_capacity_action(plane: Plane) -> None:
    plane.ce("ce", 1)
    plane.queue("q", "ce", **limited("CAPACITY:INSUFFICIENT_INSTANCE_CAPACITY"))
    plane.jd()
    _, waiting = plane.submit("q"), plane.submit("q")
    plane.dispatcher.cycle()

    plane.clock.advance(86_400)
    plane.dispatcher.cycle()

    assert plane.job(waiting).status == RUNNABLE


# -- fair share ------------------------------------------------------------------------------------------------


def test_fair_share_places_by_weight(plane: Plane) -> None:
    # GIVEN a 3-vCPU CE and a policy giving share B twice A's capacity (weight 0.5)
    plane.ce("ce", 3)
    plane.queue("fs", "ce", schedulingPolicyArn=plane.policy("p", ("A", 1.0), ("B", 0.5)))
    plane.jd()
    a = [plane.submit("fs", shareIdentifier="A") for _ in range(3)]
    b = [plane.submit("fs", shareIdentifier="B") for _ in range(3)]

    plane.dispatcher.cycle()

    assert sorted(plane.started()) == sorted([a[0], b[0], b[1]])
    assert plane.job(a[1]).status_reason == WAITING_FOR_CAPACITY


def test_a_finished_attempt_is_recorded_in_its_shares_history(plane: Plane) -> None:
    plane.ce("ce", 4)
    plane.queue("fs", "ce", schedulingPolicyArn=plane.policy("p", decay=600))
    plane.jd("two", vcpus="2", memory="4096")
    job = plane.submit("fs", "two", shareIdentifier="A")
    plane.dispatcher.cycle()
    plane.run(job)
    plane.clock.advance(60)

    plane.finish(job)

    history = UsageRepository(plane.svc.repo.items).get("fs")
    assert history.shares["A"] == pytest.approx(2 * 600 * (1 - math.exp(-0.1)))
    assert history.at == plane.clock.now


def test_without_decay_no_history_is_written(plane: Plane) -> None:
    plane.ce("ce", 4)
    plane.queue("fs", "ce", schedulingPolicyArn=plane.policy("p", decay=0))
    plane.jd()
    job = plane.submit("fs", shareIdentifier="A")
    plane.dispatcher.cycle()
    plane.run(job)
    plane.finish(job)

    assert plane.svc.repo.items.get("USAGE#fs", "") is None


def test_recent_usage_puts_a_share_behind_another(plane: Plane) -> None:
    # GIVEN share A just ran for a while, B never did; one slot
    plane.ce("ce", 1)
    plane.queue("fs", "ce", schedulingPolicyArn=plane.policy("p", decay=600))
    plane.jd()
    first = plane.submit("fs", shareIdentifier="A")
    plane.dispatcher.cycle()
    plane.run(first)
    plane.clock.advance(300)
    plane.finish(first)
    a_next = plane.submit("fs", shareIdentifier="A")
    b_next = plane.submit("fs", shareIdentifier="B")

    plane.dispatcher.cycle()

    assert plane.started() == [first, b_next]
    assert plane.job(a_next).status == RUNNABLE


# -- GetJobQueueSnapshot ---------------------------------------------------------------------------------------


def front(plane: Plane, queue: str) -> list[str]:
    return [j["jobArn"].rsplit("/", 1)[1] for j in snapshot.snapshot(plane.svc, queue)["frontOfQueue"]["jobs"]]


def test_the_snapshot_front_matches_one_cycles_placements(plane: Plane) -> None:
    # GIVEN a fair-share queue on a disabled CE, jobs of three shares with priorities within a share
    plane.ce("ce", 8, state="DISABLED")
    plane.queue("fs", "ce", schedulingPolicyArn=plane.policy("p", ("A", 1.0), ("B", 0.5), ("C", 2.0)))
    plane.jd()
    submitted = [
        plane.submit("fs", shareIdentifier=share, schedulingPriorityOverride=priority)
        for share, priority in [("A", 0), ("A", 5), ("B", 0), ("C", 0), ("B", 9), ("A", 0), ("C", 1), ("B", 0)]
    ]
    shown = front(plane, "fs")

    # WHEN the CE is enabled and one cycle places them all
    plane.set_ce_state("ce", "ENABLED")
    plane.dispatcher.cycle()

    # THEN it took them in the order the snapshot showed
    assert plane.started() == shown
    # each share's best job first (all idle: by submission), then by weighted usage: B (weight 0.5) twice as often
    # as A, C (weight 2) half as often; within a share by priority, then submission
    assert shown == [submitted[i] for i in (1, 4, 6, 2, 0, 7, 3, 5)]
    assert len(shown) == 8


def test_the_snapshot_front_of_a_fifo_queue_is_submission_order(plane: Plane) -> None:
    plane.ce("ce", 1, state="DISABLED")
    plane.queue("q", "ce")
    plane.jd()
    ids = [plane.submit("q") for _ in range(4)]

    assert front(plane, "q") == ids


def test_jobs_that_never_fit_at_the_head_do_not_hide_the_jobs_behind_them(plane: Plane) -> None:
    # GIVEN more never-fitting jobs at the head than the dispatcher's narrow read takes, then a small job
    plane.ce("ce", 2)
    plane.queue("q", "ce")
    plane.jd("huge", vcpus="4", memory="8192")
    plane.jd()
    huge = [plane.submit("q", "huge") for _ in range(dispatch.NARROW_BASE + 2 * dispatch.NARROW_PER_VCPU + 5)]
    small = plane.submit("q")

    # WHEN one cycle runs
    plane.dispatcher.cycle()

    # THEN the small job is placed and every huge one carries its reason
    assert plane.started() == [small]
    assert all(plane.job(h).status_reason == MAX_RESOURCE for h in huge)


# -- the kept RUNNABLE jobs (control/runnable_cache.py) -----------------------------------------------------------


def test_kept_runnable_jobs_are_always_the_front_of_the_queue(tmp_path: Path) -> None:
    # Random submissions (single jobs, arrays written a few children ahead), claims, ends, cancels and reason
    # writes; after each, a second cache (its own watches, told of no claim: every removal is someone else's)
    # must give what a fresh read gives, once it has dropped a list holding a job that left RUNNABLE (as the
    # dispatcher does when a claim fails), and every job it keeps must be the stored version.
    # children refilled in chunks while the queue runs
    plane, store = build_plane(tmp_path, kept=True, settings=Settings(array_window=4))
    svc, reactor = plane.svc, plane.reactor
    plane.ce("ce", max_vcpus=3)
    plane.queue("q", "ce")
    plane.jd()
    checker, rng, checks = RunnableCache(store), random.Random(20261205), 0
    for _ in range(400):
        op = rng.random()
        if op < 0.3:
            size = rng.choice([None, None, 2, 7])
            plane.submit("q", **({"arrayProperties": {"size": size}} if size else {}))
        elif op < 0.55:
            plane.dispatcher.cycle()  # claims; waiting jobs get their reason written (no grace here)
        elif op < 0.8:
            active = [j for s in ACTIVE for kids in (False, True) for j in svc.jobs.iter_queue("q", s, children=kids)]
            for job in rng.sample(active, min(len(active), 2)):
                plane.run(job.job_id)
                plane.finish(job.job_id, rng.choice([0, 0, 1]))
        else:
            front = runnable_jobs(svc, "q", 20)
            if front:
                job_control.cancel(svc, reactor, rng.choice(front).job_id, "test")
        for limit in (1, 2, 3, 40):
            got = checker.read(svc, "q", limit)
            if any(plane.job(j.job_id).status != RUNNABLE for j in got):
                checker.forget("q")
                got = checker.read(svc, "q", limit)
            assert [j.job_id for j in got] == [j.job_id for j in runnable_jobs(svc, "q", limit)]
            assert all(j.version == plane.job(j.job_id).version for j in got), "a kept job is out of date"
            checks += bool(got)
    assert checks > 300  # the queue was rarely empty: the comparisons compared something
    store.close()


def test_the_kept_front_is_read_once_per_stretch_not_once_per_cycle(tmp_path: Path) -> None:
    # The point of keeping it: an array's children reaching the head one by one do not cost a read each. As the
    # local engine runs it: a waiting job's reason is written once it has waited a while (LOCAL_REASON_GRACE_MS),
    # not by every cycle that finds it behind the capacity (a reason written is a write into the RUNNABLE front).
    plane, store = build_plane(tmp_path, kept=True, reason_grace_ms=250)
    svc = plane.svc
    plane.ce("ce", max_vcpus=2)
    plane.queue("q", "ce")
    plane.jd()
    parent = plane.submit("q", arrayProperties={"size": 200})
    queries = 0
    real_query = store.query

    def counted(index: Any, partition: str, **kwargs: Any) -> Any:
        nonlocal queries
        queries += partition.endswith("#RUNNABLE")
        return real_query(index, partition, **kwargs)

    store.query = counted  # type: ignore[method-assign]
    for _ in range(200):
        assert plane.dispatcher.cycle() >= 1
        for job in [j for s in ACTIVE for j in svc.jobs.iter_queue("q", s, children=True)]:
            plane.run(job.job_id)
            plane.finish(job.job_id)
        if plane.job(parent).status == "SUCCEEDED":
            break
    assert plane.job(parent).status == "SUCCEEDED"
    # 100 cycles placing 2 children each read the RUNNABLE partitions 2 x 100 times without keeping them
    assert queries < 40, queries
    store.close()


def test_a_cancelled_head_kept_by_the_dispatcher_does_not_hold_back_the_job_behind_it(plane: Plane) -> None:
    # GIVEN a 4-vCPU CE with 2 vCPUs taken, a 4-vCPU job waiting at the head (its reason written) and a
    # 1-vCPU job behind it
    plane.ce("ce", 4)
    plane.queue("q", "ce")
    plane.jd("two", vcpus="2", memory="4096")
    plane.jd("four", vcpus="4", memory="8192")
    plane.jd("one", vcpus="1")
    running = plane.submit("q", "two")
    big = plane.submit("q", "four")
    small = plane.submit("q", "one")
    plane.dispatcher.cycle()
    plane.dispatcher.cycle()
    assert plane.job(running).status == STARTING
    assert plane.job(big).status_reason == WAITING_FOR_CAPACITY
    assert plane.job(small).status == RUNNABLE

    # WHEN the head is cancelled (another writer: an API request) and a cycle runs
    job_control.cancel(plane.svc, plane.reactor, big, "no longer needed")
    assert plane.job(big).status == FAILED
    plane.dispatcher.cycle()

    # THEN the job behind it takes the 2 free vCPUs, as a fresh read of the queue would have it
    assert plane.job(small).status == STARTING


def test_a_kept_front_ended_by_a_write_is_not_read_again_with_one_job_per_idle_cycle(tmp_path: Path) -> None:
    # A queue whose head waits for capacity is served from its kept list by every cycle (the engine runs one on
    # every wake-up, for any queue). When a write then ends the list, the next read once asked for as many jobs as
    # cycles had been served, however many that was; it is bounded by what was claimed, and by WINDOW.
    plane, store = build_plane(tmp_path, kept=True)
    plane.ce("ce", max_vcpus=1)
    plane.queue("q", "ce")
    plane.jd()
    first = plane.submit("q", retryStrategy={"attempts": 2})
    for _ in range(3 * dispatch.WINDOW):
        plane.submit("q")
    plane.dispatcher.cycle()
    assert plane.job(first).status == STARTING
    for _ in range(2000):  # idle cycles: the CE is full, nothing changes
        plane.dispatcher.cycle()
    limits: list[int] = []
    real_query = store.query

    def recorded(index: Any, partition: str, **kwargs: Any) -> Any:
        if partition.endswith("#RUNNABLE"):
            limits.append(kwargs.get("limit", 100))
        return real_query(index, partition, **kwargs)

    store.query = recorded  # type: ignore[method-assign]
    plane.run(first)
    plane.finish(first, 1)  # retried: RUNNABLE again, in front of everything kept
    assert plane.job(first).status == RUNNABLE
    plane.dispatcher.cycle()
    assert limits and max(limits) <= dispatch.WINDOW, limits
    store.close()


def test_a_claim_whose_launch_raised_is_not_kept_as_runnable_in_front_of_the_queue(plane: Plane) -> None:
    # A launcher may raise after the claim was written (the Docker launcher re-raises an OSError making its attempt
    # marker, for the sweep to launch it again): the cycle ends with the exception, the job is STARTING.
    plane.ce("ce", 3)
    plane.queue("q", "ce")
    plane.jd("two", vcpus="2", memory="4096")
    plane.jd("one", vcpus="1")
    big = plane.submit("q", "two")
    small = plane.submit("q", "one")
    launch = plane.launcher.launch

    def failing(spec: Any) -> None:
        plane.launcher.launch = launch  # type: ignore[method-assign]
        raise OSError("No space left on device")

    plane.launcher.launch = failing  # type: ignore[method-assign]
    with pytest.raises(OSError):
        plane.dispatcher.cycle()
    assert plane.job(big).status == STARTING

    # WHEN the next cycle runs
    plane.dispatcher.cycle()

    # THEN the job behind takes the free vCPU, as a fresh read of the queue has it: the claimed job does not wait
    # at the head of a kept front for 2 vCPUs it already holds
    assert plane.job(small).status == STARTING


def test_a_read_of_the_queue_that_failed_leaves_no_kept_front_behind(plane: Plane) -> None:
    # GIVEN a job placed on a 1-vCPU CE, and a job submitted behind it
    plane.ce("ce", 1)
    plane.queue("q", "ce")
    plane.jd()
    first = plane.submit("q")
    plane.dispatcher.cycle()
    assert plane.job(first).status == STARTING
    second = plane.submit("q")

    # WHEN the next cycle's read of the queue fails (the store raised)
    items = plane.svc.repo.items
    query = items.query

    def failing(index: Any, partition: str, **kwargs: Any) -> Any:
        if not partition.endswith("#RUNNABLE"):
            return query(index, partition, **kwargs)
        items.query = query  # type: ignore[method-assign]
        raise RuntimeError("the store failed")

    items.query = failing  # type: ignore[method-assign]
    with pytest.raises(RuntimeError):
        plane.dispatcher.cycle()

    # THEN once the first job ends, the next cycle places the second: what the failed read was to read again is
    # read again, not served from the list it was to replace
    plane.run(first)
    plane.finish(first)
    plane.dispatcher.cycle()
    assert plane.job(second).status == STARTING
