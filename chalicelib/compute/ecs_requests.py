"""The ECS requests of an attempt, pure (compute/ecs.py sends them; its module notes say why they look so): the
task definition of a job-definition revision, RunTask's parameters, and the names that identify an attempt's task
(startedBy, clientToken, family, capacity provider). Deterministic in their inputs: a retried launch repeats them."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

from chalicelib.compute import ecs_events
from chalicelib.compute.port import TaskSpec
from chalicelib.domain import nodes
from chalicelib.domain.errors import InvalidRequest
from chalicelib.domain.model import FARGATE_TYPES, ComputeEnvironment
from chalicelib.domain.validation import FARGATE_MEMORY

JsonDict = dict[str, Any]

FAMILY_PREFIX = "batchplane-"
CAPACITY_PROVIDER_PREFIX = "batchplane-"
DEFAULT_LOG_GROUP = "/aws/batch/job"
MAX_STARTED_BY = 36
MAX_CLIENT_TOKEN = 64
MAX_OVERRIDES = 8192  # characters of the overrides JSON (RunTask)
MAX_TAGS = 50
TAG_JOB_ID = "batchplane:jobId"
TAG_ATTEMPT = "batchplane:attempt"
TAG_CE = "batchplane:computeEnvironment"
TAG_JOB_DEFINITION = "batchplane:jobDefinition"

# Container properties of a job definition that become part of the ECS container definition unchanged.
PASS_THROUGH = (
    "image",
    "mountPoints",
    "ulimits",
    "linuxParameters",
    "privileged",
    "user",
    "readonlyRootFilesystem",
    "secrets",
    "logConfiguration",
    "repositoryCredentials",
)


class LaunchRejected(InvalidRequest):
    """ECS (or the mapping to it) refuses this attempt's task for a reason retrying cannot fix."""


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def started_by(job_id: str, attempt: int) -> str:
    """The RunTask `startedBy` of an attempt: `bp-` + 33 hex digits of SHA-256 of `<jobId>#<attempt>` (36 chars)."""
    return "bp-" + _digest(f"{job_id}#{attempt}")[: MAX_STARTED_BY - 3]


def client_token(key: str) -> str:
    """The RunTask `clientToken` of a launch key: the key itself when ECS accepts it (≤64 chars in 33-126)."""
    if len(key) <= MAX_CLIENT_TOKEN and all(33 <= ord(ch) <= 126 for ch in key):
        return key
    return "bp-" + _digest(key)[: MAX_CLIENT_TOKEN - 3]


def task_family(job_definition: str, revision: int, *, fargate: bool) -> str:
    return f"{FAMILY_PREFIX}{job_definition}-{revision}" + ("" if fargate else "-ec2")


def capacity_provider_name(compute_environment: str) -> str:
    """The ECS capacity provider (Auto Scaling group) of a managed EC2/SPOT compute environment."""
    return f"{CAPACITY_PROVIDER_PREFIX}{compute_environment}"


def fargate_cpu(vcpus: float) -> str:
    """Fargate task cpu units of a vCPU count (0.25 -> "256" ... 16 -> "16384")."""
    if vcpus not in FARGATE_MEMORY:
        raise LaunchRejected(f"{vcpus:g} vCPUs is not a Fargate task size; use one of {sorted(FARGATE_MEMORY)}")
    return str(int(vcpus * 1024))


def _resources(container: Mapping[str, Any]) -> tuple[float | None, int | None, int]:
    """(vCPUs, memory MiB, GPUs) a container asks for; None where it does not say."""
    reqs = {r.get("type"): r.get("value") for r in container.get("resourceRequirements") or []}
    vcpus = reqs.get("VCPU", container.get("vcpus"))
    memory = reqs.get("MEMORY", container.get("memory"))
    gpus = reqs.get("GPU")
    return (
        float(vcpus) if vcpus is not None else None,
        int(float(memory)) if memory is not None else None,
        int(gpus) if gpus is not None else 0,
    )


def env_list(env: Mapping[str, str]) -> list[dict[str, str]]:
    return [{"name": k, "value": env[k]} for k in sorted(env)]


