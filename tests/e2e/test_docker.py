"""The Docker executor end to end: a LocalRuntime with `executor="docker"` driven through stock boto3 clients, real
containers on the machine's engine (no mock of it). Needs the `docker_engine` fixture (tests/docker_support.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from chalicelib.runtime.local import LocalRuntime
from tests.docker_support import TEST_IMAGE, remove_containers
from tests.e2e.conftest import (
    Client,
    ClientFactory,
    Runtimes,
    job_log,
    register,
    setup_queue,
    submit,
    unique,
    wait_terminal,
)

pytestmark = pytest.mark.e2e


@pytest.fixture
def runtimes(state_dir: Path, docker_engine: Any) -> Iterator[Runtimes]:
    runtimes = Runtimes(state_dir, executor="docker")
    try:
        yield runtimes
    finally:
        runtimes.stop_all()
        remove_containers(docker_engine, state_dir)


@pytest.fixture
def drt(runtimes: Runtimes) -> LocalRuntime:
    return runtimes.start()


@pytest.fixture
def dbatch(drt: LocalRuntime, clients: ClientFactory) -> Client:
    return clients("batch", drt.endpoint)


@pytest.fixture
def dlogs(drt: LocalRuntime, clients: ClientFactory) -> Client:
    return clients("logs", drt.endpoint)


def run(batch: Client, queue: str, command: list[str], **props: Any) -> dict[str, Any]:
    props.setdefault("image", TEST_IMAGE)
    props.setdefault("resourceRequirements", [{"type": "VCPU", "value": "0.25"}, {"type": "MEMORY", "value": "512"}])
    jd = register(batch, unique("jd"), command, **props)
    job_id = submit(batch, queue, jd)
    return wait_terminal(batch, [job_id])[job_id]


def test_a_job_runs_in_its_image_and_its_output_is_its_log(drt: LocalRuntime, dbatch: Client, dlogs: Client) -> None:
    # GIVEN the Docker executor and a Fargate queue
    assert drt.executor == "docker"
    queue, _ = setup_queue(dbatch)
    # WHEN a busybox job echoes
    job = run(dbatch, queue, ["echo", "hello from busybox"])
    # THEN it succeeded and its output is in its log stream
    assert job["status"] == "SUCCEEDED", job
    assert job["container"]["exitCode"] == 0
    assert job_log(dlogs, job) == ["hello from busybox"]
