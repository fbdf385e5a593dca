"""The serverless runtime when its Lambdas die mid-work (spec: "processes die mid-transition; events come twice"):
the harness of tests/functional/test_serverless_e2e.py (bench/aws_harness.py: moto's AWS, the handlers invoked as
their event sources would), with every handler invocation liable to crash at a random AWS call, before it is sent
or after its answer came, and to be delivered again as AWS would:

- the table's stream: a failed batch is retried (the event source mapping: `MaximumRetryAttempts` 10, with bisect);
- the dispatch queue: a message not deleted comes back after its visibility timeout;
- EventBridge (task events): a failed asynchronous invocation is retried (the rule target's `MaximumRetryAttempts` 4).

Each delivery crashes at most twice, so the third try always finishes (within every retry budget above), and any
successful delivery may come a second time. Some task events are lost outright (their deliveries failed past the
rule's retries, into its dead-letter queue). A crashed Lambda's retry starts cold: a new runtime, so nothing it kept
in memory (such as the launcher's record of what it launched) survives.

Some work has no event left to redeliver it: a dispatch that died between the claim's write and its RunTask leaves a
STARTING job whose SQS message the retry answered (the job is no longer RUNNABLE); a lost task event leaves a job
STARTING or RUNNING while its task has moved on. The scheduled sweep repairs those: a claim older than its grace is
launched again under the same key, or its task's state applied; a RUNNING job not heard from for 5 minutes has its
task read (DescribeTasks), and a stopped task's end applied. For that read to say what the lost event said, moto's
task gets the exit code its plan gave (moto's containers always exit 0). The harness runs the sweep, liable to crash
too, each time the plane is quiet, as if its minute had come and every grace had passed: up to ten times, since each
stage of the DAG that a crash or a lost event cut off waits for one. After that, every job must have ended as its
plan says, and every attempt must have run as one ECS task: no job lost, none run twice beyond its retries.

The crash is a BaseException, so that no `except Exception` in the code under test can swallow it: the process is
gone, whatever its handlers. moto's RunTask ignores `clientToken` (ECS answers a retried RunTask with the task the
token started first), so "one task per attempt" here is held by the launcher's own ListTasks before each RunTask
(compute/ecs.py `precheck`), the AWS deployment's second guard.
"""

from __future__ import annotations

import random
import threading
from collections import Counter
from collections.abc import Iterator
from typing import Any

import botocore.handlers
import pytest
from moto.ecs.models import EC2ContainerServiceBackend

from bench.aws_harness import Deployment, World, deployed, set_up
from chalicelib.compute import ecs_events
from chalicelib.control import sweep
from chalicelib.runtime import plane


class LambdaCrash(BaseException):
    """The Lambda's process died (timeout, out of memory, a host lost): nothing after this point of it runs."""


class Chaos:
    """Arms a crash at the n-th AWS call of the current handler invocation (on the test's thread only: the API
    server's thread serves the client's requests, which are not a Lambda's event-driven work)."""

    def __init__(self, rng: random.Random, crash_rate: float, duplicate_rate: float, loss_rate: float) -> None:
        self.rng = rng
        self.crash_rate = crash_rate
        self.duplicate_rate = duplicate_rate
        self.loss_rate = loss_rate  # of task events
        self.lost = 0
        self.thread = threading.get_ident()
        self.countdown: int | None = None  # AWS calls left before the crash; None: not armed
        self.after = False  # crash once the call was answered (its effect made) instead of before it is sent
        self.crashes: Counter[str] = Counter()
        self.duplicates: Counter[str] = Counter()

    def arm(self) -> None:
        self.countdown = self.rng.randint(1, 12)
        self.after = self.rng.random() < 0.5

    def disarm(self) -> None:
        self.countdown = None

    def _tick(self, after: bool) -> None:
        if self.countdown is None or after != self.after or threading.get_ident() != self.thread:
            return
        self.countdown -= 1
        if self.countdown <= 0:
            self.countdown = None
            raise LambdaCrash()

    def before_call(self, **_: Any) -> None:
        self._tick(after=False)

    def after_call(self, **_: Any) -> None:
        self._tick(after=True)

    @staticmethod
    def handlers(chaos: Chaos) -> list[tuple[str, Any]]:
        return [("provide-client-params", chaos.before_call), ("after-call", chaos.after_call)]


