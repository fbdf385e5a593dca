"""Builders shared by the multi-container tests (ecsProperties, docs/adr/0028): one container of a task, and a
job's containers by name."""

from __future__ import annotations

from typing import Any


def member(
    name: str, command: list[str], *, image: str, memory: str, essential: bool = True, **props: Any
) -> dict[str, Any]:
    """One container of a task: 0.25 vCPU and `memory` MiB; `props` are more container fields (dependsOn, ...)."""
    return {
        "name": name,
        "image": image,
        "command": command,
        "essential": essential,
        "resourceRequirements": [{"type": "VCPU", "value": "0.25"}, {"type": "MEMORY", "value": memory}],
        **props,
    }


def containers_of(job: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """A described multi-container job's containers, by name."""
    return {c["name"]: c for c in job["ecsProperties"]["taskProperties"][0]["containers"]}
