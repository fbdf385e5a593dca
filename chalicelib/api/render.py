"""Domain objects -> Batch wire JSON (the *Detail shapes). Absent values are omitted, as AWS does."""

from __future__ import annotations

from typing import Any

from chalicelib.domain.model import ComputeEnvironment, JobDefinition, JobQueue, SchedulingPolicy


def _compact(d: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in d.items() if v is not None}


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


def job_definition(jd: JobDefinition) -> dict[str, Any]:
    return _compact(
        {
            "jobDefinitionName": jd.name,
            "jobDefinitionArn": jd.arn,
            "revision": jd.revision,
            "status": jd.status,
            "type": jd.jd_type,
            "tags": jd.tags,
            "containerOrchestrationType": "ECS",
            **jd.spec,
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
