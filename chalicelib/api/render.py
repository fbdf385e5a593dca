"""Domain objects -> Batch wire JSON (the *Detail shapes). Absent values are omitted, as AWS does."""

from __future__ import annotations

import copy
from typing import Any

from chalicelib.domain.model import ComputeEnvironment, JobDefinition, JobQueue, SchedulingPolicy


def _compact(d: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in d.items() if v is not None}


def ecs_cluster_arn(ce: ComputeEnvironment, cluster: str) -> str:
    """The ECS cluster of a compute environment, managed or unmanaged: batchplane runs every environment in one
    cluster (AWS creates one per environment). `cluster` is its name or ARN; a name is put in the CE's region."""
    if cluster.startswith("arn:"):
        return cluster
    _, _, _, region, account, _ = ce.arn.split(":", 5)
    return f"arn:aws:ecs:{region}:{account}:cluster/{cluster}"


def compute_environment(ce: ComputeEnvironment, ecs_cluster_arn: str | None = None) -> dict[str, Any]:
    return _compact(
        {
            "computeEnvironmentName": ce.name,
            "computeEnvironmentArn": ce.arn,
            "ecsClusterArn": ecs_cluster_arn,
            "tags": ce.tags,
            "type": ce.ce_type,
            "state": ce.state,
            "status": ce.status,
            "statusReason": ce.status_reason,
            "computeResources": ce.compute_resources,
            "unmanagedvCpus": ce.unmanaged_vcpus,
            "serviceRole": ce.service_role,
            "containerOrchestrationType": "ECS",
            "uuid": ce.uuid,
            **ce.extra,
        }
    )


def job_queue(jq: JobQueue) -> dict[str, Any]:
    return _compact(
        {
            "jobQueueName": jq.name,
            "jobQueueArn": jq.arn,
            "state": jq.state,
            "schedulingPolicyArn": jq.scheduling_policy_arn,
            "status": jq.status,
            "statusReason": jq.status_reason,
            "priority": jq.priority,
            "computeEnvironmentOrder": [
                {"order": o.order, "computeEnvironment": o.compute_environment} for o in jq.compute_environment_order
            ],
            "jobQueueType": jq.job_queue_type,
            "tags": jq.tags,
            "jobStateTimeLimitActions": list(jq.job_state_time_limit_actions) or None,
        }
    )


# What AWS returns for members a definition's containerProperties left out (botocore's DescribeJobDefinitions
# example; terraform-provider-aws strips exactly these before comparing).
_CONTAINER_DEFAULTS: tuple[tuple[str, Any], ...] = (
    ("command", []),
    ("environment", []),
    ("mountPoints", []),
    ("ulimits", []),
    ("volumes", []),
    ("resourceRequirements", []),
    ("secrets", []),
)


def job_definition(jd: JobDefinition) -> dict[str, Any]:
    spec = dict(jd.spec)
    container = spec.get("containerProperties")
    if container is not None:
        filled = {key: value for key, value in _CONTAINER_DEFAULTS if key not in container}
        if "FARGATE" in (spec.get("platformCapabilities") or ()):
            filled.setdefault("fargatePlatformConfiguration", {"platformVersion": "LATEST"})
            if "fargatePlatformConfiguration" in container:
                del filled["fargatePlatformConfiguration"]
        spec["containerProperties"] = {**container, **copy.deepcopy(filled)}
    return _compact(
        {
            "jobDefinitionName": jd.name,
            "jobDefinitionArn": jd.arn,
            "revision": jd.revision,
            "status": jd.status,
            "type": jd.jd_type,
            "parameters": {},
            "tags": jd.tags,
            "containerOrchestrationType": "ECS",
            **spec,
        }
    )


def scheduling_policy(sp: SchedulingPolicy) -> dict[str, Any]:
    fair = None
    if sp.fairshare is not None:
        fair = {
            "shareDecaySeconds": sp.fairshare.share_decay_seconds,
            "computeReservation": sp.fairshare.compute_reservation,
            "shareDistribution": [
                {"shareIdentifier": s.share_identifier, "weightFactor": s.weight_factor}
                for s in sp.fairshare.share_distribution
            ],
        }
    return _compact({"name": sp.name, "arn": sp.arn, "fairsharePolicy": fair, "tags": sp.tags})
