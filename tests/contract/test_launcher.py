"""The Launcher port's contract (chalicelib/compute/port.py), run against every launcher: host processes, Docker
containers (the real engine, image busybox:latest) and ECS tasks (moto). The same behavioural tests, through each
launcher's own event path:

What is real for which launcher:
- launch, then started and stopped with the exit code. Process, Docker: the command runs and exits. ECS on moto: the
  RunTask moto accepted; moto runs nothing, so the harness ends the task as ECS does when its essential container
  exits (lastStatus STOPPED, the container's exitCode), and the test reads the "ECS Task State Change" events built
  from moto's DescribeTasks, translated as app.py's handler translates them (compute/ecs_events.py).
- the AWS_BATCH_* environment. Process, Docker: what the command printed (`env`). ECS: the RunTask request's.
- stop: the task ends with the given reason. Process, Docker: SIGTERM / `docker stop`. ECS: moto's StopTask, whose
  stoppedReason the STOPPED event carries.
- a launch repeated (and one from a second launcher of the same state), during the attempt or after its end, runs
  once. Process, Docker: the command's output. ECS: the tasks moto holds for the attempt.
- the attempt timeout ends the attempt with the timeout reason: real for every launcher, driven by the control
  plane (the sweep; control/timeouts.py); on ECS through moto's StopTask and the STOPPED event.

The timeout is the control plane's (docs/adr/0025): a job RUNNING past startedAt + attemptDurationSeconds (a fake
clock moves past it; nothing here depends on wall-clock time) is found by the sweep, which asks the launcher to
stop it with the timeout reason; each launcher reports that stop like any other, and the job fails with that reason.

The multi-node wrappers (compute/nodes.py NodeLauncher, compute/ecs_nodes.py EcsNodeLauncher) stand in front of
every launcher in the runtimes, so they are held to the same contract for a single-container job ("process-nodes",
"ecs-nodes"); their multi-node behaviour is tested in tests/functional/test_multinode*.py, test_aws_multinode.py and
test_serverless_multinode.py.
The multi-container task group (compute/task_group.py; docs/adr/0028) is held to the same contract on the process
and Docker executors (TASK_LAUNCHERS): the job is a task whose essential container runs the test's command beside a
non-essential sidecar that sleeps; the task's exit is the essential container's, a stop or a timeout stops both.

Add a launcher by adding an entry to LAUNCHERS.
"""

from __future__ import annotations

import contextlib
import json
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import pytest

from chalicelib.compute.ecs_nodes import EcsNodeLauncher
from chalicelib.compute.local import LocalLauncher
from chalicelib.compute.logs import FileLogStore
from chalicelib.compute.nodes import Loopback, NodeLauncher
from chalicelib.compute.port import Launcher, TaskSpec
from chalicelib.control.context import Services
from chalicelib.control.react import Reactor
from chalicelib.control.sweep import sweep
from chalicelib.domain import lifecycle
from chalicelib.domain.jobs import FAILED, RUNNING, STARTING, TIMEOUT_REASON, Job
from chalicelib.domain.lifecycle import TaskStarted, TaskStopped
from chalicelib.domain.model import JobQueue
from chalicelib.store.repository import Repository
from chalicelib.store.sqlite import SqliteItemStore
from tests.docker_support import TEST_IMAGE
from tests.functional.plane import FakeClock, SeqIds
from tests.unit.builders import a_job, an_attempt

Event = TaskStarted | TaskStopped
REGION = "us-east-1"
ACCOUNT = "123456789012"
CLUSTER = "batchplane"
WAIT_S = 30.0  # how long a test waits for a report at most (never asserted: a bound against hanging)


def wait_for(find: Callable[[], Any], what: str) -> Any:
    deadline = time.monotonic() + WAIT_S
    while (found := find()) is None:
        assert time.monotonic() < deadline, f"no {what} within {WAIT_S} s"
        time.sleep(0.02)
    return found


@dataclass
class Reported:
    """The events a launcher reported (its TaskEventSink / the Docker launcher's RecordingSink)."""

    events: list[tuple[str, Event]] = field(default_factory=list)

    def __call__(self, job_id: str, event: Event, recorded: Callable[[], None] | None = None) -> None:
        self.events.append((job_id, event))
        if recorded is not None:
            recorded()


