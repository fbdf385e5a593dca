"""The process executor's journal is compacted at each start to the lines of the jobs still active, and holds in
memory only what recovery asks about (compute/local_journal.py `Journal.compact`): however many attempts ran before,
neither the disk nor the recovery's memory grows with them. No line a recovery needs is lost: not when the server
dies mid-compaction, nor when a supervisor of the last server appends its exit line across the compaction's rename."""

from __future__ import annotations

import json
import os
import signal
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from chalicelib.compute import local_journal
from chalicelib.compute.local import LocalLauncher
from chalicelib.compute.local_journal import Journal
from chalicelib.compute.logs import FileLogStore
from chalicelib.domain.lifecycle import TaskStarted, TaskStopped

SETTLED = 5_000  # attempts the last server ran to their end: two lines each
REASON = "Terminated by the test"


@dataclass
class Server:
    """One run of the server's process launcher on a state directory (what `batchplane up` builds)."""

    launcher: LocalLauncher
    events: list[tuple[str, TaskStarted | TaskStopped]]

    def stop(self) -> None: ...

    @property
    def journal(self) -> Journal:
        return self.launcher.journal


@pytest.fixture
def start(tmp_path: Path) -> Iterator[type[Server]]:
    made: list[LocalLauncher] = []

    class Started(Server):
        def __init__(self) -> None:
            events: list[tuple[str, TaskStarted | TaskStopped]] = []
            launcher = LocalLauncher(
                tmp_path / "work", FileLogStore(tmp_path / "logs"), lambda j, e: events.append((j, e))
            )
            made.append(launcher)
            super().__init__(launcher, events)

    yield Started
    for launcher in made:
        launcher.shutdown()


def journal_path(tmp_path: Path) -> Path:
    return tmp_path / "work" / "journal"


def write_history(tmp_path: Path, *lines: str) -> None:
    """What the last server (and its supervisors) left: SETTLED finished attempts, then `lines`."""
    work = tmp_path / "work"
    work.mkdir(parents=True, exist_ok=True)
    with (work / "journal").open("w") as f:
        for i in range(SETTLED):
            f.write(f"pid done-{i}#1 {100000 + i}\nexit done-{i}#1 0\n")
        for line in lines:
            f.write(line + "\n")
    for job in ("live", "stopped", "early"):
        (work / job / "1").mkdir(parents=True, exist_ok=True)  # (a started attempt's work dir)


def gone_pid() -> int:
    """A pid no process has (pids are below pid_max): recovery's kill of it finds nothing."""
    return int(Path("/proc/sys/kernel/pid_max").read_text())


def test_the_start_keeps_only_the_lines_of_active_jobs_on_disk_and_in_memory(
    start: type[Server], tmp_path: Path
) -> None:
    # GIVEN a journal of thousands of settled attempts, and three the store still has running: one that ended
    # while the server was down, one stopped before its end, one whose end came before its stop
    dead = gone_pid()
    active = [
        f"pid live#1 {dead}",
        f"pid stopped#1 {dead}",
        f"pid early#1 {dead}",
        f"stop stopped#1 {json.dumps(REASON)}",
        "exit early#1 0",
        f"stop early#1 {json.dumps(REASON)}",
        "exit live#1 0",
        "exit stopped#1 143",
    ]
    write_history(tmp_path, *active)
    # WHEN a server starts: compaction to the active jobs, then their recovery
    server = start()
    server.launcher.compact_journal(["live", "stopped", "early"])
    # THEN the journal holds only their lines, in their order, and the memory only their keys
    assert journal_path(tmp_path).read_text().splitlines() == active
    assert set(server.journal.pids) == {"live#1", "stopped#1", "early#1"}
    assert set(server.journal.exits) == {"early#1", "live#1", "stopped#1"}
    for job in ("live", "stopped", "early"):
        assert server.launcher.recover(job, 1) is True
    server.launcher.recovered()
    assert set(server.journal.pids) == {"live#1", "stopped#1", "early#1"}  # (nothing of the settled ones read)
    assert set(server.journal.exits) == {"early#1", "live#1", "stopped#1"}
    # AND recovery decides as it did before compaction: the exit 0 succeeds, the stop's end is the stop's, an
    # exit before the stop decides
    assert server.events == [
        ("live", TaskStopped(1, 0)),
        ("stopped", TaskStopped(1, 143, status_reason=REASON)),
        ("early", TaskStopped(1, 0)),
    ]
    assert not (tmp_path / "work" / "journal.old").exists()
    assert not (tmp_path / "work" / "journal.new").exists()
    # AND the next start, with those settled, keeps nothing
    server.stop()
    again = start()
    again.launcher.compact_journal([])
    again.launcher.recovered()
    assert journal_path(tmp_path).read_bytes() == b""
    assert (again.journal.pids, again.journal.exits, again.journal.stops) == ({}, {}, {})