PLANNED_EXIT = {"ok": 0, "fail": 1, "spot": 143}


def exits_as_planned(monkeypatch: pytest.MonkeyPatch, world: World) -> None:
    """moto's StopTask, as the harness ends a task by its plan, leaves the exit code the plan gives on its container
    (what DescribeTasks then reports, as ECS would)."""
    real = EC2ContainerServiceBackend.stop_task

    def stop_task(self: EC2ContainerServiceBackend, cluster_str: str, task_str: str, reason: str) -> Any:
        task = real(self, cluster_str, task_str, reason)
        progress = world.tasks.get(task.task_arn)
        if progress is not None and progress.stopped is None:  # (stopped by its plan, not by a StopTask of ours)
            for container in task.containers:
                container.exitCode = PLANNED_EXIT[progress.outcome]
        return task

    monkeypatch.setattr(EC2ContainerServiceBackend, "stop_task", stop_task)


def chaotic(monkeypatch: pytest.MonkeyPatch, chaos: Chaos) -> None:
    """Every handler invocation may crash, and is then delivered again (at most two crashes per delivery); a
    delivery that finished may come a second time."""
    real = World.invoke

    def invoke(self: World, name: str, event: Any) -> Any:
        if name == "on_ecs_task_event" and chaos.rng.random() < chaos.loss_rate:
            chaos.lost += 1
            return None  # every delivery failed: it is in the rule's dead-letter queue
        for delivery in range(3):
            if delivery < 2 and chaos.rng.random() < chaos.crash_rate:
                chaos.arm()
            try:
                result = real(self, name, event)
            except LambdaCrash:
                chaos.crashes[name] += 1
                plane.configure_aws(plane.build_aws(self.config()))  # its memory is gone: the retry starts cold
                continue  # delivered again
            finally:
                chaos.disarm()
            break  # (an armed invocation that made fewer calls than the countdown finished)
        if chaos.rng.random() < chaos.duplicate_rate:
            chaos.duplicates[name] += 1
            result = real(self, name, event)
        return result

    monkeypatch.setattr(World, "invoke", invoke)


SWEEP_LATER_MS = 10 * 60_000  # past SweepPolicy's starting_grace_ms and pending_stale_ms


def settle_with_sweeps(world: World, monkeypatch: pytest.MonkeyPatch, rounds: int) -> None:
    """Settle; then, `rounds` times, the scheduled sweep (its clock SWEEP_LATER_MS ahead) and settle again."""
    real_sweep = sweep.sweep

    def later(svc: Any, reactor: Any, now_ms: int, policy: Any = None) -> object:
        return real_sweep(svc, reactor, now_ms + SWEEP_LATER_MS, policy)

    monkeypatch.setattr(sweep, "sweep", later)  # what every runtime's Controls call (a cold start's too)
    world.settle()
    for _ in range(rounds):
        world.invoke("sweep", SCHEDULED)
        world.settle()


SCHEDULED = {
    "version": "0",
    "id": "sweep",
    "detail-type": "Scheduled Event",
    "source": "aws.events",
    "account": "123456789012",
    "time": "2026-12-05T18:00:00Z",
    "region": "us-east-1",
    "resources": ["arn:aws:events:us-east-1:123456789012:rule/batchplane-sweep"],
    "detail": {},
}


@pytest.fixture
def chaos_deployment(serverless_env: None, request: pytest.FixtureRequest) -> Iterator[tuple[Deployment, Chaos]]:
    chaos = Chaos(random.Random(request.param), crash_rate=0.35, duplicate_rate=0.2, loss_rate=0.15)
    entries = Chaos.handlers(chaos)
    botocore.handlers.BUILTIN_HANDLERS.extend(entries)  # before the deployment's clients are made
    try:
        with deployed({"StateChangeEvents": "ALL"}) as d:
            yield d, chaos
    finally:
        for entry in entries:
            botocore.handlers.BUILTIN_HANDLERS.remove(entry)


