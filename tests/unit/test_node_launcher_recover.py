"""compute/nodes.py NodeLauncher after a restart on the Docker executor (docs/adr/0027), with a scripted inner
launcher standing for compute/docker.py: which node containers it finds, and the events it reports (each with the
`recorded` callback that removes the container). The end-to-end proof is
tests/e2e/test_kill_restart_multinode_docker.py; here, the orderings an e2e run cannot choose, and a node whose
launch raises (live or recovered)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pytest

from chalicelib.compute.nodes import MAIN_ADDRESS, RESTARTED, Loopback, NodeLauncher
from chalicelib.compute.port import TaskSpec, local_container_instance_arn
from chalicelib.domain.lifecycle import NodeStopped, TaskStarted, TaskStopped
from chalicelib.domain.nodes import STOPPED_WITH_MAIN

JOB = "job-1"
LOST = "Host EC2 (instance local) terminated."
ARN = "arn:aws:ecs:us-east-1:123456789012:task/batchplane-local/t-1"
STREAM = "jd/default/main-node-task"


@dataclass
class Inner:
    """The executor's launcher: `found` node containers at recovery; the stops asked."""

    found: set[int]
    stops: list[tuple[str, str]] = field(default_factory=list)
    launched: list[TaskSpec] = field(default_factory=list)
    lost_host: str | None = None  # (the process launcher's, which reports the nodes' recorded ends)
    ends: dict[int, TaskStopped] = field(default_factory=dict)
    on_event: Callable[..., None] | None = None
    fail: set[str] = field(default_factory=set)  # node job ids whose launch raises (an error of the host)

    def launch(self, spec: TaskSpec) -> None:
        if spec.job_id in self.fail:
            raise OSError(28, "No space left on device")
        self.launched.append(spec)

    def recover(self, job_id: str, attempt: int) -> bool:
        index = int(job_id.rsplit("#", 1)[1])
        if index in self.ends and self.on_event is not None:
            self.on_event(job_id, self.ends[index])
        return index in self.found

    def stop(self, job_id: str, attempt: int, reason: str) -> None:
        self.stops.append((job_id, reason))


class Network:
    """A Docker-like node network (not the process executor's Loopback)."""

    def __init__(self) -> None:
        self.removed: list[str] = []

    def create(self, spec: TaskSpec) -> str | None:
        return self.name(spec)

    def name(self, spec: TaskSpec) -> str:
        return f"net-{spec.key}"

    def address(self, node: TaskSpec) -> str:
        return "172.18.0.2"

    def remove(self, spec: TaskSpec) -> None:
        self.removed.append(self.name(spec))


@dataclass
class Sink:
    """The engine: every event reported, and each `recorded` callback, run only when `record()` says so."""

    events: list[tuple[str, Any]] = field(default_factory=list)
    pending: list[Callable[[], None]] = field(default_factory=list)

    def __call__(self, job_id: str, event: Any, recorded: Callable[[], None] | None = None) -> None:
        self.events.append((job_id, event))
        if recorded is not None:
            self.pending.append(recorded)

    def record(self) -> None:
        pending, self.pending = self.pending, []
        for run in pending:
            run()

    def of(self, kind: type) -> list[Any]:
        return [e for _, e in self.events if isinstance(e, kind)]


def recovered(
    tmp_path: Path, found: set[int], num: int = 3, main: int = 0, *, relaunch: bool = False
) -> tuple[NodeLauncher, Inner, Sink]:
    """A NodeLauncher on a state whose journal has attempt 1 of a `num`-node job, recovered after a restart
    (`relaunch`: recover says so, for the nodes never created)."""
    (tmp_path / "nodes.journal").write_text(f"{JOB}#1 {num} {main} {ARN} {STREAM}\n")
    sink, inner = Sink(), Inner(found)
    launcher = NodeLauncher(sink, tmp_path)
    launcher.attach(inner, Network())  # type: ignore[arg-type]
    assert launcher.recover(JOB, 1) is not relaunch
    return launcher, inner, sink