def task_definition_request(
    spec: TaskSpec,
    *,
    fargate: bool,
    region: str | None,
    log_group: str | None = DEFAULT_LOG_GROUP,
    execution_role_arn: str | None = None,
) -> JsonDict:
    """RegisterTaskDefinition parameters for a job-definition revision on one platform."""
    if spec.containers:  # a multi-container job (docs/adr/0028)
        from chalicelib.compute import ecs_group

        return ecs_group.task_definition_request(
            spec, fargate=fargate, region=region, log_group=log_group, execution_role_arn=execution_role_arn
        )
    c = spec.container
    jd = spec.job_definition_name or "job"
    vcpus, memory, gpus = _resources(c)
    vcpus = vcpus if vcpus is not None else spec.vcpus
    memory = memory if memory is not None else spec.memory
    container: JsonDict = {"name": ecs_events.CONTAINER_NAME, "essential": True, "memory": memory}
    container.update({k: c[k] for k in PASS_THROUGH if c.get(k) is not None})
    if not fargate:
        container["cpu"] = int(vcpus * 1024)
        if gpus:
            container["resourceRequirements"] = [{"type": "GPU", "value": str(gpus)}]
    role = c.get("executionRoleArn") or execution_role_arn
    if "logConfiguration" not in container and log_group and region and (role or not fargate):
        # AWS Batch's default: stream <jd>/default/<task id> in /aws/batch/job. On Fargate awslogs needs the role.
        container["logConfiguration"] = {
            "logDriver": "awslogs",
            "options": {
                "awslogs-group": log_group,
                "awslogs-region": region,
                "awslogs-stream-prefix": jd[:200],
            },
        }
    request: JsonDict = {
        "family": task_family(jd, spec.revision, fargate=fargate),
        "containerDefinitions": [container],
        "requiresCompatibilities": ["FARGATE" if fargate else "EC2"],
        "networkMode": "awsvpc" if fargate else "host",
        "tags": [{"key": TAG_JOB_DEFINITION, "value": f"{jd}:{spec.revision}"}],
    }
    if fargate:
        request["cpu"] = fargate_cpu(vcpus)
        request["memory"] = str(memory)
        if c.get("runtimePlatform"):
            request["runtimePlatform"] = c["runtimePlatform"]
        if c.get("ephemeralStorage"):
            request["ephemeralStorage"] = c["ephemeralStorage"]
    if c.get("volumes"):
        request["volumes"] = c["volumes"]
    if c.get("jobRoleArn"):
        request["taskRoleArn"] = c["jobRoleArn"]
    if role:
        request["executionRoleArn"] = role
    return request


def capacity(ce: ComputeEnvironment) -> JsonDict:
    """The RunTask parameters choosing where the task runs: a capacity provider strategy or a launch type."""
    rtype = ce.resource_type
    if rtype in FARGATE_TYPES:
        return {"capacityProviderStrategy": [{"capacityProvider": rtype, "weight": 1}]}
    if rtype is None:  # unmanaged: instances the user registered to the cluster
        return {"launchType": "EC2"}
    return {"capacityProviderStrategy": [{"capacityProvider": capacity_provider_name(ce.name), "weight": 1}]}


def run_task_request(spec: TaskSpec, ce: ComputeEnvironment, task_definition_arn: str, cluster: str) -> JsonDict:
    """RunTask parameters for one attempt. Deterministic in its inputs (a retry must repeat the same request)."""
    fargate = ce.is_fargate
    override: JsonDict = {"name": ecs_events.CONTAINER_NAME, "memory": spec.memory}
    if spec.command:
        override["command"] = list(spec.command)
    if spec.environment:
        override["environment"] = env_list(spec.environment)
    overrides: JsonDict = {"containerOverrides": [override]}
    if fargate:
        overrides["cpu"] = fargate_cpu(spec.vcpus)
        overrides["memory"] = str(spec.memory)
    else:
        override["cpu"] = int(spec.vcpus * 1024)
        _, _, gpus = _resources(spec.container)
        if gpus:
            override["resourceRequirements"] = [{"type": "GPU", "value": str(gpus)}]
    if spec.containers:  # a multi-container job: every container's overrides (docs/adr/0028)
        from chalicelib.compute import ecs_group

        overrides = ecs_group.overrides(spec, fargate=fargate)
    try:
        group = ecs_events.task_group(spec.job_id, spec.attempt)
    except ValueError as e:
        raise LaunchRejected(str(e)) from e
    size = len(json.dumps(overrides, separators=(",", ":")))
    if size > MAX_OVERRIDES:
        raise LaunchRejected(
            f"the job's command and environment take {size} characters; ECS allows {MAX_OVERRIDES} for overrides"
        )
    request: JsonDict = {
        "cluster": cluster,
        "taskDefinition": task_definition_arn,
        "count": 1,
        "startedBy": started_by(owner(spec.job_id), spec.attempt),  # a node's task: its job's (ecs_nodes.py)
        "group": group,
        "clientToken": client_token(spec.key),
        "overrides": overrides,
        "tags": _task_tags(spec),
        "enableECSManagedTags": True,
        **capacity(ce),
    }
    if fargate:
        resources = ce.compute_resources or {}
        vpc: JsonDict = {
            "subnets": list(resources.get("subnets") or []),
            "assignPublicIp": (spec.container.get("networkConfiguration") or {}).get("assignPublicIp", "DISABLED"),
        }
        if resources.get("securityGroupIds"):
            vpc["securityGroups"] = list(resources["securityGroupIds"])
        request["networkConfiguration"] = {"awsvpcConfiguration": vpc}
        platform = (spec.container.get("fargatePlatformConfiguration") or {}).get("platformVersion")
        request["platformVersion"] = platform or "LATEST"
    return request


def owner(job_id: str) -> str:
    """The job a task belongs to: a multi-node job's node (`<jobId>#<index>`) belongs to `<jobId>`."""
    parsed = nodes.split_node_id(job_id)
    return parsed[0] if parsed is not None else job_id


def _task_tags(spec: TaskSpec) -> list[dict[str, str]]:
    ours = {TAG_JOB_ID: spec.job_id, TAG_ATTEMPT: str(spec.attempt), TAG_CE: spec.compute_environment}
    theirs = {k: v for k, v in spec.tags.items() if k not in ours and not k.lower().startswith("aws:")}
    merged = {**ours, **dict(sorted(theirs.items())[: MAX_TAGS - len(ours)])}
    return [{"key": k, "value": v} for k, v in merged.items()]
