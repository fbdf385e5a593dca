"""Spawning an attempt's supervisor with `os.posix_spawn`, and waiting for it.

`subprocess.Popen` costs its caller about 150 µs of Python per spawn: it encodes the environment one variable at a
time, builds the argument lists, makes an error pipe and reads it back. For short array children that was a tenth
of the local server's CPU per child (`make bench WORKLOAD=array-1000000`). `os.posix_spawn` is one C call (glibc
clones with CLONE_VFORK and execs), about 60 µs in all. What Popen did for us is done here explicitly:

- stdin is /dev/null; stdout and stderr are one pipe, read by the caller.
- The child gets its own session (`setsid`), so a stop or timeout reaches its whole process group.
- Signals the server ignores or handles are reset to their defaults in the child, and its signal mask is empty,
  as in a fresh container (Popen's `restore_signals` reset only SIGPIPE and SIGXFSZ; a server started with SIGINT
  ignored, e.g. by `nohup ... &`, handed that on to every job).
- No descriptor of the server is inherited. Python opens every descriptor close-on-exec (PEP 446), and so does
  SQLite, but the server may have inherited open descriptors from whatever started it (a shell, a CI runner: the
  tests found two): before its first spawn, every descriptor above 2 is made close-on-exec (`_close_inherited`).
  tests/functional/test_local_launcher.py checks what a job's process sees.
- posix_spawn has no working directory: the supervisor changes to it first (compute/local_supervisor.py
  SUPERVISOR).

`Process.wait` waits on a pidfd (Linux 5.3+) instead of Popen's sleep-and-poll loop; where there is none, it polls.
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import threading
import time
from typing import IO

# Reset to SIG_DFL in the child: everything the server may ignore or handle.
_DEFAULT_SIGNALS = tuple(
    s for s in (signal.SIGHUP, signal.SIGINT, signal.SIGQUIT, signal.SIGTERM, signal.SIGPIPE, signal.SIGXFSZ) if s
)


class Process:
    """A spawned process: its pid, its output (stdout and stderr together), and its exit status once reaped
    (`returncode`: the exit code, or -N when a signal N ended it, as Popen reports it).

    One lock orders reaping and signalling, as Popen's `_waitpid_lock` did and more: a `poll` from another thread
    never reaps under a waiting `wait_exit` (which would then lose the status), and `signal_group` never signals
    once the process was reaped (its pid, which is also its process group's id, may then be another process's:
    pids wrap within seconds at array-child spawn rates). `wait_exit` waits without reaping, then reaps under the
    lock: until then the zombie keeps the group's id from being reused."""

    def __init__(self, pid: int, stdout: IO[bytes]) -> None:
        self.pid = pid
        self.stdout = stdout
        self.returncode: int | None = None
        self._lock = threading.Lock()

    def poll(self) -> int | None:
        """The exit status if the process has ended (reaping it), else None (also while another thread reaps)."""
        if self.returncode is None and self._lock.acquire(blocking=False):
            try:
                self._reap(os.WNOHANG)
            finally:
                self._lock.release()
        return self.returncode

    def wait_exit(self) -> int:
        """Wait until the process ends; its exit status."""
        if self.returncode is None:
            with contextlib.suppress(ChildProcessError):  # reaped by a poll meanwhile
                os.waitid(os.P_PID, self.pid, os.WEXITED | os.WNOWAIT)  # releases the GIL while it waits
            with self._lock:
                self._reap(0)
        assert self.returncode is not None
        return self.returncode

    def wait(self, timeout: float) -> int | None:
        """Wait until the process ends and return its exit status; None if it still runs after `timeout` s."""
        if self.poll() is not None:
            return self.returncode
        try:
            fd = os.pidfd_open(self.pid)
        except (AttributeError, OSError):  # no pidfd here: poll
            deadline = time.monotonic() + timeout
            while self.poll() is None and time.monotonic() < deadline:
                time.sleep(0.001)
            return self.returncode
        try:
            poller = select.poll()
            poller.register(fd, select.POLLIN)
            poller.poll(timeout * 1000)  # readable once the process has ended
        finally:
            os.close(fd)
        return self.poll()

    def signal_group(self, sig: int) -> None:
        """Send `sig` to the process's group (its session, which it leads), unless it was reaped already."""
        with self._lock:
            if self.returncode is None:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(self.pid, sig)

    def _reap(self, options: int) -> None:
        """Under the lock."""
        if self.returncode is not None:
            return
        try:
            pid, status = os.waitpid(self.pid, options)
        except ChildProcessError:  # reaped by someone else: its status is lost (Popen reports 0 too)
            self.returncode = 0
            return
        if pid == self.pid:
            self.returncode = os.waitstatus_to_exitcode(status)


_inherited_closed = False
_inherited_lock = threading.Lock()


def _close_inherited() -> None:
    """Make every open descriptor above 2 close-on-exec, once per process (Popen's close_fds closed them in each
    child instead, at a cost per spawn). Descriptors opened later are close-on-exec already (PEP 446)."""
    global _inherited_closed
    with _inherited_lock:
        if _inherited_closed:
            return
        try:
            fds = [int(name) for name in os.listdir("/proc/self/fd")]
        except OSError:  # no /proc: every descriptor up to the limit
            fds = list(range(3, os.sysconf("SC_OPEN_MAX") if hasattr(os, "sysconf") else 1024))
        for fd in fds:
            if fd > 2:
                with contextlib.suppress(OSError):  # closed since it was listed (or the listing's own)
                    os.set_inheritable(fd, False)
        _inherited_closed = True


def spawn(argv: list[str], env: dict[str, str]) -> Process:
    """Start `argv[0]` (a path) with `argv` and `env`, in a new session, output to a pipe. Raises OSError when it
    cannot be executed."""
    if not _inherited_closed:
        _close_inherited()
    read, write = os.pipe()  # both close-on-exec; the DUP2 below makes the child's copies 1 and 2 inheritable
    try:
        null = os.open(os.devnull, os.O_RDWR | os.O_CLOEXEC)  # read-write, as Popen's DEVNULL
        try:
            pid = os.posix_spawn(
                argv[0],
                argv,
                env,
                file_actions=[
                    (os.POSIX_SPAWN_DUP2, null, 0),
                    (os.POSIX_SPAWN_DUP2, write, 1),
                    (os.POSIX_SPAWN_DUP2, write, 2),
                ],
                setsid=True,
                setsigdef=_DEFAULT_SIGNALS,
                setsigmask=(),
            )
        finally:
            os.close(null)
    except BaseException:
        os.close(read)
        with contextlib.suppress(OSError):
            os.close(write)
        raise
    os.close(write)
    return Process(pid, os.fdopen(read, "rb"))
