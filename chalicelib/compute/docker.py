"""The Docker launcher: each attempt is a container of the job's image on the machine's Docker engine (ADR 0016).

- What the container gets (image, command, environment, limits, mounts) is compute/docker_config.py: ECS's way.
- One thread per attempt (the attempt's "watcher") does everything that waits on the engine, never the caller's
  (the dispatcher's) thread: pull a missing image, create, start, report TaskStarted, copy the log stream line by
  line into the attempt's log stream, wait for the end, read what the follow missed, report TaskStopped. Only
  stop() runs elsewhere (a short thread per stop: `docker stop` with the grace period, which honours the image's
  STOPSIGNAL). The launcher times nothing: the control plane stops an attempt past its deadline like any other stop
  (control/timeouts.py, docs/adr/0025); the stop's reason is reported with the end, as ECS reports stoppedReason.
- Ends as AWS reports them: the exit code; an OOM kill (exit 137, State.OOMKilled) with the container reason
  `OutOfMemoryError: Container killed due to memory usage`; an image that cannot be pulled, a container that cannot
  be created or started: no exit code, reason `CannotPullContainerError: …` / `CannotCreateContainerError: …` /
  `CannotStartContainerError: …`, status reason "Task failed to start" (retry strategies apply).

Crash safety (the recovery protocol of ADR 0016): each container is named after the state id, job id and attempt
(a second create conflicts: an attempt never runs twice) and labelled with them; `created <key>` is journalled in
`<state>/work/docker-journal` before the create. Containers outlive the server (`shutdown()` lets go of them);
`recover()` re-attaches to a running one, settles one that ended with its real exit code and OOM flag, starts one
never started, and fails one the engine lost as a lost host. The engine's sweep runs with `lost_host=None` for this
launcher: it reports every end itself. A container is removed only once its end is recorded (the TaskStopped
report carries a callback the engine runs after applying it: runtime/engine.py `Engine.report`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import queue
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import docker
from docker.errors import APIError, DockerException, ImageNotFound, NotFound

from chalicelib.compute import docker_config, docker_engine
from chalicelib.compute.docker_group import DockerGroups
from chalicelib.compute.local import DOCKER_JOURNAL, LocalLauncher
from chalicelib.compute.logs_port import LogStore
from chalicelib.compute.port import CredentialVendor, TaskSpec
from chalicelib.domain.jobs import TIMEOUT_REASON, Job
from chalicelib.domain.lifecycle import TaskStarted, TaskStopped
from chalicelib.domain.reasons import TASK_FAILED_TO_START, host_terminated_reason

log = logging.getLogger("batchplane.docker")

LABEL_JOB = "batchplane.job-id"
LABEL_ATTEMPT = "batchplane.attempt"
LABEL_STATE = "batchplane.state-dir"
LABEL_STREAM = "batchplane.log-stream"
# Containers created before docs/adr/0025 carry their attempt's timeout in label "batchplane.timeout"; it is ignored
# (the control plane times the attempt from its startedAt).
OOM_REASON = "OutOfMemoryError: Container killed due to memory usage"
LOST_HOST = host_terminated_reason("local")
JOURNAL = DOCKER_JOURNAL
OOM_EXIT = 137
DRAIN_TIMEOUT_S = 10.0  # the read of what the log follow missed, once the container ended
STOP_TIMEOUT_S = 10  # how long a stop waits for the engine beyond the grace period
ENGINE_LOST_S = 600.0  # waiting for a container's end: how long the engine may stay unreachable (then: lost host)
WAIT_BACKOFF_S = (0.5, 10.0)  # the first and the longest pause between two waits while it is unreachable


class RecordingSink(Protocol):
    """Engine.report: applies a task event; `recorded` runs once it is applied (runtime/engine.py)."""

    def __call__(
        self, job_id: str, event: TaskStarted | TaskStopped, recorded: Callable[[], None] | None = None
    ) -> None: ...


@dataclass
class _Attempt:
    job_id: str
    attempt: int
    log_stream: str
    grace: float = 30.0  # SIGTERM -> SIGKILL: stopTimeout where the container has one, else the server's
    spec: TaskSpec | None = None  # None for a container re-attached after a restart
    container: str | None = None  # id, once created
    volumes: list[str] = field(default_factory=list)
    stop_reason: str | None = None
    lost: bool = False  # the server shuts down: nothing more is reported or logged
    since: float | None = None  # re-attached: log lines from this epoch second on (those up to last_ms are known)
    last_ms: int | None = None
    tail_ms: int | None = None  # the latest timestamp appended by this watcher, and the lines appended at it
    tail: list[str] = field(default_factory=list)
    streams: list[Any] = field(default_factory=list)

    @property
    def key(self) -> str:
        return f"{self.job_id}#{self.attempt}"


class DockerLauncher:
    def __init__(
        self,
        client: docker.APIClient,
        state_id: str,
        work_root: Path,
        logs: LogStore,
        on_event: RecordingSink,
        *,
        grace_seconds: float = 30.0,
        credentials: CredentialVendor | None = None,
        processes: LocalLauncher | None = None,
    ) -> None:
        self.client = client
        self.state_id = state_id
        self.logs = logs
        self.on_event = on_event
        self.grace_seconds = grace_seconds
        self.credentials = credentials
        self.processes = processes  # the process executor of the same state: recovers the attempts it started
        self._lock = threading.Lock()
        self._attempts: dict[str, _Attempt] = {}  # watched now
        self._launched: set[str] = set()
        self._watchers: set[threading.Thread] = set()
        work_root.mkdir(parents=True, exist_ok=True)
        self._journal_path = work_root / JOURNAL
        self._journal = os.open(self._journal_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        self._started: set[str] | None = None  # the journal's `started` lines, read at the first recovery
        self._removals: queue.Queue[tuple[_Attempt, str] | None] = queue.Queue()
        self._remover = threading.Thread(target=self._remove_loop, name="docker-remover", daemon=True)
        self._remover.start()
        self._groups = DockerGroups(self)  # multi-container attempts

    def name(self, job_id: str, attempt: int) -> str:
        return f"batchplane-{self.state_id}-{job_id.replace(':', '_').replace('#', '.node')}-{attempt}"

    # -- the Launcher port ------------------------------------------------------------------------------------

    def launch(self, spec: TaskSpec) -> None:
        with self._lock:
            if spec.key in self._launched:
                return  # idempotent: this attempt was started already
            self._launched.add(spec.key)
        if spec.containers:  # a multi-container job (docs/adr/0028)
            self._groups.launch(spec)
            return
        grace = float(spec.container.get("stopTimeout") or self.grace_seconds)  # (ecsProperties containers have one)
        a = _Attempt(spec.job_id, spec.attempt, spec.log_stream, grace, spec=spec)
        self._watch(a)

    def stop(self, job_id: str, attempt: int, reason: str) -> None:
        if self._groups.stop(f"{job_id}#{attempt}", reason):
            return
        with self._lock:
            a = self._attempts.get(f"{job_id}#{attempt}")
        if a is None or a.stop_reason is not None:
            return
        a.stop_reason = reason
        self._stop(a)

    def recover(self, job_id: str, attempt: int) -> bool:
        """After a restart (or for a claim a sweep finds old): was this attempt ever started? A container found is
        watched again and its real end reported; a journalled container the engine lost fails as a lost host."""
        key = f"{job_id}#{attempt}"
        with self._lock:
            if key in self._attempts or key in self._launched:
                return True  # this server started it and watches it (or has reported its end)
            self._launched.add(key)
        try:
            grouped = self._groups.recover(job_id, attempt)  # a multi-container attempt (docs/adr/0028)
            if grouped is not None:
                if not grouped:
                    with self._lock:
                        self._launched.discard(key)  # the sweep launches it now, under the same key
                return grouped
            info = self.client.inspect_container(self.name(job_id, attempt))
        except NotFound:
            if self.processes is not None and self.processes.work_dir(job_id, attempt).is_dir():
                # started by the process executor before a switch of executors: recovered as it would recover it
                self.processes.recover(job_id, attempt)  # (kills it; an exit 0 it recorded is reported as such)
                self._report(job_id, TaskStopped(attempt, None, status_reason=LOST_HOST))
                return True
            if key not in self._journal_started():
                with self._lock:  # never created, or created but never started: it never ran
                    self._launched.discard(key)  # the sweep launches it now, under the same key
                return False
            self._report(job_id, TaskStopped(attempt, None, status_reason=LOST_HOST))  # it may have run: lost
            return True
        except Exception:  # the engine does not answer: the next sweep asks again
            with self._lock:
                self._launched.discard(key)
            raise
        labels = info["Config"].get("Labels") or {}
        grace = float(info["Config"].get("StopTimeout") or self.grace_seconds)
        a = _Attempt(job_id, attempt, labels.get(LABEL_STREAM, ""), grace)
        a.container = info["Id"]
        a.volumes = [m["Name"] for m in info.get("Mounts") or [] if m.get("Type") == "volume" and m.get("Name")]
        a.last_ms = self._last_logged(a.log_stream)
        a.since = a.last_ms / 1000 if a.last_ms else None
        self._watch(a, created=info["State"]["Status"] == "created")
        return True

    def reap(self) -> int:
        """Remove this state's containers that ended and that nothing watches or will ask about (after the sweep at
        start has recovered every active attempt): an end recorded just before a crash, before its removal."""
        label = f"{LABEL_STATE}={self.state_id}"
        ended = self.client.containers(all=True, filters={"label": label, "status": "exited"})
        # Read after the list, not before: a launch marks its key before it creates its container, so every
        # container listed that a launch made is known by now (read first, a job launched since, which ran and
        # exited before the list came back, would be removed under its watcher, and fail as a lost host).
        with self._lock:
            known = self._launched | set(self._attempts)
        # The network holders of multi-container tasks ended while the server was down (they never exit by themselves)
        ended += self.client.containers(all=True, filters={"label": [label, "batchplane.container=-net"]})
        removed = 0
        for c in ended:
            labels = c.get("Labels") or {}
            if f"{labels.get(LABEL_JOB)}#{labels.get(LABEL_ATTEMPT)}" in known:
                continue
            with contextlib.suppress(DockerException):
                self.client.remove_container(c["Id"], v=True, force=True)
                removed += 1
        return removed

    def forget(self, job: Job) -> None:
        """A finished job leaves the store (control/retention.py): forget its attempts."""
        numbers = {a.number for a in job.attempts} | ({job.current.number} if job.current else set())
        with self._lock:
            self._launched.difference_update(f"{job.job_id}#{n}" for n in numbers)
        if self.processes is not None:  # work dirs of attempts the process executor ran before a switch
            self.processes.forget(job)

    def shutdown(self, timeout: float = 5.0) -> None:
        """The server goes away: containers keep running (the next start re-attaches to them); nothing more is
        reported or logged. Waits (bounded) for the watchers to let go of their log streams."""
        self._groups.shutdown()
        with self._lock:
            attempts = list(self._attempts.values())
            for a in attempts:
                a.lost = True
            watchers = list(self._watchers)
        for a in attempts:
            for response in list(a.streams):
                docker_engine.close_stream(self.client, response)
        deadline = time.monotonic() + timeout
        for w in watchers:
            w.join(max(0.0, deadline - time.monotonic()))
        self._removals.put(None)
        self._remover.join(max(0.0, deadline - time.monotonic()))
        os.close(self._journal)
        if self.processes is not None:
            self.processes.shutdown(0.0)

    # -- the watcher: one thread per attempt ------------------------------------------------------------------

    def _watch(self, a: _Attempt, *, created: bool = False) -> None:
        with self._lock:
            self._attempts[a.key] = a
        thread = threading.Thread(target=self._run, args=(a, created), name=f"task-{a.key}", daemon=True)
        with self._lock:
            self._watchers.add(thread)
        thread.start()

    def _run(self, a: _Attempt, created: bool) -> None:
        try:
            if (a.container is None or created) and not self._start(a):
                return
            self._report(a.job_id, TaskStarted(a.attempt), a)
            self._follow(a)
        except Exception as e:  # the engine failed us (unreachable, restarted): the attempt must not hang
            if a.lost:
                return
            log.exception("watching %s failed", a.key)
            if a.container is None:
                self._failed_to_start(a, f"CannotCreateContainerError: {docker_engine.engine_message(e)}")
            else:  # its end cannot be known: as a lost host, and it must not run on unobserved
                self._discard(a)
                self._end(a, TaskStopped(a.attempt, None, status_reason=LOST_HOST))
        finally:
            with self._lock:
                self._watchers.discard(threading.current_thread())

    def _start(self, a: _Attempt) -> bool:
        """Create (unless it exists) and start the attempt's container; False when it did not start (reported)."""
        if a.container is None:
            assert a.spec is not None
            try:
                if not self._create(a, a.spec):
                    return False
            except docker_config.Refused as e:
                self._failed_to_start(a, str(e))
                return False
        assert a.container is not None
        if a.stop_reason is not None:  # stopped while its image was pulled: it never runs
            self._discard(a)
            with self._lock:
                self._attempts.pop(a.key, None)
            event = TaskStopped(a.attempt, None, status_reason=a.stop_reason, timed_out=a.stop_reason == TIMEOUT_REASON)
            self._report(a.job_id, event, a, recorded=lambda: self._removals.put((a, "release")))
            return False
        try:
            # Before the start: a container missing at recovery without this line never ran (a crash between the
            # `created` line and the create), and is created again under the same attempt instead of failing.
            os.write(self._journal, f"started {a.key}\n".encode())
            self.client.start(a.container)
        except DockerException as e:
            self._discard(a)
            self._failed_to_start(a, f"CannotStartContainerError: {docker_engine.engine_message(e)}")
            return False
        if a.stop_reason is not None:  # stopped between the check above and the start
            self._stop(a)
        return True

    def _create(self, a: _Attempt, spec: TaskSpec) -> bool:
        name = self.name(spec.job_id, spec.attempt)
        labels = {
            LABEL_JOB: spec.job_id,
            LABEL_ATTEMPT: str(spec.attempt),
            LABEL_STATE: self.state_id,
            LABEL_STREAM: spec.log_stream,
        }
        granted = self.credentials.grant(spec, container=True) if self.credentials is not None else {}
        p = docker_config.plan(spec, name, {LABEL_STATE: self.state_id, LABEL_JOB: spec.job_id}, granted)
        on_credentials = bool(granted and self.credentials is not None and self.credentials.network)
        if on_credentials and self.credentials is not None:
            p.host_config["network_mode"] = self.credentials.network
            # Without NET_RAW (on in Docker's default set) a container cannot forge its source address or ARP-spoof
            # its neighbours there, which the credentials server trusts to tell containers apart (ADR 0017).
            p.host_config["cap_drop"] = [*p.host_config.get("cap_drop", []), "NET_RAW"]
        also: str | None = None  # a second network the container is connected to before it starts
        if spec.network and on_credentials:
            # A node of a multi-node job with a role: on the credentials network (its requests to 169.254.170.2
            # leave from its address there, which the credentials server identifies it by) and on its job's network
            # (its peers reach it there: the main node's address is the one on that network, compute/nodes.py).
            also = spec.network
        elif spec.network:  # a node of a multi-node job: on its job's network (compute/nodes.py)
            p.host_config["network_mode"] = spec.network
        a.volumes = p.volumes
        os.write(self._journal, f"created {spec.key}\n".encode())  # before the container can exist
        kwargs: dict[str, Any] = {
            "command": p.command,
            "environment": p.environment,
            "user": p.user,
            "labels": labels,
            "name": name,
            "stop_timeout": int(a.grace),
            "host_config": self.client.create_host_config(**p.host_config),
        }
        for pulled in (False, True):
            try:
                a.container = self.client.create_container(p.image, **kwargs)["Id"]
                return also is None or self._connect(a, also)
            except ImageNotFound:
                if pulled:
                    raise
                why = docker_engine.pull(self.client, p.image)
                if why is not None:
                    self._failed_to_start(a, f"CannotPullContainerError: {why}")
                    return False
            except APIError as e:
                if e.status_code == 409:  # the name exists: an earlier run created it (recover() decides)
                    log.warning("container %s exists already: not started again", name)
                    with self._lock:
                        self._attempts.pop(a.key, None)
                    return False
                self._failed_to_start(a, f"CannotCreateContainerError: {docker_engine.engine_message(e)}")
                return False
        return False

    def _connect(self, a: _Attempt, network: str) -> bool:
        """Connect the created container to a second network; a failure fails its start (the container removed)."""
        assert a.container is not None
        try:
            self.client.connect_container_to_network(a.container, network)
            return True
        except DockerException as e:
            self._discard(a)
            self._failed_to_start(a, f"CannotCreateContainerError: {docker_engine.engine_message(e)}")
            return False

    def _follow(self, a: _Attempt) -> None:
        """Copy the container's output into the log stream until it ends, then report its end."""
        assert a.container is not None
        try:
            for frame in docker_engine.log_frames(self.client, a.container, a.since, a.streams):
                if a.lost:
                    return
                self._append(a, frame)
        except Exception:  # a log failure must not lose the exit (the wait below tells it)
            if a.lost:
                return
            log.exception("reading the output of %s failed", a.key)
        if a.lost:
            return
        status = self._wait(a)
        if status is None:
            if not a.lost:  # the engine lost it, or stayed unreachable: its end cannot be known
                self._end(a, TaskStopped(a.attempt, None, status_reason=LOST_HOST))
            return
        self._drain(a)
        code = int(status.get("StatusCode", -1))
        reason = OOM_REASON if code == OOM_EXIT and self._oom_killed(a) else None
        why = a.stop_reason
        self._end(a, TaskStopped(a.attempt, code, reason=reason, status_reason=why, timed_out=why == TIMEOUT_REASON))

    def _wait(self, a: _Attempt) -> dict[str, Any] | None:
        """The container's end (`docker wait`); None when the engine lost it (NotFound), when it stays unreachable
        for ENGINE_LOST_S, or when the server shuts down. An engine that restarts or drops its socket makes the wait
        fail with requests' ConnectionError (not a DockerException): the wait is retried with a backoff, and the
        real end (exit code, OOM) is reported once the engine answers again."""
        assert a.container is not None
        deadline, pause = time.monotonic() + ENGINE_LOST_S, WAIT_BACKOFF_S[0]
        while not a.lost:
            try:
                return dict(self.client.wait(a.container, timeout=None))
            except NotFound:  # removed behind our back (or by an engine that lost it)
                log.warning("the container of %s is gone: its attempt fails as a lost host", a.key)
                return None
            except Exception:
                if time.monotonic() >= deadline:
                    log.exception("the engine stayed unreachable; %s fails as a lost host", a.key)
                    return None
                log.warning("waiting for the end of %s failed; retrying in %.1fs", a.key, pause, exc_info=True)
            end = time.monotonic() + pause
            while not a.lost and time.monotonic() < end:
                time.sleep(min(0.25, pause))
            pause = min(pause * 2, WAIT_BACKOFF_S[1])
        return None

    def _oom_killed(self, a: _Attempt) -> bool:
        assert a.container is not None
        try:
            return bool(self.client.inspect_container(a.container)["State"].get("OOMKilled"))
        except Exception:  # the exit code is reported all the same
            log.exception("inspecting the end of %s failed", a.key)
            return False

    def _append(self, a: _Attempt, frame: bytes) -> None:
        if lines := docker_engine.log_lines(frame, a.last_ms):
            self.logs.append(a.log_stream, lines)
            for ms, text in lines:
                if a.tail_ms is None or ms > a.tail_ms:
                    a.tail_ms, a.tail = ms, []
                if ms == a.tail_ms:
                    a.tail.append(text)

    def _drain(self, a: _Attempt) -> None:
        """The container ended: append what the log follow missed (it can end before the engine wrote a last line
        without a newline: ADR 0016). One read, from the latest timestamp this watcher appended on."""
        assert a.container is not None
        after, appended = (a.tail_ms, a.tail) if a.tail_ms is not None else (a.last_ms, None)
        try:
            frames = docker_engine.logged_since(self.client, a.container, after, DRAIN_TIMEOUT_S)
        except Exception:  # the end is reported all the same
            log.exception("reading the last output of %s failed", a.key)
            return
        if (missed := docker_engine.unseen_lines(frames, after, appended)) and not a.lost:
            self.logs.append(a.log_stream, missed)

    def _end(self, a: _Attempt, event: TaskStopped) -> None:
        with self._lock:
            self._attempts.pop(a.key, None)
        self._report(a.job_id, event, a, recorded=lambda: self._removals.put((a, "remove")))

    # -- stop ---------------------------------------------------------------------------------------------------

    def _stop(self, a: _Attempt) -> None:
        """`docker stop`: the image's stop signal (SIGTERM), then SIGKILL after the grace period, as ECS stops a
        task; on its own thread, so the caller does not wait for it."""
        container = a.container
        if container is None:
            return  # not created yet: _start sees stop_reason and never starts it

        def stop() -> None:
            try:
                self.client.stop(container, timeout=int(a.grace))
            except Exception:  # DockerException, or requests' errors when the engine is unreachable
                log.exception("stopping the container of %s failed", a.key)

        threading.Thread(target=stop, name=f"stop-{a.key}", daemon=True).start()

    # -- internals --------------------------------------------------------------------------------------------

    def _failed_to_start(self, a: _Attempt, reason: str) -> None:
        self.logs.append(a.log_stream, [(time.time_ns() // 1_000_000, reason)])
        with self._lock:
            self._attempts.pop(a.key, None)
        event = TaskStopped(a.attempt, None, reason=reason, status_reason=TASK_FAILED_TO_START)
        self._report(a.job_id, event, a, recorded=lambda: self._removals.put((a, "release")))

    def _discard(self, a: _Attempt) -> None:
        """Remove a container that never ran (before its failure is reported: it must not be started later)."""
        if a.container is not None:
            try:
                self.client.remove_container(a.container, force=True)
            except Exception:  # DockerException, or requests' errors when the engine is unreachable
                log.exception("removing the container of %s failed", a.key)
        self._remove_volumes(a.volumes)

    def _report(
        self,
        job_id: str,
        event: TaskStarted | TaskStopped,
        a: _Attempt | None = None,
        recorded: Callable[[], None] | None = None,
    ) -> None:
        if a is not None and a.lost:
            return  # the server shuts down: the next start's recovery reports it
        if a is not None and a.spec is not None:  # AWS shows ECS ARNs: the task's and the container instance's
            spec = a.spec
            event = dataclasses.replace(
                event, task_arn=spec.local_task_arn, container_instance_arn=spec.local_container_instance_arn
            )
        try:
            self.on_event(job_id, event, recorded)
        except Exception:  # the next start's recovery reports it again
            log.exception("reporting %s of %s#%s failed", type(event).__name__, job_id, event.attempt)

    def _remove_loop(self) -> None:
        """Removes ended containers once their end is recorded, off the dispatcher's thread."""
        while (item := self._removals.get()) is not None:
            a, what = item
            try:
                if what == "remove" and a.container is not None:
                    with contextlib.suppress(NotFound):  # gone already: its credentials still go below
                        self.client.remove_container(a.container, v=True, force=True)
                    self._remove_volumes(a.volumes)
            except Exception:
                log.exception("removing the container of %s failed", a.key)
            if self.credentials is not None:
                self.credentials.release(a.key)

    def _remove_volumes(self, names: Iterable[str]) -> None:
        for volume in names:
            with contextlib.suppress(Exception):
                self.client.remove_volume(volume, force=True)

    def _journal_started(self) -> set[str]:
        """Attempts whose container may have been started (`started` lines, written before the start)."""
        if self._started is None:
            self._read_journal()
        assert self._started is not None
        return self._started

    def _read_journal(self) -> None:
        try:
            lines = self._journal_path.read_text().splitlines()
        except OSError:
            lines = []
        self._started = {line[8:] for line in lines if line.startswith("started ")}

    def _last_logged(self, stream: str) -> int | None:
        for name, _, _, last in self.logs.streams(stream):
            if name == stream:
                return last
        return None
