"""The local launcher's record of its attempts, for recovery after a crash (compute/local.py `recover`).

- The journal (`<state>/work/journal`) is one append-only file for every attempt: "pid <jobId>#<attempt> <pid>",
  written by the server once the process exists, and "exit <jobId>#<attempt> <status>", written by the attempt's
  supervisor when its command ends. Only the start (its compaction, below) and recovery read it: recovery from where
  it last stopped, keeping in memory only the lines of the jobs it asks about.
- Each start compacts it (`Journal.compact`, before recovery) to the lines of the jobs the store has STARTING or
  RUNNING: what the server ran before is not kept on disk, nor read into memory, however many attempts that was.
  The journal's previous inode stays linked as `journal.old` until recovery is over (`Journal.release`): the exit
  line of a process of the last server can land there (see `compact`). `journal.new` is a compaction in progress.
- A multi-container attempt (compute/local_group.py) adds "task <jobId>#<attempt> <json>" (task_group.task_label:
  its containers, before any starts), and each member's process is keyed "<jobId>#<attempt>/<container name>"
  (names have no space: domain/ecs_task.py NAME) in its pid and exit lines.
- A stop asked of an attempt (TerminateJob, the attempt's timeout), single- or multi-container, adds
  "stop <jobId>#<attempt> <JSON string: the reason>" before its processes are signalled, so a recovery settles a
  stop that was in flight as the stop's end, as the live launcher (or coordinator) would have.
- A single-container attempt's pid line is followed, in the same write, by "arn <jobId>#<attempt> <task ARN>": the
  ARN its live events carry, which the recovery's events carry too.
- An attempt whose pid was never recorded is found by the AWS_BATCH_* variables its processes carry (Linux /proc).
"""

from __future__ import annotations

import contextlib
import itertools
import json
import logging
import os
import threading
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

from chalicelib.compute.journal_files import fsync_dir as _fsync_dir
from chalicelib.compute.journal_files import job_of as job_of
from chalicelib.compute.journal_files import replace_synced, write_kept

log = logging.getLogger("batchplane.launcher")

# Earlier versions kept the exit status in each attempt's work dir; recovery still reads it there.
EXIT_FILE = "exit"
OLD_SUFFIX = ".old"  # the journal's inode before the last compaction, until its release (Journal.compact)
RESCAN_CHUNK = 1 << 20  # bytes read at a time by Journal.want's search
NEW_SUFFIX = ".new"  # a compaction's kept lines, until they are complete (renamed over the journal)


def processes_of(job_id: str, attempt: int) -> list[int]:
    """Processes started for this attempt, by their environment (Linux only; [] where /proc is missing)."""
    proc = Path("/proc")
    want = {f"AWS_BATCH_JOB_ID={job_id}".encode(), f"AWS_BATCH_JOB_ATTEMPT={attempt}".encode()}
    found = []
    for entry in proc.iterdir() if proc.is_dir() else ():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            environ = set((entry / "environ").read_bytes().split(b"\0"))
        except OSError:
            continue
        if want <= environ:
            found.append(int(entry.name))
    return found