def removal(removed: list[int], index: int) -> Callable[[], None]:
    return lambda: removed.append(index)


def test_every_node_found_is_re_attached_and_the_job_ends_as_its_main_node_did(tmp_path: Path) -> None:
    launcher, inner, sink = recovered(tmp_path, {0, 1, 2})
    assert inner.stops == []  # nothing stopped: the gang runs on
    removed: list[int] = []
    for i in (0, 1, 2):
        launcher.on_event(f"{JOB}#{i}", TaskStarted(1))
    (started,) = sink.of(TaskStarted)  # the main node's: the job runs (stale if it was RUNNING)
    assert (started.attempt, started.task_arn) == (1, ARN)
    # a node ends on its own: its NodeStopped; its container goes once that is recorded
    launcher.on_event(f"{JOB}#1", TaskStopped(1, 0), removal(removed, 1))
    assert sink.of(NodeStopped) == [NodeStopped(1, 1, 0, None, None)]
    assert removed == []
    sink.record()
    assert removed == [1]
    # the main node ends: node 2 is stopped with it, and the job ends with the main node's real exit code
    launcher.on_event(f"{JOB}#0", TaskStopped(1, 0), removal(removed, 0))
    assert inner.stops == [(f"{JOB}#2", STOPPED_WITH_MAIN)]
    launcher.on_event(f"{JOB}#2", TaskStopped(1, 143, status_reason=STOPPED_WITH_MAIN), removal(removed, 2))
    (end,) = sink.of(TaskStopped)
    assert (end.exit_code, end.status_reason) == (0, None)
    assert end.nodes is not None and end.nodes["1"]["withMain"] is False and end.nodes["2"]["withMain"] is True
    # AND the stopped nodes' containers are removed only once the job's end is recorded
    assert removed == [1]
    sink.record()
    assert sorted(removed) == [0, 1, 2]


def test_a_node_whose_container_is_gone_is_a_lost_node_not_a_failure_to_start(tmp_path: Path) -> None:
    # (its end was recorded before the crash, the container then removed; or the engine lost it)
    launcher, _, sink = recovered(tmp_path, {0, 1, 2})
    launcher.on_event(f"{JOB}#0", TaskStarted(1))
    launcher.on_event(f"{JOB}#1", TaskStopped(1, None, status_reason=LOST))
    assert sink.of(NodeStopped) == [NodeStopped(1, 1, None, None, LOST)]  # (a duplicate changes nothing: lifecycle)
    assert sink.of(TaskStopped) == []  # the job runs on


def test_a_main_node_that_ended_while_down_stops_the_others_with_its_reason_once_they_are_re_attached(
    tmp_path: Path,
) -> None:
    launcher, inner, sink = recovered(tmp_path, {0, 1}, num=2)
    launcher.on_event(f"{JOB}#0", TaskStarted(1))
    launcher.on_event(f"{JOB}#0", TaskStopped(1, 0))
    # node 1's watcher reports its start after the stop was asked (which found no container to stop yet)
    launcher.on_event(f"{JOB}#1", TaskStarted(1))
    assert inner.stops[-1] == (f"{JOB}#1", STOPPED_WITH_MAIN)
    launcher.on_event(f"{JOB}#1", TaskStopped(1, 137, status_reason=STOPPED_WITH_MAIN))
    assert [(e.exit_code, e.status_reason) for e in sink.of(TaskStopped)] == [(0, None)]


def full_spec(num: int = 3, main: int = 0) -> TaskSpec:
    """The attempt's spec as the sweep's launch gives it (control/react.py `task_spec`, then `attempt_spec`)."""
    spec = TaskSpec(JOB, 1, "t-1", ["true"], {}, "jd/default/t-1", 1, 128, "ce", main_node=main)
    return replace(spec, nodes=tuple(replace(spec, job_id=f"{JOB}#{i}", task_id=f"t-1-{i}") for i in range(num)))


