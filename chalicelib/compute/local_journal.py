"""The local launcher's record of its attempts, for recovery after a crash (compute/local.py `recover`).

- The journal (`<state>/work/journal`) is one append-only file for every attempt: "pid <jobId>#<attempt> <pid>",
  written by the server once the process exists, and "exit <jobId>#<attempt> <status>", written by the attempt's
  supervisor when its command ends. Only recovery reads it, from where it last stopped.
- A multi-container attempt (compute/local_group.py) adds "task <jobId>#<attempt> <json>" (task_group.task_label:
  its containers, before any starts), and each member's process is keyed "<jobId>#<attempt>/<container name>"
  (names have no space: domain/ecs_task.py NAME) in its pid and exit lines.
- A stop asked of an attempt (TerminateJob, the attempt's timeout), single- or multi-container, adds
  "stop <jobId>#<attempt> <JSON string: the reason>" before its processes are signalled, so a recovery settles a
  stop that was in flight as the stop's end, as the live launcher (or coordinator) would have.
- An attempt whose pid was never recorded is found by the AWS_BATCH_* variables its processes carry (Linux /proc).
"""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path

# Earlier versions kept the exit status in each attempt's work dir; recovery still reads it there.
EXIT_FILE = "exit"


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
    """The work root's journal: appended to by the server (pids) and by every supervisor (exit statuses); about 100
    bytes per attempt. Only recovery reads it, from where it last stopped."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        self._lock = threading.Lock()
        self._offset = 0  # bytes read so far (complete lines only)
        self.pids: dict[str, int] = {}
        self.exits: dict[str, int] = {}  # in the order they were first written
        self.tasks: dict[str, str] = {}  # a multi-container attempt's task_group.task_label
        self._exit_at: dict[str, int] = {}  # each exit's place among the exits, in journal order
        # an attempt's first stop: its reason, and how many exits the journal held before it (exited_before_stop)
        self.stops: dict[str, tuple[str, int]] = {}

    def record_pid(self, key: str, pid: int) -> None:
        os.write(self._fd, f"pid {key} {pid}\n".encode())  # one write: never interleaved with another line

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

    def refresh(self) -> None:
        with self._lock:
            try:
                unread = os.fstat(self._fd).st_size > self._offset
            except OSError:  # closed
                unread = True
            if unread:  # (else no open: recover() of a multi-container attempt refreshes, then the caller's)
                self._read()

    def _read(self) -> None:
        with open(self.path, "rb") as f:
            f.seek(self._offset)
            data = f.read()
            complete = data[: data.rfind(b"\n") + 1]
            self._offset += len(complete)
            for line in complete.decode("utf-8", "replace").splitlines():
                kind, _, rest = line.partition(" ")
                key, _, value = rest.partition(" ")
                if value.isdigit() and kind == "pid":
                    self.pids[key] = int(value)
                elif value.isdigit() and kind == "exit":
                    self._exit_at.setdefault(key, len(self.exits))
                    self.exits[key] = int(value)
                elif kind == "task" and value:
                    self.tasks[key] = value
                elif kind == "stop" and key not in self.stops:
                    try:
                        reason = json.loads(value)
                    except ValueError:
                        continue
                    if isinstance(reason, str):
                        self.stops[key] = (reason, len(self.exits))

    def close(self) -> None:
        os.close(self._fd)


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
