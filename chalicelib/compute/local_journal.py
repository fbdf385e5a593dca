"""The local launcher's record of its attempts, for recovery after a crash (compute/local.py `recover`).

- The journal (`<state>/work/journal`) is one append-only file for every attempt: "pid <jobId>#<attempt> <pid>",
  written by the server once the process exists, and "exit <jobId>#<attempt> <status>", written by the attempt's
  supervisor when its command ends. Only its compactions (below) and recovery read it: recovery from where
  it last stopped, keeping in memory only the lines of the jobs it asks about.
- Each start compacts it (`Journal.compact`, before recovery) to the lines of the jobs the store has STARTING or
  RUNNING: what the server ran before is not kept on disk, nor read into memory, however many attempts that was.
  The journal's previous inode stays linked as `journal.old` until recovery is over (`Journal.release`): the exit
  line of a process of the last server can land there (see `compact`). `journal.new` is a compaction in progress.
- While the server runs, the journal is compacted again each time it has grown past journal_files.COMPACT_BYTES
  (and twice what the last compaction kept), on a thread of its own (`Journal.attach`, docs/adr/0036), to the lines
  of the attempts the launcher has not seen recorded yet (launched, their TaskStopped not applied) and of the jobs
  recovery asked about. Its `journal.old` stays until every supervisor that may have opened the old inode has
  written (compute/local_supervisor.py `may_append`), then its late lines are copied and it is removed; a start
  that finds it merges it, as above.
- A multi-container attempt (compute/local_group.py) adds "task <jobId>#<attempt> <json>" (task_group.task_label:
  its containers, before any starts), and each member's process is keyed "<jobId>#<attempt>/<container name>"
  (names have no space: domain/ecs_task.py NAME) in its pid and exit lines.
- A stop asked of an attempt (TerminateJob, the attempt's timeout), single- or multi-container, adds
  "stop <jobId>#<attempt> <JSON string: the reason>" before its processes are signalled, so a recovery settles a
  stop that was in flight as the stop's end, as the live launcher (or coordinator) would have.
- A single-container attempt's pid line is followed, in the same write, by "arn <jobId>#<attempt> <task ARN>": the
  ARN its live events carry, which the recovery's events carry too. An array child handed to a runner has
  "queued <jobId>#<attempt> <task ARN>" instead, written by the server (`record_handed`), and its pid line (the
  runner's pid) once the runner reaches it, written by the runner: a queued line without a pid line is a child
  that never started.
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
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Protocol

from chalicelib.compute.journal_files import Appender, Kept, compaction, due, replace_synced, write_kept
from chalicelib.compute.journal_files import fsync_dir as _fsync_dir
from chalicelib.compute.journal_files import job_of as job_of

log = logging.getLogger("batchplane.launcher")

OLD_SUFFIX = ".old"  # the journal's inode before the last compaction, until its release (Journal.compact)
RESCAN_CHUNK = 1 << 20  # bytes read at a time by Journal.want's search
CLOSE_WAIT_S = 5.0  # how long `close` waits for a live compaction to end
WRITERS_POLL_S = (0.005, 1.0)  # a live compaction looks again at the supervisors it waits for after (doubling)


class Writer(Protocol):
    """A process that appends to the journal by its path: a supervisor (compute/local_supervisor.py `may_append`)
    or an array child's runner (compute/local_runs.py `RunnerWriter`)."""

    def may_append(self) -> bool:
        """Whether it may still append to an inode the journal's path named before now."""
        ...


class Launches(Protocol):
    """What a live compaction asks of the launcher that appends to the journal (compute/local.py)."""

    def journal_jobs(self) -> set[str]:
        """The jobs of the attempts launched whose end is not recorded yet. Under the lock the launcher holds when
        it adds one, and calls `Journal.launching`: an attempt launched meanwhile is in one or the other."""
        ...

    def writers(self) -> list[Writer]:
        """The supervisors and runners that may still append to the journal by its path (alive, or being spawned)."""
        ...


def _job_of_line(line: bytes) -> str:
    return job_of(line.split(b" ", 2)[1].decode("utf-8", "replace") if b" " in line else "")