@pytest.mark.parametrize("chaos_deployment", range(12), indirect=True, ids=lambda s: f"seed{s}")
def test_no_job_is_lost_or_run_twice_when_lambdas_crash_and_events_repeat(
    chaos_deployment: tuple[Deployment, Chaos], monkeypatch: pytest.MonkeyPatch
) -> None:
    deployment, chaos = chaos_deployment
    world, batch = deployment.world, deployment.batch
    set_up(deployment)  # (settled before the chaos starts)
    exits_as_planned(monkeypatch, world)
    chaotic(monkeypatch, chaos)

    # GIVEN a DAG: prepare -> array of 4 -> (flaky: fails once, retried; on-spot: reclaimed once, retried;
    # doomed: fails every attempt) -> report (after flaky and on-spot); after-doomed depends on doomed
    def submit(name: str, **kwargs: Any) -> str:
        job_id = str(batch.submit_job(jobName=name, jobQueue="q", jobDefinition="step", **kwargs)["jobId"])
        world.names[job_id] = name
        return job_id

    world.plan.outcomes = {"flaky": ["fail", "ok"], "on-spot": ["spot", "ok"], "doomed": ["fail", "fail"]}
    prepare = submit("prepare")
    fan = submit("fan-out", arrayProperties={"size": 4}, dependsOn=[{"jobId": prepare}])
    flaky = submit("flaky", dependsOn=[{"jobId": fan}], retryStrategy={"attempts": 2})
    spot_rule = {"onStatusReason": "Your Spot Task*", "action": "RETRY"}
    on_spot = submit(
        "on-spot", dependsOn=[{"jobId": prepare}], retryStrategy={"attempts": 2, "evaluateOnExit": [spot_rule]}
    )
    doomed = submit("doomed", dependsOn=[{"jobId": prepare}], retryStrategy={"attempts": 2})
    report = submit("report", dependsOn=[{"jobId": flaky}, {"jobId": on_spot}])
    after_doomed = submit("after-doomed", dependsOn=[{"jobId": doomed}])

    # WHEN the control plane runs until nothing moves, its Lambdas crashing and its events repeating, with the
    # scheduled sweep between (its clock past every grace)
    settle_with_sweeps(world, monkeypatch, rounds=10)

    # THEN every job ended as planned
    ids = [prepare, fan, flaky, on_spot, doomed, report, after_doomed]
    jobs = {j["jobName"]: j for j in batch.describe_jobs(jobs=ids)["jobs"]}
    assert {n: j["status"] for n, j in jobs.items()} == {
        "prepare": "SUCCEEDED",
        "fan-out": "SUCCEEDED",
        "flaky": "SUCCEEDED",
        "on-spot": "SUCCEEDED",
        "doomed": "FAILED",
        "report": "SUCCEEDED",
        "after-doomed": "FAILED",
    }, ({n: j.get("statusReason") for n, j in jobs.items()}, chaos.crashes, chaos.lost)
    assert jobs["after-doomed"]["statusReason"] == f"Dependent Job failed: {doomed}"
    assert [a["container"]["exitCode"] for a in jobs["flaky"]["attempts"]] == [1, 0]
    assert [a["container"]["exitCode"] for a in jobs["doomed"]["attempts"]] == [1, 1]
    assert len(jobs["on-spot"]["attempts"]) == 2
    for name in ("prepare", "report"):
        assert len(jobs[name]["attempts"]) == 1, jobs[name]["attempts"]
    assert "attempts" not in jobs["after-doomed"] or not jobs["after-doomed"]["attempts"]
    summary = jobs["fan-out"]["arrayProperties"]["statusSummary"]
    assert summary["SUCCEEDED"] == 4 and sum(summary.values()) == 4, summary
    children = batch.list_jobs(arrayJobId=fan, jobStatus="SUCCEEDED")["jobSummaryList"]
    assert sorted(c["arrayProperties"]["index"] for c in children) == [0, 1, 2, 3]

    # AND every attempt ran as exactly one ECS task (none twice, none lost)
    tasks_of: Counter[tuple[str, int]] = Counter()
    for progress in world.tasks.values():
        identity = ecs_events.parse_group(progress.task["group"])
        assert identity is not None
        tasks_of[identity] += 1
    expected = {(prepare, 1), (flaky, 1), (flaky, 2), (on_spot, 1), (on_spot, 2), (doomed, 1), (doomed, 2), (report, 1)}
    expected |= {(f"{fan}:{i}", 1) for i in range(4)}
    assert set(tasks_of) == expected and set(tasks_of.values()) == {1}, (tasks_of, chaos.crashes, chaos.lost)
    assert sum(chaos.crashes.values()) > 0  # the chaos happened (every seed crashes some Lambdas)
