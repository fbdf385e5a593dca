"""Multi-container jobs on the Docker executor (docs/adr/0028): one container per task container, all in one network
namespace (localhost between them, as ECS's awsvpc gives), sharing the task's volumes.

- The namespace belongs to a holder container, `<attempt's name>-net`: the image of the task's first container
  running `sleep` (ECS uses its own "pause" container; no registry is reachable to fetch one, and a container that
  exits early, such as an init container, must not take the namespace with it). Its image must have `sleep`.
  It carries host.docker.internal and, for a job with a role, the credentials network; the members join it
  (`network_mode: container:<holder>`).
- Each member is `<attempt's name>-<container name>`, created from the container's properties the way a
  single-container job's is (compute/docker_config.py); a Docker volume of the task is one volume, named after the
  attempt, mounted by every member that names it.
- Coordination (dependsOn, essential, stop, timeout) is compute/task_group.py's. Each member's output goes to its own
  log stream, `<jd>/<container>/<task id>`.
- Recovery after a restart (as compute/docker.py recovers a single container, ADR 0016): containers outlive the
  server. The attempt's containers are found by label; the holder's `batchplane.task` label carries what the
  coordination needs (each container's name, essential, dependsOn and log stream), so the task is re-attached: a
  running member's log is followed on from the last line recorded, one that ended meanwhile is settled with its
  real exit code (and OOM flag) and its missed output, one never started waits for its dependsOn as before, and the
  coordinator carries on (an essential container that ended while the server was down ends the task now; a stop
  in flight when the server died, kept in the attempt's marker, ends it with its reason: compute/docker_state.py
  `stopped_after`, ADR 0028). A task of which nothing was started yet (a crash while preparing) is removed and
  launched again under the same attempt (its marker cleared: compute/docker_recovery.py `recover`), unless it was
  stopped meanwhile: as live, it then ends with the stop's reason, none of its containers started; one without the label
  (an earlier version's) is removed and ends as a lost host. The attempt's marker set STARTED (and a `started`
  journal line), before anything is created, keeps an attempt whose containers are gone from running twice.
- The attempt's key stays in the launcher's set of attempts in progress until its end is recorded and its
  containers removed (`DockerTask.done`), then leaves it (DockerLauncher.settled).
"""

from __future__ import annotations

import contextlib
import threading
from functools import partial
from typing import TYPE_CHECKING, Any

from chalicelib.compute import docker_engine
from chalicelib.compute.docker_state import (
    LABEL_ATTEMPT,
    LABEL_JOB,
    LABEL_STATE,
    LOST_HOST,
    last_logged,
    stopped_after,
)
from chalicelib.compute.docker_task import HOLDER, LABEL_CONTAINER, LABEL_TASK, DockerMember, DockerTask, spec_of
from chalicelib.compute.port import TaskSpec
from chalicelib.domain.ecs_task import EXITED, NEVER, RUNNING, WAITING, State
from chalicelib.domain.lifecycle import TaskStopped

if TYPE_CHECKING:
    from chalicelib.compute.docker import DockerLauncher

GONE_REASON = "CannotInspectContainerError: the container is gone"


