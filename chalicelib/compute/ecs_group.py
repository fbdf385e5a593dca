"""Multi-container jobs on ECS (docs/adr/0028): one task definition holding every container of the job's task.

- Each container becomes a container definition of its own name, with `essential` and `dependsOn` (START, COMPLETE,
  SUCCESS) passed to ECS unchanged: ECS orders the starts, stops the task when an essential container exits and
  reports every container's exit code in the task's STOPPED event (compute/ecs_events.py reads them; the lifecycle
  derives the job's exit from the essential ones).
- Logs: awslogs with the job definition's name as the stream prefix, so each container logs to
  `<jd>/<container name>/<task id>`, as AWS Batch names them.
- Resources: each container's VCPU (EC2: cpu units) and MEMORY as given; the task's size is their sum (on Fargate
  the task-level cpu/memory, which must be a Fargate size: refused at RegisterJobDefinition otherwise).
- Per container `startTimeout`/`stopTimeout`, and the task's `ipcMode`, `pidMode`, `ephemeralStorage` and
  `runtimePlatform` go to ECS unchanged (they are ECS's own).
- RunTask overrides every container's command and environment (the job's, with the reserved AWS_BATCH_* variables).
"""

from __future__ import annotations

from typing import Any

from chalicelib.compute import ecs_requests
from chalicelib.compute.port import TaskSpec
from chalicelib.domain import ecs_task

JsonDict = dict[str, Any]


def task_definition_request(
    spec: TaskSpec, *, fargate: bool, region: str | None, log_group: str | None, execution_role_arn: str | None
) -> JsonDict:
    jd = spec.job_definition_name or "job"
    role = spec.container.get("executionRoleArn") or execution_role_arn
    definitions = []
    for c in spec.containers:
        props = c.container
        d: JsonDict = {"name": c.name, "essential": c.essential}
        d.update({k: props[k] for k in ecs_requests.PASS_THROUGH if props.get(k) is not None})
        d.update({k: props[k] for k in ("startTimeout", "stopTimeout") if props.get(k) is not None})
        if c.depends_on:
            d["dependsOn"] = [{"containerName": name, "condition": cond} for name, cond in c.depends_on]
        if c.memory:
            d["memory"] = c.memory
        if not fargate and c.vcpus:
            d["cpu"] = int(c.vcpus * 1024)
        gpus = next((r.get("value") for r in props.get("resourceRequirements") or [] if r.get("type") == "GPU"), None)
        if gpus and not fargate:
            d["resourceRequirements"] = [{"type": "GPU", "value": str(gpus)}]
        if "logConfiguration" not in d and log_group and region and (role or not fargate):
            d["logConfiguration"] = {
                "logDriver": "awslogs",
                "options": {"awslogs-group": log_group, "awslogs-region": region, "awslogs-stream-prefix": jd[:200]},
            }
        definitions.append(d)
    request: JsonDict = {
        "family": ecs_requests.task_family(jd, spec.revision, fargate=fargate),
        "containerDefinitions": definitions,
        "requiresCompatibilities": ["FARGATE" if fargate else "EC2"],
        "networkMode": "awsvpc" if fargate else "host",
        "memory": str(spec.memory),
        "tags": [{"key": ecs_requests.TAG_JOB_DEFINITION, "value": f"{jd}:{spec.revision}"}],
    }
    if fargate:
        request["cpu"] = ecs_requests.fargate_cpu(spec.vcpus)
    first = spec.containers[0].container if spec.containers else {}
    request.update({k: first[k] for k in ecs_task.TASK_LEVEL if first.get(k) is not None})  # ipcMode, pidMode, ...
    volumes = first.get("volumes")
    if volumes:
        request["volumes"] = volumes
    if spec.container.get("jobRoleArn"):
        request["taskRoleArn"] = spec.container["jobRoleArn"]
    if role:
        request["executionRoleArn"] = role
    return request


def overrides(spec: TaskSpec, *, fargate: bool) -> JsonDict:
    """RunTask's overrides: every container's command and environment; the task's size on Fargate."""
    containers = []
    for c in spec.containers:
        o: JsonDict = {"name": c.name}
        if c.command:
            o["command"] = list(c.command)
        if c.environment:
            o["environment"] = ecs_requests.env_list(c.environment)
        containers.append(o)
    result: JsonDict = {"containerOverrides": containers}
    if fargate:
        result["cpu"] = ecs_requests.fargate_cpu(spec.vcpus)
        result["memory"] = str(spec.memory)
    return result
