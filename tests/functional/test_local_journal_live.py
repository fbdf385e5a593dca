"""The process executor's journal stays bounded while the server runs (compute/local_journal.py `Journal.attach`,
docs/adr/0036): once it has grown past journal_files.COMPACT_BYTES it is compacted, on a thread of its own, to the
lines of the attempts whose end is not recorded yet (and of the jobs recovery asked about). No line a recovery needs
is lost: not an exit line a supervisor appends across the rename, not an end the store has not applied yet, not
when the server is killed right after a live compaction or in the middle of one."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from chalicelib.compute import journal_files
from chalicelib.compute.local import LocalLauncher
from chalicelib.compute.local_supervisor import may_append, spawn_supervised, wait_for_command
from chalicelib.compute.logs import FileLogStore
from chalicelib.compute.port import TaskSpec
from chalicelib.domain.lifecycle import TaskStarted, TaskStopped

THRESHOLD = 4096  # journal_files.COMPACT_BYTES in these tests: about 17 attempts' lines
WAIT_S = 30.0


class Server:
    """One run of the server's process launcher on a state directory, its sink as Engine.report: an end is recorded
    when the test says so (`record`), or at once (`auto`)."""

    def __init__(self, tmp_path: Path, auto: bool = True) -> None:
        self.tmp_path, self.auto = tmp_path, auto
        self.events: list[tuple[str, Any]] = []
        self.unrecorded: dict[str, Callable[[], None]] = {}
        self.changed = threading.Condition()
        self.launcher = LocalLauncher(
            tmp_path / "work", FileLogStore(tmp_path / "logs"), self._sink, grace_seconds=5, sink_records=True
        )

    def _sink(self, job_id: str, event: Any, recorded: Callable[[], None] | None = None) -> None:
        with self.changed:
            self.events.append((job_id, event))
            if recorded is not None and not self.auto:
                self.unrecorded[job_id] = recorded
            self.changed.notify_all()
        if recorded is not None and self.auto:
            recorded()

    def record(self, job_id: str) -> None:
        self.unrecorded.pop(job_id)()

    def start(self, active: list[str] = []) -> Server:  # noqa: B006 (never mutated)
        """As runtime/local.py starts: compaction, the recovery (by the caller), then `recovered`."""
        self.launcher.compact_journal(active)
        return self

    def launch(self, job_id: str, command: list[str] | None = None, attempt: int = 1) -> None:
        env = {"AWS_BATCH_JOB_ID": job_id, "AWS_BATCH_JOB_ATTEMPT": str(attempt)}
        spec = TaskSpec(job_id, attempt, "task", command or ["true"], env, "jd/default/task", 1.0, 64, "ce")
        self.launcher.launch(spec)

    def wait_ended(self, *job_ids: str) -> None:
        with self.changed:
            assert self.changed.wait_for(lambda: set(job_ids) <= self.ended(), WAIT_S), (job_ids, self.events)

    def ended(self) -> set[str]:
        return {j for j, e in self.events if isinstance(e, TaskStopped)}

    def compacted(self) -> None:
        assert self.launcher.journal.wait_compacted(WAIT_S)

    @property
    def journal(self) -> Path:
        return self.tmp_path / "work" / "journal"

    def lines_of(self, job_id: str) -> list[str]:
        return [line for line in self.journal.read_text().splitlines() if f" {job_id}#" in line]


@pytest.fixture
def small(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(journal_files, "COMPACT_BYTES", THRESHOLD)


@pytest.fixture
def servers(tmp_path: Path, small: None) -> Iterator[Callable[..., Server]]:
    made: list[Server] = []

    def make(auto: bool = True) -> Server:
        server = Server(tmp_path, auto)
        made.append(server)
        return server

    yield make
    for server in made:
        server.launcher.shutdown()


def waits_for(go: Path) -> list[str]:
    return ["sh", "-c", f'until [ -e "{go}" ]; do sleep 0.01; done']


def run_quick(server: Server, prefix: str, count: int, batch: int = 10) -> None:
    """`count` attempts of `true`, `batch` at a time, each run to its end."""
    for first in range(0, count, batch):
        ids = [f"{prefix}-{i}" for i in range(first, min(count, first + batch))]
        for job_id in ids:
            server.launch(job_id)
        server.wait_ended(*ids)


def test_a_running_servers_journal_shrinks_past_the_threshold_and_keeps_the_running_jobs_lines(
    servers: Callable[..., Server], tmp_path: Path
) -> None:
    # GIVEN a started server running a long job
    server = servers().start()
    server.launcher.recovered()
    go = tmp_path / "go"
    server.launch("long", waits_for(go))
    # WHEN many short attempts run to their end (far more lines than the threshold)
    run_quick(server, "quick", 100)
    server.compacted()
    # THEN the journal was compacted while the server ran: it holds less than two thresholds, the long job's lines
    # are there, and no journal.old or journal.new is left
    assert server.journal.stat().st_size < 2 * THRESHOLD
    assert [line.split()[0] for line in server.lines_of("long")] == ["pid", "arn"]
    assert sorted(p.name for p in (tmp_path / "work").iterdir() if p.is_file()) == ["journal"]
    # AND the long job's exit, once it ends, is journaled in the compacted file
    go.touch()
    server.wait_ended("long")
    assert "exit long#1 0" in server.lines_of("long")


def test_the_journal_stays_under_a_bound_however_many_attempts_ran(servers: Callable[..., Server]) -> None:
    # GIVEN a started server WHEN 300 attempts (~70 KB of lines) run, 10 at a time, each recorded at once
    server = servers().start()
    server.launcher.recovered()
    written = 0
    for first in range(0, 300, 10):
        run_quick(server, f"n{first}", 10)
        server.compacted()
        size = server.journal.stat().st_size
        written += 10
        # THEN after every batch the journal holds less than twice the threshold (each compaction leaves the lines
        # of no attempt: all are recorded)
        assert size < 2 * THRESHOLD, (written, size)


def test_an_end_not_recorded_yet_keeps_its_lines_through_a_live_compaction_and_a_kill(
    servers: Callable[..., Server], tmp_path: Path
) -> None:
    # GIVEN a server whose sink has not applied the end of one attempt (an exit 0) yet
    server = servers(auto=False).start()
    server.launcher.recovered()
    server.launch("pending")
    server.wait_ended("pending")
    # WHEN many others run and are recorded, past the threshold
    for first in range(0, 100, 10):
        ids = [f"quick-{i}" for i in range(first, first + 10)]
        for job_id in ids:
            server.launch(job_id)
        server.wait_ended(*ids)
        for job_id in ids:
            server.record(job_id)
    server.compacted()
    # THEN the journal was compacted, but the unrecorded attempt's lines are kept
    assert server.journal.stat().st_size < 2 * THRESHOLD
    # (a quick command's exit line may come before the server's pid line: sorted)
    assert sorted(line.split()[0] for line in server.lines_of("pending")) == ["arn", "exit", "pid"]
    # (the first batch was recorded before the journal first reached the threshold: any compaction drops it)
    assert not any(server.lines_of(f"quick-{i}") for i in range(10))
    # AND WHEN the server is killed there (its end never applied), the next start finds the job's own end: it
    # succeeds, it does not run again
    again = Server(tmp_path).start(["pending"])
    try:
        assert again.launcher.recover("pending", 1) is True
        again.launcher.recovered()
        assert [type(e) for j, e in again.events if j == "pending"] == [TaskStarted, TaskStopped]
        assert again.events[-1][1].exit_code == 0
    finally:
        again.launcher.shutdown()


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")  # (the "kill": SystemExit)
@pytest.mark.parametrize("then", ["runs-on", "killed"])
def test_a_process_that_ends_between_the_link_and_the_rename_has_its_exit_line_kept(
    servers: Callable[..., Server], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, then: str
) -> None:
    # GIVEN a started server running a job that ends once a go file exists
    server = servers().start()
    server.launcher.recovered()
    go = tmp_path / "go"
    server.launch("ends", waits_for(go))
    # AND a live compaction in which, between the link of journal.old and the rename of journal.new, the job ends
    # (its supervisor appends its exit line to the journal's inode, the one being replaced) and is reported
    real_replace = os.replace

    def replace(src: Any, dst: Any) -> None:
        if str(src).endswith("journal.new") and threading.current_thread().name == "journal-compaction":
            go.touch()
            server.wait_ended("ends")
            real_replace(src, dst)
            if then == "killed":
                raise SystemExit("killed right after the rename")  # (the compaction's thread ends there)
            return
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", replace)
    run_quick(server, "quick", 40)
    server.compacted()
    monkeypatch.setattr(os, "replace", real_replace)
    assert ("ends", TaskStopped) in {(j, type(e)) for j, e in server.events}
    if then == "runs-on":
        # THEN its exit line, written to the old inode after the compaction read it, was copied to the journal
        assert "exit ends#1 0" in server.lines_of("ends")
        assert not (tmp_path / "work" / "journal.old").exists()
        return
    # THEN killed after the rename, before the copy: the line is in journal.old, and the next start (the store has
    # the job still running: its end was not applied) finds it: the job's own end
    assert "exit ends#1 0" not in server.lines_of("ends")
    assert "exit ends#1 0\n" in (tmp_path / "work" / "journal.old").read_text()
    again = Server(tmp_path).start(["ends"])
    try:
        assert again.launcher.recover("ends", 1) is True
        again.launcher.recovered()
        assert [(j, type(e)) for j, e in again.events] == [("ends", TaskStarted), ("ends", TaskStopped)]
        assert again.events[-1][1].exit_code == 0
        assert "exit ends#1 0" in again.lines_of("ends")
        assert not (tmp_path / "work" / "journal.old").exists()
    finally:
        again.launcher.shutdown()


@pytest.mark.parametrize("left", ["new", "new-and-old-linked"])
def test_a_kill_in_the_middle_of_a_live_compaction_loses_nothing(
    servers: Callable[..., Server], tmp_path: Path, left: str
) -> None:
    # GIVEN a server that ran many attempts, one of which ended (exit 0) unrecorded, one still running
    server = servers(auto=False).start()
    server.launcher.recovered()
    server.launch("pending")
    server.wait_ended("pending")
    go = tmp_path / "go"
    server.launch("long", waits_for(go))
    with server.changed:
        assert server.changed.wait_for(lambda: ("long", TaskStarted) in {(j, type(e)) for j, e in server.events}, 30)
    work = tmp_path / "work"
    # AND it is killed in the middle of a compaction: journal.new half written (and the journal linked as
    # journal.old: between the link and the rename)
    journal = work / "journal"
    (work / "journal.new").write_bytes(journal.read_bytes()[: journal.stat().st_size // 2])
    if left == "new-and-old-linked":
        os.link(journal, work / "journal.old")
    # WHEN the next start recovers both (the store has them running)
    again = Server(tmp_path).start(["pending", "long"])
    try:
        assert again.launcher.recover("pending", 1) is True
        assert again.launcher.recover("long", 1) is True
        again.launcher.recovered()
        # THEN the ended one succeeds with its own end, the running one is killed and left to the caller (a lost
        # host); nothing is left beside the journal
        assert [(j, type(e), getattr(e, "exit_code", None)) for j, e in again.events] == [
            ("pending", TaskStarted, None),
            ("pending", TaskStopped, 0),
        ]
        assert sorted(p.name for p in work.iterdir() if p.is_file()) == ["journal"]
    finally:
        again.launcher.shutdown()


def test_a_supervisor_may_append_to_the_old_inode_only_between_reaping_its_command_and_its_exit(
    tmp_path: Path,
) -> None:
    # GIVEN a supervised command that runs until a go file exists
    go = tmp_path / "go"
    journal = tmp_path / "journal"
    proc = spawn_supervised(tmp_path, journal, "job#1", waits_for(go), dict(os.environ))
    try:
        # THEN while its command runs, or is being spawned, or has not begun, what a compaction waits for is known
        assert may_append(False, None) is False  # (not begun: it opens the journal after this)
        assert may_append(True, None) is True  # (being spawned: it may be anywhere)
        wait_for_command(proc)
        assert may_append(False, proc) is False  # (its command runs: it opens the journal after it reaped it)
        # AND WHEN the supervisor is stopped while its command ends: the command is a zombie it has not reaped
        os.kill(proc.pid, signal.SIGSTOP)
        go.touch()
        command = int(Path(f"/proc/{proc.pid}/task/{proc.pid}/children").read_text().split()[0])
        while Path(f"/proc/{command}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z":
            time.sleep(0.005)  # (the command's own end: a few ms)
        assert may_append(False, proc) is False  # (it still has to reap it before it opens the journal)
        os.kill(proc.pid, signal.SIGCONT)
        assert proc.wait_exit() == 0
        # AND once it was reaped it writes no more: its line is there
        assert may_append(False, proc) is False
        assert journal.read_text() == "exit job#1 0\n"
    finally:
        proc.signal_group(signal.SIGKILL)


def test_recoverys_reading_stays_consistent_with_a_journal_compacted_under_it(
    servers: Callable[..., Server], tmp_path: Path
) -> None:
    # GIVEN a started server that recovery asked about a job of the last server (its pid journaled, no exit yet),
    # and that runs a long job of its own
    server = servers().start()
    server.launcher.recovered()
    dead = int(Path("/proc/sys/kernel/pid_max").read_text())  # (no process has it: nothing is killed)
    with server.journal.open("a") as f:
        f.write(f"pid asked#1 {dead}\n")
    (tmp_path / "work" / "asked" / "1").mkdir(parents=True)
    assert server.launcher.recover("asked", 1) is True
    assert server.launcher.journal.pids == {"asked#1": dead}
    go = tmp_path / "go"
    server.launch("long", waits_for(go))
    # WHEN its exit lands unread, many attempts run (compacting the journal under the reading), then a stop of it
    with server.journal.open("a") as f:
        f.write("exit asked#1 0\n")
    run_quick(server, "quick", 60)
    server.compacted()
    assert server.journal.stat().st_size < 2 * THRESHOLD
    with server.journal.open("a") as f:
        f.write('stop asked#1 "Terminated"\n')
    journal = server.launcher.journal
    journal.refresh()
    # THEN the reading found the lines it had not read, in their order, and nothing of the jobs it does not keep
    assert (journal.pids, journal.exits) == ({"asked#1": dead}, {"asked#1": 0})
    assert journal.stop_of("asked#1") == "Terminated" and journal.exited_before_stop("asked#1", "asked#1")
    # AND a job asked about after the compaction is found in the compacted file
    journal.want("long")
    assert set(journal.pids) == {"asked#1", "long#1"}
    go.touch()
    server.wait_ended("long")


def test_a_runner_is_waited_for_only_between_its_command_and_its_end(tmp_path: Path) -> None:
    """An array child runs on a runner (compute/local_runs.py), which appends its exit line by the journal's path as
    a supervisor does: a live compaction waits for it only while it may be writing that line (its command ended and
    its end is not reported yet). A runner running its command, or idle, is not waited for."""
    server = Server(tmp_path).start()
    started, go = tmp_path / "started", tmp_path / "go"
    script = f"touch {started}; until [ -e {go} ]; do sleep 0.01; done"
    env = {"AWS_BATCH_JOB_ID": "p:0", "AWS_BATCH_JOB_ATTEMPT": "1", "AWS_BATCH_JOB_ARRAY_INDEX": "0"}
    spec = TaskSpec("p:0", 1, "task", ["sh", "-c", script], env, "jd/default/task", 1.0, 64, "ce")
    server.launcher.launch(spec)
    deadline = time.monotonic() + WAIT_S
    while not started.exists():
        assert time.monotonic() < deadline
        time.sleep(0.01)
    writers = server.launcher.writers()
    assert len(writers) == 1  # the busy runner
    assert [w for w in writers if w.may_append()] == []  # it holds its command: it appends only after, by the path
    go.touch()
    server.wait_ended("p:0")
    assert [w for w in writers if w.may_append()] == []  # its end was reported: its exit line was written before
    assert server.launcher.writers() == []  # idle: waiting for its next child
    assert [e.exit_code for j, e in server.events if isinstance(e, TaskStopped)] == [0]
    server.launcher.shutdown()
