"""The kept RUNNABLE front (control/runnable_cache.py, docs/adr/0034) against the dispatcher that reads every cycle.

Two local planes, each built as `batchplane up` builds its own (runtime/plane.py `local_engine`: the reactor that
observes every job it saves, ActiveJobs, the reason grace, claims against the job as read), one keeping each queue's
RUNNABLE front between cycles and one reading it every cycle, get the same random requests through the API door
(`gateway.handle`) and the same task events, clock and ids. Whatever enters, leaves or moves in a queue's RUNNABLE
set — submissions, dependencies, lazily written array children, retries, cancels, terminates, tags, queue and
compute environment updates, caps, consumable units, fair-share weights, time limits, retention — both must place
the same jobs in the same order, and write the same reasons: the read plane is the oracle.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from chalicelib.api import gateway
from chalicelib.compute.port import NullLauncher, TaskSpec
from chalicelib.control.context import Services, Settings
from chalicelib.control.retention import purge
from chalicelib.control.sweep import sweep
from chalicelib.domain import lifecycle
from chalicelib.domain.jobs import ACTIVE, PENDING, RUNNABLE, Job
from chalicelib.runtime.engine import PERIODIC, Engine
from chalicelib.runtime.local import LocalConfig, LocalRepository
from chalicelib.runtime.plane import local_engine
from chalicelib.store.sqlite import SqliteItemStore

T0 = 1_700_000_000_000
EXEC_ROLE = "arn:aws:iam::123456789012:role/ecsTaskExecutionRole"
QUEUES = ("fifo", "fair")
SHARES = ("a", "b")


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def now_ms(self) -> int:
        return self.now


class Ids:
    def __init__(self) -> None:
        self.n = 0

    def new_id(self) -> str:
        self.n += 1
        return f"job-{self.n:05d}"


class Launcher(NullLauncher):
    """Records launches; `fail_next` makes the next one raise after the claim was written (as the Docker launcher
    re-raises an OSError making its attempt marker, for the sweep to launch the attempt again)."""

    fail_next = False

    def launch(self, spec: TaskSpec) -> None:
        if self.fail_next:
            self.fail_next = False
            raise OSError("No space left on device")
        super().launch(spec)


@dataclass
class Twin:
    """One local plane: its store, engine (not started: the test drives its cycles) and launcher."""

    store: SqliteItemStore
    svc: Services
    engine: Engine
    launcher: Launcher
    clock: Clock

    @classmethod
    def build(cls, state: Path, *, kept: bool, settings: Settings) -> Twin:
        state.mkdir()
        store = SqliteItemStore(str(state / "state.db"))
        clock, launcher = Clock(), Launcher()
        engine: Engine | None = None

        def plane_reactor() -> Any:
            assert engine is not None
            return engine.reactor

        svc = Services(
            repo=LocalRepository(store),
            settings=settings,
            clock=clock,
            ids=Ids(),
            launcher=launcher,
            plane_reactor=plane_reactor,
        )
        engine = local_engine(svc, LocalConfig(state_dir=state))
        if kept:
            assert engine.dispatcher.runnable is not None, "the local engine keeps the RUNNABLE front"
        else:
            engine.dispatcher.runnable = None  # the oracle: reads every queue's front on every cycle
        engine.active.rebuild(svc)
        return cls(store, svc, engine, launcher, clock)

    def call(self, op: str, /, **body: Any) -> tuple[int, dict[str, Any]]:
        status, _, text = gateway.handle(self.svc, "POST", f"/v1/{op.lower()}", {}, json.dumps(body))
        return status, json.loads(text) if text else {}

    def tag(self, arn: str, tags: dict[str, str]) -> tuple[int, dict[str, Any]]:
        path = "/v1/tags/" + quote(arn, safe="")
        status, _, text = gateway.handle(self.svc, "POST", path, {}, json.dumps({"tags": tags}))
        return status, json.loads(text) if text else {}

    def untag(self, arn: str, keys: list[str]) -> tuple[int, dict[str, Any]]:
        path = "/v1/tags/" + quote(arn, safe="")
        status, _, text = gateway.handle(self.svc, "DELETE", path, {}, None, {"tagKeys": keys})
        return status, json.loads(text) if text else {}

    def job(self, job_id: str) -> Job | None:
        return self.svc.jobs.get(job_id)

    def in_status(self, *statuses: str) -> list[Job]:
        return [
            j
            for q in QUEUES
            for s in statuses
            for kids in (False, True)
            for j in self.svc.jobs.iter_queue(q, s, children=kids)
        ]


def _same(a: tuple[int, dict[str, Any]], b: tuple[int, dict[str, Any]], what: str) -> tuple[int, dict[str, Any]]:
    assert a[0] == b[0], (what, a, b)
    return a


class Twins:
    def __init__(self, tmp_path: Path, settings: Settings) -> None:
        self.read = Twin.build(tmp_path / "read", kept=False, settings=settings)
        self.kept = Twin.build(tmp_path / "kept", kept=True, settings=settings)
        self.both = (self.read, self.kept)
        self.ids: list[str] = []  # every job submitted (array parents included)
        self.log: list[str] = []  # the operations so far, for a failure's message

    def close(self) -> None:
        for twin in self.both:
            twin.store.close()

    def call(self, op: str, /, **body: Any) -> tuple[int, dict[str, Any]]:
        self.log.append(f"{op} {body}")
        return _same(self.read.call(op, **body), self.kept.call(op, **body), op)

    def tag(self, arn: str, tags: dict[str, str]) -> None:
        self.log.append(f"TagResource {arn} {tags}")
        _same(self.read.tag(arn, tags), self.kept.tag(arn, tags), "TagResource")

    def untag(self, arn: str, keys: list[str]) -> None:
        self.log.append(f"UntagResource {arn} {keys}")
        _same(self.read.untag(arn, keys), self.kept.untag(arn, keys), "UntagResource")

    def advance(self, ms: int) -> None:
        self.log.append(f"advance {ms}")
        for twin in self.both:
            twin.clock.now += ms

    def cycles(self) -> None:
        self.log.append("cycles")
        placed: list[int | str] = []
        for twin in self.both:
            try:
                placed.append(twin.engine.dispatcher.cycles())
            except OSError as e:  # a launch failed: the engine logs it and waits for its next wake-up
                placed.append(str(e))
        assert placed[0] == placed[1], placed

    def check_time_limits(self) -> None:
        self.log.append("check_time_limits")
        cancelled = [twin.engine.dispatcher.check_time_limits() for twin in self.both]
        assert cancelled[0] == cancelled[1], cancelled

    def task(self, job_id: str, exit_code: int | None) -> None:
        """The job's current attempt starts (`exit_code` None) or starts and stops, as the launcher reports it."""
        self.log.append(f"task {job_id} {exit_code}")
        for twin in self.both:
            job = twin.job(job_id)
            assert job is not None and job.current is not None
            n = job.current.number
            twin.engine.report(job_id, lifecycle.TaskStarted(n))
            if exit_code is not None:
                twin.engine.report(job_id, lifecycle.TaskStopped(n, exit_code))

    def purge(self) -> None:
        self.log.append("purge")
        removed = [purge(t.svc, t.clock.now, 1, forget=lambda job: None) for t in self.both]
        assert removed[0] == removed[1], removed

    def sweep(self) -> None:
        self.log.append("sweep")
        for twin in self.both:
            sweep(twin.svc, twin.engine.reactor, twin.clock.now, PERIODIC)

    def compare(self) -> None:
        """Both planes launched the same attempts in the same order, and hold every job in the same state."""
        launched = [[(s.job_id, s.attempt) for s in t.launcher.launched] for t in self.both]
        where = "\n".join(self.log[-12:])
        assert launched[0] == launched[1], f"placements differ after:\n{where}"
        ids = {j.job_id for t in self.both for j in t.in_status(RUNNABLE, PENDING, *ACTIVE)}
        for job_id in sorted(ids | set(self.ids)):
            read, kept = (t.job(job_id) for t in self.both)
            state = [(j.status, j.status_reason, j.attempt_number) if j else None for j in (read, kept)]
            assert state[0] == state[1], f"{job_id}: {state} after:\n{where}"