class Journal:
    """The work root's journal: appended to by the server (pids, tasks, stops) and by every supervisor (exit
    statuses); about 100 bytes per attempt. Read by recovery, from where it last stopped, and compacted at each start
    (`compact`) to the lines of the jobs still active.

    Memory: only the lines of the jobs recovery may ask about are kept (`compact`'s active jobs, and each job `want`
    adds), however long the file is."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.old_path = path.with_name(path.name + OLD_SUFFIX)
        self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        self._lock = threading.Lock()
        self._offset = 0  # bytes read so far (complete lines only)
        self._old_from: int | None = None  # how much of journal.old `compact` copied (None: no journal.old is read)
        self._old_offset = 0  # bytes of journal.old read so far (past _old_from: its late lines)
        self._jobs: set[str] = set()  # the jobs whose lines are kept (job_of)
        self.pids: dict[str, int] = {}
        self.exits: dict[str, int] = {}  # in the order they were first written
        self.tasks: dict[str, str] = {}  # a multi-container attempt's task_group.task_label
        self.arns: dict[str, str] = {}  # a single-container attempt's task ARN (record_pid)
        self._exit_at: dict[str, int] = {}  # each exit's place among the exits, in journal order
        # an attempt's first stop: its reason, and how many exits the journal held before it (exited_before_stop)
        self.stops: dict[str, tuple[str, int]] = {}

    def record_pid(self, key: str, pid: int, task_arn: str | None = None) -> None:
        """The attempt's process exists; with the task ARN its events carry, so that a recovery reports them alike
        (an "arn" line: a version without it ignores the kind)."""
        arn = f"arn {key} {task_arn}\n" if task_arn else ""
        os.write(self._fd, f"pid {key} {pid}\n{arn}".encode())  # one write: never interleaved with another line

    def record_task(self, key: str, label: str) -> None:
        """A multi-container attempt's containers (one line of JSON: task_group.task_label), before any starts."""
        if "\n" in label or " " in key:
            raise ValueError(f"not one journal line: {key} {label}")
        os.write(self._fd, f"task {key} {label}\n".encode())  # one write (O_APPEND): the whole line or none

    def record_stop(self, key: str, reason: str) -> None:
        """A stop asked of an attempt (its reason, any text: one JSON string), before it is sent."""
        if " " in key:
            raise ValueError(f"not a journal key: {key}")
        os.write(self._fd, f"stop {key} {json.dumps(reason)}\n".encode())  # one write (O_APPEND), as record_task

    def stop_of(self, key: str) -> str | None:
        """The reason of the first stop journaled for the attempt `key`; None without one."""
        stop = self.stops.get(key)
        return stop[0] if stop is not None else None

    def exited_before_stop(self, exit_key: str, stop_key: str) -> bool:
        """Whether the exit of `exit_key` (an attempt's, or a member's) was journaled before the stop of the attempt
        `stop_key`: always without a stop, never without an exit."""
        at = self._exit_at.get(exit_key)
        stop = self.stops.get(stop_key)
        return at is not None and (stop is None or at < stop[1])

    # -- compaction (at start, before recovery) -------------------------------------------------------------------

    def compact(self, active_jobs: Iterable[str]) -> None:
        """At start, before recovery and before any launch: keep only the lines of `active_jobs` (every job the store
        has STARTING or RUNNING: the only ones recovery asks about), in memory and on disk.

        Crash-safe: the kept lines are written to journal.new and fsync'd, then the journal's inode is linked as
        journal.old and journal.new renamed over the journal (each step atomic; a crash anywhere leaves every line
        in the journal or in journal.old, and the next start merges journal.old back first).

        Supervisors of processes that outlived the last server append their exit line by the journal's path at any
        moment (`sh`'s `>>`): one that opened the path before the rename appends to the old inode, which stays
        linked as journal.old until `release` (after recovery, which kills those processes) copies its late lines
        back; recovery reads them there meanwhile (`refresh`)."""
        with self._lock:
            self._jobs = set(active_jobs)
            new = self.path.with_name(self.path.name + NEW_SUFFIX)
            try:
                self._merge_old()  # what an earlier start left (it crashed before its release)
                read, kept = self._write_kept(new)
                os.link(self.path, self.old_path)  # the inode appends still reach stays linked: nothing is lost
            except OSError:  # (a full disk, a file system without hard links): kept whole, read as before
                log.exception("the journal %s cannot be compacted", self.path)
                with contextlib.suppress(OSError):
                    new.unlink()
                self._read_whole()
                return
            replace_synced(new, self.path)
            os.close(self._fd)
            self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            self._offset = kept
            self._old_from = self._old_offset = read

    def _write_kept(self, new: Path) -> tuple[int, int]:
        """Write the kept lines to `new` (fsync'd), taking them in; how many bytes were read, and written. (A line
        being written is the old inode's: read from journal.old, `compact`.)"""
        self._forget()
        return write_kept(self.path, new, self._parse)

    def _read_whole(self) -> None:
        """Not compacted: everything is read again (the kept jobs' lines only), journal.old too if a merge of it
        was cut short (`release` then merges it)."""
        self._forget()
        self._offset = 0
        try:
            if not os.path.samefile(self.old_path, self.path):
                self._old_from = self._old_offset = 0
        except OSError:
            pass  # (no journal.old)

    def _forget(self) -> None:
        for held in (self.pids, self.exits, self.tasks, self.arns, self._exit_at, self.stops):
            held.clear()

    def release(self) -> None:
        """After recovery (it killed every process of the last server that recovery is about): the kept lines
        appended to journal.old after `compact` read it are copied to the journal, and journal.old is removed."""
        with self._lock:
            if self._old_from is None:
                return
            try:
                late = b"".join(self._kept_lines(self.old_path, self._old_from))
                if late:
                    os.write(self._fd, late)  # one write (O_APPEND): beside the supervisors' own appends
                    os.fsync(self._fd)
                self.old_path.unlink()
                _fsync_dir(self.path.parent)
            except OSError:  # (a full disk): journal.old stays, the next start merges it
                log.exception("releasing %s failed", self.old_path)
            self._old_from = None

    def _merge_old(self) -> None:
        """journal.old left by a start that crashed after its compaction's rename, before its release: its lines of
        the kept jobs are appended to the journal (duplicates are dropped by the compaction), then it is removed."""
        try:
            same = os.path.samefile(self.old_path, self.path)
        except FileNotFoundError:
            return  # (none: the usual case)
        if not same:  # (the same inode: a crash between the link and the rename; the journal holds it all)
            lines = self._kept_lines(self.old_path, 0)
            while chunk := b"".join(itertools.islice(lines, 1000)):
                os.write(self._fd, chunk)  # (O_APPEND: whole lines, beside the supervisors' own appends)
            os.fsync(self._fd)
        self.old_path.unlink()
        _fsync_dir(self.path.parent)

    # -- reading -------------------------------------------------------------------------------------------------

    def want(self, job_id: str) -> None:
        """Recovery asks about an attempt of `job_id`: its lines are kept from now on, and those read earlier (this
        server's own attempts: `compact` kept the others) are read again."""
        job = job_of(job_id)
        with self._lock:
            if job in self._jobs:
                return
            self._jobs.add(job)
            self._rescan(job)

    def _rescan(self, job: str) -> None:
        """Read again the lines of `job` among those read so far (by chunks, searched for the job's keys: a sweep
        asking about a few attempts of this server does not parse every line it ran since the start)."""
        needle, offset, carry = f" {job}#".encode(), 0, b""
        with open(self.path, "rb") as f:
            while offset < self._offset:
                chunk = f.read(min(RESCAN_CHUNK, self._offset - offset))
                if not chunk:
                    return
                offset += len(chunk)
                data = carry + chunk
                end = data.rfind(b"\n") + 1
                data, carry = data[:end], data[end:]
                at = data.find(needle)
                while at != -1:
                    line_end = data.index(b"\n", at) + 1
                    self._parse(data[data.rfind(b"\n", 0, at) + 1 : line_end], only=job)
                    at = data.find(needle, line_end)

    def refresh(self) -> None:
        with self._lock:
            if self._old_from is not None:
                self._old_offset = self._read(self.old_path, self._old_offset)
            try:
                unread = os.fstat(self._fd).st_size > self._offset
            except OSError:  # closed
                unread = True
            if unread:  # (else no open: recover() of a multi-container attempt refreshes, then the caller's)
                self._offset = self._read(self.path, self._offset)

    def _read(self, path: Path, offset: int) -> int:
        """Read the complete lines of `path` from `offset`, keeping those of the kept jobs; the offset after them."""
        with open(path, "rb") as f:
            f.seek(offset)
            for line in f:
                if not line.endswith(b"\n"):
                    break
                offset += len(line)
                self._parse(line)
        return offset

    def _kept_lines(self, path: Path, offset: int) -> Iterator[bytes]:
        with open(path, "rb") as f:
            f.seek(offset)
            for line in f:
                if not line.endswith(b"\n"):
                    return
                if self._kept(line):
                    yield line

    def _kept(self, line: bytes) -> bool:
        return job_of(line.split(b" ", 2)[1].decode("utf-8", "replace") if b" " in line else "") in self._jobs

    def _parse(self, raw: bytes, only: str | None = None) -> bool:
        """Take one line in (when it is of a kept job, or of the job `only`); whether it was."""
        kind, _, rest = raw.decode("utf-8", "replace").rstrip("\n").partition(" ")
        key, _, value = rest.partition(" ")
        if job_of(key) not in self._jobs if only is None else job_of(key) != only:
            return False
        if value.isdigit() and kind == "pid":
            self.pids[key] = int(value)
        elif value.isdigit() and kind == "exit":
            self._exit_at.setdefault(key, len(self.exits))
            self.exits[key] = int(value)
        elif kind == "task" and value:
            self.tasks[key] = value
        elif kind == "arn" and value:
            self.arns[key] = value
        elif kind == "stop" and key not in self.stops:
            try:
                reason = json.loads(value)
            except ValueError:
                return True
            if isinstance(reason, str):
                self.stops[key] = (reason, len(self.exits))
        return True

    def close(self) -> None:
        os.close(self._fd)


def docker_created(docker_journal: Path, key: str) -> bool:
    """Whether compute/docker.py's journal has the attempt `key`'s container (created before a switch of executors)."""
    try:
        return f"created {key}\n" in docker_journal.read_text()
    except OSError:
        return False


def recorded_exit(workdir: Path) -> int | None:
    """The exit status an earlier version's supervisor wrote to the work dir; None if it did not."""
    try:
        text = (workdir / EXIT_FILE).read_text()
    except OSError:
        return None
    return int(text) if text.endswith("\n") and text.strip().isdigit() else None


def alive(pid: int) -> bool:
    """Is the process running? A zombie (dead, not yet reaped by its new parent) counts as gone."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return True  # no /proc: trust kill(0)
    return state != "Z"


RECOVER_WAIT_S = 2.0  # how long a recovery waits for the processes it killed to be gone


def wait_gone(pids: list[int], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while any(alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.01)