@dataclass
class Subject:
    """A launcher under test, and how to see what its tasks did."""

    launcher: Launcher
    reported: Reported
    # Another launcher of the same state: a restarted server, another Lambda.
    another: Callable[[], Launcher]
    # Events of the attempt seen so far through the launcher's event path (ECS: moto's tasks, as EventBridge events).
    events_of: Callable[[str, int], list[Event]]
    # What the attempt's command printed (process, Docker); None where nothing runs (ECS on moto).
    output: Callable[[TaskSpec], list[str] | None]
    # The environment the attempt was given: what `env` printed, or the RunTask request's.
    environment: Callable[[TaskSpec], dict[str, str]]
    # How many tasks the attempt has had (process, Docker: runs of its command; ECS: tasks moto holds).
    runs: Callable[[TaskSpec], int]
    # Ends a running attempt as its command would with this exit code (ECS on moto: the harness does what the
    # container would; the real launchers: nothing, their command exits by itself).
    exits: Callable[[TaskSpec, int], None] = lambda spec, code: None
    # A multi-container launcher (docs/adr/0028): its jobs are tasks of an essential container running the test's
    # command and a non-essential sidecar that sleeps until the task's end stops it.
    task: bool = False

    def started(self, job_id: str, attempt: int = 1) -> TaskStarted:
        found = wait_for(lambda: next(iter(self._of(job_id, attempt, TaskStarted)), None), "TaskStarted")
        assert isinstance(found, TaskStarted)
        return found

    def stopped(self, job_id: str, attempt: int = 1) -> TaskStopped:
        found = wait_for(lambda: next(iter(self._of(job_id, attempt, TaskStopped)), None), "TaskStopped")
        assert isinstance(found, TaskStopped)
        return found

    def _of(self, job_id: str, attempt: int, kind: type) -> list[Event]:
        return [e for e in self.events_of(job_id, attempt) if isinstance(e, kind)]


# -- the launchers ------------------------------------------------------------------------------------------------


def _log_lines(logs: FileLogStore, stream: str) -> list[str]:
    events, _, _ = logs.read(stream, start_time=None, end_time=None, offset=0, limit=10_000, from_head=True)
    return [e.message for e in events]


def _printed_env(lines: list[str] | None) -> dict[str, str]:
    return dict(line.split("=", 1) for line in lines or [] if "=" in line)


def _reported_of(reported: Reported) -> Callable[[str, int], list[Event]]:
    return lambda job_id, attempt: [e for j, e in list(reported.events) if j == job_id and e.attempt == attempt]


def _main_stream(spec: TaskSpec) -> str:
    """The log stream of what the test's command printed: the task's essential container's, or the attempt's."""
    return spec.containers[0].log_stream if spec.containers else spec.log_stream


def _process(tmp_path: Path, *, nodes: bool = False, task: bool = False) -> Iterator[Subject]:
    """Host processes; with `nodes`, behind the multi-node wrapper the local runtime puts in front of every launcher
    (compute/nodes.py NodeLauncher: a single-container job's attempt must go through it unchanged); with `task`, given
    multi-container tasks."""
    logs = FileLogStore(tmp_path / "logs")
    reported = Reported()
    made: list[Any] = []

    def new() -> Launcher:
        if not nodes:
            made.append(LocalLauncher(tmp_path / "work", logs, reported, grace_seconds=1.0))
            return made[-1]
        wrapper = NodeLauncher(reported, tmp_path / "work")
        wrapper.attach(LocalLauncher(tmp_path / "work", logs, wrapper.on_event, grace_seconds=1.0), Loopback())
        made.append(wrapper)
        return wrapper

    def output(spec: TaskSpec) -> list[str]:
        return _log_lines(logs, _main_stream(spec))

    yield _local_subject(new, reported, output, task=task)
    for launcher in made:
        launcher.shutdown(5.0)


def _local_subject(
    new: Callable[[], Any], reported: Reported, output: Callable[[TaskSpec], list[str]], *, task: bool
) -> Subject:
    """A local launcher's subject: what a job printed is read back from the log store."""
    return Subject(
        new(),
        reported,
        new,
        _reported_of(reported),
        output,
        lambda spec: _printed_env(output(spec)),
        lambda spec: output(spec).count("ran"),
        task=task,
    )


