"""The `docker_engine` fixture: a docker-py client of a Docker engine that answers, for the container tests.

Without an engine the tests that ask for it skip, saying how to get one; with the environment variable CI set they
fail instead (CI must run them). `remove_containers(state_dir)` removes what a test's server left behind.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

HOW = "no Docker engine answers ({why}); start one with `bash scripts/docker-up.sh` (or set DOCKER_HOST)"
TEST_IMAGE = "busybox:latest"  # built locally by scripts/docker-up.sh: no registry is reachable


@pytest.fixture(scope="session")
def docker_engine() -> Iterator[Any]:
    why: str | None = None
    client = None
    try:
        from chalicelib.compute import docker_engine as engine

        client = engine.connect(engine.PING_TIMEOUT_S)
        client.timeout = engine.API_TIMEOUT_S
        client.inspect_image(TEST_IMAGE)
    except ImportError as e:
        why = f"the docker Python package is missing: {e}"
    except Exception as e:
        why = f"{type(e).__name__}: {e}"
    if why is not None:
        message = HOW.format(why=why)
        if os.environ.get("CI"):
            pytest.fail(f"CI is set, so the container tests must run: {message}")
        pytest.skip(message)
    yield client
    client.close()


def remove_containers(client: Any, state_dir: Path) -> None:
    """Force-remove every container (and Docker volume) a server on `state_dir` started."""
    path = state_dir / "executor-id"
    if not path.exists():
        return
    label = f"batchplane.state-dir={path.read_text().strip()}"
    for c in client.containers(all=True, filters={"label": label}):
        with contextlib.suppress(Exception):
            client.remove_container(c["Id"], v=True, force=True)
    for v in client.volumes(filters={"label": label}).get("Volumes") or []:
        with contextlib.suppress(Exception):
            client.remove_volume(v["Name"], force=True)


def node_networks(client: Any, state_dir: Path) -> list[dict[str, Any]]:
    """The per-job node networks (multi-node jobs) a server on `state_dir` created and has not removed yet."""
    path = state_dir / "executor-id"
    if not path.exists():
        return []
    label = f"batchplane.state-dir={path.read_text().strip()}"
    return list(client.networks(filters={"label": [label, "batchplane.nodes-of"]}))
