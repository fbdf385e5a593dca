"""Builders shared by the multi-container tests (ecsProperties, docs/adr/0028): one container of a task, a Fargate
job definition of one task, and a job's containers by name."""

from __future__ import annotations

from typing import Any


def member(
    name: str, command: list[str] | None, *, image: str, memory: str, essential: bool = True, **props: Any
) -> dict[str, Any]:
    """One container of a task: 0.25 vCPU and `memory` MiB, the image's own command when `command` is None; `props`
    are more container fields (dependsOn, ...)."""
    return {
        "name": name,
        "image": image,
        **({"command": command} if command is not None else {}),
        "essential": essential,
        "resourceRequirements": [{"type": "VCPU", "value": "0.25"}, {"type": "MEMORY", "value": memory}],
        **props,
    }


def fargate_task(
    name: str, *containers: dict[str, Any], execution_role: str, task: dict[str, Any] | None = None, **request: Any
) -> dict[str, Any]:
    """RegisterJobDefinition's request for a Fargate job of one task holding `containers`; `task` holds more task
    fields (pidMode, ...), `request` more request members (parameters, ...)."""
    properties = {"executionRoleArn": execution_role, **(task or {}), "containers": list(containers)}
    return {
        "jobDefinitionName": name,
        "type": "container",
        "platformCapabilities": ["FARGATE"],
        "ecsProperties": {"taskProperties": [properties]},
        **request,
    }


def containers_of(job: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """A described multi-container job's containers, by name."""
    return {c["name"]: c for c in job["ecsProperties"]["taskProperties"][0]["containers"]}