def _docker(tmp_path: Path, docker_engine: Any, *, task: bool = False) -> Iterator[Subject]:
    from chalicelib.compute.docker import DockerLauncher

    logs = FileLogStore(tmp_path / "logs")
    reported = Reported()
    state = f"contract-{uuid.uuid4().hex[:12]}"
    made: list[DockerLauncher] = []

    def new() -> DockerLauncher:
        # grace 1 s: sleep as PID 1 ignores SIGTERM, so a stop takes the grace period
        made.append(DockerLauncher(docker_engine, state, tmp_path / "work", logs, reported, grace_seconds=1.0))
        return made[-1]

    def output(spec: TaskSpec) -> list[str]:
        return _log_lines(logs, _main_stream(spec))

    yield _local_subject(new, reported, output, task=task)
    for launcher in made:
        with contextlib.suppress(OSError):
            launcher.shutdown(2.0)
    for c in docker_engine.containers(all=True, filters={"label": f"batchplane.state-dir={state}"}):
        with contextlib.suppress(Exception):
            docker_engine.remove_container(c["Id"], v=True, force=True)


def _ecs(tmp_path: Path, *, nodes: bool = False) -> Iterator[Subject]:
    """ECS on moto; with `nodes`, behind the multi-node wrapper the AWS runtime uses (compute/ecs_nodes.py)."""
    import boto3
    from moto.ecs.models import ecs_backends
    from moto.moto_api import state_manager

    from chalicelib.compute import ecs_events
    from chalicelib.compute.ecs import EcsLauncher, started_by
    from chalicelib.domain.model import ComputeEnvironment
    from tests.contract.conftest import _moto
    from tests.functional.moto_env import network

    with _moto():
        client = boto3.client("ecs", region_name=REGION)
        subnet, sg = network(boto3.client("ec2", region_name=REGION))
        client.create_cluster(clusterName=CLUSTER)
        ce = ComputeEnvironment(
            name="ce",
            arn=f"arn:aws:batch:{REGION}:{ACCOUNT}:compute-environment/ce",
            ce_type="MANAGED",
            state="ENABLED",
            status="VALID",
            status_reason=None,
            uuid="0e6d3c1e-0000-4000-8000-000000000000",
            created_at=1,
            compute_resources={"type": "FARGATE", "maxvCpus": 16, "subnets": [subnet], "securityGroupIds": [sg]},
        )
        run_calls: list[dict[str, Any]] = []

        def factory() -> Any:
            made = boto3.client("ecs", region_name=REGION)

            def record(params: dict[str, Any], model: Any, **_: Any) -> None:
                if model.name == "RunTask":
                    run_calls.append(json.loads(json.dumps(params)))

            made.meta.events.register("provide-client-params.ecs.*", record)
            return made

        reported = Reported()

        def new() -> Launcher:
            launcher = EcsLauncher(factory, CLUSTER, {"ce": ce}.get, on_event=reported)
            if nodes:
                return EcsNodeLauncher(launcher, lambda: boto3.client("ec2", region_name=REGION))
            return launcher

        def tasks(job_id: str, attempt: int) -> list[dict[str, Any]]:
            token = started_by(job_id, attempt)
            arns = [
                arn
                for status in ("RUNNING", "STOPPED")
                for arn in client.list_tasks(cluster=CLUSTER, startedBy=token, desiredStatus=status)["taskArns"]
            ]
            return list(client.describe_tasks(cluster=CLUSTER, tasks=arns)["tasks"]) if arns else []

        def events_of(job_id: str, attempt: int) -> list[Event]:
            """What EventBridge delivers for the attempt's tasks (their states now, as "ECS Task State Change"
            envelopes), translated as app.py's handler translates them; plus what the launcher reported itself."""
            seen = _reported_of(reported)(job_id, attempt)
            for task in tasks(job_id, attempt):
                envelope = {"detail-type": ecs_events.TASK_STATE_CHANGE, "source": "aws.ecs", "detail": task}
                translated = ecs_events.task_event(json.loads(json.dumps(envelope, default=str)))
                if translated is not None and (translated.job_id, translated.attempt) == (job_id, attempt):
                    if isinstance(translated.event, TaskStopped):  # RUNNING was delivered before it
                        seen.append(TaskStarted(attempt, task_arn=translated.task_arn))
                    seen.append(translated.event)
            return seen

        def request(spec: TaskSpec) -> dict[str, Any]:
            (call,) = [c for c in run_calls if c["startedBy"] == started_by(spec.job_id, spec.attempt)]
            return call

        def environment(spec: TaskSpec) -> dict[str, str]:
            (override,) = request(spec)["overrides"]["containerOverrides"]
            return {e["name"]: e["value"] for e in override["environment"]}

        def exits(spec: TaskSpec, code: int) -> None:
            """What ECS does when the task's essential container exits: moto cannot run it, so done here."""
            backend = ecs_backends[ACCOUNT][REGION]
            for task in backend.tasks[CLUSTER].values():
                if task.started_by == started_by(spec.job_id, spec.attempt):
                    task.last_status = task.desired_status = "STOPPED"
                    task.stopped_reason = "Essential container in task exited"
                    for container in task.containers:
                        container.exitCode = code  # moto's Container keeps the exit code it reports here

        # moto advances a task one state per DescribeTasks; here a task runs until StopTask or `exits`.
        state_manager.set_transition(model_name="ecs::task", transition={"progression": "manual", "times": 10**6})
        try:
            yield Subject(
                new(),
                reported,
                new,
                events_of,
                lambda spec: None,
                environment,
                lambda spec: len(tasks(spec.job_id, spec.attempt)),
                exits,
            )
        finally:
            state_manager.unset_transition(model_name="ecs::task")


