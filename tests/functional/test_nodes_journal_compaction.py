"""The multi-node journal (`<state>/work/nodes.journal`: one line per multi-node attempt launched, read by the
recovery) is compacted at each start to the lines of the jobs still active (compute/nodes.py
`NodeLauncher.compact_journal`, docs/adr/0035): however many multi-node attempts ran before, it does not grow with
them, and the recovery of an active attempt is what it was."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from chalicelib.compute import journal_files
from chalicelib.compute.local import LocalLauncher
from chalicelib.compute.local_processes import alive
from chalicelib.compute.logs import FileLogStore
from chalicelib.compute.nodes import JOURNAL, Loopback, NodeLauncher
from chalicelib.compute.port import TaskSpec
from chalicelib.domain.lifecycle import TaskStarted, TaskStopped

SETTLED = 5_000  # multi-node attempts the last servers ran to their end
JOB = "live"


class Server:
    """One run of the server's launchers on a state directory (what `batchplane up` builds for processes)."""

    def __init__(self, tmp_path: Path) -> None:
        self.events: list[tuple[str, Any]] = []
        self.changed = threading.Condition()
        self.nodes = NodeLauncher(self._sink, tmp_path / "work")
        self.launcher = LocalLauncher(tmp_path / "work", FileLogStore(tmp_path / "logs"), self.nodes.on_event)
        self.nodes.attach(self.launcher, Loopback())
        self.down = False
        self.held: set[str] = set()  # jobs whose end the sink does not apply (its `recorded` is never run)

    def stop(self) -> None:
        """The server goes away (its processes are killed unobserved: recovered at the next start)."""
        if not self.down:
            self.down = True
            self.nodes.shutdown()

    def _sink(self, job_id: str, event: Any, recorded: Any = None) -> None:
        with self.changed:
            self.events.append((job_id, event))
            self.changed.notify_all()
        if recorded is not None and job_id not in self.held:
            recorded()

    def wait_started(self, job_id: str, attempt: int) -> None:
        with self.changed:
            assert self.changed.wait_for(lambda: (job_id, TaskStarted) in self._kinds(attempt), timeout=30)

    def _kinds(self, attempt: int) -> set[tuple[str, type]]:
        return {(j, type(e)) for j, e in self.events if e.attempt == attempt}


@pytest.fixture
def start(tmp_path: Path) -> Iterator[type[Server]]:
    made: list[Server] = []

    class Started(Server):
        def __init__(self) -> None:
            super().__init__(tmp_path)
            made.append(self)

    yield Started
    for server in made:
        server.stop()


def spec(attempt: int, num: int = 2, main: int = 0) -> TaskSpec:
    """A `num`-node attempt of JOB whose nodes sleep until stopped."""
    base = TaskSpec(JOB, attempt, f"task-{attempt}", [], {}, "job/default/x", 1, 64, "ce", main_node=main)
    env = {"AWS_BATCH_JOB_ATTEMPT": str(attempt)}
    node = [
        replace(
            base, job_id=f"{JOB}#{i}", command=["sleep", "60"], environment={**env, "AWS_BATCH_JOB_ID": f"{JOB}#{i}"}
        )
        for i in range(num)
    ]
    return replace(base, nodes=tuple(node))


def pids_journaled(tmp_path: Path) -> dict[str, int]:
    """The nodes' processes, as the process journal has them."""
    lines = (tmp_path / "work" / "journal").read_text().splitlines()
    return {key: int(pid) for kind, key, pid in (line.split(" ", 2) for line in lines) if kind == "pid"}


def settled_history(tmp_path: Path) -> None:
    work = tmp_path / "work"
    work.mkdir(parents=True, exist_ok=True)
    with (work / JOURNAL).open("w") as f:
        f.writelines(f"done-{i}#1 3 0\ndone-{i}:{i % 7}#2 2 1\n" for i in range(SETTLED))


def test_a_start_keeps_only_the_active_jobs_lines_and_recovers_their_attempts_as_before(
    tmp_path: Path, start: type[Server]
) -> None:
    # GIVEN a state whose last servers ran many multi-node attempts to their end
    settled_history(tmp_path)
    # AND whose last server launched a multi-node attempt that ran when it went away
    server = start()
    server.nodes.launch(spec(1))
    server.wait_started(JOB, 1)
    pids = pids_journaled(tmp_path)
    for _ in range(3000):  # (the other node is launched once the main node's start is reported)
        if len(pids) == 2:
            break
        time.sleep(0.01)
        pids = pids_journaled(tmp_path)
    assert set(pids) == {f"{JOB}#0#1", f"{JOB}#1#1"} and all(alive(p) for p in pids.values())
    server.stop()
    journal = tmp_path / "work" / JOURNAL
    assert journal.stat().st_size > SETTLED * len("done-1#1 3 0\n")
    # WHEN the next server starts with that job active (and a settled job whose key prefixes it)
    again = start()
    again.nodes.compact_journal([JOB, "done"])
    # THEN the journal holds the active job's line only, and no other file is left beside it
    assert shapes(journal) == [f"{JOB}#1 2 0"]
    assert not list(journal.parent.glob(JOURNAL + ".*"))
    # AND the recovery finds the attempt, as before: started, its nodes' processes gone, a lost host for the caller
    again.launcher.compact_journal([JOB])
    assert again.nodes.recover(JOB, 1) is True
    assert not any(alive(p) for p in pids.values())
    # AND a settled job's attempt is not found (it is never asked about: its job is no longer active)
    assert again.nodes.recover("done-1", 1) is False
    # AND the next launch is journaled in the compacted journal
    again.nodes.launch(spec(2, num=3, main=1))
    again.wait_started(JOB, 2)
    assert shapes(journal) == [f"{JOB}#1 2 0", f"{JOB}#2 3 1"]
    again.nodes.stop(JOB, 2, "Terminated by the test")
    with again.changed:
        assert again.changed.wait_for(
            lambda: any(j == JOB and isinstance(e, TaskStopped) and e.attempt == 2 for j, e in again.events), 30
        )


