"""Array children on the process executor run on kept runners, not on a process spawned by the server each
(docs/adr/0039).

A runner is the single-container attempt's `sh` supervisor (compute/local_supervisor.py) in a loop: it reads one
child at a time from its stdin, runs the command in the child's working directory with the child's AWS_BATCH_JOB_ID,
AWS_BATCH_JOB_ARRAY_INDEX and AWS_BATCH_JOB_ATTEMPT, journals its exit as the supervisor does, and tells the server
on its stdout. Children of one array share their command and the rest of their environment, so a runner started
for one serves the next: the server writes a line to a pipe instead of spawning a process (ADR 0039: why).

What does not change (the same journal, so `LocalLauncher.recover` is unchanged):
- The attempt's work directory is created exclusively by the server before the runner is told: a child launches
  once, across restarts too.
- "pid <key> <pid>" and "arn <key> <arn>" are journaled by the server before the child is handed over, with the
  runner's pid: the runner leads its own session, so the child is in the runner's process group, which a recovery
  kills as it kills a supervisor's. The runner journals "exit <key> <status>" when the command ends, before it
  reports the end, as the supervisor does; a stop is journaled before it is sent.
- A stop signals the runner's process group once its command runs (`wait_for_command`): the runner's trap keeps
  the runner alive, so the exit is recorded and reported and the runner serves the next child. The grace period's
  SIGKILL ends the runner too: its child's end is then its exit status (137), and a new runner serves the array.

The protocol. A runner serves the children of one array (its job id is an argument). Server to runner: a nonce
line first, then one line per child, "<index> <attempt>" (the runner derives the job id, key and work dir from them:
compute/local_supervisor.py RUNNER says why the line is no longer). Runner to server: the
commands' output, and between them "\\036<nonce> S <key>" before a command starts and "\\036<nonce> E <key>
<status>" after it ended ("F" instead of "S" when its work dir is gone). The nonce, read from the pipe, keeps a job
from forging a marker in its output. The server gives a runner its next child only once the runner reported the
last one's end, so a signal to its group after that reaches the runner alone.

Limits: the output of a process a child left running in the background, written after the child ended, is logged
to the stream of the runner's next child (a spawned attempt's pipe would have held the attempt open instead).
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import select
import signal
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from chalicelib.compute.local_supervisor import (
    MARK,
    PER_CHILD,
    RUNNER,
    START_REPORT_S,
    as_program,
    exit_code_of,
    holds_command,
    wait_for_command,
)
from chalicelib.compute.port import TaskSpec
from chalicelib.compute.spawn import Process, spawn
from chalicelib.domain.jobs import TIMEOUT_REASON, split_child_id
from chalicelib.domain.lifecycle import TaskStarted, TaskStopped
from chalicelib.domain.nodes import split_node_id

if TYPE_CHECKING:
    from chalicelib.compute.local import LocalLauncher

log = logging.getLogger("batchplane.launcher")

IDLE_SECONDS = 30.0  # a runner with no child for this long is told to end (its stdin closed)


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


def eligible(spec: TaskSpec, env: dict[str, str], workdir: Path, root: Path) -> str | None:
    """The array (job id) of a single-container array child of a job (not a multi-node job's node), without AWS
    credentials to grant (a grant is per attempt), whose work dir is where a runner of its array finds it (RUNNER);
    None for any other attempt."""
    parsed = split_child_id(spec.job_id)
    if (
        parsed is None
        or env.get("AWS_BATCH_JOB_ARRAY_INDEX") != str(parsed[1])
        or spec.containers
        or spec.nodes
        or spec.container.get("jobRoleArn")
        or split_node_id(spec.job_id) is not None
        or not root.is_absolute()
        or any(c in parsed[0] for c in ":/ \n")
        or workdir != root / f"{parsed[0]}_{parsed[1]}" / str(spec.attempt)
    ):
        return None
    return parsed[0]


@dataclass(frozen=True)
class RunnerWriter:
    """A busy runner as a writer of the journal (a live compaction's `Launches.writers`): it may still append to
    the inode the journal's path named when this was taken until it holds its command (it appends only after the
    command ends, by the path), reports an end (its exit line was written before), or is gone. An idle runner is
    not one: it reported its last end, and waits for its next child."""

    runner: _Runner
    ends: int

    def may_append(self) -> bool:
        r = self.runner
        if r.gone or r.ends > self.ends or r.proc.returncode is not None:
            return False
        return not holds_command(r.pid)


@dataclass
class _Child:
    spec: TaskSpec
    stop_reason: str | None = None
    started: bool = False  # its "S" came: a stop is sent once its command runs
    timers: list[threading.Timer] = field(default_factory=list)


class _Runner:
    def __init__(self, proc: Process, shape: tuple[object, ...], nonce: str, stdin: int) -> None:
        self.proc = proc
        self.stdin = stdin  # the write end of its stdin (-1 once closed)
        self.shape = shape
        self.prefix = MARK + nonce.encode() + b" "
        self.child: _Child | None = None  # the child it runs (or was handed and has not reported yet)
        self.idle_since = time.monotonic()
        self.gone = False  # its output ended: it exited (or was killed)
        self.lost = False  # shutdown: its child's end is not reported
        self.stdin_lock = threading.Lock()
        self.ends = 0  # ends reported ("E", "F"): RunnerWriter

    @property
    def pid(self) -> int:
        return self.proc.pid


class Runners:
    """The runners of one launcher (its `_runs`): idle ones by shape, busy ones by their child's key."""

    def __init__(self, launcher: LocalLauncher) -> None:
        self.launcher = launcher
        self._lock = threading.Lock()
        self._idle: dict[tuple[object, ...], list[_Runner]] = {}
        self._busy: dict[str, _Runner] = {}
        self._checked = time.monotonic()
        self._timer: threading.Timer | None = None
        self._run_shapes: dict[str, tuple[object, ...]] = {}  # a run with a child launched -> its runners' shape

    # -- launch -------------------------------------------------------------------------------------------------

    def launch(self, spec: TaskSpec, workdir: Path, env: dict[str, str]) -> bool:
        """Hand the attempt to a runner of its shape (a new one if none is idle); False when it is not for a
        runner (the caller spawns it). The caller created its work dir."""
        root = self.launcher.work_root
        array = eligible(spec, env, workdir, root)
        if array is None:
            return False
        shape = (array, tuple(spec.command), tuple(sorted((k, v) for k, v in env.items() if k not in PER_CHILD)))
        child = _Child(spec)
        while True:
            runner = self._take(shape)
            if runner is None:
                try:
                    runner = self._start(shape, array, list(spec.command), env)
                except OSError as e:
                    self.launcher.failed_to_start(spec, f"CannotStartContainerError: {e.strerror or e}: /bin/sh")
                    return True
            with self._lock:
                if runner.gone:  # it ended since it was taken: its reader has settled it already
                    continue
                runner.child = child
                self._busy[spec.key] = runner
            break
        if spec.run is not None:
            with self._lock:
                self._run_shapes[spec.run] = shape
        self._tell(runner, spec)
        self._retire_idle()
        return True

    def _tell(self, runner: _Runner, spec: TaskSpec) -> None:
        self.launcher.journal.record_pid(spec.key, runner.pid, spec.local_task_arn)
        index = spec.environment["AWS_BATCH_JOB_ARRAY_INDEX"]  # (`eligible`: the index of its job id)
        self._send(runner, f"{index} {spec.attempt}\n")  # (a runner gone: its reader settles it)

    # -- a run's children (domain/runs.py, docs/adr/0040) --------------------------------------------------------

    def take_for_run(self, spec: TaskSpec) -> _Runner | None:
        """An idle runner of the shape the first child of `spec`'s run was launched with (the children of a run
        share their command and their environment but for PER_CHILD), taken for `spec`; None when there is none."""
        assert spec.run is not None
        with self._lock:
            shape = self._run_shapes.get(spec.run)
        return None if shape is None else self._take(shape)

    def give_back(self, runner: _Runner) -> None:
        """A runner taken (`take_for_run`) and not given its child after all."""
        with self._lock:
            if not runner.gone:
                self._idle.setdefault(runner.shape, []).append(runner)

    def hand(self, runner: _Runner, spec: TaskSpec) -> None:
        """Give a runner taken for `spec` (`take_for_run`) its child, whose work dir was created."""
        with self._lock:
            gone = runner.gone  # it ended since it was taken: the child goes the way of a first launch
            if not gone:
                runner.child = _Child(spec)
                self._busy[spec.key] = runner
        if gone:
            self._relaunch(spec)
        else:
            self._tell(runner, spec)

    def _relaunch(self, spec: TaskSpec) -> None:
        workdir = self.launcher.work_dir(spec.job_id, spec.attempt)
        env = self.launcher.environment(spec, workdir)
        if env is not None and not self.launch(spec, workdir, env):
            self.launcher.failed_to_start(spec, "CannotStartContainerError: the runner of its run ended")

    def run_ended(self, run: str) -> None:
        """A run has no child left: what was kept for it goes."""
        with self._lock:
            self._run_shapes.pop(run, None)

    def _take(self, shape: tuple[object, ...]) -> _Runner | None:
        with self._lock:
            idle = self._idle.get(shape)
            while idle:
                runner = idle.pop()
                if not runner.gone:
                    return runner
        return None

    def _start(self, shape: tuple[object, ...], array: str, command: list[str], env: dict[str, str]) -> _Runner:
        base = {k: v for k, v in env.items() if k not in PER_CHILD}
        journal, root = str(self.launcher.journal.path), str(self.launcher.work_root)
        read, write = os.pipe()
        try:
            argv = ["/bin/sh", "-c", RUNNER, "batchplane-runner", journal, root, array, *as_program(command, base)]
            proc = spawn(argv, base, self.launcher.work_root, stdin=read)
        except OSError:
            os.close(write)
            raise
        finally:
            os.close(read)
        nonce = secrets.token_hex(12)
        runner = _Runner(proc, shape, nonce, write)
        if not self._send(runner, nonce + "\n"):
            raise OSError("the runner ended at its start")
        self.launcher.workers.run(f"runner-{proc.pid}", lambda: self._read(runner))
        return runner

    def _send(self, runner: _Runner, line: str) -> bool:
        try:
            with runner.stdin_lock:
                os.write(runner.stdin, line.encode())  # (a line is far below PIPE_BUF: one write, whole)
        except OSError:
            return False
        return True

    def _retire_idle(self) -> None:
        """At most once a second: runners idle for IDLE_SECONDS are told to end."""
        now = time.monotonic()
        if now - self._checked < 1.0:
            return
        self._checked = now
        old: list[_Runner] = []
        with self._lock:
            for shape, idle in list(self._idle.items()):
                keep = [r for r in idle if now - r.idle_since < IDLE_SECONDS and not r.gone]
                old += [r for r in idle if r not in keep]
                if keep:
                    self._idle[shape] = keep
                else:
                    del self._idle[shape]
        for runner in old:
            self._close(runner)

    def _close(self, runner: _Runner) -> None:
        with runner.stdin_lock:
            if runner.stdin >= 0:
                with contextlib.suppress(OSError):
                    os.close(runner.stdin)
                runner.stdin = -1

    # -- stop -----------------------------------------------------------------------------------------------------

    def stop(self, key: str, reason: str) -> bool:
        """A stop of an attempt a runner has; False when none has it."""
        with self._lock:
            runner = self._busy.get(key)
            child = runner.child if runner is not None else None
            if runner is None or child is None or child.spec.key != key:
                return False
            if child.stop_reason is not None:
                return True  # stopping already (its SIGKILL is armed)
            child.stop_reason = reason
            with contextlib.suppress(OSError):  # journaled before it can be sent (LocalLauncher.stop)
                self.launcher.journal.record_stop(key, reason)
            if not child.started:
                return True  # sent once its "S" comes
        self._terminate_later(runner, child)
        return True

    def _terminate_later(self, runner: _Runner, child: _Child) -> None:
        """`_terminate` on a worker: it may wait for the command's exec (the caller may be the dispatcher thread)."""
        self.launcher.workers.run(f"stop-{child.spec.key}", lambda: self._terminate(runner, child))

    def _terminate(self, runner: _Runner, child: _Child) -> None:
        wait_for_command(runner.proc)  # (the trap's race with a fork that has not exec'd: local_supervisor.py)
        self._signal(runner, child, signal.SIGTERM)
        timer = threading.Timer(
            min(self.launcher.grace_seconds, threading.TIMEOUT_MAX),
            self._signal,
            args=(runner, child, signal.SIGKILL),
        )
        timer.daemon = True
        child.timers.append(timer)
        timer.start()

    def _signal(self, runner: _Runner, child: _Child, sig: signal.Signals) -> None:
        """Signal the runner's group if it still runs this child (it gets no other until this one's end is read)."""
        with self._lock:
            if runner.child is child:
                runner.proc.signal_group(sig)

    # -- the runner's output --------------------------------------------------------------------------------------

    def _read(self, runner: _Runner) -> None:
        """The runner's reader (on a launcher worker): its markers become the children's events, the rest their
        log lines. A start is reported with its end when that comes within START_REPORT_S (one write for both)."""
        fd = runner.proc.stdout.fileno()
        poller = select.poll()
        poller.register(fd, select.POLLIN)
        buffer = b""
        pending: tuple[_Child, float] | None = None  # a start not reported yet, and until when it waits
        try:
            while True:
                wait = -1 if pending is None else max(0.0, pending[1] - time.monotonic()) * 1000
                if pending is not None and not poller.poll(wait):
                    self._started(runner, pending[0])
                    pending = None
                    continue
                chunk = os.read(fd, 65536)
                if not chunk:
                    break
                lines = (buffer + chunk).split(b"\n")
                buffer = lines.pop()
                for line in lines:
                    pending = self._line(runner, line, pending)
        except Exception:  # a failure here must not leave the child unreported: its end is settled below
            log.exception("reading the runner %d failed", runner.pid)
        finally:
            self._ended(runner, buffer, pending)

    def _line(self, runner: _Runner, line: bytes, pending: tuple[_Child, float] | None) -> tuple[_Child, float] | None:
        at = line.find(runner.prefix)
        if at < 0:
            self._log(runner, line)
            return pending
        if at > 0:
            self._log(runner, line[:at])  # output without a newline before the marker
        kind, *fields = line[at + len(runner.prefix) :].decode("utf-8", "replace").split(" ")
        child = runner.child
        if child is None or not fields or fields[0] != child.spec.key:
            log.error("runner %d: unexpected %r", runner.pid, line)
            return pending
        if kind == "S":
            with self._lock:
                child.started = True
                stop = child.stop_reason is not None
            if stop:
                self._started(runner, child)
                self._terminate_later(runner, child)
                return None
            return child, time.monotonic() + START_REPORT_S
        # Idle again before the next child of the run is started (compute/local.py `next_of_run`): it is handed to
        # this runner.
        if kind == "F":
            self._finish(runner, child)
            self._idle_again(runner)
            self.launcher.failed_to_start(child.spec, "CannotStartContainerError: the work directory is gone")
            return None
        self._finish(runner, child)
        self._idle_again(runner)
        self.launcher.next_of_run(child.spec.key)  # first: the runner waits for it, the control plane does not
        if pending is not None:
            self._started(runner, child)
        self._stopped(child, int(fields[-1]))
        return None

    def _log(self, runner: _Runner, raw: bytes) -> None:
        child = runner.child
        if child is not None:
            text = raw.decode("utf-8", "replace")
            self.launcher.logs.append(child.spec.log_stream, [(_now_ms(), text)])

    def _started(self, runner: _Runner, child: _Child) -> None:
        if not runner.lost:
            self.launcher.report(child.spec, TaskStarted(child.spec.attempt))

    def _stopped(self, child: _Child, code: int) -> None:
        why = child.stop_reason
        stopped = TaskStopped(child.spec.attempt, code, status_reason=why, timed_out=why == TIMEOUT_REASON)
        self.launcher.report(child.spec, stopped)

    def _finish(self, runner: _Runner, child: _Child) -> None:
        for t in child.timers:
            t.cancel()
        with self._lock:
            self._busy.pop(child.spec.key, None)
            runner.child = None
            runner.ends += 1
        self.launcher.released(child.spec.key)

    def _idle_again(self, runner: _Runner) -> None:
        with self._lock:
            if runner.gone or runner.lost:
                return
            runner.idle_since = time.monotonic()
            self._idle.setdefault(runner.shape, []).append(runner)
            if self._timer is None:  # runners left idle when no launch comes are told to end too
                self._timer = threading.Timer(IDLE_SECONDS, self._retire_later)
                self._timer.daemon = True
                self._timer.start()

    def _retire_later(self) -> None:
        with self._lock:
            self._timer = None
            self._checked = 0.0
        self._retire_idle()
        with self._lock:
            again = self._timer is None and any(self._idle.values())
            if again:
                self._timer = threading.Timer(IDLE_SECONDS, self._retire_later)
                self._timer.daemon = True
                self._timer.start()

    def _ended(self, runner: _Runner, rest: bytes, pending: tuple[_Child, float] | None) -> None:
        """The runner's output ended: it exited (told to, or killed). A child it had ends with its exit status."""
        if rest:
            self._log(runner, rest)
        code = exit_code_of(runner.proc.wait_exit())
        self._close(runner)
        with self._lock:
            runner.gone = True  # from here on no child is handed to it (Runners.launch)
            child = runner.child
        if child is None:
            return
        self._finish(runner, child)
        if runner.lost:
            return  # shutdown: recovery at the next start decides
        if not child.started:  # its command never ran
            why = "CannotStartContainerError: the runner ended before the command started"
            self.launcher.failed_to_start(child.spec, why)
            return
        if pending is not None:
            self._started(runner, child)
        self._stopped(child, code)

    def writers(self) -> list[RunnerWriter]:
        """The busy runners, as writers a live compaction of the journal waits for (RunnerWriter)."""
        with self._lock:
            return [RunnerWriter(r, r.ends) for r in self._busy.values()]

    # -- shutdown -------------------------------------------------------------------------------------------------

    def shutdown(self) -> None:
        """Kill every runner and its child; their ends are not reported (recovery at the next start decides)."""
        with self._lock:
            if self._timer is not None:
                self._timer.cancel()
            runners = list(self._busy.values()) + [r for idle in self._idle.values() for r in idle]
            for r in runners:
                r.lost = True
        for r in runners:
            child = r.child
            for t in child.timers if child is not None else ():
                t.cancel()
            r.proc.signal_group(signal.SIGKILL)