LAUNCHERS: dict[str, Callable[[Path], Iterator[Subject]]] = {
    "process": _process,
    "docker": _docker,  # type: ignore[dict-item]  # (its engine comes from a fixture: see `subject`)
    "ecs": _ecs,
    "process-nodes": partial(_process, nodes=True),
    "ecs-nodes": partial(_ecs, nodes=True),
}
# The multi-container task group of the local executors (compute/task_group.py): the same launchers, given tasks.
TASK_LAUNCHERS = {"process-task": _process, "docker-task": _docker}


@pytest.fixture(params=sorted(LAUNCHERS) + sorted(TASK_LAUNCHERS))
def subject(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Subject]:
    if request.param.startswith("docker"):
        yield from _docker(tmp_path, request.getfixturevalue("docker_engine"), task=request.param in TASK_LAUNCHERS)
    elif request.param in TASK_LAUNCHERS:
        yield from TASK_LAUNCHERS[request.param](tmp_path, task=True)
    else:
        yield from LAUNCHERS[request.param](tmp_path)


# -- a job and its attempt ----------------------------------------------------------------------------------------


@dataclass
class Control:
    """The control plane around the launcher: a store, a fake clock, the reactor that launches and stops."""

    svc: Services
    clock: FakeClock
    reactor: Reactor
    task: bool = False  # the jobs are multi-container tasks (Subject.task)

    def job(self, command: list[str], **overrides: Any) -> Job:
        """A job claimed (STARTING, attempt 1) on compute environment `ce`, stored."""
        job_id = f"job-{uuid.uuid4().hex[:12]}"
        attempt = an_attempt(1, task_id=uuid.uuid4().hex, compute_environment="ce", log_stream=f"jd/default/{job_id}")
        fields = {"container": {"image": TEST_IMAGE, "command": command}, **overrides}
        if self.task:  # the container becomes the task's essential one, beside a sidecar
            main = {"name": "main", "image": TEST_IMAGE, "command": command, **fields.pop("container")}
            side = {"name": "side", "image": TEST_IMAGE, "command": ["sleep", "600"], "essential": False}
            fields["ecs_properties"] = {"taskProperties": [{"containers": [main, side]}]}
            fields["container"] = {}
        job = a_job(job_id, status=STARTING, current=attempt, **fields)
        return self.svc.jobs.create_with_edges(job, [])

    def spec(self, job: Job) -> TaskSpec:
        return self.reactor.task_spec(job, 1)


@pytest.fixture
def control(subject: Subject, tmp_path: Path) -> Iterator[Control]:
    store = SqliteItemStore(str(tmp_path / "state.db"))
    clock = FakeClock()
    svc = Services(repo=Repository(store), clock=clock, ids=SeqIds(), launcher=subject.launcher)
    # the queue of the jobs (a_job's): the sweep reads the active jobs queue by queue
    queue_arn = f"arn:aws:batch:{REGION}:{ACCOUNT}:job-queue/high"
    svc.repo.save_jq(JobQueue("high", queue_arn, 1, "ENABLED", "VALID", "JobQueue Healthy", created_at=1))
    yield Control(svc, clock, Reactor(svc, subject.launcher), task=subject.task)
    store.close()


# -- the contract -------------------------------------------------------------------------------------------------


def test_a_launched_task_is_reported_started_then_stopped_with_its_exit_code(
    subject: Subject, control: Control
) -> None:
    spec = control.spec(control.job(["sh", "-c", "echo ran; exit 3"]))

    subject.launcher.launch(spec)
    subject.started(spec.job_id)
    subject.exits(spec, 3)
    stopped = subject.stopped(spec.job_id)

    assert stopped.exit_code == 3
    assert not stopped.timed_out
    assert stopped.status_reason in (None, "Essential container in task exited")  # both mean the command ended
    assert subject.output(spec) in (None, ["ran"])