def shapes(journal: Path) -> list[str]:
    """The journal's lines without their task (ARN and main node's stream)."""
    return [" ".join(line.split()[:3]) for line in journal.read_text().splitlines()]


def test_with_no_job_active_the_journal_is_emptied(tmp_path: Path, start: type[Server]) -> None:
    settled_history(tmp_path)
    start().nodes.compact_journal([])
    assert (tmp_path / "work" / JOURNAL).read_text() == ""


def test_a_compaction_that_cannot_write_keeps_the_journal_whole(
    tmp_path: Path, start: type[Server], monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN a journal the compaction cannot rewrite (a full disk)
    settled_history(tmp_path)
    with (tmp_path / "work" / JOURNAL).open("a") as f:
        f.write(f"{JOB}#1 2 0\n")
    before = (tmp_path / "work" / JOURNAL).read_bytes()

    def full(*_: Any) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("chalicelib.compute.journal_files.replace_synced", full)
    server = start()
    # WHEN it is compacted THEN the start goes on, the journal is whole and read as before, nothing is left beside it
    server.nodes.compact_journal([JOB])
    assert (tmp_path / "work" / JOURNAL).read_bytes() == before
    assert not list((tmp_path / "work").glob(JOURNAL + ".*"))
    assert server.nodes.journalled(f"{JOB}#1")[:2] == (2, 0)


# -- while the server runs (docs/adr/0036) ------------------------------------------------------------------------

THRESHOLD = 1024  # journal_files.COMPACT_BYTES in these tests: about 10 lines (with their task ARN)


def quick(job_id: str) -> TaskSpec:
    """A 2-node attempt of `job_id` whose nodes end at once."""
    base = TaskSpec(job_id, 1, f"task-{job_id}", [], {}, "job/default/x", 1, 64, "ce", main_node=0)
    env = {"AWS_BATCH_JOB_ATTEMPT": "1"}
    node = [
        replace(
            base, job_id=f"{job_id}#{i}", command=["true"], environment={**env, "AWS_BATCH_JOB_ID": f"{job_id}#{i}"}
        )
        for i in range(2)
    ]
    return replace(base, nodes=tuple(node))


def run_quick(server: Server, ids: list[str]) -> None:
    for job_id in ids:
        server.nodes.launch(quick(job_id))
    with server.changed:
        assert server.changed.wait_for(
            lambda: set(ids) <= {j for j, e in server.events if isinstance(e, TaskStopped)}, 30
        ), server.events


@pytest.mark.parametrize("then", ["killed", "killed-mid-compaction"])
def test_a_running_servers_nodes_journal_keeps_only_the_attempts_not_recorded_yet(
    tmp_path: Path, start: type[Server], monkeypatch: pytest.MonkeyPatch, then: str
) -> None:
    monkeypatch.setattr(journal_files, "COMPACT_BYTES", THRESHOLD)
    # GIVEN a server running a multi-node attempt, and one whose end its sink has not applied yet
    server = start()
    server.nodes.compact_journal([])
    server.nodes.launch(spec(1))
    server.wait_started(JOB, 1)
    server.held.add("unrecorded")
    run_quick(server, ["unrecorded"])
    # WHEN many more multi-node attempts run to their end (recorded)
    for first in range(0, 60, 10):
        run_quick(server, [f"q-{i}" for i in range(first, first + 10)])
    assert server.nodes.journal.wait_compacted(30)
    # THEN the journal was compacted while the server ran: the running attempt's line and the unrecorded one's are
    # kept, few others
    journal = tmp_path / "work" / JOURNAL
    lines = journal.read_text().splitlines()
    assert [" ".join(line.split()[:3]) for line in lines[:2]] == [f"{JOB}#1 2 0", "unrecorded#1 2 0"], lines
    assert journal.stat().st_size < 2 * THRESHOLD
    assert not list(journal.parent.glob(JOURNAL + ".*"))
    # AND WHEN the server is killed (right after, or in the middle of another compaction: journal.new half written)
    if then == "killed-mid-compaction":
        (journal.parent / (JOURNAL + ".new")).write_text(lines[0][:5])
    again = start()
    again.nodes.compact_journal([JOB, "unrecorded"])
    # THEN the next start finds both attempts: started (neither is launched again), the running one's nodes killed
    pids = {k: p for k, p in pids_journaled(tmp_path).items() if k.startswith(f"{JOB}#")}
    again.launcher.compact_journal([JOB, "unrecorded"])
    assert again.nodes.recover(JOB, 1) is True
    assert again.nodes.recover("unrecorded", 1) is True
    assert pids and not any(alive(p) for p in pids.values())
    kept = [" ".join(line.split()[:3]) for line in journal.read_text().splitlines()]
    assert kept == [f"{JOB}#1 2 0", "unrecorded#1 2 0"]
    assert not list(journal.parent.glob(JOURNAL + ".*"))
