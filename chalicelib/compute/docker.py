"""The Docker launcher: each attempt is a container of the job's image on the machine's Docker engine (ADR 0016).

- What the container gets (image, command, environment, limits, mounts) is compute/docker_config.py: ECS's way.
- One thread per attempt (the attempt's "watcher") does everything that waits on the engine, never the caller's
  (the dispatcher's) thread: pull a missing image, create, start, report TaskStarted, copy the log stream line by
  line into the attempt's log stream, wait for the end, read what the follow missed, report TaskStopped. Only
  stop() runs elsewhere (a short thread per stop: `docker stop` with the grace period, which honours the image's
  STOPSIGNAL). The launcher times nothing: the control plane stops an attempt past its deadline like any other stop
  (control/timeouts.py, docs/adr/0025); the stop's reason is reported with the end, as ECS reports stoppedReason.
- Ends as AWS reports them: the exit code; an OOM kill (exit 137, State.OOMKilled or the engine's "oom" event:
  docker_engine.oom_killed) with the container reason
  `OutOfMemoryError: Container killed due to memory usage`; an image that cannot be pulled, a container that cannot
  be created or started: no exit code, reason `CannotPullContainerError: …` / `CannotCreateContainerError: …` /
  `CannotStartContainerError: …`, status reason "Task failed to start" (retry strategies apply).

Crash safety (the recovery protocol of ADR 0016): each container is named after the state id, job id and attempt
(a second create conflicts: an attempt never runs twice) and labelled with them; `created <key>` is journalled in
`<state>/work/docker-journal` before the create. Containers outlive the server (`shutdown()` lets go of them);
`recover()` re-attaches to a running one, settles one that ended with its real exit code and OOM flag, starts one
never started (unless it was stopped first: it then ends unstarted, as live), and fails one the engine lost as a lost
host. The engine's sweep runs with `lost_host=None` for this
launcher: it reports every end itself. A container is removed only once its end is recorded (the TaskStopped
report carries a callback the engine runs after applying it: runtime/engine.py `Engine.report`).

Memory: only the attempts in progress are held (`in_progress()`); what keeps an ended attempt from running
again is its marker on disk (compute/docker_state.py `Journal`, docs/adr/0033), as the process executor's work dir
does for its attempts. A long-lived server holds nothing per finished attempt.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import threading
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any, Protocol

import docker
from docker.errors import APIError, DockerException, ImageNotFound

from chalicelib.compute import docker_attempt, docker_config, docker_engine, docker_recovery
from chalicelib.compute.docker_attempt import DRAIN_TIMEOUT_S as DRAIN_TIMEOUT_S
from chalicelib.compute.docker_attempt import ENGINE_LOST_S as ENGINE_LOST_S
from chalicelib.compute.docker_attempt import WAIT_BACKOFF_S as WAIT_BACKOFF_S
from chalicelib.compute.docker_attempt import Attempt
from chalicelib.compute.docker_group import DockerGroups
from chalicelib.compute.docker_state import JOURNAL as JOURNAL
from chalicelib.compute.docker_state import LABEL_ATTEMPT as LABEL_ATTEMPT
from chalicelib.compute.docker_state import LABEL_JOB as LABEL_JOB
from chalicelib.compute.docker_state import LABEL_STATE as LABEL_STATE
from chalicelib.compute.docker_state import LABEL_STREAM as LABEL_STREAM
from chalicelib.compute.docker_state import LOST_HOST as LOST_HOST
from chalicelib.compute.docker_state import OOM_EXIT as OOM_EXIT
from chalicelib.compute.docker_state import OOM_REASON as OOM_REASON
from chalicelib.compute.docker_state import Journal
from chalicelib.compute.local import LocalLauncher
from chalicelib.compute.logs_port import LogStore
from chalicelib.compute.port import CredentialsUnavailable, CredentialVendor, TaskSpec
from chalicelib.compute.workers import Workers
from chalicelib.domain.jobs import Job
from chalicelib.domain.lifecycle import TaskStarted, TaskStopped
from chalicelib.domain.reasons import TASK_FAILED_TO_START

log = logging.getLogger("batchplane.docker")

STOP_TIMEOUT_S = 10  # how long a stop waits for the engine beyond the grace period


class RecordingSink(Protocol):
    """Engine.report: applies a task event; `recorded` runs once it is applied (runtime/engine.py)."""

    def __call__(
        self, job_id: str, event: TaskStarted | TaskStopped, recorded: Callable[[], None] | None = None
    ) -> None: ...


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
        self._attempts: dict[str, Attempt] = {}  # watched now
        # The keys `jobId#attempt` in progress here: launched or recovered, not yet `settled` or let go. They guard
        # against a second launch or recovery during the attempt; after it, its marker does.
        self._launched: set[str] = set()
        self._workers = Workers()  # the watchers' threads (compute/workers.py): one per attempt until its end
        work_root.mkdir(parents=True, exist_ok=True)
        self.journal = Journal(work_root / JOURNAL)
        self._removals = docker_attempt.Removals(client, credentials, self.settled)
        self.groups = DockerGroups(self)  # multi-container attempts

    def name(self, job_id: str, attempt: int) -> str:
        return f"batchplane-{self.state_id}-{job_id.replace(':', '_').replace('#', '.node')}-{attempt}"

    # -- the Launcher port ------------------------------------------------------------------------------------

    def launch(self, spec: TaskSpec) -> None:
        if not self.hold(spec.key):  # before any container of it can exist: see reap()
            return  # idempotent: this attempt is in progress here
        try:
            fresh = self.journal.launching(spec.key)  # its marker, made exclusively (one file create)
        except OSError:
            self.let_go(spec.key)
            raise  # (the sweep launches it again)
        if not fresh:  # launched before: by this server, ended (its container's name is free again: only the marker
            # remembers), or by an earlier run (recover() decides, and clears the marker of one that never started)
            log.warning("%s was launched already: not launched again", spec.key)
            self.let_go(spec.key)
            return
        if spec.containers:  # a multi-container job (docs/adr/0028)
            self.groups.launch(spec)
            return
        grace = float(spec.container.get("stopTimeout") or self.grace_seconds)  # (ecsProperties containers have one)
        a = Attempt(spec.job_id, spec.attempt, spec.log_stream, grace, spec=spec)
        self.watch(a)

    def stop(self, job_id: str, attempt: int, reason: str) -> None:
        if self.groups.stop(f"{job_id}#{attempt}", reason):
            return
        with self._lock:
            a = self._attempts.get(f"{job_id}#{attempt}")
        if a is None or a.stop_reason is not None:
            return
        a.stop_reason = reason
        with contextlib.suppress(OSError):  # kept for a restart, before it is sent (docker_recovery)
            self.journal.record_stop(a.key, reason)
        docker_attempt.stop(self.client, a)

    def recover(self, job_id: str, attempt: int) -> bool:
        """After a restart (or for a claim a sweep finds old): was this attempt ever started? A container found is
        watched again and its real end reported; a journalled container the engine lost fails as a lost host
        (compute/docker_recovery.py)."""
        return docker_recovery.recover(self, job_id, attempt)

    def reap(self) -> int:
        """Remove this state's containers that ended and that nothing watches or will ask about (after the sweep at
        start has recovered every active attempt): an end recorded just before a crash, before its removal
        (compute/docker_recovery.py)."""
        return docker_recovery.reap(self)

    def forget(self, job: Job) -> None:
        """A finished job leaves the store (control/retention.py): forget its attempts."""
        numbers = {a.number for a in job.attempts} | ({job.current.number} if job.current else set())
        keys = [f"{job.job_id}#{n}" for n in numbers]
        with self._lock:
            self._launched.difference_update(keys)
        for key in keys:
            self.journal.forget(key)
        if self.processes is not None:  # work dirs of attempts the process executor ran before a switch
            self.processes.forget(job)

    def shutdown(self, timeout: float = 5.0) -> None:
        """The server goes away: containers keep running (the next start re-attaches to them); nothing more is
        reported or logged. Waits (bounded) for the watchers to let go of their log streams."""
        self.groups.shutdown()
        with self._lock:
            attempts = list(self._attempts.values())
            for a in attempts:
                a.lost = True
        for a in attempts:
            for response in list(a.streams):
                docker_engine.close_stream(self.client, response)
        deadline = time.monotonic() + timeout
        self._workers.wait_idle(timeout)
        self._removals.close(max(0.0, deadline - time.monotonic()))
        self.journal.close()
        if self.processes is not None:
            self.processes.shutdown(0.0)

    # -- the attempts in progress here (what compute/docker_recovery.py asks and tells) ---------------------------

    def hold(self, key: str) -> bool:
        """The attempt is in progress here from now on (launched or recovered: its key joins the set); False when it
        is already (not yet `settled` or let go): nothing is to be done of it again."""
        with self._lock:
            if key in self._launched or key in self._attempts:  # (a watched key is always in the set: belt and braces)
                return False
            self._launched.add(key)
            return True

    def in_progress(self) -> set[str]:
        """The keys of the attempts in progress here (launched or recovered, not yet settled or let go)."""
        with self._lock:
            return self._launched | set(self._attempts)

    def settled(self, key: str) -> None:
        """Its end recorded, then its containers removed (docker_attempt.Removals, DockerTask.done): the marker is
        set STARTED (one that failed to start must not be relaunched by a recovery either), then the key leaves the
        set: from then on the marker alone keeps a launch or a recovery from running the attempt again."""
        self.journal.ended(key)
        self.let_go(key)

    def let_go(self, key: str) -> None:
        """Nothing of the attempt is this server's to watch (any more): its key leaves the set."""
        with self._lock:
            self._launched.discard(key)

    def relaunchable(self, key: str) -> None:
        """Found never started by a recovery: the marker goes, then the key (held until then, so no launch comes
        between): the sweep's launch under the same key makes the attempt anew."""
        self.journal.forget(key)
        self.let_go(key)

    def report_end(self, job_id: str, event: TaskStopped) -> None:
        """Report the end of an attempt held here that no watcher follows (a recovery found it lost, or stopped
        before its start): once the end is recorded, it is settled."""
        self._report(job_id, event, recorded=partial(self.settled, f"{job_id}#{event.attempt}"))

    # -- the watcher: one thread per attempt (reused: compute/workers.py) --------------------------------------

    def watch(self, a: Attempt, *, created: bool = False) -> None:
        """Follow the attempt on a watcher thread until its end is reported: create and start its container (start
        it only, `created`: found created by a recovery), or follow the one found (`a.container`)."""
        with self._lock:
            self._attempts[a.key] = a
        self._workers.run(a.key, lambda: self._run(a, created))

    def _run(self, a: Attempt, created: bool) -> None:
        try:
            if (a.container is None or created) and not self._start(a):
                return
            self._report(a.job_id, TaskStarted(a.attempt), a)
            if (end := docker_attempt.follow(self.client, self.logs, a)) is not None:
                self._end(a, end)
        except Exception as e:  # the engine failed us (unreachable, restarted): the attempt must not hang
            if a.lost:
                return
            log.exception("watching %s failed", a.key)
            if a.container is None:
                self._failed_to_start(a, f"CannotCreateContainerError: {docker_engine.engine_message(e)}")
            else:  # its end cannot be known: as a lost host, and it must not run on unobserved
                self._discard(a)
                self._end(a, TaskStopped(a.attempt, None, status_reason=LOST_HOST))

    def _start(self, a: Attempt) -> bool:
        """Create (unless it exists) and start the attempt's container; False when it did not start (reported)."""
        if a.container is None:
            assert a.spec is not None
            try:
                if not self._create(a, a.spec):
                    return False
            except (docker_config.Refused, CredentialsUnavailable) as e:  # (before anything was created)
                self._failed_to_start(a, str(e))
                return False
        assert a.container is not None
        if a.stop_reason is not None:  # stopped while it was created (its image pulled): it never runs
            self._discard(a)
            with self._lock:
                self._attempts.pop(a.key, None)
            event = docker_attempt.stopped_before_start(a.attempt, a.stop_reason)
            self._report(a.job_id, event, a, recorded=lambda: self._removals.release(a))
            return False
        try:
            # Before the start: a container missing at recovery without this line never ran (a crash between the
            # `created` line and the create), and is created again under the same attempt instead of failing.
            self.journal.started(a.key)
            self.client.start(a.container)
        except DockerException as e:
            self._discard(a)
            self._failed_to_start(a, f"CannotStartContainerError: {docker_engine.engine_message(e)}")
            return False
        if a.stop_reason is not None:  # stopped between the check above and the start
            docker_attempt.stop(self.client, a)
        return True

    def _create(self, a: Attempt, spec: TaskSpec) -> bool:
        name = self.name(spec.job_id, spec.attempt)
        labels = {
            LABEL_JOB: spec.job_id,
            LABEL_ATTEMPT: str(spec.attempt),
            LABEL_STATE: self.state_id,
            LABEL_STREAM: spec.log_stream,
        }
        granted = self.credentials.grant(spec, container=True) if self.credentials is not None else {}
        p = docker_config.plan(spec, name, {LABEL_STATE: self.state_id, LABEL_JOB: spec.job_id}, granted)
        network = self.credentials.network if granted and self.credentials is not None else None
        also = docker_config.join_networks(p, spec, network or None)  # connected to before it starts
        a.volumes = p.volumes
        self.journal.created(spec.key)  # before the container can exist
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
                    self.let_go(a.key)  # (not this server's to watch: a recovery asking later re-attaches to it)
                    return False
                self._failed_to_start(a, f"CannotCreateContainerError: {docker_engine.engine_message(e)}")
                return False
        return False

    def _connect(self, a: Attempt, network: str) -> bool:
        """Connect the created container to a second network; a failure fails its start (the container removed)."""
        assert a.container is not None
        try:
            self.client.connect_container_to_network(a.container, network)
            return True
        except DockerException as e:
            self._discard(a)
            self._failed_to_start(a, f"CannotCreateContainerError: {docker_engine.engine_message(e)}")
            return False

    def _end(self, a: Attempt, event: TaskStopped) -> None:
        with self._lock:
            self._attempts.pop(a.key, None)
        self._report(a.job_id, event, a, recorded=lambda: self._removals.remove(a))

    # -- internals --------------------------------------------------------------------------------------------

    def _failed_to_start(self, a: Attempt, reason: str) -> None:
        self.logs.append(a.log_stream, [(time.time_ns() // 1_000_000, reason)])
        with self._lock:
            self._attempts.pop(a.key, None)
        event = TaskStopped(a.attempt, None, reason=reason, status_reason=TASK_FAILED_TO_START)
        self._report(a.job_id, event, a, recorded=lambda: self._removals.release(a))

    def _discard(self, a: Attempt) -> None:
        """Remove a container that never ran (before its failure is reported: it must not be started later)."""
        if a.container is not None:
            try:
                self.client.remove_container(a.container, force=True)
            except Exception:  # DockerException, or requests' errors when the engine is unreachable
                log.exception("removing the container of %s failed", a.key)
        docker_attempt.remove_volumes(self.client, a.volumes)

    def _report(
        self,
        job_id: str,
        event: TaskStarted | TaskStopped,
        a: Attempt | None = None,
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