@pytest.mark.parametrize("found", [{0}, {0, 2}])
def test_a_gang_whose_launch_a_crash_cut_short_after_its_main_node_gets_its_other_nodes_launched(
    tmp_path: Path, found: set[int]
) -> None:
    # GIVEN the main node's container (and maybe others) found, a node with none (never created: it never ran)
    launcher, inner, sink = recovered(tmp_path, found, relaunch=True)
    assert inner.stops == []
    # WHEN the sweep's launch gives the attempt's spec, and the main node (re-attached) runs
    launcher.launch(full_spec())
    assert inner.launched == []  # (not before the main node runs: its address is theirs)
    launcher.on_event(f"{JOB}#0", TaskStarted(1))
    assert launcher.recover(JOB, 1) is True  # (asked again: in progress here)
    # THEN only the nodes never created are launched, under the same attempt, with the main node's address
    missing = sorted({0, 1, 2} - found)
    assert [s.job_id for s in inner.launched] == [f"{JOB}#{i}" for i in missing]
    assert {s.attempt for s in inner.launched} == {1}
    assert {s.environment[MAIN_ADDRESS] for s in inner.launched} == {"172.18.0.2"}
    # AND the job ends as its main node does, every node stopped with it
    launcher.on_event(f"{JOB}#0", TaskStopped(1, 0))
    for i in (1, 2):
        launcher.on_event(f"{JOB}#{i}", TaskStopped(1, 143, status_reason=STOPPED_WITH_MAIN))
    (end,) = sink.of(TaskStopped)
    assert (end.exit_code, end.status_reason) == (0, None)


def test_a_recovered_gangs_node_whose_launch_raises_fails_the_attempt_instead_of_waiting_for_it(
    tmp_path: Path,
) -> None:
    # GIVEN a recovered gang with nodes never created, whose first relaunch raises (a full disk)
    launcher, inner, sink = recovered(tmp_path, {0}, relaunch=True)
    inner.fail.add(f"{JOB}#1")
    launcher.launch(full_spec())
    # WHEN the main node runs
    launcher.on_event(f"{JOB}#0", TaskStarted(1))
    # THEN node 2 is not launched, the main node is stopped, and its end ends the attempt with the failure
    assert inner.launched == []
    assert [job for job, _ in inner.stops] == [f"{JOB}#0"]
    assert sink.of(TaskStopped) == []
    launcher.on_event(f"{JOB}#0", TaskStopped(1, 143, status_reason=inner.stops[0][1]))
    (end,) = sink.of(TaskStopped)
    assert end.exit_code is None
    assert end.status_reason == "Node 1 failed to start: CannotStartContainerError: [Errno 28] No space left on device"


@pytest.mark.parametrize("node", [0, 1])
def test_a_live_gangs_node_whose_launch_raises_fails_the_attempt(tmp_path: Path, node: int) -> None:
    # GIVEN a gang launched live whose main node's, or other node's, launch raises
    sink, inner = Sink(), Inner(set(), fail={f"{JOB}#{node}"})
    launcher = NodeLauncher(sink, tmp_path)
    launcher.attach(inner, Network())  # type: ignore[arg-type]
    launcher.launch(full_spec(num=2))
    if node == 1:  # (launched once the main node runs: it is stopped, and its end is the attempt's)
        launcher.on_event(f"{JOB}#0", TaskStarted(1))
        assert inner.stops == [(f"{JOB}#0", inner.stops[0][1])]
        launcher.on_event(f"{JOB}#0", TaskStopped(1, 143, status_reason=inner.stops[0][1]))
    # THEN the attempt ends, failed to start, and a launch of it again is not swallowed by a group left behind
    (end,) = sink.of(TaskStopped)
    assert end.status_reason is not None and end.status_reason.startswith(f"Node {node} failed to start: ")
    inner.fail.clear()
    launcher.launch(full_spec(num=2))
    assert f"{JOB}#0" in [s.job_id for s in inner.launched]


