"""What lets the Docker executor find its containers again after a restart (the recovery protocol of ADR 0016):
the labels every container of a state carries, the journal and the markers of the attempts it launched, created,
started and ended, and where a re-attached container's log picks up. Shared by compute/docker.py (single
containers) and compute/docker_group.py (multi-container tasks)."""

from __future__ import annotations

import contextlib
import json
import os
import threading
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from chalicelib.compute.local import DOCKER_JOURNAL
from chalicelib.compute.logs_port import LogStore
from chalicelib.domain.reasons import host_terminated_reason

LABEL_JOB = "batchplane.job-id"
LABEL_ATTEMPT = "batchplane.attempt"
LABEL_STATE = "batchplane.state-dir"
LABEL_STREAM = "batchplane.log-stream"
# Containers created before docs/adr/0025 carry their attempt's timeout in label "batchplane.timeout"; it is ignored
# (the control plane times the attempt from its startedAt).
OOM_REASON = "OutOfMemoryError: Container killed due to memory usage"
OOM_EXIT = 137
LOST_HOST = host_terminated_reason("local")
JOURNAL = DOCKER_JOURNAL
MARKS = "docker-attempts"  # the attempts' markers (Journal)
LEGACY = ".journalled"  # in MARKS: how many bytes of the journal are of attempts without markers
LAUNCHED, STARTED = 0, 1  # an attempt's state: the size of its marker (longer: its first byte, below)
STOPPED_EARLY = b"L"  # a marker's first byte: LAUNCHED, and a stop kept after it (b"\0": STARTED)


