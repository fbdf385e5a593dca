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
  coordinator carries on (an essential container that ended while the server was down ends the task now). A task
  of which nothing was started yet (a crash while preparing) is removed and launched again under the same attempt;
  one without the label (an earlier version's) is removed and ends as a lost host. A `started` journal line,
  written before anything is created, keeps an attempt whose containers are gone from running twice.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
import threading
from typing import TYPE_CHECKING, Any

from docker.errors import APIError, DockerException, ImageNotFound

from chalicelib.compute import docker_config, docker_engine, task_group
from chalicelib.compute.port import TaskSpec
from chalicelib.domain.ecs_task import EXITED, NEVER, RUNNING, WAITING, State, TaskContainer
from chalicelib.domain.lifecycle import TaskStarted, TaskStopped

if TYPE_CHECKING:
    from chalicelib.compute.docker import DockerLauncher

log = logging.getLogger("batchplane.docker")

LABEL_CONTAINER = "batchplane.container"  # the task container's name ("-net" for the holder)
LABEL_TASK = "batchplane.task"  # on the holder: what a restart needs to carry on coordinating (task_label)
HOLDER = "-net"
GONE_REASON = "CannotInspectContainerError: the container is gone"
HOLDER_COMMAND = ["sleep", "2147483647"]
OOM_REASON = "OutOfMemoryError: Container killed due to memory usage"
DRAIN_TIMEOUT_S = 5.0


def _labels(launcher: DockerLauncher, spec: TaskSpec, container: str) -> dict[str, str]:
    from chalicelib.compute.docker import LABEL_ATTEMPT, LABEL_JOB, LABEL_STATE

    return {
        LABEL_JOB: spec.job_id,
        LABEL_ATTEMPT: str(spec.attempt),
        LABEL_STATE: launcher.state_id,
        LABEL_CONTAINER: container,
    }


def _create(launcher: DockerLauncher, image: str, kwargs: dict[str, Any]) -> tuple[str | None, str | None]:
    """Create a container, pulling its image when missing: (id, None) or (None, why it could not be)."""
    client = launcher.client
    for pulled in (False, True):
        try:
            return str(client.create_container(image, **kwargs)["Id"]), None
        except ImageNotFound:
            if pulled:
                break
            why = docker_engine.pull(client, image)
            if why is not None:
                return None, f"CannotPullContainerError: {why}"
        except APIError as e:
            if e.status_code == 409:  # the name exists: the attempt was created already
                raise Exists(kwargs.get("name", "")) from e
            return None, f"CannotCreateContainerError: {docker_engine.engine_message(e)}"
    return None, f"CannotPullContainerError: {image} not found"


class Exists(Exception):
    """A container of that name exists already."""


class DockerMember:
    def __init__(self, group: DockerTask, c: TaskContainer) -> None:
        self.group = group
        self.c = c
        self.spec = task_group.member_spec(group.spec, c)
        self.id: str | None = None
        self.volumes: list[str] = []
        self.streams: list[Any] = []
        self.last_ms: int | None = None  # re-attached after a restart: the last log line recorded

    @property
    def client(self) -> Any:
        return self.group.launcher.client

    def prepare(self) -> str | None:
        g = self.group
        try:
            p = docker_config.plan(self.spec, g.name, _labels(g.launcher, g.spec, self.c.name), g.granted)
        except docker_config.Refused as e:
            return str(e)
        host = dict(p.host_config)
        host.pop("extra_hosts", None)  # the holder's: a member cannot set its own in another's namespace
        host["network_mode"] = f"container:{g.holder}"
        host.update(namespaces(self.c.container, g.holder))
        if g.granted:
            host["cap_drop"] = [*host.get("cap_drop", []), "NET_RAW"]  # as docker.py does (ADR 0017)
        self.volumes = p.volumes
        kwargs = {
            "command": p.command,
            "environment": p.environment,
            "user": p.user,
            "labels": _labels(g.launcher, g.spec, self.c.name),
            "name": f"{g.name}-{self.c.name}",
            "stop_timeout": int(task_group.grace_of(self.c, g.grace)),
            "host_config": self.client.create_host_config(**host),
        }
        self.id, why = _create(g.launcher, p.image, kwargs)
        return why

    def start(self) -> str | None:
        try:
            self.client.start(self.id)
        except DockerException as e:
            return f"CannotStartContainerError: {docker_engine.engine_message(e)}"
        return None

    def wait(self) -> tuple[int | None, str | None]:
        logs, stream = self.group.launcher.logs, self.spec.log_stream
        assert self.id is not None
        known = self.last_ms  # re-attached: the lines up to it were recorded before the restart
        last_ms: int | None = None
        tail: list[str] = []
        try:
            since = known / 1000 if known else None
            for frame in docker_engine.log_frames(self.client, self.id, since, self.streams):
                if self.group.run.lost:
                    return None, None
                if lines := docker_engine.log_lines(frame, known):
                    logs.append(stream, lines)
                    for ms, text in lines:
                        if last_ms is None or ms > last_ms:
                            last_ms, tail = ms, []
                        tail.append(text)
        except Exception:  # a log failure must not lose the exit
            if not self.group.run.lost:  # (else: shutdown() closed the stream)
                log.exception("reading the output of %s failed", stream)
        if self.group.run.lost:
            return None, None  # the server shuts down (its log stream was closed): the next start re-attaches
        status = dict(self.client.wait(self.id, timeout=None))
        self.drain(last_ms if last_ms is not None else known, tail if last_ms is not None else None)
        return self.end(int(status.get("StatusCode", -1)))

    def drain(self, after_ms: int | None, appended: list[str] | None) -> None:
        """Append what the log follow missed (ADR 0016), or, re-attached to a container that ended while the server
        was down, its output since the last line recorded."""
        assert self.id is not None
        with contextlib.suppress(Exception):
            frames = docker_engine.logged_since(self.client, self.id, after_ms, DRAIN_TIMEOUT_S)
            if missed := docker_engine.unseen_lines(frames, after_ms, appended):
                self.group.launcher.logs.append(self.spec.log_stream, missed)

    def end(self, code: int) -> tuple[int, str | None]:
        reason = None
        if code == 137:
            with contextlib.suppress(Exception):
                if self.client.inspect_container(self.id)["State"].get("OOMKilled"):
                    reason = OOM_REASON
        return code, reason

    def stop(self, grace: float) -> None:
        container = self.id

        def stop() -> None:
            try:
                self.client.stop(container, timeout=int(grace))
            except Exception:
                log.exception("stopping %s failed", container)

        threading.Thread(target=stop, name=f"stop-{self.spec.log_stream}", daemon=True).start()

    def cleanup(self) -> None:
        if self.id is not None:
            with contextlib.suppress(Exception):
                self.client.remove_container(self.id, v=True, force=True)
        for volume in self.volumes:
            with contextlib.suppress(Exception):
                self.client.remove_volume(volume, force=True)


class DockerTask:
    """One multi-container attempt on the Docker executor: its holder, members and coordinator."""

    def __init__(self, launcher: DockerLauncher, spec: TaskSpec) -> None:
        self.launcher = launcher
        self.spec = spec
        self.name = launcher.name(spec.job_id, spec.attempt)
        self.grace = launcher.grace_seconds
        self.holder: str | None = None
        self.granted: dict[str, str] = {}
        self.members = {c.name: DockerMember(self, c) for c in spec.containers}
        self.run = task_group.GroupRun(
            spec, self.members, self.report, self.grace, setup=self.setup, teardown=self.teardown
        )

    def report(self, event: TaskStarted | TaskStopped) -> None:
        spec = self.spec
        event = dataclasses.replace(
            event, task_arn=spec.local_task_arn, container_instance_arn=spec.local_container_instance_arn
        )
        try:
            self.launcher.on_event(spec.job_id, event, None)
        except Exception:  # the sweep repairs a lost report
            log.exception("reporting %s of %s failed", type(event).__name__, spec.key)

    def setup(self) -> str | None:
        launcher, spec = self.launcher, self.spec
        credentials = launcher.credentials
        self.granted = credentials.grant(spec, container=True) if credentials is not None else {}
        host: dict[str, Any] = {"extra_hosts": dict(docker_config.HOST_GATEWAY)}
        if spec.containers[0].container.get("ipcMode") == "task":
            host["ipc_mode"] = "shareable"  # the members join its IPC namespace
        if self.granted and credentials is not None and credentials.network:
            host["network_mode"] = credentials.network
            host["cap_drop"] = ["NET_RAW"]
        image = str(spec.containers[0].container.get("image") or "")
        os.write(launcher._journal, f"started {spec.key}\n".encode())  # before anything of it can run
        kwargs = {
            "command": HOLDER_COMMAND,
            "entrypoint": [],
            "labels": {**_labels(launcher, spec, HOLDER), LABEL_TASK: task_label(spec)},
            "name": f"{self.name}-net",
            "host_config": launcher.client.create_host_config(**host),
        }
        try:
            self.holder, why = _create(launcher, image, kwargs)
        except Exists:  # launched by another server of this state (a retried launch): that one runs and reports it
            log.warning("the task of %s exists already: not started again", spec.key)
            self.run.let_go()
            if credentials is not None:
                credentials.release(spec.key)
            return "launched elsewhere"
        if why is not None or self.holder is None:
            return why
        try:
            launcher.client.start(self.holder)
        except DockerException as e:
            return f"CannotStartContainerError: the task's network: {docker_engine.engine_message(e)}"
        return None

    def teardown(self) -> None:
        if self.holder is not None:
            with contextlib.suppress(Exception):
                self.launcher.client.remove_container(self.holder, v=True, force=True)
        if self.launcher.credentials is not None:
            self.launcher.credentials.release(self.spec.key)


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

    def stop(self, key: str, reason: str) -> bool:
        with self._lock:
            task = self._tasks.get(key)
        if task is None:
            return False
        task.run.stop(reason)
        return True

    def recover(self, job_id: str, attempt: int) -> bool | None:
        """After a restart: re-attach to a multi-container attempt (see the module's notes). True: it is watched
        again (or ended as a lost host); False: nothing of it ever started, what was prepared is removed and the
        caller launches it again; None: no container of it exists (not a multi-container attempt, or gone)."""
        from chalicelib.compute.docker import LABEL_ATTEMPT, LABEL_JOB, LABEL_STATE, LOST_HOST

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
            launcher.on_event(job_id, TaskStopped(attempt, None, status_reason=LOST_HOST), None)
            return True
        assert holder is not None
        task = DockerTask(launcher, spec)
        task.holder = holder["Id"]
        states: dict[str, State] = {}
        for c in spec.containers:
            states[c.name] = self._reattach(task.members[c.name], labels.get(c.name))
        if not any(st.status in (RUNNING, EXITED) for st in states.values()):
            self._remove(found, [v for m in task.members.values() for v in m.volumes])
            return False  # prepared, never started: it never ran
        with self._lock:
            self._tasks[spec.key] = task
        threading.Thread(target=self._resume, args=(task, states), name=f"task-{spec.key}", daemon=True).start()
        return True

    def _reattach(self, m: DockerMember, found: dict[str, Any] | None) -> State:
        """The state a member of a re-attached task is in (one that ended meanwhile: its output drained)."""
        if found is None:
            return State(NEVER, reason=GONE_REASON)
        info = m.client.inspect_container(found["Id"])
        m.id = str(info["Id"])
        m.volumes = [x["Name"] for x in info.get("Mounts") or [] if x.get("Type") == "volume" and x.get("Name")]
        m.last_ms = self.launcher._last_logged(m.spec.log_stream)
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


def namespaces(props: dict[str, Any], holder: str | None) -> dict[str, str]:
    """A member's IPC and PID namespaces from the task's ipcMode/pidMode (ECS's): `task` is the holder's (shared by
    every member), `host` the host's (refused at SubmitJob without --allow-privileged), `none` a private IPC."""
    out: dict[str, str] = {}
    for key, option in (("ipcMode", "ipc_mode"), ("pidMode", "pid_mode")):
        mode = props.get(key)
        if mode == "task":
            out[option] = f"container:{holder}"
        elif mode in ("host", "none"):
            out[option] = str(mode)
    return out


def task_label(spec: TaskSpec) -> str:
    """What a restart needs to carry on coordinating the task (the holder's LABEL_TASK)."""
    return json.dumps(
        {
            "taskId": spec.task_id,
            "jobDefinitionArn": spec.job_definition_arn,
            "region": spec.region,
            "containers": [
                [c.name, c.essential, [list(d) for d in c.depends_on], c.log_stream] for c in spec.containers
            ],
        },
        separators=(",", ":"),
    )


def spec_of(job_id: str, attempt: int, label: str | None) -> TaskSpec | None:
    """The spec of a re-attached task, from its holder's label (None without a readable one): enough to coordinate
    its members and report its end, not to create them."""
    try:
        t = json.loads(label or "")
        containers = tuple(
            TaskContainer(str(n), bool(e), tuple((str(a), str(b)) for a, b in d), [], {}, str(ls), 0, 0)
            for n, e, d, ls in t["containers"]
        )
        return TaskSpec(
            job_id=job_id,
            attempt=attempt,
            task_id=str(t["taskId"]),
            command=[],
            environment={},
            log_stream="",
            vcpus=0,
            memory=0,
            compute_environment="",
            job_definition_arn=str(t["jobDefinitionArn"]),
            region=str(t["region"]),
            containers=containers,
        )
    except (ValueError, TypeError, KeyError):
        return None
