"""One `batchplane up` per state directory.

Everything a local server keeps in memory assumes it is the store's only writer: the dispatcher's capacity in use
and kept RUNNABLE fronts, the lists of queues and compute environments, the launcher's attempts in progress. And the
recovery at start treats every attempt it finds running as its own to settle: a second server on the same directory
would fail the first one's running jobs as lost hosts, or run them twice. So the first server holds an exclusive
`flock` on `STATE_DIR/lock` for as long as it runs; the kernel releases it when the process ends, however it ends
(a SIGKILLed server's restart is never refused). The descriptor is not inherited by jobs (Python opens files
non-inheritable, and jobs are spawned with close_fds), so a job that outlives its server does not hold it.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path

LOCK_FILE = "lock"


class StateDirInUse(Exception):
    """Another server (of this process or another one) holds the state directory."""


class StateLock:
    def __init__(self, fd: int) -> None:
        self._fd: int | None = fd

    @classmethod
    def acquire(cls, state_dir: Path) -> StateLock:
        """The state directory's lock, or StateDirInUse naming the holder's pid (as it wrote it, if it could)."""
        path = state_dir / LOCK_FILE
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip()
            os.close(fd)
            by = f" by process {holder}" if holder.isdigit() else ""
            raise StateDirInUse(
                f"the state directory {state_dir} is in use{by}: one `batchplane up` per state directory "
                "(stop the other server, or give this one its own --state-dir)"
            ) from None
        except BaseException:
            os.close(fd)
            raise
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        return cls(fd)

    def release(self) -> None:
        """Let the directory go (closing the descriptor releases the lock); again: nothing."""
        fd, self._fd = self._fd, None
        if fd is not None:
            with contextlib.suppress(OSError):
                os.ftruncate(fd, 0)
            os.close(fd)