def test_an_exit_appended_to_the_old_inode_after_the_rename_is_read_and_kept(
    start: type[Server], tmp_path: Path
) -> None:
    # GIVEN a process of the last server still running, whose supervisor opens the journal (`>>`) for its exit line
    # before the compaction's rename, and writes the line after it
    dead = gone_pid()
    write_history(tmp_path, f"pid live#1 {dead}")
    supervisor = os.open(journal_path(tmp_path), os.O_WRONLY | os.O_APPEND)
    try:
        server = start()
        server.launcher.compact_journal(["live"])
        assert journal_path(tmp_path).read_text() == f"pid live#1 {dead}\n"  # (renamed: a new inode)
        os.write(supervisor, b"exit live#1 0\n")  # lands in the old inode, now journal.old
    finally:
        os.close(supervisor)
    # WHEN the recovery asks about it
    assert server.launcher.recover("live", 1) is True
    # THEN its exit was found: the job's own end, not a lost host
    assert server.events == [("live", TaskStopped(1, 0))]
    # AND once the recovery is over the line is in the journal, and the old inode is gone
    server.launcher.recovered()
    assert journal_path(tmp_path).read_text().splitlines() == [f"pid live#1 {dead}", "exit live#1 0"]
    assert not (tmp_path / "work" / "journal.old").exists()


def test_a_crash_after_the_rename_keeps_the_late_exit_for_the_next_start(start: type[Server], tmp_path: Path) -> None:
    # GIVEN a compaction whose old inode received a late exit line, then a crash before the recovery ended
    dead = gone_pid()
    write_history(tmp_path, f"pid live#1 {dead}")
    supervisor = os.open(journal_path(tmp_path), os.O_WRONLY | os.O_APPEND)
    try:
        start().launcher.compact_journal(["live"])
        os.write(supervisor, b"exit live#1 0\n")
    finally:
        os.close(supervisor)
    assert (tmp_path / "work" / "journal.old").exists()  # (no release: the server died)
    # WHEN the next server starts
    server = start()
    server.launcher.compact_journal(["live"])
    assert server.launcher.recover("live", 1) is True
    server.launcher.recovered()
    # THEN the exit was merged back from journal.old: the job's own end
    assert server.events == [("live", TaskStopped(1, 0))]
    assert journal_path(tmp_path).read_text().splitlines() == [f"pid live#1 {dead}", "exit live#1 0"]
    assert not (tmp_path / "work" / "journal.old").exists()


@pytest.mark.parametrize("dies_at", ["fsync", "link", "replace", "reopen"])
def test_a_crash_at_any_step_of_the_compaction_loses_nothing(
    start: type[Server], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, dies_at: str
) -> None:
    # GIVEN a journal with an active job that ended while the server was down, and one stopped in flight
    dead = gone_pid()
    write_history(
        tmp_path, f"pid live#1 {dead}", "exit live#1 0", f"pid stopped#1 {dead}", f"stop stopped#1 {json.dumps(REASON)}"
    )
    # WHEN the server dies at a step of its compaction (the step raises: nothing after it runs)
    calls = {"fsync": os.fsync, "link": os.link, "replace": os.replace, "reopen": os.close}
    real = calls[dies_at]

    def die(*args: object) -> None:
        raise SystemExit(f"killed at {dies_at}")

    monkeypatch.setattr(os, "close" if dies_at == "reopen" else dies_at, die)
    first = start()
    with pytest.raises(SystemExit):
        first.launcher.compact_journal(["live", "stopped"])
    monkeypatch.setattr(os, "close" if dies_at == "reopen" else dies_at, real)
    # AND the next server starts on what it left
    server = start()
    server.launcher.compact_journal(["live", "stopped"])
    assert server.launcher.recover("live", 1) is True
    assert server.launcher.recover("stopped", 1) is True
    server.launcher.recovered()
    # THEN both are recovered from their lines, and the journal holds them once, nothing else
    assert server.events == [
        ("live", TaskStopped(1, 0)),
        ("stopped", TaskStopped(1, 128 + signal.SIGKILL, status_reason=REASON)),
    ]
    assert journal_path(tmp_path).read_text().splitlines() == [
        f"pid live#1 {dead}",
        "exit live#1 0",
        f"pid stopped#1 {dead}",
        f"stop stopped#1 {json.dumps(REASON)}",
    ]
    assert sorted(p.name for p in (tmp_path / "work").iterdir() if p.is_file()) == ["journal"]