class Journal:
    """The work root's journal: appended to by the server (pids, tasks, stops) and by every supervisor (exit
    statuses); about 240 bytes per attempt. Read by recovery, from where it last stopped, and compacted at each start
    (`compact`) to the lines of the jobs still active, and while the server runs (`attach`, docs/adr/0036) to those of
    the attempts whose end is not recorded yet.

    Memory: only the lines of the jobs recovery may ask about are kept (`compact`'s active jobs, and each job `want`
    adds), however long the file is."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.old_path = path.with_name(path.name + OLD_SUFFIX)
        self._out = Appender(path)
        self._lock = threading.Lock()  # the reading state below, and every compaction's steps
        self._offset = 0  # bytes read so far (complete lines only)
        # how much of journal.old a compaction copied (None: no journal.old is read); its late lines are past it
        self._old_from: int | None = None
        self._old_offset = 0  # bytes of journal.old read so far (past _old_from: its late lines)
        self._jobs: set[str] = set()  # the jobs whose lines are kept (job_of)
        self.pids: dict[str, int] = {}
        self.exits: dict[str, int] = {}  # in the order they were first written
        self.tasks: dict[str, str] = {}  # a multi-container attempt's task_group.task_label
        self.arns: dict[str, str] = {}  # a single-container attempt's task ARN (record_pid, record_handed)
        self.queued: set[str] = set()  # array children handed to a runner (record_handed)
        self._exit_at: dict[str, int] = {}  # each exit's place among the exits, in journal order
        # an attempt's first stop: its reason, and how many exits the journal held before it (exited_before_stop)
        self.stops: dict[str, tuple[str, int]] = {}
        self._kept_size = 0  # the journal's size after its last compaction (`due`)
        self._kept_attempts = 0  # ... and the launcher's attempts whose lines it kept (`settled`)
        self._launches: Launches | None = None  # set: compacted live once the start's recovery is over (`release`)
        self._live_ok = False
        self._live_lock = threading.Lock()
        self._live: threading.Thread | None = None  # the live compaction running
        self._fresh: set[str] | None = None  # while one runs: the jobs launched since it read the launcher's
        self._closing = False

    def record_pid(self, key: str, pid: int, task_arn: str | None = None) -> None:
        """The attempt's process exists; with the task ARN its events carry, so that a recovery reports them alike
        (an "arn" line: a version without it ignores the kind)."""
        arn = f"arn {key} {task_arn}\n" if task_arn else ""
        self._append(f"pid {key} {pid}\n{arn}".encode())  # one write: never interleaved with another line

    def record_handed(self, key: str, task_arn: str) -> None:
        """An array child handed to a runner (compute/local_runs.py): a "queued" line with its task ARN. The runner
        writes its pid line when it reaches the child, before the command is forked (compute/local_supervisor.py
        RUNNER)."""
        self._append(f"queued {key} {task_arn}\n".encode())

    def record_task(self, key: str, label: str) -> None:
        """A multi-container attempt's containers (one line of JSON: task_group.task_label), before any starts."""
        if "\n" in label or " " in key:
            raise ValueError(f"not one journal line: {key} {label}")
        self._append(f"task {key} {label}\n".encode())

    def record_stop(self, key: str, reason: str) -> None:
        """A stop asked of an attempt (its reason, any text: one JSON string), before it is sent."""
        if " " in key:
            raise ValueError(f"not a journal key: {key}")
        self._append(f"stop {key} {json.dumps(reason)}\n".encode())

    def _append(self, data: bytes) -> None:
        size = self._out.write(data)  # one write (O_APPEND): the whole line or none
        if size is not None and self._live_ok and due(size, self._kept_size):
            self._start_live()

    def settled(self, attempts: int) -> None:
        """The launcher now has `attempts` attempts whose end is not recorded. The last compaction kept the lines of
        those unrecorded then: after a burst of short array children, whose ends the engine applies in batches, that
        can be many, and the next compaction would wait for twice as much (`due`), or for ever when no more appends
        come. Once a quarter of them or fewer are left, the journal is looked at against what a compaction would
        keep now (in proportion)."""
        then = self._kept_attempts
        if then < 4 or attempts * 4 > then or not self._live_ok or self._live is not None:
            return
        self._kept_attempts = attempts  # (one look per drop)
        if due(self._out.size(), self._kept_size * attempts // then):
            self._start_live()

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

    # -- compaction at start, before recovery ---------------------------------------------------------------------

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
            try:
                with compaction(self.path) as new:
                    self._merge_old()  # what an earlier run left (it crashed before its release)
                    kept = self._write_kept(new)
                    os.link(self.path, self.old_path)  # the inode appends still reach stays linked: nothing is lost
            except OSError:  # (a full disk, a file system without hard links): kept whole, read as before
                log.exception("the journal %s cannot be compacted", self.path)
                self._read_whole()
                return
            replace_synced(new, self.path)
            self._out.reopen()
            self._offset = self._kept_size = kept.written
            self._old_from = self._old_offset = kept.read

    def _write_kept(self, new: Path) -> Kept:
        """Write the kept lines to `new` (fsync'd), taking them in. (A line being written is the old inode's: read
        from journal.old, `compact`.)"""
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
        for held in (self.pids, self.exits, self.tasks, self.arns, self._exit_at, self.stops, self.queued):
            held.clear()

    def release(self) -> None:
        """After recovery (it killed every process of the last server that recovery is about): the kept lines
        appended to journal.old after `compact` read it are copied to the journal, and journal.old is removed. The
        journal is compacted live from now on (`attach`)."""
        self._live_ok = True
        self._release(self._kept_lines)

    def _release(self, lines: Callable[[Path, int], Iterator[bytes]]) -> None:
        with self._lock:
            if self._old_from is None:
                return
            try:
                late = b"".join(lines(self.old_path, self._old_from))
                if late:
                    self._out.write(late)  # one write (O_APPEND): beside the supervisors' own appends
                    self._out.sync()
                    self._kept_size += len(late)
                self.old_path.unlink()
                _fsync_dir(self.path.parent)
            except OSError:  # (a full disk): journal.old stays, the next start merges it
                log.exception("releasing %s failed", self.old_path)
            self._old_from = None

    def _merge_old(self) -> None:
        """journal.old left by a run that crashed after its compaction's rename, before its release: its lines of
        the kept jobs are appended to the journal (duplicates are dropped by the compaction), then it is removed."""
        try:
            same = os.path.samefile(self.old_path, self.path)
        except FileNotFoundError:
            return  # (none: the usual case)
        if not same:  # (the same inode: a crash between the link and the rename; the journal holds it all)
            lines = self._kept_lines(self.old_path, 0)
            while chunk := b"".join(itertools.islice(lines, 1000)):
                self._out.write(chunk)  # (O_APPEND: whole lines, beside the supervisors' own appends)
            self._out.sync()
        self.old_path.unlink()
        _fsync_dir(self.path.parent)

    # -- compaction while the server runs (docs/adr/0036) ---------------------------------------------------------

    def attach(self, launches: Launches) -> None:
        """Compact the journal while the server runs, once it has grown past COMPACT_BYTES (journal_files.due), to
        the lines of the attempts `launches` has not seen recorded yet and of the jobs recovery asked about. From
        the first `release` on (the start's recovery is over); on a thread of its own (`_compact_live`)."""
        self._launches = launches

    def launching(self, key: str) -> None:
        """An attempt is launched (before any line of it is written): its lines are kept by a live compaction that
        already asked for the launcher's jobs."""
        fresh = self._fresh
        if fresh is not None:
            fresh.add(job_of(key))

    def _start_live(self) -> None:
        with self._live_lock:
            if self._live is not None or self._closing or self._launches is None:
                return
            self._live = threading.Thread(target=self._compact_live, name="journal-compaction", daemon=True)
            self._live.start()

    def wait_compacted(self, timeout: float) -> bool:
        """Wait until no live compaction runs; False if one still does after `timeout` seconds."""
        with self._live_lock:
            live = self._live
        if live is not None:
            live.join(timeout)
        return live is None or not live.is_alive()

    def _compact_live(self) -> None:
        """The steps of `compact`, with the server's appends held only while the lines written since the first
        copy are copied and the file renamed; the old inode stays linked as journal.old until every supervisor that
        may have opened it before the rename has written (`Writer.may_append`), then its late lines are copied and
        it is removed. A kill at any step leaves every line in the journal or in journal.old (the start merges it)."""
        try:
            if self._swap_live():
                pending = self._launches.writers() if self._launches is not None else []
                pause = WRITERS_POLL_S[0]
                while self._launches is not None and (pending := [w for w in pending if w.may_append()]):
                    if self._closing:
                        return  # journal.old stays: the next start merges it
                    time.sleep(pause)
                    pause = min(2 * pause, WRITERS_POLL_S[1])
                self._release(self._lines)
        except Exception:
            log.exception("compacting the journal %s failed", self.path)
        finally:
            with self._live_lock:
                self._live = None

    def _swap_live(self) -> bool:
        """Write the kept lines to journal.new, then (the server's appends held) those written meanwhile, link the
        journal as journal.old and rename journal.new over it; False when nothing was done. Recovery's reading
        waits meanwhile (the lock): its offset is moved to where the lines it has not read begin in the new file."""
        assert self._launches is not None
        with self._lock:
            if self._old_from is not None or self._closing:
                return False  # (journal.old of the start, or of a release that failed: the next start merges it)
            fresh: set[str] = set()
            self._fresh = fresh  # (before the launcher's jobs are read: `launching`)
            jobs = self._launches.journal_jobs() | self._jobs

            def keep(line: bytes) -> bool:
                job = _job_of_line(line)
                return job in jobs or job in fresh

            seen: set[bytes] = set()
            try:
                with compaction(self.path) as new:
                    first = write_kept(self.path, new, keep, mark=self._offset, seen=seen)
                    with self._out.lock:  # the server's records stay in their order, all in the new file
                        rest = write_kept(self.path, new, keep, start=first.read, seen=seen)
                        os.link(self.path, self.old_path)
                        self._replace(new)
            except OSError:  # (a full disk, no hard links): kept whole; tried again once it doubled
                log.exception("the journal %s cannot be compacted", self.path)
                self._kept_size = self._out.size()
                return False
            finally:
                self._fresh = None  # (the new lines go to the new file from now on)
            self._offset, self._kept_size = first.marked, rest.written
            self._kept_attempts = len(jobs)
            self._old_from = self._old_offset = rest.read
            return True

    def _replace(self, new: Path) -> None:
        """journal.new renamed over the journal (linked as journal.old), and the server's descriptor moved to it."""
        fd = os.open(new, os.O_WRONLY | os.O_APPEND)  # (before the rename: the new file's inode, whatever happens)
        try:
            try:
                os.replace(new, self.path)
            except OSError:
                self.old_path.unlink()  # (the journal's own inode: nothing was moved)
                raise
            self._out.swap(fd)
        finally:
            os.close(fd)
        with contextlib.suppress(OSError):  # (renamed already: the old inode holds every line until the release)
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
            self._rescan(job, self.path, 0, self._offset)
            if self._old_from is not None:  # (a late line of journal.old read before)
                self._rescan(job, self.old_path, self._old_from, self._old_offset)

    def _rescan(self, job: str, path: Path, offset: int, end: int) -> None:
        """Read again the lines of `job` among those of `path` read so far (by chunks, searched for the job's keys: a
        sweep asking about a few attempts of this server does not parse every line it ran since the start)."""
        needle, carry = f" {job}#".encode(), b""
        with open(path, "rb") as f:
            f.seek(offset)
            while offset < end:
                chunk = f.read(min(RESCAN_CHUNK, end - offset))
                if not chunk:
                    return
                offset += len(chunk)
                data = carry + chunk
                cut = data.rfind(b"\n") + 1
                data, carry = data[:cut], data[cut:]
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
                unread = self._out.size() > self._offset
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
        return (line for line in self._lines(path, offset) if _job_of_line(line) in self._jobs)

    @staticmethod
    def _lines(path: Path, offset: int) -> Iterator[bytes]:
        """The complete lines of `path` from `offset`."""
        with open(path, "rb") as f:
            f.seek(offset)
            for line in f:
                if not line.endswith(b"\n"):
                    return
                yield line

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
        elif kind == "queued" and value:
            self.arns[key] = value
            self.queued.add(key)
        elif kind == "stop" and key not in self.stops:
            try:
                reason = json.loads(value)
            except ValueError:
                return True
            if isinstance(reason, str):
                self.stops[key] = (reason, len(self.exits))
        return True

    def close(self) -> None:
        """No live compaction from now on (one running is waited for, bounded: its journal.old, if left, is the next
        start's to merge), and the server's descriptor closed."""
        self._closing = True
        self.wait_compacted(CLOSE_WAIT_S)
        self._out.close()