@pytest.fixture
def twins(tmp_path: Path) -> Iterator[Twins]:
    built = Twins(tmp_path, Settings(array_window=3, deletion_grace_ms=0))
    yield built
    built.close()


def _setup(t: Twins) -> None:
    call = t.call

    def ok(op: str, /, **body: Any) -> tuple[int, dict[str, Any]]:
        status, out = call(op, **body)
        assert status == 200, (op, out)
        return status, out

    t.call = ok  # type: ignore[method-assign]
    for name, vcpus in (("ce1", 4), ("ce2", 2)):
        res = {"type": "FARGATE", "maxvCpus": vcpus, "subnets": ["subnet-1"], "securityGroupIds": ["sg-1"]}
        t.call("CreateComputeEnvironment", computeEnvironmentName=name, type="MANAGED", computeResources=res)
    share = [{"shareIdentifier": s, "weightFactor": 1.0} for s in SHARES]
    _, policy = t.call("CreateSchedulingPolicy", name="fs", fairsharePolicy={"shareDistribution": share})
    order = [{"order": 1, "computeEnvironment": "ce1"}, {"order": 2, "computeEnvironment": "ce2"}]
    reason = "MISCONFIGURATION:COMPUTE_ENVIRONMENT_MAX_RESOURCE"  # the "huge" jobs'
    limits = [{"reason": reason, "state": "RUNNABLE", "action": "CANCEL", "maxTimeSeconds": 600}]
    t.call("CreateJobQueue", jobQueueName="fifo", priority=10, computeEnvironmentOrder=order)
    t.call(
        "CreateJobQueue",
        jobQueueName="fair",
        priority=5,
        computeEnvironmentOrder=order,
        schedulingPolicyArn=policy["arn"],
        jobStateTimeLimitActions=limits,
    )
    t.call("CreateConsumableResource", consumableResourceName="licence", totalQuantity=2)
    for name, vcpus, extra in (
        ("one", "1", {}),
        ("two", "2", {}),
        ("huge", "8", {}),
        (
            "lic",
            "1",
            {
                "consumableResourceProperties": {
                    "consumableResourceList": [{"consumableResource": "licence", "quantity": 1}]
                }
            },
        ),
    ):
        container = {
            "image": "busybox",
            "command": ["true"],
            "resourceRequirements": [
                {"type": "VCPU", "value": vcpus},
                {"type": "MEMORY", "value": str(2048 * int(vcpus))},
            ],
            "executionRoleArn": EXEC_ROLE,
        }
        t.call(
            "RegisterJobDefinition",
            jobDefinitionName=name,
            type="container",
            platformCapabilities=["FARGATE"],
            containerProperties=container,
            **extra,
        )
    t.call = call  # type: ignore[method-assign]


