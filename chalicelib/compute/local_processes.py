"""What the process launcher's recovery reads besides its journal (compute/local.py `recover`,
compute/local_group.py): the processes an attempt left, by their environment or their pid, and what earlier versions
and the Docker executor recorded of an attempt."""

from __future__ import annotations

import os
import time
from pathlib import Path

# Earlier versions kept the exit status and the pid in each attempt's work dir; recovery still reads them there.
EXIT_FILE = "exit"
PID_FILE = "pid"


def carries(pid: int | str, job_id: str, attempt: int) -> bool:
    """Whether the process was exec'd with the attempt's AWS_BATCH_JOB_ID and AWS_BATCH_JOB_ATTEMPT (Linux /proc; an
    OSError when it is gone or cannot be read)."""
    want = {f"AWS_BATCH_JOB_ID={job_id}".encode(), f"AWS_BATCH_JOB_ATTEMPT={attempt}".encode()}
    return want <= set(Path(f"/proc/{pid}/environ").read_bytes().split(b"\0"))


def processes_of(job_id: str, attempt: int) -> list[int]:
    """Processes started for this attempt, by their environment (Linux only; [] where /proc is missing)."""
    proc = Path("/proc")
    found = []
    for entry in proc.iterdir() if proc.is_dir() else ():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            if carries(entry.name, job_id, attempt):
                found.append(int(entry.name))
        except OSError:
            continue
    return found


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