def test_the_attempt_gets_the_reserved_batch_environment(subject: Subject, control: Control) -> None:
    variables = [{"name": "MINE", "value": "x y"}]
    job = control.job(["env"], container={"image": TEST_IMAGE, "command": ["env"], "environment": variables})
    spec = control.spec(job)

    subject.launcher.launch(spec)
    subject.exits(spec, 0)
    subject.stopped(spec.job_id)

    env = subject.environment(spec)
    assert env["AWS_BATCH_JOB_ID"] == job.job_id
    assert env["AWS_BATCH_JOB_ATTEMPT"] == "1"
    assert env["AWS_BATCH_CE_NAME"] == "ce"
    assert env["AWS_BATCH_JQ_NAME"] == job.queue
    assert env["MINE"] == "x y"


def test_a_stop_ends_the_task_with_the_given_reason(subject: Subject, control: Control) -> None:
    spec = control.spec(control.job(["sleep", "600"]))
    subject.launcher.launch(spec)
    subject.started(spec.job_id)

    subject.launcher.stop(spec.job_id, 1, "operator stop")
    stopped = subject.stopped(spec.job_id)

    assert stopped.status_reason == "operator stop"
    assert not stopped.timed_out


def test_launching_an_attempt_twice_runs_it_once(subject: Subject, control: Control) -> None:
    spec = control.spec(control.job(["sh", "-c", "echo ran; sleep 1"]))

    subject.launcher.launch(spec)
    subject.launcher.launch(spec)  # a retried launch
    subject.another().launch(spec)  # ... and one from another server (or Lambda) of the same state
    subject.started(spec.job_id)
    subject.exits(spec, 0)
    subject.stopped(spec.job_id)

    assert subject.runs(spec) == 1
    assert len([e for e in subject.events_of(spec.job_id, 1) if isinstance(e, TaskStopped)]) == 1


def test_launching_an_attempt_again_after_its_end_runs_nothing(subject: Subject, control: Control) -> None:
    # GIVEN an attempt that ran to its end (whatever the launcher still holds of it in memory by then)
    spec = control.spec(control.job(["sh", "-c", "echo ran"]))
    subject.launcher.launch(spec)
    subject.exits(spec, 0)
    subject.stopped(spec.job_id)

    # WHEN it is launched again (a repeated or late launch), here and by another server of the same state
    subject.launcher.launch(spec)
    subject.another().launch(spec)
    # ... and another job runs to its end after those launches (by then a second run would have begun)
    later = control.spec(control.job(["sh", "-c", "sleep 1; echo later"]))
    subject.launcher.launch(later)
    subject.exits(later, 0)
    subject.stopped(later.job_id)

    # THEN the attempt ran once and was reported once
    assert subject.runs(spec) == 1
    assert len([e for e in subject.events_of(spec.job_id, 1) if isinstance(e, TaskStarted)]) == 1
    assert len([e for e in subject.events_of(spec.job_id, 1) if isinstance(e, TaskStopped)]) == 1


def test_an_attempt_past_its_timeout_is_stopped_and_fails_the_job_with_the_timeout_reason(
    subject: Subject, control: Control
) -> None:
    # GIVEN a job allowed 60 s per attempt, three attempts, RUNNING on the launcher
    job = control.job(["sleep", "600"], timeout={"attemptDurationSeconds": 60}, retry_strategy={"attempts": 3})
    control.reactor.run_effects(job, (lifecycle.Launch(1),))
    control.reactor.apply(job.job_id, subject.started(job.job_id))
    assert control.svc.jobs.get(job.job_id).status == RUNNING  # type: ignore[union-attr]

    # WHEN the control plane's clock passes startedAt + 60 s and the sweep looks
    control.clock.advance(59_999)
    assert sweep(control.svc, control.reactor, control.clock.now_ms()).timed_out == []
    control.clock.advance(1)
    report = sweep(control.svc, control.reactor, control.clock.now_ms())

    # THEN the launcher stops the attempt with the timeout reason, and its stop fails the job without a retry
    assert report.timed_out == [f"{job.job_id}#1"]
    stopped = subject.stopped(job.job_id)
    assert (stopped.status_reason, stopped.timed_out) == (TIMEOUT_REASON, True)
    after = control.reactor.apply(job.job_id, stopped)
    assert after is not None and after.status == FAILED
    assert after.status_reason == TIMEOUT_REASON
    assert [a.status_reason for a in after.attempts] == [TIMEOUT_REASON]
