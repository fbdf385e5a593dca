"""A Job as Batch's JobDetail and JobSummary wire shapes (spec §3.5), also the detail of state-change events. Pure."""

from __future__ import annotations

from typing import Any

from chalicelib.domain import ecs_task
from chalicelib.domain.jobs import STATUSES, Attempt, Job


def _compact(d: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in d.items() if v is not None}


def attempt_detail(a: Attempt, ec2: bool = True) -> dict[str, Any]:
    """AttemptDetail. `ec2`: the job runs on EC2 capacity, where AWS names the container instance (not Fargate)."""
    return _compact(
        {
            "container": _compact(
                {
                    "taskArn": a.task_id,
                    "containerInstanceArn": a.container_instance_arn if ec2 else None,
                    "exitCode": a.exit_code,
                    "reason": a.reason,
                    "logStreamName": a.log_stream,
                    # AWS lists the task's elastic network interfaces (Fargate, awsvpc); batchplane's tasks have
                    # none it can name, locally or on ECS's events, so the list is empty rather than absent.
                    "networkInterfaces": [],
                }
            ),
            "startedAt": a.started_at,
            "stoppedAt": a.stopped_at,
            "statusReason": a.status_reason,
        }
    )


def _multi_attempt_detail(a: Attempt, ec2: bool) -> dict[str, Any]:
    """AttemptDetail of a multi-container job: its task and containers (AttemptEcsTaskDetails) instead of
    `container`."""
    containers = [
        _compact(
            {
                "name": c["name"],
                "exitCode": c.get("exitCode"),
                "reason": c.get("reason"),
                "logStreamName": ecs_task.log_stream(a.log_stream, c["name"]),
                "networkInterfaces": [],
            }
        )
        for c in a.containers
    ]
    task = _compact(
        {
            "taskArn": a.task_id,
            "containerInstanceArn": a.container_instance_arn if ec2 else None,
            "containers": containers,
        }
    )
    return _compact(
        {
            "taskProperties": [task],
            "startedAt": a.started_at,
            "stoppedAt": a.stopped_at,
            "statusReason": a.status_reason,
        }
    )


def ecs_properties_detail(job: Job) -> dict[str, Any]:
    """EcsPropertiesDetail: the task the job runs, each container with its latest attempt's log stream and end."""
    assert job.ecs_properties is not None
    task = dict(job.ecs_properties["taskProperties"][0])
    last = job.current or (job.attempts[-1] if job.attempts else None)
    ends = {c["name"]: c for c in last.containers} if last is not None else {}
    containers = []
    for c in task.get("containers") or []:
        detail = dict(c)
        detail.setdefault("essential", True)
        if last is not None:
            end = ends.get(c["name"], {})
            detail.update(
                {
                    "logStreamName": ecs_task.log_stream(last.log_stream, c["name"]),
                    "exitCode": end.get("exitCode"),
                    "reason": end.get("reason"),
                    "networkInterfaces": [],
                }
            )
        containers.append(_compact(detail))
    task["containers"] = containers
    if last is not None:
        task["taskArn"] = last.task_id
        if _on_ec2(job) and last.container_instance_arn:
            task["containerInstanceArn"] = last.container_instance_arn
    return {"taskProperties": [task]}


def container_detail(job: Job) -> dict[str, Any]:
    c = job.container
    last = job.current or (job.attempts[-1] if job.attempts else None)
    detail = {
        "image": c.get("image"),
        "command": c.get("command", []),
        "environment": c.get("environment", []),
        "resourceRequirements": c.get("resourceRequirements", []),
        "jobRoleArn": c.get("jobRoleArn"),
        "executionRoleArn": c.get("executionRoleArn"),
        "volumes": c.get("volumes", []),
        "mountPoints": c.get("mountPoints", []),
        "ulimits": c.get("ulimits", []),
        "user": c.get("user"),
        "secrets": c.get("secrets", []),
        "networkInterfaces": [],
        "vcpus": c.get("vcpus"),
        "memory": c.get("memory"),
        "logConfiguration": c.get("logConfiguration"),
        "networkConfiguration": c.get("networkConfiguration"),
        "fargatePlatformConfiguration": c.get("fargatePlatformConfiguration"),
    }
    if last is not None:
        detail.update(
            {
                "taskArn": last.task_id,
                "containerInstanceArn": last.container_instance_arn if _on_ec2(job) else None,
                "logStreamName": last.log_stream,
                "exitCode": last.exit_code,
                "reason": last.reason,
            }
        )
    return _compact(detail)


