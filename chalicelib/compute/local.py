"""The local launcher: each attempt is a process on this machine.

- The command is an argv list run without a shell (no string is ever built for one), in its own working directory
  `<state>/work/<jobId>/<attempt>` and its own session (process group), so stop and timeout reach its children too.
- Environment: a small base taken from the server (PATH, HOME, locale, TMPDIR), what ECS sets in every container
  (AWS_EXECUTION_ENV, AWS_REGION, AWS_DEFAULT_REGION: `TaskSpec.ecs_environment`), then the job's variables and the
  reserved AWS_BATCH_* ones, which the job cannot override (validation rejects them, and they are applied last).
- stdout and stderr are captured line by line into the attempt's log stream.
- Task events are reported like ECS ones: TaskStarted once the process exists, TaskStopped with its exit code
  (128+N for a signal, as Docker reports it) when it ends, and the reason of the stop that ended it (a stop with
  the timeout reason is reported timed out, as ECS's stoppedReason is translated). A process that ends without
  output within START_REPORT_S has both reported together, so the control plane can apply them with one write.
  The launcher times nothing: the control plane stops an attempt past its deadline (control/timeouts.py, ADR 0025).
- The attempt's working directory is created (exclusively: an attempt launches once, across restarts too) before
  its process is spawned, and the pid is recorded in the journal once the process exists, so after a crash of the
  server the process can be found and stopped (`recover`): an attempt is never left running unobserved, and never
  runs twice.
- The command runs under a tiny `sh` supervisor (the session leader) that records the command's exit status in the
  journal when it ends. A job that finishes while the server is down is then known to have finished: `recover`
  reports an exit 0 as a success instead of running the job again (any other end in that window is treated as a
  lost host: the job's output pipe died with the server, so its failure may be the server's; with `lost_host`,
  `recover` reports that end itself, with the task's ARNs).
- A stop (TerminateJob, the attempt's timeout) is journaled before the command is signalled: a stop in flight when
  the server died ends the attempt at the recovery as it would have live, with the stop's reason (a timeout
  flagged) and the exit the command recorded after it, or 137 when the recovery has to kill it (as the grace
  period's SIGKILL would have). An exit recorded before the stop decides as above.
- The journal (`<state>/work/journal`) is one append-only file for every attempt, so launching creates no file: on
  some filesystems creating one (an inode) costs more than everything else a launch does. Each start compacts it
  to the lines of the jobs still active (`compact_journal`, compute/local_journal.py), and so does the server
  while it runs, past a size, to those of the attempts whose end is not recorded yet (docs/adr/0036).
- A job with a `jobRoleArn` gets AWS credentials from the `credentials` vendor (compute/credentials.py) as ECS's
  container credentials provider, on a loopback address; its grant is released when the attempt ends.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import signal
import threading
import time
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from chalicelib.compute import local_recovery
from chalicelib.compute.journal_files import job_of
from chalicelib.compute.local_group import ProcessGroups
from chalicelib.compute.local_journal import Journal, Writer
from chalicelib.compute.local_runs import Runner, Runners
from chalicelib.compute.local_supervisor import (
    exit_code_of,
    may_append,
    not_executable,
    quick_exit,
    spawn_supervised,
    wait_for_command,
)
from chalicelib.compute.logs_port import LogStore
from chalicelib.compute.port import (
    CredentialsUnavailable,
    CredentialVendor,
    TaskEventSink,
    TaskSpec,
    local_container_instance_arn,
)
from chalicelib.compute.spawn import Process
from chalicelib.compute.workers import Workers
from chalicelib.domain.jobs import TIMEOUT_REASON, Job
from chalicelib.domain.lifecycle import TaskStarted, TaskStopped
from chalicelib.domain.records import replace

log = logging.getLogger("batchplane.launcher")

BASE_ENV_KEYS = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "USER", "LOGNAME", "SHELL", "TZ")
START_FAILED = "Task failed to start"
JOURNAL = "journal"  # one line per record, each one append: its kinds in compute/local_journal.py
DOCKER_JOURNAL = "docker-journal"  # compute/docker.py's: the containers it created


@dataclass
class _Running:
    spec: TaskSpec
    proc: Process | None = None  # None until its watcher has spawned it
    stop_reason: str | None = None
    lost: bool = False  # killed by shutdown(): the exit is not reported; recovery at the next start decides
    started: bool = False  # its command runs (or it ended): a stop before that is delivered by the watcher
    spawning: bool = False  # its supervisor is being spawned (`proc` is set before this is cleared: may_append)
    timers: list[threading.Timer] = field(default_factory=list)

    def may_append(self) -> bool:  # (local_journal.Writer)
        return may_append(self.spawning, self.proc)


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


class LocalLauncher:
    def __init__(
        self,
        work_root: Path,
        logs: LogStore,
        on_event: TaskEventSink,
        *,
        grace_seconds: float = 30.0,
        credentials: CredentialVendor | None = None,
        lost_host: str | None = None,
        sink_records: bool = False,
    ) -> None:
        self.work_root = work_root
        self.sink_records = sink_records  # the sink takes `recorded` (Engine.report); else it applies as it returns
        self.lost_host = lost_host  # set: a recovered attempt with no end of its own is reported this host lost
        self.credentials = credentials
        self.logs = logs
        self.on_event = on_event
        self.grace_seconds = grace_seconds
        self._lock = threading.Lock()
        self._running: dict[str, _Running] = {}
        self._launched: set[str] = set()
        self._attempts: set[str] = set()  # launched, their end not recorded yet: their journal lines are kept
        self._workers = Workers()  # the watchers' threads (compute/workers.py): one per process until its exit
        self.workers = self._workers  # also the runners' readers (compute/local_runs.py)
        self._base_env = {k: os.environ[k] for k in BASE_ENV_KEYS if k in os.environ}
        self.base_env = self._base_env
        self._groups = ProcessGroups(self)  # multi-container attempts (docs/adr/0028)
        self._runs = Runners(self)  # array children, on kept runners (docs/adr/0039)
        self._run_of: dict[str, str] = {}  # a run's child (launched, its end not reported yet) -> its run
        self._run_waiting: dict[str, deque[TaskSpec]] = {}  # a run with a child started -> its children waiting
        self._run_live: dict[str, int] = {}  # a run -> its children started (or queued on its runner), not ended
        self._early_stops: dict[str, str] = {}  # attempts stopped while being started -> the stop's reason
        self._requeued: set[str] = set()  # run children put back once (`requeue`), their end not recorded yet
        self._on_path: set[tuple[str, str]] = set()  # (program, PATH) found runnable (a miss is looked up again)
        work_root.mkdir(parents=True, exist_ok=True)
        # Absolute: the supervisors append to it from their own working directories.
        self._journal = Journal(work_root.absolute() / JOURNAL)
        self.docker_journal = work_root / DOCKER_JOURNAL  # (compute/local_recovery.py)
        self.journal = self._journal  # also compute/local_group.py's (its members run under the supervisor too)
        self._journal.attach(self)

    def work_dir(self, job_id: str, attempt: int) -> Path:
        return self.work_root / job_id.replace(":", "_") / str(attempt)

    def _work_path(self, spec: TaskSpec) -> str:
        """`work_dir` as a string, for a run's next children: pathlib's joins cost more than the mkdirs there."""
        return f"{self.work_root}/{spec.job_id.replace(':', '_')}/{spec.attempt}"

    def forget(self, job: Job) -> None:
        """A finished job leaves the store (control/retention.py): remove its attempts' work directories and what
        this launcher remembers of them."""
        numbers = {a.number for a in job.attempts} | ({job.current.number} if job.current else set())
        with self._lock:
            self._launched.difference_update(f"{job.job_id}#{n}" for n in numbers)
            self._attempts.difference_update(f"{job.job_id}#{n}" for n in numbers)
        shutil.rmtree(self.work_root / job.job_id.replace(":", "_"), ignore_errors=True)

    def launch(self, spec: TaskSpec) -> None:
        waiting: deque[TaskSpec] | None = None
        with self._lock:
            if self._holds(spec.key):
                return  # idempotent: this attempt was started already (its end, if it came, is not recorded yet)
            self._launched.add(spec.key)
            if spec.run is not None:  # claimed in a run (domain/runs.py): its children run one after another
                self._run_of[spec.key] = spec.run
                waiting = self._run_waiting.get(spec.run)
                if waiting is not None:
                    waiting.append(spec)  # started when the one before it ends, or queued on its runner (`top_up`)
                else:
                    self._run_waiting[spec.run] = deque()
                    self._run_live[spec.run] = 1
        if spec.run is None:
            self._start_checked(spec)
        elif waiting is None:
            self._start_in_run(spec)
        else:
            self.top_up(spec.run)  # (a no-op until its first child is on a runner: it waits for an end then)

    def _start_checked(self, spec: TaskSpec) -> None:
        """`_start`, then a stop that came while it was being started is sent again (`_early_stop`)."""
        self._start(spec)
        self._early_stop(spec)

    def _early_stop(self, spec: TaskSpec) -> None:
        """A stop that came while the attempt was being started (found nowhere yet: `stop`), sent again now."""
        with self._lock:
            reason = self._early_stops.pop(spec.key, None)
        if reason is not None:
            self.stop(spec.job_id, spec.attempt, reason)

    def _start(self, spec: TaskSpec) -> None:
        if spec.run is not None and self._start_on_runner(spec):
            return
        workdir = self.work_dir(spec.job_id, spec.attempt)
        if not self._open_attempt(spec, workdir):
            self.next_of_run(spec.key)
            return
        if spec.containers:
            self._groups.launch(spec, workdir)
            return
        env = self.environment(spec, workdir)
        if env is None or self._runs.launch(spec, workdir, env):
            return
        # The process is spawned by its watcher thread, not here: a fork and exec cost the caller (the local
        # engine's dispatcher thread, which claims the next job) about half a millisecond of waiting.
        running = _Running(spec)
        with self._lock:
            self._running[spec.key] = running
        self._workers.run(spec.key, lambda: self._watch(running, workdir, env))

    def _open_attempt(self, spec: TaskSpec, workdir: Path | str) -> bool:
        """Create the attempt's work dir, exclusively (its job's as needed): from here on the attempt may have started
        (see recover()). False when it exists: an earlier run of the server launched it (recover() decides about that
        attempt), and its end is not this launcher's to report (the caller starts the next child of its run)."""
        with contextlib.suppress(FileExistsError):
            os.mkdir(os.path.dirname(workdir))
        try:
            os.mkdir(workdir)
        except FileExistsError:
            return False
        with self._lock:  # before any journal line of it: a live compaction keeps them (journal_jobs)
            self._attempts.add(spec.key)
            self._journal.launching(spec.key)
        return True

    def environment(self, spec: TaskSpec, workdir: Path) -> dict[str, str] | None:
        """The attempt's environment; None when it cannot start (reported as the attempt's TaskStopped)."""
        if not spec.command:
            self.failed_to_start(spec, "CannotStartContainerError: the job has no command to run")
            return None
        env = {**self._base_env, **spec.ecs_environment, **spec.environment}
        program, path = spec.command[0], env.get("PATH", os.defpath)
        if (program, path) not in self._on_path:
            missing = not_executable(program, env, workdir)
            if missing is not None:
                self.failed_to_start(spec, f"CannotStartContainerError: {missing}: {program}")
                return None
            if "/" not in program:  # a relative path depends on the working directory
                self._on_path.add((program, path))
        try:
            return {**env, **self.credentials.grant(spec, container=False)} if self.credentials else env
        except CredentialsUnavailable as e:  # its role's credentials cannot be served (docs/adr/0037)
            self.failed_to_start(spec, str(e))
            return None

    def _spawn(self, running: _Running, workdir: Path, env: dict[str, str]) -> bool:
        """Start the attempt's process (on its watcher thread) and record its pid. False when it did not start:
        exec failed (reported as the attempt's TaskStopped), or the launcher shut down first."""
        spec = running.spec
        with self._lock:
            if running.lost:
                return False  # shut down before the spawn: recovery at the next start decides (no process)
            running.spawning = True
        try:
            proc = spawn_supervised(workdir, self._journal.path, spec.key, spec.command, env)
        except OSError as e:
            with self._lock:
                self._running.pop(spec.key, None)
                running.spawning = False
            self.failed_to_start(spec, f"CannotStartContainerError: {e.strerror or e}: {spec.command[0]}")
            return False
        self._journal.record_pid(spec.key, proc.pid, spec.local_task_arn)
        with self._lock:
            running.proc = proc
            running.spawning = False
            lost = running.lost
        if lost:  # shutdown() came during the spawn and found no process to kill
            self._signal(running, signal.SIGKILL)
        return True

    def stop(self, job_id: str, attempt: int, reason: str) -> None:
        key = f"{job_id}#{attempt}"
        if self._groups.stop(key, reason):
            return
        with self._lock:
            # Kept first, in case it is being started on another thread (a run's next child, on a runner's reader)
            # and found nowhere below: sent again once it is (`_start_checked`, `_queue_on`; a stop twice is one).
            if key in self._launched and key not in self._running:
                self._early_stops[key] = reason
        if self._runs.stop(key, reason) or self._unqueue(key, reason):
            with self._lock:
                self._early_stops.pop(key, None)
            return
        with self._lock:
            running = self._running.get(key)
            if running is not None:
                self._early_stops.pop(key, None)
            if running is None or running.stop_reason is not None:
                return  # not running here, or stopping already (its SIGKILL is armed)
            running.stop_reason = reason
            # journaled before the command can be signalled (here or by the watcher), so its exit comes after: a
            # recovery after a crash settles a stop in flight as the stop's end (recover)
            with contextlib.suppress(OSError):  # (the journal closed by a shutdown: then nothing more is reported)
                self._journal.record_stop(running.spec.key, reason)
            if not running.started:
                return  # the watcher delivers it once the command runs (wait_for_command)
        self._terminate(running)

    def _terminate(self, running: _Running) -> None:
        self._signal(running, signal.SIGTERM)
        self._arm(running, self.grace_seconds, lambda r: self._signal(r, signal.SIGKILL))

    # -- runs: a run's children one after another (domain/runs.py, docs/adr/0040) -----------------------------------

    def next_of_run(self, key: str) -> None:
        """The attempt `key` ended (or will not be started here): the next waiting child of its run starts now, on
        the caller's thread (a runner's reader, before it reports the end). When no other child of the run is left
        in flight, the next one starts as a first launch (on the run's runner, idle again, or its own process);
        else it is queued on the runner that runs the others (`top_up`). Once per attempt: `report_end` calls it
        too, for the ends of other paths."""
        with self._lock:
            run = self._run_of.pop(key, None)
            if run is None:
                return
            live = self._run_live[run] = self._run_live.get(run, 1) - 1
            spec = self._first_waiting(run)
            if spec is None and live <= 0:
                self._run_waiting.pop(run, None)
                self._run_live.pop(run, None)
        if live > 0:
            self.top_up(run)
        elif spec is None:
            self._runs.run_ended(run)
        else:
            self._start_first(run, spec)

    def _first_waiting(self, run: str) -> TaskSpec | None:
        """(Under the lock.) The run's first waiting child, taken to start as a first launch, when none of the run
        is in flight; None otherwise (or when none waits)."""
        waiting = self._run_waiting.get(run)
        if self._run_live.get(run, 0) > 0 or not waiting:
            return None
        self._run_live[run] = 1
        return waiting.popleft()

    def _start_first(self, run: str, spec: TaskSpec) -> None:
        """Start the run's child taken by `_first_waiting`, then queue the next ones on its runner (`top_up`)."""
        self._start_in_run(spec)
        self.top_up(run)

    def top_up(self, run: str) -> None:
        """Queue the run's waiting children on the runner that runs one of them, up to its room (RUN_AHEAD), so
        that it starts each next one without waiting for the server (docs/adr/0041). The runner learns the next
        child before the end of the one before it is read; nothing else of a run changes: its children still run
        one at a time, on its one slot."""
        while True:
            runner = self._runs.room(run)
            if runner is None:
                return
            with self._lock:
                waiting = self._run_waiting.get(run)
                if not waiting:
                    return
                spec = waiting.popleft()
                self._run_live[run] = self._run_live.get(run, 0) + 1
            try:
                self._queue_on(runner, spec)
            except Exception as e:  # an error of the host (a full disk): it fails to start, as in `_start_in_run`
                log.exception("starting %s failed", spec.key)
                self.failed_to_start(spec, f"CannotStartContainerError: {e}")

    def requeue(self, specs: list[TaskSpec]) -> None:
        """Children of runs queued on a runner that ended before it reached them (compute/local_runs.py `_ended`):
        they never started, so they wait in their runs again, first, their (empty) work dirs removed; a run with no
        other child in flight starts the first of them now. One a launcher no longer has in a run fails to start."""
        for spec in specs:
            with contextlib.suppress(OSError):
                os.rmdir(self.work_dir(spec.job_id, spec.attempt))
        runs: dict[str, None] = {}
        lost: list[TaskSpec] = []
        with self._lock:
            for spec in reversed(specs):
                run = self._run_of.get(spec.key)
                waiting = self._run_waiting.get(run) if run is not None else None
                if run is None or waiting is None or spec.key in self._requeued:  # (once: runners that keep dying)
                    lost.append(spec)
                    continue
                self._requeued.add(spec.key)
                waiting.appendleft(spec)
                self._run_live[run] = self._run_live.get(run, 1) - 1
                runs[run] = None
            starts = [(run, first) for run in runs if (first := self._first_waiting(run)) is not None]
        for spec in lost:
            self.failed_to_start(spec, "CannotStartContainerError: the runner ended before the command started")
        for run, spec in starts:
            self._start_first(run, spec)

    def _queue_on(self, runner: Runner, spec: TaskSpec) -> None:
        if not self._open_attempt(spec, self._work_path(spec)):
            self.next_of_run(spec.key)
            return
        self._runs.hand(runner, spec)  # (its runner ended since: it starts as the first of its run would)
        self._early_stop(spec)

    def _start_in_run(self, spec: TaskSpec) -> None:
        """A child of a run that cannot be started (an error of the host: a full disk, a closed journal) fails to
        start, and so hands its turn to the next: the children waiting behind it would wait for ever otherwise."""
        try:
            self._start_checked(spec)
        except Exception as e:
            log.exception("starting %s failed", spec.key)
            self.failed_to_start(spec, f"CannotStartContainerError: {e}")

    def _start_on_runner(self, spec: TaskSpec) -> bool:
        """A run's next child, handed to its run's idle runner (the one that ran the child before it) without what
        a first launch checks and builds: its run shares its command and environment (`Runners.take_for_run`).
        False when no runner of its run is idle."""
        runner = self._runs.take_for_run(spec)
        if runner is None:
            return False
        if not self._open_attempt(spec, self._work_path(spec)):
            self._runs.give_back(runner)
            self.next_of_run(spec.key)
            return True
        self._runs.hand(runner, spec)
        return True

    def _unqueue(self, key: str, reason: str) -> bool:
        """A stop of a child waiting in its run: it never starts, and ends at once with the stop's reason."""
        with self._lock:
            run = self._run_of.get(key)
            waiting = self._run_waiting.get(run) if run is not None else None
            spec = next((w for w in waiting if w.key == key), None) if waiting else None
            if spec is None or waiting is None:
                return False
            waiting.remove(spec)
            del self._run_of[key]
            self._launched.discard(key)
        self.stopped_before_start(spec, reason)
        return True

    def stopped_before_start(self, spec: TaskSpec, reason: str) -> None:
        """A stopped attempt whose command never ran: it ends with the stop's reason and no exit code."""
        self.released(spec.key)
        stopped = TaskStopped(spec.attempt, None, status_reason=reason, timed_out=reason == TIMEOUT_REASON)
        self.logs.append(spec.log_stream, [(_now_ms(), f"Stopped before it started: {reason}")])
        self.report_end(spec.job_id, spec.key, replace(stopped, task_arn=spec.local_task_arn))

    def compact_journal(self, active_jobs: Iterable[str]) -> None:
        """At start, before the recovery (runtime/local.py): the journal keeps only the lines of `active_jobs`, the
        jobs the store has STARTING or RUNNING (Journal.compact)."""
        self._journal.compact(active_jobs)

    def recovered(self) -> None:
        """After the recovery at start: the journal's previous inode goes (Journal.release), and the journal is
        compacted while the server runs from now on (Journal.attach)."""
        self._journal.release()

    # -- what a live compaction of the journal asks (local_journal.Launches) ----------------------------------------

    def journal_jobs(self) -> set[str]:
        with self._lock:
            return {job_of(key) for key in self._attempts}

    def writers(self) -> list[Writer]:
        with self._lock:
            running: list[Writer] = list(self._running.values())
        return running + self._groups.members() + list(self._runs.writers())

    def report_end(self, job_id: str, key: str, stopped: TaskStopped) -> None:
        """An attempt's end, reported: its journal lines are kept until the sink has recorded it (its `recorded`
        callback, with `sink_records`; else once it returns)."""
        if self.sink_records:
            self.on_event(job_id, stopped, lambda: self._settled(key))  # type: ignore[call-arg]
        else:
            self.on_event(job_id, stopped)
            self._settled(key)
        self.next_of_run(key)

    def _settled(self, key: str) -> None:
        with self._lock:
            self._attempts.discard(key)
            self._requeued.discard(key)
            unsettled = len(self._attempts)
        self._journal.settled(unsettled)  # (the last compaction may have kept a burst's lines: Journal.settled)

    def recover(self, job_id: str, attempt: int) -> bool:
        """After a restart: the attempt started if its work dir exists; a process still running is killed.

        A crash between creating the work dir and recording the pid leaves no pid: the attempt counts as started
        (it must not run again under the same number), and its process, if any, is found by the AWS_BATCH_*
        variables it was given (Linux /proc; elsewhere it cannot be found) and killed.

        An attempt whose command exited 0 while nobody watched (its exit status is in the journal) finished: that
        is reported (TaskStopped, exit 0) before returning, so the job succeeds instead of running again; with
        `lost_host`, any other end is reported as that host lost, with the task's ARNs (the ARNs a crash before its
        start was applied would leave out). The caller's lost-host report that follows is then ignored."""
        self._journal.want(job_id)  # (its lines are kept from now on: Journal.want)
        grouped = self._groups.recover(job_id, attempt)  # a multi-container attempt (docs/adr/0028)
        if grouped is not None:
            return grouped
        return local_recovery.recover_process(self, job_id, attempt)

    def shutdown(self, timeout: float = 10.0) -> None:
        """Stop every process (the server is going away; their attempts are recovered at the next start).

        The exits this causes are not reported: they are not the jobs' own outcome (reporting them would fail the
        attempts with exit code 137 instead of recovering them as a lost host), and the store is closed next.
        Waits (bounded) until the watchers are done, so none writes after this returns."""
        with self._lock:
            running = list(self._running.values())
            for r in running:
                r.lost = True
            self._run_waiting.clear()  # never started: launched again by the recovery at the next start
            self._run_of.clear()
            self._run_live.clear()
        for r in running:
            for t in r.timers:
                t.cancel()
            self._signal(r, signal.SIGKILL)
        self._groups.shutdown(timeout)
        self._runs.shutdown()
        self._workers.wait_idle(timeout)
        self._journal.close()

    # -- internals --------------------------------------------------------------------------------------------

    def failed_to_start(self, spec: TaskSpec, reason: str) -> None:
        """The attempt's process could not be started: reported as its TaskStopped (the retry strategy decides)."""
        self.released(spec.key)
        self.logs.append(spec.log_stream, [(_now_ms(), reason)])
        stopped = TaskStopped(spec.attempt, None, reason, START_FAILED, task_arn=spec.local_task_arn)
        self.report_end(spec.job_id, spec.key, stopped)

    def _release(self, key: str) -> None:
        if self.credentials is not None:
            self.credentials.release(key)

    def holds(self, key: str) -> bool:
        """Whether the attempt was launched by this launcher and its end is not recorded yet (`launch` of it does
        nothing)."""
        with self._lock:
            return self._holds(key)

    def _holds(self, key: str) -> bool:  # (under the lock)
        return key in self._launched or key in self._attempts

    def released(self, key: str) -> None:
        """The attempt ran on a runner and ended (compute/local_runs.py): what the launcher held for it goes."""
        self._release(key)
        with self._lock:
            self._launched.discard(key)

    def _arm(self, running: _Running, seconds: float, action: object) -> None:
        # Bounded by the platform's longest wait.
        timer = threading.Timer(min(seconds, threading.TIMEOUT_MAX), action, args=(running,))  # type: ignore[arg-type]
        timer.daemon = True
        running.timers.append(timer)
        timer.start()

    def _signal(self, running: _Running, sig: signal.Signals) -> None:
        if running.proc is None:
            return  # not spawned yet: a stop is delivered by the watcher, a shutdown is seen by _spawn
        running.proc.signal_group(sig)  # nothing once it was reaped (a SIGKILL armed by a stop racing its end)

    def _watch(self, running: _Running, workdir: Path, env: dict[str, str]) -> None:
        try:
            if self._spawn(running, workdir, env):
                self._watch_until_exit(running)
        finally:
            # Its work dir, created exclusively, keeps a second launch from running it again: the set holds only
            # what runs (a million finished array children kept 100 MB here).
            with self._lock:
                self._launched.discard(running.spec.key)

    def _watch_until_exit(self, running: _Running) -> None:
        spec, proc = running.spec, running.proc
        assert proc is not None and proc.stdout is not None
        code = quick_exit(proc)
        if code is None:
            # A SIGTERM that reaches the supervisor after its trap is set but before it has forked the command is
            # swallowed by the trap, and the command then runs until the SIGKILL of the grace period (on a busy
            # host that window can outlast START_REPORT_S): a stop is sent only once the command exists.
            wait_for_command(proc)
        with self._lock:
            running.started = True
            stopped_early = running.stop_reason is not None
        if stopped_early and code is None:
            self._terminate(running)
        self._report(running, TaskStarted(spec.attempt))  # right before its stop when the task has ended already
        if code is None:
            try:
                for raw in proc.stdout:
                    self.logs.append(spec.log_stream, [(_now_ms(), raw.decode("utf-8", "replace").rstrip("\n"))])
            except Exception:  # a log failure must not lose the exit
                log.exception("reading the output of %s failed", spec.key)
            code = exit_code_of(proc.wait_exit())
        for t in running.timers:
            t.cancel()
        self._release(spec.key)
        with self._lock:
            self._running.pop(spec.key, None)
            lost = running.lost
        if lost:
            return
        why = running.stop_reason
        self._report(running, TaskStopped(spec.attempt, code, status_reason=why, timed_out=why == TIMEOUT_REASON))

    def _report(self, running: _Running, event: TaskStarted | TaskStopped) -> None:
        if running.lost:
            return  # killed by shutdown(): recovery at the next start decides
        self.report(running.spec, event)

    def report(self, spec: TaskSpec, event: TaskStarted | TaskStopped) -> None:
        """A task event of the attempt, with the ARNs AWS shows: the task's, and the container instance's (this
        host, EC2-like capacity)."""
        arn = spec.local_task_arn
        event = replace(event, task_arn=arn, container_instance_arn=local_container_instance_arn(arn))
        try:
            if isinstance(event, TaskStopped):
                self.report_end(spec.job_id, spec.key, event)
            else:
                self.on_event(spec.job_id, event)
        except Exception:  # the sweep repairs a lost report (at the latest, the one at the next start)
            log.exception("reporting %s of %s failed", type(event).__name__, spec.key)
