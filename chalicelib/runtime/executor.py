"""Which executor runs jobs: `batchplane up --executor auto|docker|process` (docs/adr/0016-docker-executor.md).

`auto` (the CLI's default) picks docker when a Docker engine answers (DOCKER_HOST, else the default socket; a ping
with a short timeout) and the `docker` Python package is installed, else process. `choose_executor` returns the
one line `batchplane up` prints about it.

`auto` does not fall back silently over containers this state directory created (a non-empty
`work/docker-journal`): under the process executor each would fail as a lost host while it runs on, and a retry
would run its job a second time. It pings for longer (an engine that is restarting) and then refuses to start.
"""

from __future__ import annotations

import os
import time
import uuid
from pathlib import Path
from typing import Any

EXECUTORS = ("auto", "docker", "process")
STATE_ID_FILE = "executor-id"
DOCKER_JOURNAL = "work/docker-journal"  # compute/docker.py's journal of the containers it created
CONTAINERS_WAIT_S = 15.0  # how long `auto` waits for an engine when this state directory has containers
PROCESS_NOTE = (
    "executor: process — jobs run as unisolated processes on this host, their images ignored ({why}); to run them "
    "in their container images, start a Docker engine (`bash scripts/docker-up.sh`, or install Docker and set "
    "DOCKER_HOST) and restart with --executor docker"
)


class ExecutorUnavailable(Exception):
    """--executor docker, and no engine answers."""


def choose_executor(wanted: str, state_dir: Path | None = None) -> tuple[str, str, Any]:
    """(executor, the line to print, a docker-py client when it is docker).

    Raises ExecutorUnavailable for `docker` without an engine, and for `auto` without one when `state_dir` has
    containers (see the module's docstring)."""
    if wanted not in EXECUTORS:
        raise ValueError(f"executor must be one of {', '.join(EXECUTORS)}; got {wanted!r}")
    if wanted == "process":
        return "process", PROCESS_NOTE.format(why="--executor process"), None
    try:
        from chalicelib.compute import docker_engine
    except ImportError as e:  # the `docker` package is a local-only dependency
        if wanted == "docker":
            raise ExecutorUnavailable(f"the docker Python package is not installed: {e}") from e
        return "process", PROCESS_NOTE.format(why="the docker Python package is not installed"), None
    has_containers = state_dir is not None and _has_containers(state_dir)
    deadline = time.monotonic() + CONTAINERS_WAIT_S
    while True:
        try:
            client = docker_engine.connect(docker_engine.PING_TIMEOUT_S)
            break
        except Exception as e:
            if wanted == "docker":
                raise ExecutorUnavailable(f"no Docker engine answers ({e}); {docker_engine.DOCKER_HINT}") from e
            if not has_containers:
                return "process", PROCESS_NOTE.format(why="no Docker engine answers"), None
            if time.monotonic() >= deadline:
                raise ExecutorUnavailable(
                    f"no Docker engine answers ({e}), and this state directory has containers (started by the "
                    "Docker executor; they may still be running): start the Docker engine, or pass "
                    "--executor process to fail their jobs' attempts as lost hosts"
                ) from e
            time.sleep(1.0)
    client.timeout = docker_engine.API_TIMEOUT_S
    where = os.environ.get("DOCKER_HOST") or "the default socket"
    version = client.api_version
    return (
        "docker",
        f"executor: docker — jobs run in their container images on the Docker engine at {where} (API {version})",
        client,
    )


def _has_containers(state_dir: Path) -> bool:
    try:
        return (state_dir / DOCKER_JOURNAL).stat().st_size > 0
    except OSError:
        return False


def state_id(state_dir: Path) -> str:
    """This state directory's id, on every container it starts (made once; the same across restarts)."""
    path = state_dir / STATE_ID_FILE
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_text().strip()
    with os.fdopen(fd, "w") as f:
        f.write(uuid.uuid4().hex[:12] + "\n")
    return path.read_text().strip()
