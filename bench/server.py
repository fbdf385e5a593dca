"""A fresh `batchplane up` per workload: start it on a free port in a temporary state directory, wait (bounded)
until it answers, stop it with SIGTERM (SIGKILL after a grace period) and delete the directory."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import TracebackType

START_TIMEOUT_S = 30.0
STOP_GRACE_S = 10.0
# The server is idle when it used at most IDLE_CPU_S of CPU over IDLE_WINDOW_S: /proc counts in clock ticks (10 ms),
# and an idle server's timers (the trigger scan, once a second) stay well under two ticks per window.
IDLE_WINDOW_S = 0.5
IDLE_CPU_S = 0.02
IDLE_TIMEOUT_S = 120.0
REPO_ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class ServerError(RuntimeError):
    pass


class Server:
    """`with Server() as srv:` ... `srv.endpoint`. Optionally wraps the server in a profiler command prefix
    (e.g. ["py-spy", "record", "-o", "out.svg", "--"]) for diagnosis."""

    def __init__(
        self,
        *,
        wrap: list[str] | None = None,
        keep_dir: bool = False,
        profile_out: Path | None = None,
        profile_gil: bool = False,
        profile_idle: bool = False,
        args: list[str] | None = None,
        module: str = "app",
    ) -> None:
        self.args = args or []  # more `batchplane up` options (the executor)
        self.module = module  # what `python -m` runs: app (`batchplane`)
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="batchplane-bench-"))
        self.state_dir = self.dir / "state"
        self.log_path = self.dir / "server.log"
        self.wrap = wrap or []
        self.keep_dir = keep_dir
        self.proc: subprocess.Popen[bytes] | None = None
        self.profile_out = profile_out
        self.profile_gil = profile_gil
        self.profile_idle = profile_idle
        self.final_log = ""
        self.outside_signals = 0  # signals the sigwatch shield caught (see bench/sigwatch.py)
        self.died_with: int | None = None  # exit code, when the server exited before it was stopped
        self.profiler: subprocess.Popen[bytes] | None = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        cmd = [
            *self.wrap,
            sys.executable,
            "-m",
            self.module,
            "up",
            "--port",
            str(self.port),
            "--state-dir",
            str(self.state_dir),
            "--executor",
            "process",
            *self.args,  # later options win: a workload's --executor
        ]
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(
                cmd, cwd=REPO_ROOT, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
            )
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise ServerError(f"server exited with {self.proc.returncode} before answering: {self.log_tail()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    self._start_profiler()
                    return
            except OSError:
                time.sleep(0.05)
        raise ServerError(f"server did not answer on port {self.port} within {START_TIMEOUT_S:.0f}s: {self.log_tail()}")

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def memory_kib(self) -> dict[str, int]:
        """The server's resident set now (VmRSS) and at its peak so far (VmHWM), in KiB, from /proc; {} if
        unavailable."""
        out: dict[str, int] = {}
        try:
            for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
                key, _, value = line.partition(":")
                if key in ("VmRSS", "VmHWM"):
                    out[key] = int(value.split()[0])
        except (OSError, ValueError, IndexError):
            return {}
        return out

    def cpu_seconds(self) -> float:
        """User + system CPU time of the server process (its threads included), from /proc; 0.0 if unavailable."""
        return sum(self.cpu_split())

    def cpu_split(self) -> tuple[float, float]:
        """(user, system) CPU seconds of the server process, its threads included; zeros if unavailable."""
        try:
            fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
            tick = os.sysconf("SC_CLK_TCK")
            return int(fields[11]) / tick, int(fields[12]) / tick
        except (OSError, ValueError, IndexError):
            return 0.0, 0.0

    def wait_idle(
        self, window_s: float = IDLE_WINDOW_S, cpu_s: float = IDLE_CPU_S, timeout: float = IDLE_TIMEOUT_S
    ) -> float:
        """Wait (bounded) until the server has used at most `cpu_s` of CPU over `window_s`: work it deferred for an
        earlier phase (e.g. notifying the dependents of 10,000 cancelled children, on its work queue) is done and
        will not run during the next measurement. Returns the seconds waited (at least `window_s`)."""
        t0 = time.monotonic()
        before = self.cpu_seconds()
        while True:
            time.sleep(window_s)
            now = self.cpu_seconds()
            if now - before <= cpu_s:
                return time.monotonic() - t0
            if time.monotonic() - t0 > timeout:
                raise ServerError(f"server still busy after {timeout:.0f}s ({now - before:.2f} CPU s in {window_s} s)")
            before = now

    def log_tail(self, n: int = 800) -> str:
        if not self.log_path.exists():
            return self.final_log[-n:]
        try:
            return self.log_path.read_text(errors="replace")[-n:]
        except OSError:
            return ""

    def _start_profiler(self) -> None:
        """Diagnosis only: attach py-spy (collapsed stacks, all threads, GIL holders and idle excluded)."""
        if self.profile_out is None:
            return
        py_spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
        cmd = [py_spy, "record", "--pid", str(self.pid), "--format", "raw", "--rate", "250", "--threads"]
        if self.profile_idle:  # waiting threads too: where a serial thread's wall time goes, waits included
            cmd.append("--idle")
        if self.profile_gil:  # only the thread holding the GIL: where the server's Python CPU goes
            cmd.append("--gil")
        cmd += ["--output", str(self.profile_out)]
        self.profiler = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(0.5)

    def _stop_profiler(self) -> None:
        if self.profiler is not None and self.profiler.poll() is None:
            self.profiler.send_signal(signal.SIGINT)
            try:
                self.profiler.wait(30)
            except subprocess.TimeoutExpired:
                self.profiler.kill()
                self.profiler.wait(5)

    def exited(self) -> int | None:
        """The server's exit code if it has exited (it should not have, before stop)."""
        return None if self.proc is None else self.proc.poll()

    def stop(self) -> None:
        self._stop_profiler()
        if self.proc is not None and self.proc.poll() is not None and self.died_with is None:
            self.died_with = self.proc.returncode
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(STOP_GRACE_S)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.final_log = self.log_tail(2000)
        with contextlib.suppress(OSError):
            self.outside_signals = self.log_path.read_text(errors="replace").count("sigwatch: got signal")
        if not self.keep_dir:
            shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> Server:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
