"""compute/nodes.py NodeLauncher after a restart on the Docker executor (docs/adr/0027), with a scripted inner
launcher standing for compute/docker.py: which node containers it finds, and the events it reports (each with the
`recorded` callback that removes the container). The end-to-end proof is
tests/e2e/test_kill_restart_multinode_docker.py; here, the orderings an e2e run cannot choose."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from chalicelib.compute.nodes import RESTARTED, NodeLauncher
from chalicelib.compute.port import TaskSpec
from chalicelib.domain.lifecycle import NodeStopped, TaskStarted, TaskStopped
from chalicelib.domain.nodes import STOPPED_WITH_MAIN

JOB = "job-1"
LOST = "Host EC2 (instance local) terminated."


@dataclass
class Inner:
    """The executor's launcher: `found` node containers at recovery; the stops asked."""

    found: set[int]
    stops: list[tuple[str, str]] = field(default_factory=list)

    def recover(self, job_id: str, attempt: int) -> bool:
        return int(job_id.rsplit("#", 1)[1]) in self.found

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


def recovered(tmp_path: Path, found: set[int], num: int = 3, main: int = 0) -> tuple[NodeLauncher, Inner, Sink]:
    """A NodeLauncher on a state whose journal has attempt 1 of a `num`-node job, recovered after a restart."""
    (tmp_path / "nodes.journal").write_text(f"{JOB}#1 {num} {main}\n")
    sink, inner = Sink(), Inner(found)
    launcher = NodeLauncher(sink, tmp_path)
    launcher.attach(inner, Network())  # type: ignore[arg-type]
    assert launcher.recover(JOB, 1) is True
    return launcher, inner, sink


def removal(removed: list[int], index: int) -> Callable[[], None]:
    return lambda: removed.append(index)


def test_every_node_found_is_re_attached_and_the_job_ends_as_its_main_node_did(tmp_path: Path) -> None:
    launcher, inner, sink = recovered(tmp_path, {0, 1, 2})
    assert inner.stops == []  # nothing stopped: the gang runs on
    removed: list[int] = []
    for i in (0, 1, 2):
        launcher.on_event(f"{JOB}#{i}", TaskStarted(1))
    assert sink.of(TaskStarted) == [TaskStarted(1)]  # the main node's: the job runs (stale if it was RUNNING)
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


@pytest.mark.parametrize("found", [{0}, {0, 2}])
def test_a_gang_whose_launch_a_crash_cut_short_fails_the_attempt(tmp_path: Path, found: set[int]) -> None:
    # a node with no container and no `started` line never ran: its spec is not known here to launch it now
    launcher, inner, sink = recovered(tmp_path, found)
    assert sorted(inner.stops) == sorted((f"{JOB}#{i}", RESTARTED) for i in found)
    for i in found:
        launcher.on_event(f"{JOB}#{i}", TaskStopped(1, 137, status_reason=RESTARTED))
    (end,) = sink.of(TaskStopped)
    assert (end.exit_code, end.status_reason) == (None, RESTARTED)


def test_nothing_found_is_launched_again(tmp_path: Path) -> None:
    (tmp_path / "nodes.journal").write_text(f"{JOB}#1 2 0\n")
    launcher = NodeLauncher(Sink(), tmp_path)
    launcher.attach(Inner(set()), Network())  # type: ignore[arg-type]
    assert launcher.recover(JOB, 1) is False
