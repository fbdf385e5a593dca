"""Multi-container jobs on the process executor: each container of the task is a process on this machine
(docs/adr/0028). They share localhost (as awsvpc's containers do) and the attempt's working directory (the task's
scratch space); each has its own session, environment and log stream `<jd>/<container>/<task id>`.

Coordination (dependsOn, essential, stop, timeout) is compute/task_group.py's.

Each member runs under the single-container job's supervisor (compute/local_supervisor.py SUPERVISOR),
keyed "<jobId>#<attempt>/<container name>" in the journal (compute/local_journal.py), which also holds the task's
containers ("task" line, written before any starts). Recovery after a crash (`ProcessGroups.recover`): the members
still running are killed (their output pipes died with the server: they cannot be re-adopted); then, if every
essential member's exit is in the journal, the task ended while nobody watched and is settled as the coordinator
would have settled it live (`GroupRun.resume`, the first essential member to exit, in journal order, ending it; a
member killed here shows 137, one never started "Task stopped before the container started"); otherwise the attempt
ends as a lost host, as a single-container job's process does. A stop (TerminateJob, the attempt's timeout) is
journaled before the members are signalled ("stop" line): one that came before any essential member ended is
finished by the recovery's SIGKILL (as its grace period's end would have) and ends the task with its reason, as
the coordinator would have ended it live.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import signal
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING

from chalicelib.compute import task_group
from chalicelib.compute.local_processes import RECOVER_WAIT_S, processes_of, wait_gone
from chalicelib.compute.local_supervisor import (
    exit_code_of,
    may_append,
    not_executable,
    spawn_supervised,
    wait_for_command,
)
from chalicelib.compute.port import CredentialsUnavailable, TaskSpec
from chalicelib.compute.spawn import Process
from chalicelib.domain import ecs_task
from chalicelib.domain.ecs_task import EXITED, State, TaskContainer
from chalicelib.domain.lifecycle import TaskStarted, TaskStopped
from chalicelib.domain.reasons import host_terminated_reason

if TYPE_CHECKING:
    from chalicelib.compute.local import LocalLauncher

log = logging.getLogger("batchplane.launcher")


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


def member_key(key: str, name: str) -> str:
    """A member's key in the journal: "<jobId>#<attempt>/<container name>"."""
    return f"{key}/{name}"


class ProcessMember:
    def __init__(self, launcher: LocalLauncher, spec: TaskSpec, c: TaskContainer, workdir: Path) -> None:
        self.launcher = launcher
        self.spec = task_group.member_spec(spec, c)
        self.key = member_key(spec.key, c.name)
        self.workdir = workdir
        self.proc: Process | None = None
        self.spawning = False  # its supervisor is being spawned (`proc` is set before this is cleared: may_append)
        self._timers: list[threading.Timer] = []
        base = {**launcher.base_env, **spec.ecs_environment, **self.spec.environment}
        self.refused: str | None = None  # its role's credentials cannot be served: it fails to start (ADR 0037)
        try:
            granted = launcher.credentials.grant(spec, container=False) if launcher.credentials else {}
        except CredentialsUnavailable as e:
            granted, self.refused = {}, str(e)
        self.env = {**base, **granted}

    def may_append(self) -> bool:  # (local_journal.Writer)
        return may_append(self.spawning, self.proc)

    def prepare(self) -> str | None:
        if self.refused is not None:
            return self.refused
        command = self.spec.command
        if not command:
            return "CannotStartContainerError: the container has no command to run"
        missing = not_executable(command[0], self.env, self.workdir)
        return f"CannotStartContainerError: {missing}: {command[0]}" if missing else None

    def start(self) -> str | None:
        journal = self.launcher.journal
        self.spawning = True
        try:
            self.proc = spawn_supervised(self.workdir, journal.path, self.key, self.spec.command, self.env)
        except OSError as e:
            return f"CannotStartContainerError: {e.strerror or e}: {self.spec.command[0]}"
        finally:
            self.spawning = False
        with contextlib.suppress(OSError):  # (the journal closed by a shutdown: recovery finds it by its variables)
            journal.record_pid(self.key, self.proc.pid)
        # A SIGTERM that reaches the supervisor before it has forked the command is swallowed by its trap (the
        # command would then run until the grace period's SIGKILL): the member is running, so stoppable, only once
        # the command exists (the coordinator stops only members whose start returned).
        wait_for_command(self.proc)
        return None

    def wait(self) -> tuple[int | None, str | None]:
        proc = self.proc
        assert proc is not None and proc.stdout is not None
        try:
            for raw in proc.stdout:
                line = raw.decode("utf-8", "replace").rstrip("\n")
                self.launcher.logs.append(self.spec.log_stream, [(_now_ms(), line)])
        except Exception:  # a log failure must not lose the exit
            log.exception("reading the output of %s failed", self.spec.log_stream)
        code = exit_code_of(proc.wait_exit())
        for t in self._timers:
            t.cancel()
        return code, None

    def stop(self, grace: float) -> None:
        self.signal(signal.SIGTERM)
        timer = threading.Timer(grace, self.signal, args=(signal.SIGKILL,))
        timer.daemon = True
        self._timers.append(timer)
        timer.start()

    def signal(self, sig: signal.Signals) -> None:
        if self.proc is not None:
            self.proc.signal_group(sig)  # nothing once it was reaped

    def cleanup(self) -> None:
        for t in self._timers:
            t.cancel()