@pytest.mark.parametrize("chunk", [1 << 20, 7], ids=["one-read", "lines-across-reads"])
def test_lines_of_attempts_run_since_the_start_are_kept_only_once_recovery_asks_about_them(
    start: type[Server], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, chunk: int
) -> None:
    monkeypatch.setattr(local_journal, "RESCAN_CHUNK", chunk)
    # GIVEN a server started with no active job, which has run attempts since (one stopped after its exit 0)
    write_history(tmp_path)
    server = start()
    server.launcher.compact_journal([])
    server.launcher.recovered()
    dead = gone_pid()
    with journal_path(tmp_path).open("a") as f:
        for i in range(100):
            f.write(f"pid own-{i}#1 {dead}\nexit own-{i}#1 {i % 2}\n")
        f.write(f"stop own-4#1 {json.dumps(REASON)}\n")
    (tmp_path / "work" / "own-4" / "1").mkdir(parents=True)
    # WHEN a sweep asks about one of them (after reading the journal for another)
    server.journal.refresh()
    assert (server.journal.pids, server.journal.exits, server.journal.stops) == ({}, {}, {})
    assert server.launcher.recover("own-4", 1) is True
    # THEN its lines were read again, and only its: its exit 0, before the stop, decides
    assert server.events == [("own-4", TaskStopped(1, 0))]
    assert (server.journal.pids, server.journal.exits) == ({"own-4#1": dead}, {"own-4#1": 0})
    assert server.journal.stop_of("own-4#1") == REASON and server.journal.exited_before_stop("own-4#1", "own-4#1")


@pytest.mark.parametrize("fails", ["link", "fsync"], ids=["no-hard-links", "disk-full"])
def test_a_compaction_that_fails_keeps_the_journal_whole_and_the_recovery_reads_it_as_before(
    start: type[Server], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fails: str
) -> None:
    # GIVEN a journal whose last compaction was cut short by a crash: a late exit line is in journal.old
    dead = gone_pid()
    write_history(tmp_path, f"pid live#1 {dead}", f"pid early#1 {dead}", "exit early#1 0")
    supervisor = os.open(journal_path(tmp_path), os.O_WRONLY | os.O_APPEND)
    try:
        start().launcher.compact_journal(["live", "early"])
        os.write(supervisor, b"exit live#1 0\n")
    finally:
        os.close(supervisor)
    size = journal_path(tmp_path).stat().st_size
    # AND a file system that refuses hard links, or is full
    failure = PermissionError(1, "Operation not permitted") if fails == "link" else OSError(28, "No space left")

    def fail(*args: object) -> None:
        raise failure

    monkeypatch.setattr(os, fails, fail)
    # WHEN a server starts
    server = start()
    server.launcher.compact_journal(["live", "early"])
    # THEN the journal is left whole (nothing is lost), and the recovery finds every line, holding only the active
    # jobs' ones
    assert journal_path(tmp_path).stat().st_size >= size
    assert server.launcher.recover("live", 1) is True
    assert server.launcher.recover("early", 1) is True
    server.launcher.recovered()
    assert server.events == [("live", TaskStopped(1, 0)), ("early", TaskStopped(1, 0))]
    assert (set(server.journal.pids), set(server.journal.exits)) == ({"live#1", "early#1"}, {"live#1", "early#1"})
    assert not (tmp_path / "work" / "journal.new").exists()
    # AND the next start, on a sound file system, compacts it
    monkeypatch.undo()
    server.stop()
    again = start()
    again.launcher.compact_journal(["live"])
    again.launcher.recovered()
    assert journal_path(tmp_path).read_text().splitlines() == [f"pid live#1 {dead}", "exit live#1 0"]
    assert sorted(p.name for p in (tmp_path / "work").iterdir() if p.is_file()) == ["journal"]