def _on_ec2(job: Job) -> bool:
    return "FARGATE" not in job.platform_capabilities


def array_summary(job: Job, counts: dict[str, int] | None) -> dict[str, Any] | None:
    if job.array is None:
        return None
    if job.array.index is not None:
        return {"index": job.array.index}
    summary = {status: 0 for status in STATUSES}
    summary.update(counts or {})
    return {"size": job.array.size, "statusSummary": summary, "statusSummaryLastUpdatedAt": job.updated_at}


def job_detail(job: Job, counts: dict[str, int] | None = None) -> dict[str, Any]:
    """JobDetail. `counts` are the array children by status, for a parent's statusSummary."""
    detail: dict[str, Any] = {
        "jobArn": job.arn,
        "jobName": job.name,
        "jobId": job.job_id,
        "jobQueue": job.queue_arn,
        "status": job.status,
        "shareIdentifier": job.share_identifier,
        "schedulingPriority": job.scheduling_priority,
        "attempts": [
            _multi_attempt_detail(a, _on_ec2(job)) if job.ecs_properties else attempt_detail(a, _on_ec2(job))
            for a in job.attempts
        ],
        "statusReason": job.status_reason,
        "createdAt": job.created_at,
        "retryStrategy": job.retry_strategy.to_wire() or None if job.retry_strategy else None,
        "startedAt": job.started_at,
        "stoppedAt": job.stopped_at,
        "dependsOn": [_compact({"jobId": d.job_id, "type": d.type}) for d in job.depends_on],
        "jobDefinition": job.job_definition_arn,
        "parameters": job.parameters,
        "container": None if job.is_array_parent or job.is_multinode or job.ecs_properties else container_detail(job),
        "ecsProperties": ecs_properties_detail(job) if job.ecs_properties else None,
        "nodeProperties": job.node_properties if job.is_multinode else None,
        "nodeDetails": _node_details(job),
        "arrayProperties": array_summary(job, counts),
        "timeout": job.timeout.to_wire() or None if job.timeout else None,
        "tags": job.tags,
        "propagateTags": job.propagate_tags,
        "platformCapabilities": list(job.platform_capabilities),
        "isCancelled": job.is_cancelled or None,
        "isTerminated": job.is_terminated or None,
        "consumableResourceProperties": (
            {
                "consumableResourceList": [
                    {"consumableResource": arn, "quantity": n} for arn, n in job.consumable_resources.items()
                ]
            }
            if job.consumable_resources
            else None
        ),
    }
    return _compact(detail)


def _main_node(job: Job) -> int | None:
    return int(job.node_properties["mainNode"]) if job.node_properties is not None else None


def _node_details(job: Job) -> dict[str, Any] | None:
    """NodeDetails, on a node job only."""
    if job.node_index is None:
        return None
    return {"nodeIndex": job.node_index, "isMainNode": job.node_index == _main_node(job)}


def _node_summary(job: Job) -> dict[str, Any] | None:
    """NodePropertiesSummary: on a multi-node job its numNodes; on a node job also its index and whether it is the
    main node."""
    if job.node_properties is None:
        return None
    summary: dict[str, Any] = {"numNodes": int(job.node_properties["numNodes"])}
    if job.node_index is not None:
        summary.update({"nodeIndex": job.node_index, "isMainNode": job.node_index == _main_node(job)})
    return summary


def job_summary(job: Job, counts: dict[str, int] | None = None) -> dict[str, Any]:
    """JobSummary. `counts` are an array parent's children by status (its statusSummary, as in JobDetail)."""
    last = job.current or (job.attempts[-1] if job.attempts else None)
    container = None
    if last is not None and (last.exit_code is not None or last.reason):
        container = _compact({"exitCode": last.exit_code, "reason": last.reason})
    array = array_summary(job, counts)
    return _compact(
        {
            "jobArn": job.arn,
            "jobId": job.job_id,
            "jobName": job.name,
            "createdAt": job.created_at,
            "scheduledAt": last.created_at if last is not None else None,  # placed: the latest attempt's claim
            "status": job.status,
            "statusReason": job.status_reason,
            "startedAt": job.started_at,
            "stoppedAt": job.stopped_at,
            "shareIdentifier": job.share_identifier,
            "container": container,
            "arrayProperties": array,
            "nodeProperties": _node_summary(job),
            "jobDefinition": job.job_definition_arn,
            "capacityUsage": [{"capacityUnit": "VCPU", "quantity": job.vcpus}],
            "isCancelled": job.is_cancelled or None,
            "isTerminated": job.is_terminated or None,
        }
    )