def test_a_main_node_that_ended_before_the_spec_came_launches_none_of_the_others(tmp_path: Path) -> None:
    launcher, inner, sink = recovered(tmp_path, {0}, relaunch=True)
    launcher.on_event(f"{JOB}#0", TaskStarted(1))
    launcher.on_event(f"{JOB}#0", TaskStopped(1, 3))
    assert launcher.recover(JOB, 1) is False  # (its spec still awaited: the job does not end before it came)
    assert sink.of(TaskStopped) == []
    launcher.launch(full_spec())
    assert inner.launched == []
    (end,) = sink.of(TaskStopped)
    assert (end.exit_code, end.task_arn) == (3, ARN)


def test_a_gang_without_its_main_node_fails_the_attempt(tmp_path: Path) -> None:
    # (never seen: the others are launched once the main node runs; a container removed by hand)
    launcher, inner, sink = recovered(tmp_path, {1, 2})
    assert sorted(inner.stops) == sorted((f"{JOB}#{i}", RESTARTED) for i in (1, 2))
    for i in (1, 2):
        launcher.on_event(f"{JOB}#{i}", TaskStopped(1, 137, status_reason=RESTARTED))
    (end,) = sink.of(TaskStopped)
    assert (end.exit_code, end.status_reason) == (None, RESTARTED)


def test_a_recovered_gang_reports_its_task_as_its_live_events_did(tmp_path: Path) -> None:
    launcher, _, sink = recovered(tmp_path, {0, 1, 2})
    launcher.on_event(f"{JOB}#0", TaskStarted(1))
    launcher.on_event(f"{JOB}#0", TaskStopped(1, 0))
    for i in (1, 2):
        launcher.on_event(f"{JOB}#{i}", TaskStopped(1, 143))
    task = {"task_arn": ARN, "container_instance_arn": local_container_instance_arn(ARN), "log_stream": STREAM}
    assert sink.of(TaskStarted) == [TaskStarted(1, **task)]
    (end,) = sink.of(TaskStopped)
    assert (end.task_arn, end.container_instance_arn, end.log_stream) == tuple(task.values())


@pytest.mark.parametrize("main_end", [None, TaskStopped(1, 0), TaskStopped(1, 137, status_reason="Terminated")])
def test_a_process_gang_ends_as_its_main_nodes_recorded_end_or_as_a_lost_host_with_its_task(
    tmp_path: Path, main_end: TaskStopped | None
) -> None:
    # GIVEN the process executor's recovery of the nodes: killed, the main node's end reported if it was recorded
    (tmp_path / "nodes.journal").write_text(f"{JOB}#1 2 0 {ARN} {STREAM}\n")
    sink = Sink()
    inner = Inner({0, 1}, lost_host="local", ends={0: main_end} if main_end else {})
    launcher = NodeLauncher(sink, tmp_path)
    launcher.attach(inner, Loopback())
    inner.on_event = launcher.on_event
    # WHEN it is recovered
    assert launcher.recover(JOB, 1) is True
    # THEN the job ends once, as its main node did, or as a lost host, with the task its live events carried
    (end,) = sink.of(TaskStopped)
    task = (ARN, local_container_instance_arn(ARN), STREAM)
    assert (end.task_arn, end.container_instance_arn, end.log_stream) == task
    expected = main_end or TaskStopped(1, None, status_reason=LOST)
    assert (end.exit_code, end.status_reason) == (expected.exit_code, expected.status_reason)
    assert sink.of(TaskStarted) == [] and inner.launched == []


def test_nothing_found_is_launched_again(tmp_path: Path) -> None:
    (tmp_path / "nodes.journal").write_text(f"{JOB}#1 2 0\n")
    launcher = NodeLauncher(Sink(), tmp_path)
    launcher.attach(Inner(set()), Network())  # type: ignore[arg-type]
    assert launcher.recover(JOB, 1) is False