class ProcessGroups:
    """The process executor's multi-container attempts (LocalLauncher delegates to it)."""

    def __init__(self, launcher: LocalLauncher) -> None:
        self.launcher = launcher
        self._lock = threading.Lock()
        self._runs: dict[str, tuple[task_group.GroupRun, dict[str, ProcessMember]]] = {}
        self._threads: set[threading.Thread] = set()

    def _reporter(self, spec: TaskSpec) -> task_group.Report:
        def report(event: TaskStarted | TaskStopped) -> None:
            event = dataclasses.replace(
                event, task_arn=spec.local_task_arn, container_instance_arn=spec.local_container_instance_arn
            )
            try:
                if isinstance(event, TaskStopped):  # (its journal lines are kept until it is recorded)
                    self.launcher.report_end(spec.job_id, spec.key, event)
                else:
                    self.launcher.on_event(spec.job_id, event)
            except Exception:  # the sweep repairs a lost report
                log.exception("reporting %s of %s failed", type(event).__name__, spec.key)

        return report

    def members(self) -> list[ProcessMember]:
        """The members of the attempts running (their supervisors may append to the journal)."""
        with self._lock:
            return [m for _, members in self._runs.values() for m in members.values()]

    def launch(self, spec: TaskSpec, workdir: Path) -> None:
        members = {c.name: ProcessMember(self.launcher, spec, c, workdir) for c in spec.containers}
        self.launcher.journal.record_task(spec.key, task_group.task_label(spec))  # before any member starts
        run = task_group.GroupRun(spec, members, self._reporter(spec), self.launcher.grace_seconds)
        with self._lock:
            self._runs[spec.key] = (run, members)
        thread = threading.Thread(target=self._run, args=(run,), name=f"task-{spec.key}", daemon=True)
        with self._lock:
            self._threads.add(thread)
        thread.start()

    def _run(self, run: task_group.GroupRun) -> None:
        try:
            run.run()
        finally:
            if self.launcher.credentials is not None:
                self.launcher.credentials.release(run.spec.key)
            with self._lock:
                self._runs.pop(run.spec.key, None)
                self._threads.discard(threading.current_thread())

    def stop(self, key: str, reason: str) -> bool:
        """Stop the attempt `key` if it is one of these; False when it is not."""
        with self._lock:
            found = self._runs.get(key)
        if found is None:
            return False
        if found[0].stop_reason is None:  # (the first stop is the one that counts: GroupRun.stop)
            with contextlib.suppress(OSError):  # (the journal closed by a shutdown: then nothing more is reported)
                self.launcher.journal.record_stop(key, reason)  # before a member is signalled (and exits)
        found[0].stop(reason)
        return True

    def recover(self, job_id: str, attempt: int) -> bool | None:
        """After a restart (see the module's notes): None when the journal holds no task of this attempt (a
        single-container one, or a task of an earlier version: the caller recovers it as such) or this server runs
        it; else True, once its members are gone and, when its end is in the journal, that end is reported (else,
        with the launcher's `lost_host`, a lost host's: `_lost`); the caller's lost-host report that follows finds
        the attempt ended and is ignored."""
        key = f"{job_id}#{attempt}"
        with self._lock:
            if key in self._runs:
                return None
        journal = self.launcher.journal
        journal.refresh()
        spec = task_group.spec_of(job_id, attempt, journal.tasks.get(key))
        if spec is None:
            return None
        keys = {c.name: member_key(key, c.name) for c in spec.containers}
        pids = [journal.pids[k] for k in keys.values() if k in journal.pids and k not in journal.exits]
        for pid in pids:  # each member is the leader of its own session
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, signal.SIGKILL)
        found = processes_of(job_id, attempt)  # (one spawned right before a crash, its pid not recorded yet)
        for pid in found:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
        wait_gone(pids + found, RECOVER_WAIT_S)  # then the exits recorded meanwhile are complete
        journal.refresh()
        names = {k: name for name, k in keys.items()}
        states = {c.name: State() for c in spec.containers}  # WAITING: never started
        first: str | None = None
        for k, code in journal.exits.items():  # in journal order: as the coordinator saw them end
            if k in names:
                states[names[k]] = State(EXITED, code)
                if journal.exited_before_stop(k, key):  # (once a stop was asked, it ends the task: GroupRun)
                    first = first or ecs_task.ending(spec.containers, states)  # the first essential one ended it
        stop = journal.stop_of(key) if first is None else None  # a stop that came before any essential end
        if stop is None and not all(keys[c.name] in journal.exits for c in spec.containers if c.essential):
            return self._lost(spec)  # an essential member ended unrecorded, or never ran: a lost host
        for name, k in keys.items():
            if k in journal.pids and k not in journal.exits:
                # started, killed without a record (above, or by a shutdown); a stop in flight is finished by that
                # SIGKILL, as the end of its grace period would have finished it
                states[name] = State(EXITED, 137)
        if first is not None and states[first].exit_code == 128 + signal.SIGPIPE:
            return self._lost(spec)  # it wrote after the server (the reader of its output) died: the server's end
        run = task_group.GroupRun(spec, {}, self._reporter(spec), self.launcher.grace_seconds)
        if stop is not None:
            run.stop(stop)  # the task's end is the stop's (its reason the task's, a timeout flagged), as live
        run.resume(states, first)
        return True

    def _lost(self, spec: TaskSpec) -> bool:
        """A recovered task whose end is not its own: a lost host, reported here with the task's ARNs when the
        launcher has a `lost_host` (as a single-container attempt's, compute/local.py), else by the caller."""
        if self.launcher.lost_host is not None:
            reason = host_terminated_reason(self.launcher.lost_host)
            self._reporter(spec)(TaskStopped(spec.attempt, None, status_reason=reason))
        return True

    def shutdown(self, timeout: float) -> None:
        """The server goes away: kill every member, report nothing (recovery at the next start decides)."""
        with self._lock:
            runs = list(self._runs.values())
            threads = list(self._threads)
        for run, members in runs:
            run.let_go()
            for m in members.values():
                m.signal(signal.SIGKILL)
        deadline = time.monotonic() + timeout
        for t in threads:
            t.join(max(0.0, deadline - time.monotonic()))
