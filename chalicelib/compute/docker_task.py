"""One multi-container attempt on the Docker executor (docs/adr/0028; the design notes are compute/docker_group.py's):
its holder container (the task's network namespace), its members, and the label on the holder from which a restart
rebuilds what the coordination needs."""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import threading
from functools import partial
from typing import TYPE_CHECKING, Any

from docker.errors import APIError, DockerException, ImageNotFound

from chalicelib.compute import docker_config, docker_engine, task_group
from chalicelib.compute.docker_state import LABEL_ATTEMPT, LABEL_JOB, LABEL_STATE, OOM_REASON
from chalicelib.compute.port import CredentialsUnavailable, TaskSpec
from chalicelib.compute.task_group import spec_of as spec_of
from chalicelib.compute.task_group import task_label
from chalicelib.domain.ecs_task import TaskContainer
from chalicelib.domain.lifecycle import TaskStarted, TaskStopped

if TYPE_CHECKING:
    from chalicelib.compute.docker import DockerLauncher

log = logging.getLogger("batchplane.docker")

LABEL_CONTAINER = "batchplane.container"  # the task container's name ("-net" for the holder)
LABEL_TASK = "batchplane.task"  # on the holder: what a restart needs to carry on coordinating (task_label)
HOLDER = "-net"
HOLDER_COMMAND = ["sleep", "2147483647"]
DRAIN_TIMEOUT_S = 5.0


def _labels(launcher: DockerLauncher, spec: TaskSpec, container: str) -> dict[str, str]:
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
                if self.id is not None and docker_engine.oom_killed(self.client, self.id):
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
        # What must happen before the launcher is done with the attempt: "ran" (the coordinator returned: its end
        # reported, its containers removed), and "recorded" once its TaskStopped is reported (the engine applied it).
        self._waiting = {"ran"}
        self._recorded = self._settled = False
        self._lock = threading.Lock()

    def report(self, event: TaskStarted | TaskStopped) -> None:
        spec = self.spec
        event = dataclasses.replace(
            event, task_arn=spec.local_task_arn, container_instance_arn=spec.local_container_instance_arn
        )
        recorded = None
        if isinstance(event, TaskStopped):
            with self._lock:
                self._waiting.add("recorded")
            recorded = partial(self.done, "recorded")
        try:
            self.launcher.on_event(spec.job_id, event, recorded)
        except Exception:  # the sweep repairs a lost report (the attempt stays in progress here until a restart)
            log.exception("reporting %s of %s failed", type(event).__name__, spec.key)

    def done(self, what: str) -> None:
        """`what` happened (see __init__). Once nothing more is awaited, the launcher is done with the attempt: its
        end recorded, it is settled (DockerLauncher.settled); ended without a TaskStopped reported (the
        server shuts down, or another server of the state runs it: GroupRun.lost), its key only leaves the set."""
        with self._lock:
            self._waiting.discard(what)
            self._recorded = self._recorded or what == "recorded"
            if self._waiting or self._settled:
                return
            self._settled = True
        if self._recorded:
            self.launcher.settled(self.spec.key)
        else:
            self.launcher.let_go(self.spec.key)

    def setup(self) -> str | None:
        launcher, spec = self.launcher, self.spec
        credentials = launcher.credentials
        try:
            self.granted = credentials.grant(spec, container=True) if credentials is not None else {}
        except CredentialsUnavailable as e:  # its role cannot be served: the task fails to start (ADR 0037)
            return str(e)
        host: dict[str, Any] = {"extra_hosts": dict(docker_config.HOST_GATEWAY)}
        if spec.containers[0].container.get("ipcMode") == "task":
            host["ipc_mode"] = "shareable"  # the members join its IPC namespace
        if self.granted and credentials is not None and credentials.network:
            host["network_mode"] = credentials.network
            host["cap_drop"] = ["NET_RAW"]
        image = str(spec.containers[0].container.get("image") or "")
        launcher.journal.started(spec.key)  # before anything of it can run
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
