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
- Recovery after a restart: the attempt's containers are found by label, removed, and the attempt ends as a lost
  host (they are not re-attached); a `started` journal line, written before the first start, keeps an attempt whose
  containers are gone from running twice.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import threading
from typing import TYPE_CHECKING, Any

from docker.errors import APIError, DockerException, ImageNotFound

from chalicelib.compute import docker_config, docker_engine, task_group
from chalicelib.compute.port import TaskSpec
from chalicelib.domain.ecs_task import TaskContainer
from chalicelib.domain.lifecycle import TaskStarted, TaskStopped

if TYPE_CHECKING:
    from chalicelib.compute.docker import DockerLauncher

log = logging.getLogger("batchplane.docker")

LABEL_CONTAINER = "batchplane.container"  # the task container's name ("-net" for the holder)
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
            return None, f"CannotCreateContainerError: {docker_engine.engine_message(e)}"
    return None, f"CannotPullContainerError: {image} not found"


class DockerMember:
    def __init__(self, group: DockerTask, c: TaskContainer) -> None:
        self.group = group
        self.c = c
        self.spec = task_group.member_spec(group.spec, c)
        self.id: str | None = None
        self.volumes: list[str] = []
        self.streams: list[Any] = []

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
        if g.granted:
            host["cap_drop"] = [*host.get("cap_drop", []), "NET_RAW"]  # as docker.py does (ADR 0017)
        self.volumes = p.volumes
        kwargs = {
            "command": p.command,
            "environment": p.environment,
            "user": p.user,
            "labels": _labels(g.launcher, g.spec, self.c.name),
            "name": f"{g.name}-{self.c.name}",
            "stop_timeout": int(g.grace),
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
        last_ms: int | None = None
        tail: list[str] = []
        try:
            for frame in docker_engine.log_frames(self.client, self.id, None, self.streams):
                if lines := docker_engine.log_lines(frame, None):
                    logs.append(stream, lines)
                    for ms, text in lines:
                        if last_ms is None or ms > last_ms:
                            last_ms, tail = ms, []
                        tail.append(text)
        except Exception:  # a log failure must not lose the exit
            log.exception("reading the output of %s failed", stream)
        status = dict(self.client.wait(self.id, timeout=None))
        with contextlib.suppress(Exception):  # what the follow missed (ADR 0016)
            frames = docker_engine.logged_since(self.client, self.id, last_ms, DRAIN_TIMEOUT_S)
            if missed := docker_engine.unseen_lines(frames, last_ms, tail if last_ms is not None else None):
                logs.append(stream, missed)
        code = int(status.get("StatusCode", -1))
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
        if self.granted and credentials is not None and credentials.network:
            host["network_mode"] = credentials.network
            host["cap_drop"] = ["NET_RAW"]
        image = str(spec.containers[0].container.get("image") or "")
        os.write(launcher._journal, f"started {spec.key}\n".encode())  # before anything of it can run
        kwargs = {
            "command": HOLDER_COMMAND,
            "entrypoint": [],
            "labels": _labels(launcher, spec, "-net"),
            "name": f"{self.name}-net",
            "host_config": launcher.client.create_host_config(**host),
        }
        self.holder, why = _create(launcher, image, kwargs)
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

    def recover(self, job_id: str, attempt: int) -> bool:
        """After a restart: the containers of a multi-container attempt are removed and it ends as a lost host.
        False when it has none (not a multi-container attempt, or nothing of it exists: the caller decides)."""
        from chalicelib.compute.docker import LABEL_ATTEMPT, LABEL_JOB, LABEL_STATE, LOST_HOST

        filters = {
            "label": [
                f"{LABEL_STATE}={self.launcher.state_id}",
                f"{LABEL_JOB}={job_id}",
                f"{LABEL_ATTEMPT}={attempt}",
                LABEL_CONTAINER,
            ]
        }
        found = self.launcher.client.containers(all=True, filters=filters)
        if not found:
            return False
        for c in found:
            with contextlib.suppress(Exception):
                self.launcher.client.remove_container(c["Id"], v=True, force=True)
        self.launcher.on_event(job_id, TaskStopped(attempt, None, status_reason=LOST_HOST), None)
        return True

    def shutdown(self) -> None:
        """The server goes away: nothing more is reported (the next start's recovery ends the attempts)."""
        with self._lock:
            for task in self._tasks.values():
                task.run.lost = True
