"""A process-executor attempt that the recovery finds with no end of its own (its process killed, or gone with the
server) is a lost host, and the launcher reports it itself, with the task's ARNs (compute/local.py `recover` with
`lost_host`; the sweep's own report then changes nothing). So DescribeJobs shows the same `taskArn` and
`containerInstanceArn` whether the crash came while the attempt was STARTING (its start never applied) or RUNNING;
`startedAt` only in the latter (AWS: the move to RUNNING). Before, a STARTING one kept the claim's bare task id."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from chalicelib.compute.local import LocalLauncher
from chalicelib.compute.logs import FileLogStore
from chalicelib.compute.port import TaskSpec, local_container_instance_arn
from chalicelib.control.sweep import SweepPolicy, sweep
from chalicelib.domain.jobs import RUNNING, STARTING
from chalicelib.domain.lifecycle import TaskStarted, TaskStopped
from chalicelib.store.sqlite import SqliteItemStore
from tests.functional.plane import Plane
from tests.functional.test_local_launcher import Local, journal_task, local, task, wait_until
from tests.functional.test_sweep import LOST

__all__ = ["local"]  # the fixture

Event = tuple[str, TaskStarted | TaskStopped]


class Front:
    """The launcher of the server running now: the plane outlives the servers (one state, one store)."""

    def __init__(self) -> None:
        self.current: LocalLauncher | None = None

    def _now(self) -> LocalLauncher:
        assert self.current is not None
        return self.current

    def launch(self, spec: TaskSpec) -> None:
        self._now().launch(spec)

    def stop(self, job_id: str, attempt: int, reason: str) -> None:
        self._now().stop(job_id, attempt, reason)

    def recover(self, job_id: str, attempt: int) -> bool:
        return self._now().recover(job_id, attempt)


@pytest.fixture
def plane(tmp_path: Path) -> Iterator[tuple[Plane, Front]]:
    store = SqliteItemStore(str(tmp_path / "state.db"))
    front = Front()
    try:
        yield Plane(store, front), front  # type: ignore[arg-type]
    finally:
        store.close()


def journaled_arn(work: Path, key: str) -> str:
    (arn,) = [
        line.split(" ")[2] for line in (work / "journal").read_text().splitlines() if line.startswith(f"arn {key} ")
    ]
    return arn


@pytest.mark.parametrize("at_crash", [STARTING, RUNNING])
def test_a_lost_host_shows_the_tasks_arns_whether_its_start_was_applied_or_not(
    tmp_path: Path, plane: tuple[Plane, Front], at_crash: str
) -> None:
    p, front = plane
    work, logs = tmp_path / "work", FileLogStore(tmp_path / "logs")
    # GIVEN a job whose attempt runs on a server that then dies: its start report applied (RUNNING) or lost with
    # the crash (STARTING)
    reported: list[Event] = []
    front.current = LocalLauncher(work, logs, lambda j, e: reported.append((j, e)))
    ce = p.spot_ce("spot", "subnet-0a1b2c3d", "sg-0a1b2c3d")  # (EC2: DescribeJobs shows the container instance)
    queue, jd = p.queue("queue", ce), p.job_definition("work", fargate=False)
    job_id = p.submit(queue, jd, containerOverrides={"command": ["sleep", "600"]})
    p.dispatch()
    wait_until(lambda: any(isinstance(e, TaskStarted) for _, e in reported), "the command to run")
    if at_crash == RUNNING:
        p.reactor.apply(*reported[0])
    assert p.job(job_id).status == at_crash
    front.current.shutdown()  # (its process killed, nothing more reported: as a crash leaves it)
    # WHEN the next server starts, its launcher reporting a lost host's end, and the restart sweep runs
    front.current = LocalLauncher(work, logs, p.on_task_event, lost_host="local")
    try:
        report = sweep(p.svc, p.reactor, p.clock.now_ms(), SweepPolicy(restart=True, lost_host="local"))
    finally:
        front.current.shutdown()
    # THEN the attempt failed as a lost host, with the task's ARNs as a live run shows them
    assert report.lost == [f"{job_id}#1"]
    job = p.describe_one(job_id)
    (attempt,) = job["attempts"]
    arn = journaled_arn(work, f"{job_id}#1")
    assert attempt["statusReason"] == LOST and job["statusReason"] == LOST
    assert attempt["container"]["taskArn"] == job["container"]["taskArn"] == arn
    assert attempt["container"]["containerInstanceArn"] == local_container_instance_arn(arn)
    assert ("startedAt" in attempt) is (at_crash == RUNNING)


def test_recover_reports_a_lost_host_with_the_arns_only_when_asked_to(local: Local, tmp_path: Path) -> None:
    # GIVEN an attempt whose process the last server started (journaled with its ARN), gone with the server
    arn = "arn:aws:ecs:us-east-1:123456789012:task/batchplane/gone"
    (local.root / "gone" / "1").mkdir(parents=True)
    with (local.root / "journal").open("a") as f:
        f.write(f"pid gone#1 {Path('/proc/sys/kernel/pid_max').read_text().strip()}\narn gone#1 {arn}\n")
    # WHEN it is recovered by a launcher without a lost host (the Docker executor's process launcher): nothing
    assert local.launcher.recover("gone", 1) is True
    assert local.events == []
    # AND by one with a lost host: that host's end, with the task's ARNs, and no start (none is known)
    events: list[Event] = []
    lost = LocalLauncher(
        local.root, FileLogStore(tmp_path / "logs"), lambda j, e: events.append((j, e)), lost_host="local"
    )
    try:
        assert lost.recover("gone", 1) is True
        # (a multi-node job's node: its job's end is reported, compute/nodes.py)
        (local.root / "gone#0" / "1").mkdir(parents=True)
        assert lost.recover("gone#0", 1) is True
    finally:
        lost.shutdown()
    ecs = {"task_arn": arn, "container_instance_arn": local_container_instance_arn(arn)}
    assert events == [("gone", TaskStopped(1, None, status_reason=LOST, **ecs))]


@pytest.mark.parametrize("started", [True, False], ids=["a member started", "nothing started"])
def test_a_multi_container_task_lost_with_the_server_is_reported_as_a_single_container_one(
    local: Local, tmp_path: Path, started: bool
) -> None:
    # GIVEN a task of the last server whose essential member has no recorded end (running when the server died, or
    # never started: the crash came while it was STARTING)
    job_id = f"task-{uuid.uuid4()}"
    spec = task(job_id, ("a", True, ["x"]), ("b", False, ["x"]))
    journal_task(local, spec, *([f"exit {spec.key}/b 0"] if started else []))
    # WHEN it is recovered by a launcher with a lost host
    events: list[Event] = []
    lost = LocalLauncher(
        local.root, FileLogStore(tmp_path / "logs"), lambda j, e: events.append((j, e)), lost_host="local"
    )
    try:
        assert lost.recover(job_id, 1) is True
    finally:
        lost.shutdown()
    # THEN its end is that host's, with the task's ARNs (the caller's own report is then a no-op)
    ecs = {"task_arn": spec.local_task_arn, "container_instance_arn": spec.local_container_instance_arn}
    assert events == [(job_id, TaskStopped(1, None, status_reason=LOST, **ecs))]
