"""The Docker launcher's recovery (compute/docker_recovery.py) and its multi-container attempts (docker_group.py,
docker_task.py) use the launcher's interface, never its internals: what they ask of it is named and documented on
DockerLauncher (`hold`, `in_progress`, `watch`, `report_end`, `relaunchable`, `let_go`, `settled`, ...)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from chalicelib.compute import docker, docker_group, docker_recovery, docker_task


@pytest.mark.parametrize("module", [docker_recovery, docker_group, docker_task], ids=lambda m: m.__name__)
def test_the_launchers_helpers_use_no_private_attribute_of_it(module: object) -> None:
    tree = ast.parse(Path(str(getattr(module, "__file__", ""))).read_text())
    private = [
        f"{ast.unparse(node)} (line {node.lineno})"
        for node in ast.walk(tree)
        if isinstance(node, ast.Attribute)
        and node.attr.startswith("_")
        and not node.attr.startswith("__")
        and not (isinstance(node.value, ast.Name) and node.value.id == "self")
    ]
    assert private == []
    used = {
        node.attr
        for node in ast.walk(tree)
        if isinstance(node, ast.Attribute) and ast.unparse(node.value).split(".")[-1] == "launcher"
    }
    assert used <= set(dir(docker.DockerLauncher)) | {"client", "state_id", "logs", "on_event", "grace_seconds",
                                                     "credentials", "processes", "journal", "groups"}  # fmt: skip
