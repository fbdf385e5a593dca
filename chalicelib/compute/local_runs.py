"""Array children on the process executor run on kept runners, not on a process spawned by the server each
(docs/adr/0039).

A runner is the single-container attempt's `sh` supervisor (compute/local_supervisor.py) in a loop: it reads one
child at a time from its stdin, runs the command in the child's working directory with the child's AWS_BATCH_JOB_ID,
AWS_BATCH_JOB_ARRAY_INDEX and AWS_BATCH_JOB_ATTEMPT, journals its exit as the supervisor does, and tells the server
on its stdout. Children of one array share their command and the rest of their environment, so a runner started
for one serves the next: the server writes a line to a pipe instead of spawning a process (ADR 0039: why).

What a runner keeps of a spawned attempt's guarantees (the same journal and recovery):
- The attempt's work directory is created exclusively by the server before the runner is told: a child launches
  once, across restarts too.
- "queued <key> <arn>" is journaled by the server when it hands the child over; "pid <key> <pid>" by the runner, with
  its own pid, when it reaches the child, before the command is forked (compute/local_supervisor.py RUNNER). The
  runner leads its own session, so the child is in the runner's process group, which a recovery kills as it kills
  a supervisor's; a child queued and without a pid never started, and a recovery launches it again under the same
  attempt (compute/local_recovery.py). The runner journals "exit <key> <status>" when the command ends, before it
  reports the end, as the supervisor does; a stop is journaled before it is sent.
- A stop of a started child signals the child's own processes, its command and the command's descendants, found in
  /proc (`command_of`, `signal_command`), not the runner's group: the runner goes on to its next child, and may have
  started it already (docs/adr/0041). The grace period's SIGKILL ends the child's processes alike; the runner
  records the exit (137) and serves the next child. A stop of a child not started yet removes its empty work dir,
  so that the runner skips it ("F"; `_withdraw`).

The protocol. A runner serves the children of one array (its job id is an argument). Server to runner: a nonce
line first, then one line per child, "<index> <attempt>" (the runner derives the job id, key and work dir from them:
compute/local_supervisor.py RUNNER says why the line is no longer). Runner to server: the
commands' output, and between them "\\036<nonce> S <key>" before a command starts and "\\036<nonce> E <key>
<status>" after it ended ("F" instead of "S" when its work dir is gone). The nonce, read from the pipe, keeps a job
from forging a marker in its output. The children of a run (domain/runs.py) are written up to RUN_AHEAD ahead of
the one running (LocalLauncher.top_up), so the runner starts each next one without waiting for the server; the
children of a runner that ends before it reached them go back to their run (LocalLauncher.requeue).

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
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from chalicelib.compute.local_processes import carries
from chalicelib.compute.local_supervisor import (
    COMMAND_WAIT_S,
    MARK,
    PER_CHILD,
    RUNNER,
    START_REPORT_S,
    as_program,
    execed,
    exit_code_of,
    holds_command,
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
RUN_AHEAD = 8  # children of a run queued in its runner's stdin behind the one it runs (docs/adr/0041)


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
    """A busy runner as a writer of the journal (a live compaction's `Launches.writers`, taken after the rename). It
    appends by the path, only while it holds no command: a child's pid line before it forks it, its exit line
    after it reaped it (RUNNER). So it may still append to the inode the path named before until it is seen
    holding a command, or the ends of every child it had then were read (`until`: each child's lines were written
    before its end was printed), or it is gone. An idle runner is not one: it reported its last end."""

    runner: Runner
    until: int  # its `ends` once the children queued on it when this was taken have all ended

    def may_append(self) -> bool:
        r = self.runner
        if r.gone or r.ends >= self.until or r.proc.returncode is not None:
            return False
        return not holds_command(r.pid)


@dataclass(eq=False)  # (compared by identity: a runner's queue)
class _Child:
    spec: TaskSpec
    stop_reason: str | None = None
    started: bool = False  # its "S" came: a stop is sent once its command runs
    done: bool = False  # its end came ("E", "F", or its runner's): nothing is signalled for it from then on
    command: int | None = None  # a pidfd of its command (or its pid where there is no pidfd), once signalled
    timers: list[threading.Timer] = field(default_factory=list)


class Runner:
    def __init__(self, proc: Process, shape: tuple[object, ...], nonce: str, stdin: int) -> None:
        self.proc = proc
        self.stdin = stdin  # the write end of its stdin (-1 once closed)
        self.shape = shape
        self.prefix = MARK + nonce.encode() + b" "
        # The children handed to it whose end it has not reported, in the order of their lines: the first runs (or
        # is being started), the others wait in its stdin (RUN_AHEAD).
        self.queue: deque[_Child] = deque()
        self.run: str | None = None  # the run of the children it was last handed (LocalLauncher.top_up)
        self.idle_since = time.monotonic()
        self.gone = False  # its output ended: it exited (or was killed)
        self.lost = False  # shutdown: its child's end is not reported
        self.stdin_lock = threading.Lock()
        self.ends = 0  # ends reported ("E", "F"): RunnerWriter

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def child(self) -> _Child | None:
        """The child it runs, or starts next (the first of its queue)."""
        return self.queue[0] if self.queue else None


class Runners:
    """The runners of one launcher (its `_runs`): idle ones by shape, busy ones by the keys of their children."""

    def __init__(self, launcher: LocalLauncher) -> None:
        self.launcher = launcher
        self._lock = threading.Lock()
        self._idle: dict[tuple[object, ...], list[Runner]] = {}
        self._busy: dict[str, Runner] = {}
        self._checked = time.monotonic()
        self._timer: threading.Timer | None = None
        self._run_runner: dict[str, Runner] = {}  # a run with a child launched -> the runner serving it

    # -- launch -------------------------------------------------------------------------------------------------

    def launch(self, spec: TaskSpec, workdir: Path, env: dict[str, str]) -> bool:
        """Hand the attempt to a runner of its shape (a new one if none is idle); False when it is not for a
        runner (the caller spawns it). The caller created its work dir."""
        root = self.launcher.work_root
        array = eligible(spec, env, workdir, root)
        if array is None:
            return False
        shape = (array, tuple(spec.command), tuple(sorted((k, v) for k, v in env.items() if k not in PER_CHILD)))
        while True:
            runner = self._take(shape)
            if runner is None:
                try:
                    runner = self._start(shape, array, list(spec.command), env)
                except OSError as e:
                    self.launcher.failed_to_start(spec, f"CannotStartContainerError: {e.strerror or e}: /bin/sh")
                    return True
            if self._tell(runner, spec):
                break
            # it ended since it was taken: its reader has settled it already
        self._retire_idle()
        return True

    def _tell(self, runner: Runner, spec: TaskSpec) -> bool:
        """Queue the child on the runner and write its line; False (nothing done) when the runner is gone. Its
        line is written in the order of the queue (under the runner's stdin lock), after its ARN is journaled."""
        with runner.stdin_lock:
            if runner.gone:
                return False
            # First: a journal that cannot be written (a full disk) raises before the child is the runner's.
            self.launcher.journal.record_handed(spec.key, spec.local_task_arn)  # (its pid: the runner's to journal)
            with self._lock:
                if runner.gone:
                    return False
                runner.queue.append(_Child(spec))
                self._busy[spec.key] = runner
                idle = self._idle.get(runner.shape)
                if idle and runner in idle:  # (made idle by its last end since `room` returned it)
                    idle.remove(runner)
                if spec.run is not None:
                    runner.run = spec.run
                    self._run_runner[spec.run] = runner
            index = spec.environment["AWS_BATCH_JOB_ARRAY_INDEX"]  # (`eligible`: the index of its job id)
            with contextlib.suppress(OSError):  # a runner gone: its reader settles the child (`_ended`)
                os.write(runner.stdin, f"{index} {spec.attempt}\n".encode())  # (far below PIPE_BUF: whole)
        return True

    # -- a run's children (domain/runs.py, docs/adr/0040, 0041) --------------------------------------------------

    def take_for_run(self, spec: TaskSpec) -> Runner | None:
        """The runner that served `spec`'s run, if it is idle, taken for `spec` (the children of a run share their
        command and their environment but for PER_CHILD); None when there is none."""
        assert spec.run is not None
        with self._lock:
            runner = self._run_runner.get(spec.run)
            if runner is None or runner.gone or runner.queue or runner.run != spec.run:
                return None
            idle = self._idle.get(runner.shape, [])
            if runner not in idle:
                return None
            idle.remove(runner)
            return runner

    def room(self, run: str) -> Runner | None:
        """The runner serving `run` while it has a child of it and room for another in its stdin (RUN_AHEAD);
        None otherwise (the run's next child then waits for an end: LocalLauncher.next_of_run)."""
        with self._lock:
            runner = self._run_runner.get(run)
            if runner is None or runner.gone or runner.lost or runner.run != run:
                return None
            return runner if 0 < len(runner.queue) <= RUN_AHEAD else None

    def give_back(self, runner: Runner) -> None:
        """A runner taken (`take_for_run`) and not given its child after all."""
        with self._lock:
            if not runner.gone and not runner.queue:
                self._idle.setdefault(runner.shape, []).append(runner)

    def hand(self, runner: Runner, spec: TaskSpec) -> None:
        """Give a runner taken for `spec` (`take_for_run`), or one with room for it (`room`), its child, whose work
        dir was created."""
        if not self._tell(runner, spec):  # it ended since it was taken: the child goes the way of a first launch
            workdir = self.launcher.work_dir(spec.job_id, spec.attempt)
            env = self.launcher.environment(spec, workdir)
            if env is not None and not self.launch(spec, workdir, env):
                self.launcher.failed_to_start(spec, "CannotStartContainerError: the runner of its run ended")

    def run_ended(self, run: str) -> None:
        """A run has no child left: what was kept for it goes."""
        with self._lock:
            self._run_runner.pop(run, None)

    def _take(self, shape: tuple[object, ...]) -> Runner | None:
        with self._lock:
            idle = self._idle.get(shape)
            while idle:
                runner = idle.pop()
                if not runner.gone and not runner.queue:
                    return runner
        return None

    def _start(self, shape: tuple[object, ...], array: str, command: list[str], env: dict[str, str]) -> Runner:
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
        runner = Runner(proc, shape, nonce, write)
        try:
            os.write(write, (nonce + "\n").encode())
        except OSError as e:
            raise OSError("the runner ended at its start") from e
        self.launcher.workers.run(f"runner-{proc.pid}", lambda: self._read(runner))
        return runner

    def _retire_idle(self) -> None:
        """At most once a second: runners idle for IDLE_SECONDS are told to end."""
        now = time.monotonic()
        if now - self._checked < 1.0:
            return
        self._checked = now
        old: list[Runner] = []
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

    def _close(self, runner: Runner) -> None:
        with runner.stdin_lock:
            if runner.stdin >= 0:
                with contextlib.suppress(OSError):
                    os.close(runner.stdin)
                runner.stdin = -1

    # -- stop -----------------------------------------------------------------------------------------------------

    def stop(self, key: str, reason: str) -> bool:
        """A stop of an attempt a runner has; False when none has it. A child whose command has not started is
        withdrawn (`_withdraw`); a started one's command is signalled (`_terminate`)."""
        with self._lock:
            runner = self._busy.get(key)
            child = next((c for c in runner.queue if c.spec.key == key), None) if runner is not None else None
            if runner is None or child is None:
                return False
            if child.stop_reason is not None:
                return True  # stopping already (its SIGKILL is armed)
            child.stop_reason = reason
            with contextlib.suppress(OSError):  # journaled before it can be sent (LocalLauncher.stop)
                self.launcher.journal.record_stop(key, reason)
            started = child.started
        if started:
            self._terminate_later(runner, child)
        else:
            self._withdraw(child)
        return True

    def _withdraw(self, child: _Child) -> None:
        """A child the runner has not started: its (empty) work dir is removed, so that the runner's `cd` into it
        fails ("F": it ends stopped, never started). Had the runner entered it already, its "S" comes and its
        command is stopped as any started one's (`_line`); had it run already, the dir is not empty and stays."""
        spec = child.spec
        with contextlib.suppress(OSError):
            os.rmdir(self.launcher.work_dir(spec.job_id, spec.attempt))

    def _terminate_later(self, runner: Runner, child: _Child) -> None:
        """`_terminate` on a worker: it may wait for the command's exec (the caller may be the dispatcher thread)."""
        self.launcher.workers.run(f"stop-{child.spec.key}", lambda: self._terminate(runner, child))

    def _terminate(self, runner: Runner, child: _Child) -> None:
        """SIGTERM to the child's command and its descendants, then SIGKILL after the grace period: its own
        processes, not the runner's group (a supervisor's stop signals its group: compute/local.py), as the runner
        may have started the next child of its queue already (RUN_AHEAD), and stays to run the others."""
        if not self._find_command(runner, child):
            return  # it ended: its end is (or will be) read
        self._signal(child, signal.SIGTERM)
        timer = threading.Timer(
            min(self.launcher.grace_seconds, threading.TIMEOUT_MAX),
            self._signal,
            args=(child, signal.SIGKILL),
        )
        timer.daemon = True
        child.timers.append(timer)
        timer.start()

    def _find_command(self, runner: Runner, child: _Child) -> bool:
        """Find the child's command among the runner's children (`command_of`) and keep a pidfd of it; False when
        its end came first. Waits (at most COMMAND_WAIT_S) for its exec: the runner prints "S" before it forks, and
        a process forked and not exec'd yet would swallow a signal (local_supervisor.wait_for_command)."""
        deadline = time.monotonic() + COMMAND_WAIT_S
        while True:
            with self._lock:
                if child.done or runner.gone:
                    return False
                # Past the deadline (a command that changed both its variables and its directory), any command of
                # the runner is the child's, but only while it has no other child: it may run the next one already.
                last = time.monotonic() >= deadline and list(runner.queue) == [child]
            spec = child.spec
            found = command_of(runner.pid, spec.job_id, spec.attempt, last=last)
            if found is not None:
                with self._lock:
                    if child.done:
                        close_command(found)
                        return False
                    child.command = found
                return True
            time.sleep(0.002 if time.monotonic() < deadline else 0.1)

    def _signal(self, child: _Child, sig: signal.Signals) -> None:
        """Signal the child's command and its descendants, unless its end came: a pidfd is closed
        when it ends (`_finish`, under the same lock), so its number is never another process's."""
        with self._lock:
            if child.done or child.command is None:
                return
            signal_command(child.command, sig)

    # -- the runner's output --------------------------------------------------------------------------------------

    def _read(self, runner: Runner) -> None:
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

    def _line(self, runner: Runner, line: bytes, pending: tuple[_Child, float] | None) -> tuple[_Child, float] | None:
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
        self._finish(runner, child)
        if kind == "F":
            if child.stop_reason is not None:  # withdrawn (`_withdraw`)
                self.launcher.stopped_before_start(child.spec, child.stop_reason)
            else:
                why = "CannotStartContainerError: its work directory is gone, or the journal cannot be written"
                self.launcher.failed_to_start(child.spec, why)
            return None
        # The run's next child is handed first (compute/local.py `next_of_run`): the runner may wait for it, the
        # control plane does not.
        self.launcher.next_of_run(child.spec.key)
        if pending is not None:
            self._started(runner, child)
        self._stopped(child, int(fields[-1]))
        return None

    def _log(self, runner: Runner, raw: bytes) -> None:
        child = runner.child
        if child is not None:
            text = raw.decode("utf-8", "replace")
            self.launcher.logs.append(child.spec.log_stream, [(_now_ms(), text)])

    def _started(self, runner: Runner, child: _Child) -> None:
        if not runner.lost:
            self.launcher.report(child.spec, TaskStarted(child.spec.attempt))

    def _stopped(self, child: _Child, code: int) -> None:
        why = child.stop_reason
        stopped = TaskStopped(child.spec.attempt, code, status_reason=why, timed_out=why == TIMEOUT_REASON)
        self.launcher.report(child.spec, stopped)

    def _finish(self, runner: Runner, child: _Child, *, release: bool = True) -> None:
        """The child's end came (the first of the runner's queue): the runner is idle again when it was the last.
        Not `release`: it is not the launcher's to forget (it goes back to its run: LocalLauncher.requeue)."""
        for t in child.timers:
            t.cancel()
        with self._lock:
            self._busy.pop(child.spec.key, None)
            if child in runner.queue:
                runner.queue.remove(child)
            runner.ends += 1
            child.done = True
            if child.command is not None:
                close_command(child.command)
                child.command = None
            idle = self._idle.setdefault(runner.shape, [])
            if not runner.queue and not runner.gone and not runner.lost and runner not in idle:
                runner.idle_since = time.monotonic()
                idle.append(runner)
                if self._timer is None:  # runners left idle when no launch comes are told to end too
                    self._timer = threading.Timer(IDLE_SECONDS, self._retire_later)
                    self._timer.daemon = True
                    self._timer.start()
        if release:
            self.launcher.released(child.spec.key)

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

    def _ended(self, runner: Runner, rest: bytes, pending: tuple[_Child, float] | None) -> None:
        """The runner's output ended: it exited (told to, or killed). The child it ran ends with its exit status;
        the children of a run waiting in its stdin never started, and wait in their run again
        (LocalLauncher.requeue: another runner runs them)."""
        if rest:
            self._log(runner, rest)
        code = exit_code_of(runner.proc.wait_exit())
        self._close(runner)
        with self._lock:
            runner.gone = True  # from here on no child is handed to it (`_tell`)
            children = list(runner.queue)
            if runner.lost:  # shutdown: recovery at the next start decides
                unreached = []
            else:  # taken out of reach of a stop now (`stop` then finds them waiting in their run, or as early stops)
                unreached = [c for c in children if not c.started and c.stop_reason is None and c.spec.run is not None]
                for child in unreached:
                    self._busy.pop(child.spec.key, None)
        if runner.lost:
            for child in children:
                self._finish(runner, child)
            return
        for child in unreached:
            self._finish(runner, child, release=False)
        self.launcher.requeue([c.spec for c in unreached])
        for child in children:
            if child in unreached:
                continue
            self._finish(runner, child)
            if child.started:
                if pending is not None and pending[0] is child:
                    self._started(runner, child)
                self._stopped(child, code)
            elif child.stop_reason is not None:
                self.launcher.stopped_before_start(child.spec, child.stop_reason)
            else:  # its command never ran
                self.launcher.failed_to_start(
                    child.spec, "CannotStartContainerError: the runner ended before the command started"
                )

    def writers(self) -> list[RunnerWriter]:
        """The busy runners, as writers a live compaction of the journal waits for (RunnerWriter)."""
        with self._lock:
            return [RunnerWriter(r, r.ends + len(r.queue)) for r in set(self._busy.values())]

    # -- shutdown -------------------------------------------------------------------------------------------------

    def shutdown(self) -> None:
        """Kill every runner and its child; their ends are not reported (recovery at the next start decides)."""
        with self._lock:
            if self._timer is not None:
                self._timer.cancel()
            runners = set(self._busy.values()) | {r for idle in self._idle.values() for r in idle}
            for r in runners:
                r.lost = True
            timers = [t for r in runners for c in r.queue for t in c.timers]
        for t in timers:
            t.cancel()
        for r in runners:
            r.proc.signal_group(signal.SIGKILL)


# -- a child's command among its runner's processes --------------------------------------------------------------

HAVE_PIDFD = hasattr(os, "pidfd_open") and hasattr(signal, "pidfd_send_signal")


def command_of(runner: int, job_id: str, attempt: int, *, last: bool = False) -> int | None:
    """A pidfd (or, without pidfds, the pid) of the runner's child process that is the attempt's command: exec'd with
    its AWS_BATCH_JOB_ID and AWS_BATCH_JOB_ATTEMPT, or in its work dir (a command may exec another with other
    variables, or change its directory, not both). None when there is none (not forked or exec'd yet, or ended).
    With `last`, any exec'd child of the runner is taken (the caller's fallback when the attempt is the only child
    queued on the runner, which runs one command at a time). Linux /proc; elsewhere None."""
    try:
        pids = Path(f"/proc/{runner}/task/{runner}/children").read_text().split()
    except OSError:
        return None
    workdir = f"/{job_id.replace(':', '_')}/{attempt}"
    for pid in pids:
        if not execed(pid):
            continue
        handle = _open(int(pid))
        if handle is None:
            continue
        try:
            by_variables = carries(pid, job_id, attempt)
            cwd = os.readlink(f"/proc/{pid}/cwd").removesuffix(" (deleted)")
        except OSError:
            close_command(handle)
            continue
        if last or by_variables or cwd.endswith(workdir):
            return handle
        close_command(handle)
    return None


def _open(pid: int) -> int | None:
    if not HAVE_PIDFD:
        return pid
    try:
        return os.pidfd_open(pid)
    except OSError:
        return None  # ended


def close_command(handle: int) -> None:
    if HAVE_PIDFD:
        with contextlib.suppress(OSError):
            os.close(handle)


def signal_command(handle: int, sig: signal.Signals) -> None:
    """`sig` to the command and its descendants (what a signal to its process group would reach, but for the runner
    and the next child it may have started), found through /proc before any is signalled: once the command is
    gone they are orphaned, out of reach."""
    pid = _pid_of(handle)
    if pid is not None:
        for found in _descendants(pid):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(found, sig)
    with contextlib.suppress(ProcessLookupError, PermissionError, OSError):
        if HAVE_PIDFD:
            signal.pidfd_send_signal(handle, sig)
        else:
            os.kill(handle, sig)


def _pid_of(handle: int) -> int | None:
    if not HAVE_PIDFD:
        return handle
    try:
        for line in Path(f"/proc/self/fdinfo/{handle}").read_text().splitlines():
            if line.startswith("Pid:"):
                pid = int(line.split()[1])
                return pid if pid > 0 else None
    except (OSError, ValueError):
        pass
    return None


def _descendants(pid: int) -> list[int]:
    found: list[int] = []
    todo = [pid]
    while todo:
        parent = todo.pop()
        try:
            tasks = os.listdir(f"/proc/{parent}/task")
        except OSError:
            continue
        for tid in tasks:
            with contextlib.suppress(OSError, ValueError):
                children = [int(c) for c in Path(f"/proc/{parent}/task/{tid}/children").read_text().split()]
                found += children
                todo += children
    return found
