"""Starting an attempt's supervisor, and waiting for it and signalling it safely from several threads.

The process is started by `subprocess.Popen`: its own session (so a stop or timeout reaches its whole process
group), stdin from /dev/null, stdout and stderr one pipe read by the caller, no descriptor of the server
(close_fds), SIGPIPE and SIGXFSZ at their defaults.

Tried and dropped (measured, `make bench WORKLOAD=array-1000000`): `os.posix_spawn`. It costs its caller less CPU
per spawn (~100 µs against ~180 µs with Popen, two threads spawning `true`), but it holds the GIL while glibc's
vfork child runs up to its exec; Popen lets other threads run meanwhile. A thread waiting for the GIL while two
threads spawned waited 125-190 µs at the median with posix_spawn against 80 µs with Popen, and the local engine's
dispatcher thread is such a thread: children per second fell from 452 to 331.

`Process` wraps the Popen with one lock that orders reaping and signalling: a `poll` from another thread never reaps
under a waiting `wait_exit`, and `signal_group` never signals once the process was reaped (its pid, which is also
its process group's id, may then be another process's: pids wrap within seconds at array-child spawn rates).
`wait_exit` waits without reaping (waitid WNOWAIT), then reaps under the lock: until then the zombie keeps the
group's id from being reused.
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import subprocess
import threading
import time
from pathlib import Path
from typing import IO

# Signals the server may have been started with ignored, which every job would inherit: `nohup` ignores SIGHUP, and a
# shell without job control starts a background command (`batchplane up &` in a script) with SIGINT and SIGQUIT
# ignored. An ignored disposition survives fork and exec; a handled one is reset to the default at exec. Popen's
# restore_signals resets only SIGPIPE and SIGXFSZ, preexec_fn would cost the vfork, and the supervisor shell cannot
# do it (POSIX: a signal ignored on entry to a non-interactive shell cannot be trapped or reset).
INHERITED_IGNORES = (signal.SIGHUP, signal.SIGINT, signal.SIGQUIT, signal.SIGTERM, signal.SIGUSR1, signal.SIGUSR2)


def _ignored(signum: int, frame: object) -> None:
    """A handler that does nothing: the server still ignores the signal, and its jobs start with it at default."""


def stop_passing_ignored_signals_to_jobs() -> None:
    """Call from the server's main thread before any job starts: each of INHERITED_IGNORES the server was started
    with ignored is handled instead, by a handler that does nothing."""
    for sig in INHERITED_IGNORES:
        if signal.getsignal(sig) == signal.SIG_IGN:
            signal.signal(sig, _ignored)


class Process:
    """A started process: its pid, its output (stdout and stderr together), and its exit status once reaped
    (`returncode`: the exit code, or -N when a signal N ended it, as Popen reports it)."""

    def __init__(self, popen: subprocess.Popen[bytes]) -> None:
        assert popen.stdout is not None
        self._popen = popen
        self.pid = popen.pid
        self.stdout: IO[bytes] = popen.stdout
        self._lock = threading.Lock()

    @property
    def returncode(self) -> int | None:
        return self._popen.returncode

    def poll(self) -> int | None:
        """The exit status if the process has ended (reaping it), else None (also while another thread reaps)."""
        if self._popen.returncode is None and self._lock.acquire(blocking=False):
            try:
                self._popen.poll()
            finally:
                self._lock.release()
        return self._popen.returncode

    def wait_exit(self) -> int:
        """Wait until the process ends; its exit status."""
        if self._popen.returncode is None:
            with contextlib.suppress(ChildProcessError):  # reaped by a poll meanwhile
                os.waitid(os.P_PID, self.pid, os.WEXITED | os.WNOWAIT)  # releases the GIL while it waits
            with self._lock:
                return self._popen.wait()
        return self._popen.returncode

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
            poller.poll(timeout * 1000)  # readable once the process has ended (it is not reaped by this)
        finally:
            os.close(fd)
        return self.poll()

    def signal_group(self, sig: int) -> None:
        """Send `sig` to the process's group (its session, which it leads), unless it was reaped already."""
        with self._lock:
            if self._popen.returncode is None:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(self.pid, sig)


def spawn(argv: list[str], env: dict[str, str], cwd: Path, stdin: int = subprocess.DEVNULL) -> Process:
    """Start `argv` (argv[0] a path, or a program found on env's PATH) in `cwd` with `env`, in a new session, its
    output to a pipe, its input from /dev/null (or the descriptor `stdin`: a runner's, compute/local_runs.py).
    Raises OSError when it cannot be executed."""
    popen = subprocess.Popen(
        argv,
        cwd=cwd,
        env=env,
        stdin=stdin,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    return Process(popen)