class Journal:
    """What the Docker executor remembers of its attempts on disk, so that no attempt ever runs twice: across
    restarts, and after the attempt has ended (the launcher keeps in memory only the attempts in progress).

    - `<work root>/docker-journal`: "created <key>" before an attempt's container can exist, "started <key>" before
      it can run, one append each (the process executor reads the `created` lines too: compute/local.py). Only
      recovery reads the `started` lines, and only those of attempts without a marker (below).
    - `<work root>/docker-attempts/<key>`: one marker file per attempt (docs/adr/0033), made exclusively by its launch
      (a second launch finds it: a launch is idempotent after the attempt's end too, when nothing of it is left in
      memory or in the engine). Its size is the attempt's state, set with one truncate: LAUNCHED (0: nothing of it
      ran, and no end of it is recorded; a crash now relaunches it under the same key, unless it was stopped: below),
      STARTED (1: it may have run, or its end is recorded: never launched again).
      The file system is the index: a question costs one stat, whatever the number of attempts. A marker goes with
      its job (`forget`, control/retention.py), as the process executor's work dirs do.
      A stop asked of the attempt (TerminateJob, its timeout) is written after the state byte, before the stop is
      sent: "<epoch seconds> <JSON string: the reason>\n" (`record_stop`), so that a restart ends the attempt as the
      live watcher would (`stop_of`): one re-attaching to its containers with the stop's reason, one that finds it
      never started as stopped before it started (never run, nor launched again). The state byte is then a zero
      (STARTED, as the truncate writes it) or STOPPED_EARLY (LAUNCHED: the stop came before the start); a size of 0
      or 1 is the state itself. Marking the attempt started keeps the stop (the byte is overwritten); recording the
      end (`ended`) truncates it away.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        self.marks = path.parent / MARKS
        if not self.marks.is_dir():
            # The attempts journalled so far (by a version without markers) are known by their `started` lines only;
            # every later one has a marker. How much of the journal is theirs is kept with the markers, all made in
            # one rename (a marker dir is complete or absent). Nothing is written to the journal: a non-empty one
            # means containers were created (runtime/executor.py).
            staging = self.marks.with_name(f"{MARKS}.new")
            staging.mkdir(exist_ok=True)
            (staging / LEGACY).write_text(str(os.fstat(self.fd).st_size))
            try:
                os.rename(staging, self.marks)
            except OSError:
                if not self.marks.is_dir():
                    raise
        self._legacy: set[str] | None = None  # the `started` lines of attempts without markers, read at first need
        self._lock = threading.Lock()  # a marker's state and stop are read then written: one writer at a time

    def marker(self, key: str) -> Path:
        return self.marks / key.replace(":", "_")  # (job ids are UUIDs, `:index` for array children, `#n` for nodes)

    def launching(self, key: str) -> bool:
        """Make the attempt's marker (LAUNCHED); False when it exists: the attempt was launched before."""
        try:
            os.close(os.open(self.marker(key), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        except FileExistsError:
            return False
        return True

    def created(self, key: str) -> None:
        os.write(self.fd, f"created {key}\n".encode())

    def started(self, key: str) -> None:
        # The marker first: a crash between the two leaves STARTED, read as "may have run" (as the line would be).
        self._mark_started(key, keep_stop=True)  # (a stop asked before the start still decides its end)
        os.write(self.fd, f"started {key}\n".encode())

    def ended(self, key: str) -> None:
        """The attempt's end is recorded: STARTED, for one that never started too (it failed to start, or was stopped
        first): a recovery must not launch it again."""
        self._mark_started(key, keep_stop=False)

    def _mark_started(self, key: str, *, keep_stop: bool) -> None:
        # Made when missing: an attempt of an earlier version (or of the process executor) recovered here has none.
        with self._lock:
            fd = os.open(self.marker(key), os.O_RDWR | os.O_CREAT, 0o600)
            try:
                if os.fstat(fd).st_size > STARTED:  # a stop is kept: the state byte says STARTED, one write
                    os.pwrite(fd, b"\0", 0)
                    if keep_stop:
                        return
                os.ftruncate(fd, STARTED)
            finally:
                os.close(fd)

    def record_stop(self, key: str, reason: str) -> None:
        """Keep the first stop asked of the attempt (a container can't be relabelled: its marker holds it)."""
        with self._lock:
            try:
                fd = os.open(self.marker(key), os.O_RDWR)
            except FileNotFoundError:
                return  # no marker: an attempt of an earlier version (nothing kept: its restart ends it as before)
            try:
                line = f"{time.time():.6f} {json.dumps(reason)}\n".encode()
                size = os.fstat(fd).st_size
                if size == LAUNCHED:  # not started yet: LAUNCHED, with the stop (one write)
                    os.pwrite(fd, STOPPED_EARLY + line, 0)
                elif size == STARTED:  # (longer: a stop is kept already)
                    os.pwrite(fd, line, STARTED)
            finally:
                os.close(fd)

    def stop_of(self, key: str) -> tuple[float, str] | None:
        """The stop kept for the attempt (`record_stop`): when it was asked (epoch seconds) and its reason; None
        without one (or a line cut short by a crash)."""
        try:
            data = self.marker(key).read_bytes()[STARTED:]
        except OSError:
            return None
        at, _, text = data.decode("utf-8", "replace").partition(" ")
        if not text.endswith("\n"):
            return None
        try:
            when, reason = float(at), json.loads(text)
        except ValueError:
            return None
        return (when, reason) if isinstance(reason, str) else None

    def state(self, key: str) -> int | None:
        """LAUNCHED or STARTED; None when the attempt has no marker."""
        try:
            size = os.stat(self.marker(key)).st_size
            if size <= STARTED:
                return size
            with open(self.marker(key), "rb") as f:  # a stop is kept: the first byte tells
                return LAUNCHED if f.read(1) == STOPPED_EARLY else STARTED
        except FileNotFoundError:
            return None

    def forget(self, key: str) -> None:
        """Remove the attempt's marker: its job leaves the store, or it never ran and is launched again."""
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.marker(key))

    def was_started(self, key: str) -> bool:
        """Whether the attempt's container may have been started (or its end is recorded): its marker says so; an
        attempt without a marker (journalled by a version without markers) if its `started` line, written before
        the start, is in the journal."""
        state = self.state(key)
        if state is not None:
            return state >= STARTED
        if self._legacy is None:  # read once; bounded by what that version journalled, never growing
            self._legacy = set()
            try:
                size: int | None = int((self.marks / LEGACY).read_text())
            except (OSError, ValueError):
                size = None  # (unknown: the whole journal, as before markers)
            with contextlib.suppress(OSError), open(self.path, "rb") as f:
                for line in f.read(size if size is not None else -1).splitlines():
                    if line.startswith(b"started "):
                        self._legacy.add(line[8:].decode("utf-8", "replace"))
        return key in self._legacy

    def close(self) -> None:
        os.close(self.fd)


def last_logged(logs: LogStore, stream: str) -> int | None:
    """The timestamp of the last line recorded in `stream`: a re-attached container's log goes on after it."""
    for name, _, _, last in logs.streams(stream):
        if name == stream:
            return last
    return None


def stopped_after(info: dict[str, Any], stop: tuple[float, str] | None) -> str | None:
    """The reason of the stop `stop` (Journal.stop_of) if it decides the end of the container `info` (an inspect):
    the container still runs, or it finished after the stop was asked (an earlier end was its own, as live)."""
    if stop is None:
        return None
    state = info.get("State") or {}
    if state.get("Status") in ("running", "paused", "restarting", "created"):
        return stop[1]
    try:
        finished = datetime.fromisoformat(str(state.get("FinishedAt")).replace("Z", "+00:00")).timestamp()
    except ValueError:
        return stop[1]  # (unknown: the stop, asked while it ran, is taken to have ended it)
    return stop[1] if finished >= stop[0] else None
