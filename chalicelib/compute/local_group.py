"""Multi-container jobs on the process executor: each container of the task is a process on this machine
(docs/adr/0028). They share localhost (as awsvpc's containers do) and the attempt's working directory (the task's
scratch space); each has its own session, environment and log stream `<jd>/<container>/<task id>`.

Coordination (dependsOn, essential, stop, timeout) is compute/task_group.py's. Recovery after a crash is the process
executor's: the attempt's work dir exists and no exit status was recorded, so its processes (found by their
AWS_BATCH_* variables) are killed and the attempt ends as a lost host.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import signal
import subprocess
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING

from chalicelib.compute import task_group
from chalicelib.compute.port import TaskSpec
from chalicelib.domain.ecs_task import TaskContainer
from chalicelib.domain.lifecycle import TaskStarted, TaskStopped

if TYPE_CHECKING:
    from chalicelib.compute.local import LocalLauncher

log = logging.getLogger("batchplane.launcher")


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


class ProcessMember:
    def __init__(self, launcher: LocalLauncher, spec: TaskSpec, c: TaskContainer, workdir: Path) -> None:
        self.launcher = launcher
        self.spec = task_group.member_spec(spec, c)
        self.workdir = workdir
        self.proc: subprocess.Popen[bytes] | None = None
        self._timers: list[threading.Timer] = []
        base = {**launcher.base_env, **spec.ecs_environment, **self.spec.environment}
        self.env = {**base, **launcher.credentials.grant(spec, container=False)} if launcher.credentials else base

    def prepare(self) -> str | None:
        from chalicelib.compute.local import not_executable

        command = self.spec.command
        if not command:
            return "CannotStartContainerError: the container has no command to run"
        missing = not_executable(command[0], self.env, self.workdir)
        return f"CannotStartContainerError: {missing}: {command[0]}" if missing else None

    def start(self) -> str | None:
        try:
            self.proc = subprocess.Popen(
                self.spec.command,
                cwd=self.workdir,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        except OSError as e:
            return f"CannotStartContainerError: {e.strerror or e}: {self.spec.command[0]}"
        return None

    def wait(self) -> tuple[int | None, str | None]:
        from chalicelib.compute.local import exit_code_of

        proc = self.proc
        assert proc is not None and proc.stdout is not None
        try:
            for raw in proc.stdout:
                line = raw.decode("utf-8", "replace").rstrip("\n")
                self.launcher.logs.append(self.spec.log_stream, [(_now_ms(), line)])
        except Exception:  # a log failure must not lose the exit
            log.exception("reading the output of %s failed", self.spec.log_stream)
        code = exit_code_of(proc.wait())
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
        if self.proc is not None and self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.proc.pid, sig)

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

    def launch(self, spec: TaskSpec, workdir: Path) -> None:
        members = {c.name: ProcessMember(self.launcher, spec, c, workdir) for c in spec.containers}

        def report(event: TaskStarted | TaskStopped) -> None:
            event = dataclasses.replace(
                event, task_arn=spec.local_task_arn, container_instance_arn=spec.local_container_instance_arn
            )
            try:
                self.launcher.on_event(spec.job_id, event)
            except Exception:  # the sweep repairs a lost report
                log.exception("reporting %s of %s failed", type(event).__name__, spec.key)

        run = task_group.GroupRun(spec, members, report, self.launcher.grace_seconds)
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
        found[0].stop(reason)
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