class DockerGroups:
    """The Docker executor's multi-container attempts (DockerLauncher delegates to it)."""

    def __init__(self, launcher: DockerLauncher) -> None:
        self.launcher = launcher
        self._lock = threading.Lock()
        self._tasks: dict[str, DockerTask] = {}

    def launch(self, spec: TaskSpec) -> None:
        task = DockerTask(self.launcher, spec)
        with self._lock:
            self._tasks[spec.key] = task
        threading.Thread(target=self._run, args=(task,), name=f"task-{spec.key}", daemon=True).start()

    def _run(self, task: DockerTask) -> None:
        try:
            task.run.run()
        finally:
            with self._lock:
                self._tasks.pop(task.spec.key, None)
            task.done("ran")

    def stop(self, key: str, reason: str) -> bool:
        with self._lock:
            task = self._tasks.get(key)
        if task is None:
            return False
        if task.run.stop_reason is None:  # (the first stop is the one that counts: GroupRun.stop)
            with contextlib.suppress(OSError):  # kept for a restart, before a member is stopped (recover)
                self.launcher.journal.record_stop(key, reason)
        task.run.stop(reason)
        return True

    def recover(self, job_id: str, attempt: int) -> bool | None:
        """After a restart: re-attach to a multi-container attempt (see the module's notes). True: it is watched
        again (or ended as a lost host); False: nothing of it ever started, what was prepared is removed and the
        caller launches it again; None: no container of it exists (not a multi-container attempt, or gone)."""
        launcher, client = self.launcher, self.launcher.client
        filters = {
            "label": [f"{LABEL_STATE}={launcher.state_id}", f"{LABEL_JOB}={job_id}", f"{LABEL_ATTEMPT}={attempt}"]
        }
        found = [c for c in client.containers(all=True, filters=filters) if LABEL_CONTAINER in (c.get("Labels") or {})]
        if not found:
            return None
        labels = {c["Labels"][LABEL_CONTAINER]: c for c in found}
        holder = labels.pop(HOLDER, None)
        spec = spec_of(job_id, attempt, holder["Labels"].get(LABEL_TASK)) if holder is not None else None
        if spec is None:  # an earlier version's task (no label), or its holder is gone: its end cannot be followed
            self._remove(found, [])
            settled = partial(launcher.settled, f"{job_id}#{attempt}")  # once recorded (its containers are gone)
            launcher.on_event(job_id, TaskStopped(attempt, None, status_reason=LOST_HOST), settled)
            return True
        assert holder is not None
        task = DockerTask(launcher, spec)
        task.holder = holder["Id"]
        states: dict[str, State] = {}
        infos: dict[str, dict[str, Any]] = {}
        for c in spec.containers:
            states[c.name] = self._reattach(task.members[c.name], labels.get(c.name), infos)
        stop = launcher.journal.stop_of(spec.key)  # a stop in flight when the server died
        if not any(st.status in (RUNNING, EXITED) for st in states.values()):
            if stop is None:
                self._remove(found, [v for m in task.members.values() for v in m.volumes])
                return False  # prepared, never started: it never ran
            # stopped while it was prepared: as live, none starts (those not created yet never are) and the stop's
            # reason ends the task (GroupRun: "Task stopped before the container started")
            states = {name: State(WAITING) for name in states}
        if stop is not None and not any(
            states[c.name].status == EXITED and stopped_after(infos[c.name], stop) is None
            for c in spec.containers
            if c.essential
        ):  # asked before any essential member ended: the stop ends the task, with its reason (GroupRun._coordinate)
            task.run.stop(stop[1])  # (its members still running are stopped again: `resume`)
        with self._lock:
            self._tasks[spec.key] = task
        threading.Thread(target=self._resume, args=(task, states), name=f"task-{spec.key}", daemon=True).start()
        return True

    def _reattach(self, m: DockerMember, found: dict[str, Any] | None, infos: dict[str, dict[str, Any]]) -> State:
        """The state a member of a re-attached task is in (one that ended meanwhile: its output drained); its
        inspection in `infos`."""
        if found is None:
            return State(NEVER, reason=GONE_REASON)
        info = infos[m.c.name] = m.client.inspect_container(found["Id"])
        m.id = str(info["Id"])
        m.volumes = [x["Name"] for x in info.get("Mounts") or [] if x.get("Type") == "volume" and x.get("Name")]
        m.last_ms = last_logged(self.launcher.logs, m.spec.log_stream)
        status = info["State"]["Status"]
        if status == "created":
            return State(WAITING)
        if status in ("running", "paused", "restarting"):
            return State(RUNNING)
        m.drain(m.last_ms, None)
        code, reason = m.end(int(info["State"].get("ExitCode", -1)))
        return State(EXITED, code, reason)

    def _resume(self, task: DockerTask, states: dict[str, State]) -> None:
        try:
            task.run.resume(states)
        finally:
            with self._lock:
                self._tasks.pop(task.spec.key, None)
            task.done("ran")

    def _remove(self, containers: list[dict[str, Any]], volumes: list[str]) -> None:
        for c in containers:
            with contextlib.suppress(Exception):
                self.launcher.client.remove_container(c["Id"], v=True, force=True)
        for v in volumes:
            with contextlib.suppress(Exception):
                self.launcher.client.remove_volume(v, force=True)

    def shutdown(self) -> None:
        """The server goes away: its containers keep running (the next start re-attaches to them); nothing more is
        reported, the log follows are ended."""
        with self._lock:
            tasks = list(self._tasks.values())
        for task in tasks:
            task.run.let_go()
            for m in task.members.values():
                for response in list(m.streams):
                    docker_engine.close_stream(self.launcher.client, response)