def _step(t: Twins, rng: random.Random) -> None:
    read = t.read
    op = rng.random()
    if op < 0.25:  # a submission: single or array, with retries, a dependency, a priority, caps
        queue = rng.choice(QUEUES)
        body: dict[str, Any] = {
            "jobName": "j",
            "jobQueue": queue,
            "jobDefinition": rng.choice(["one", "one", "two", "lic", "huge"]),
        }
        if queue == "fair":
            body["shareIdentifier"] = rng.choice(SHARES)
            body["schedulingPriorityOverride"] = rng.randint(0, 3)
        if rng.random() < 0.3:
            body["arrayProperties"] = {"size": rng.randint(2, 8)}
            if rng.random() < 0.3:
                body["tags"] = {"batchplane:maxRunning": "1"}
            elif rng.random() < 0.3:  # each child waits for the one before: RUNNABLE one by one
                body["dependsOn"] = [{"type": "SEQUENTIAL"}]
        if rng.random() < 0.3:
            body["retryStrategy"] = {"attempts": 2}
        if t.ids and "dependsOn" not in body and rng.random() < 0.25:
            body["dependsOn"] = [{"jobId": rng.choice(t.ids[-6:])}]
        t.advance(rng.choice([0, 1, 1, 2]))  # same-millisecond submissions: sort-key ties on createdAt
        status, out = t.call("SubmitJob", **body)
        if status == 200:
            t.ids.append(out["jobId"])
    elif op < 0.45:
        if rng.random() < 0.1:
            t.log.append("the next launch raises")
            for twin in t.both:
                twin.launcher.fail_next = True
        t.cycles()
    elif op < 0.64:  # tasks start and end (retried when they fail with attempts left)
        active = read.in_status(*ACTIVE)
        for job in rng.sample(active, min(len(active), rng.randint(1, 4))):
            t.task(job.job_id, rng.choice([0, 0, 1, None]))
    elif op < 0.68:  # cancel or terminate something waiting (or running), or a whole array
        waiting = read.in_status(RUNNABLE, PENDING)
        if rng.random() < 0.2 and (running := read.in_status(*ACTIVE)):
            t.call("TerminateJob", jobId=rng.choice(running).job_id, reason="test")
        elif waiting:
            job = rng.choice(waiting)
            target = job.array.parent_id if job.array and job.array.parent_id and rng.random() < 0.5 else job.job_id
            t.call(rng.choice(["CancelJob", "TerminateJob"]), jobId=target, reason="test")
    elif op < 0.72:  # a RUNNABLE job rewritten in place
        top = [j for j in read.in_status(RUNNABLE) if not j.is_array_child]
        if top:
            t.tag(rng.choice(top).arn, {"k": str(rng.random())})
    elif op < 0.77:  # the queues: priority, state, compute environment order
        queue = rng.choice(QUEUES)
        change = rng.choice(["priority", "state", "order"])
        if change == "priority":
            t.call("UpdateJobQueue", jobQueue=queue, priority=rng.randint(1, 20))
        elif change == "state":
            t.call("UpdateJobQueue", jobQueue=queue, state=rng.choice(["ENABLED", "DISABLED"]))
        else:
            ces = rng.sample(["ce1", "ce2"], rng.choice([1, 2]))
            order = [{"order": i + 1, "computeEnvironment": ce} for i, ce in enumerate(ces)]
            t.call("UpdateJobQueue", jobQueue=queue, computeEnvironmentOrder=order)
    elif op < 0.81:  # the compute environments: state, size
        ce = rng.choice(["ce1", "ce2"])
        if rng.random() < 0.5:
            state = rng.choice(["ENABLED", "ENABLED", "DISABLED"])
            t.call("UpdateComputeEnvironment", computeEnvironment=ce, state=state)
        else:
            t.call("UpdateComputeEnvironment", computeEnvironment=ce, computeResources={"maxvCpus": rng.randint(1, 8)})
    elif op < 0.84:  # caps on a queue, consumable units, fair-share weights
        change = rng.choice(["cap", "licence", "weights"])
        if change == "cap":
            _, q = read.call("DescribeJobQueues", jobQueues=[rng.choice(QUEUES)])
            if not q["jobQueues"]:
                return  # deleted
            arn = q["jobQueues"][0]["jobQueueArn"]
            if rng.random() < 0.5:
                t.tag(arn, {"batchplane:maxRunning": str(rng.randint(1, 3))})
            else:
                t.untag(arn, ["batchplane:maxRunning"])
        elif change == "licence":
            t.call(
                "UpdateConsumableResource", consumableResource="licence", operation="SET", quantity=rng.randint(0, 3)
            )
        else:
            share = [{"shareIdentifier": s, "weightFactor": rng.choice([0.5, 1.0, 4.0])} for s in SHARES]
            t.call("UpdateSchedulingPolicy", arn=_policy_arn(read), fairsharePolicy={"shareDistribution": share})
    elif op < 0.92:
        t.advance(rng.choice([100, 300, 1_000, 700_000]))  # reasons due; a time limit passed
        if rng.random() < 0.3:
            t.check_time_limits()
    elif op < 0.95:
        t.purge()
    elif op < 0.975:
        t.sweep()  # the periodic sweep, without the engine's drop of every kept list that follows it
    else:  # the FIFO queue deleted (its jobs terminated), or created again under the same name once it is gone
        status, out = read.call("DescribeJobQueues", jobQueues=["fifo"])
        if not out["jobQueues"]:
            order = [{"order": 1, "computeEnvironment": "ce1"}, {"order": 2, "computeEnvironment": "ce2"}]
            t.call("CreateJobQueue", jobQueueName="fifo", priority=10, computeEnvironmentOrder=order)
        elif out["jobQueues"][0]["status"] != "DELETING":
            t.call("UpdateJobQueue", jobQueue="fifo", state="DISABLED")
            t.call("DeleteJobQueue", jobQueue="fifo")


def _policy_arn(twin: Twin) -> str:
    _, out = twin.call("DescribeJobQueues", jobQueues=["fair"])
    return str(out["jobQueues"][0]["schedulingPolicyArn"])


@pytest.mark.parametrize("seed", [1, 2])
def test_the_kept_front_places_what_a_fresh_read_places(twins: Twins, seed: int) -> None:
    _setup(twins)
    rng = random.Random(seed)
    for _ in range(600):
        _step(twins, rng)
        twins.compare()
    placed = len(twins.read.launcher.launched)
    assert placed > 40, placed  # the comparisons compared placements
