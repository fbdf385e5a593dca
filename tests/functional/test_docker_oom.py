"""An OOM kill told from another SIGKILL on the real engine (compute/docker_engine.py `oom_killed`): by
`State.OOMKilled`, or by the engine's "oom" event for the container when the flag lost its race with the exit (Docker
20.10 on cgroup v2, under load). Skips without an engine; fails instead when CI is set."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from chalicelib.compute.docker_engine import oom_event, oom_killed
from tests.docker_support import TEST_IMAGE

LABEL = "batchplane.test-oom"


@pytest.fixture
def run(docker_engine: Any) -> Iterator[Callable[[str], str]]:
    """Runs `sh -c script` to its end (exit 137) under a 64 MiB limit; its container id."""
    made: list[str] = []

    def start(script: str) -> str:
        host = docker_engine.create_host_config(mem_limit="64m", memswap_limit="64m")
        name = f"bp-oom-{uuid.uuid4().hex[:8]}"
        created = docker_engine.create_container(
            TEST_IMAGE, ["sh", "-c", script], host_config=host, labels={LABEL: "1"}, name=name
        )
        cid = str(created["Id"])
        made.append(cid)
        docker_engine.start(cid)
        assert docker_engine.wait(cid, timeout=60)["StatusCode"] == 137
        return cid

    yield start
    for cid in made:
        docker_engine.remove_container(cid, force=True)


def test_a_container_killed_for_its_memory_is_an_oom_kill_by_its_flag_and_by_its_event(
    docker_engine: Any, run: Callable[[str], str]
) -> None:
    cid = run("dd if=/dev/zero bs=1M count=200 | tail")
    assert oom_killed(docker_engine, cid)
    # the engine's "oom" event for it: what still tells it when the flag lost its race with the exit
    assert oom_event(docker_engine, cid, int(time.time()) - 60)


def test_a_container_that_killed_itself_is_no_oom_kill(docker_engine: Any, run: Callable[[str], str]) -> None:
    cid = run("sh -c 'kill -9 $$'; exit $?")  # (a child: the container's init ignores SIGKILL from inside)
    assert not oom_event(docker_engine, cid, int(time.time()) - 60)
    assert not oom_killed(docker_engine, cid)  # (after waiting OOM_EVENT_WAIT_S for a late event)
