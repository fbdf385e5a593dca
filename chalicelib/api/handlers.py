"""One function per Batch operation: validated request -> use case -> wire response.

`OPERATIONS` maps the operation name to its handler: the resource operations here; `api/operations.py` joins it with
the job operations' table (`api/jobs.py`) into the one `api/gateway.py` routes to.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from chalicelib.api import pagination, render
from chalicelib.control import deletion, resources, snapshot, tags
from chalicelib.control.context import RequestContext, Services
from chalicelib.control.react import reactor_of
from chalicelib.domain.errors import InvalidRequest

Handler = Callable[[Services, RequestContext, dict[str, Any]], dict[str, Any]]


def table(operations: dict[str, Handler]) -> Callable[[str], Callable[[Handler], Handler]]:
    """The `@operation(name)` decorator of a module's own table of operations."""

    def operation(name: str) -> Callable[[Handler], Handler]:
        def add(fn: Handler) -> Handler:
            operations[name] = fn
            return fn

        return add

    return operation


OPERATIONS: dict[str, Handler] = {}
operation = table(OPERATIONS)


def _refs(req: dict[str, Any], key: str, limit: int = 100) -> list[str] | None:
    refs: list[str] | None = req.get(key)
    if refs and len(refs) > limit:
        raise InvalidRequest(f"{key} must have at most {limit} entries")
    return refs


def _paged(items: list[Any], limit: int, key: Callable[[Any], Any]) -> str | None:
    """The next token when the page is full (there may be more), else None."""
    return pagination.encode(key(items[-1])) if len(items) == limit else None


# -- compute environments --------------------------------------------------------------------------------------


@operation("CreateComputeEnvironment")
def create_compute_environment(svc: Services, ctx: RequestContext, req: dict[str, Any]) -> dict[str, Any]:
    ce = resources.create_compute_environment(svc, ctx, req)
    return {"computeEnvironmentName": ce.name, "computeEnvironmentArn": ce.arn}


@operation("UpdateComputeEnvironment")
def update_compute_environment(svc: Services, ctx: RequestContext, req: dict[str, Any]) -> dict[str, Any]:
    ce = resources.update_compute_environment(svc, req)
    return {"computeEnvironmentName": ce.name, "computeEnvironmentArn": ce.arn}


@operation("DeleteComputeEnvironment")
def delete_compute_environment(svc: Services, ctx: RequestContext, req: dict[str, Any]) -> dict[str, Any]:
    deletion.delete_compute_environment(svc, reactor_of(svc), req)
    return {}


@operation("DescribeComputeEnvironments")
def describe_compute_environments(svc: Services, ctx: RequestContext, req: dict[str, Any]) -> dict[str, Any]:
    refs = _refs(req, "computeEnvironments")
    limit = pagination.page_size(req)
    ces = resources.describe_compute_environments(svc, refs, pagination.decode(req.get("nextToken")), limit)
    token = None if refs else _paged(ces, limit, lambda ce: ce.name)
    cluster = svc.settings.ecs_cluster
    return {
        "computeEnvironments": [render.compute_environment(ce, render.ecs_cluster_arn(ce, cluster)) for ce in ces],
        "nextToken": token,
    }


# -- job queues ------------------------------------------------------------------------------------------------


@operation("CreateJobQueue")
def create_job_queue(svc: Services, ctx: RequestContext, req: dict[str, Any]) -> dict[str, Any]:
    jq = resources.create_job_queue(svc, ctx, req)
    return {"jobQueueName": jq.name, "jobQueueArn": jq.arn}


@operation("UpdateJobQueue")
def update_job_queue(svc: Services, ctx: RequestContext, req: dict[str, Any]) -> dict[str, Any]:
    jq = resources.update_job_queue(svc, req)
    return {"jobQueueName": jq.name, "jobQueueArn": jq.arn}


@operation("DeleteJobQueue")
def delete_job_queue(svc: Services, ctx: RequestContext, req: dict[str, Any]) -> dict[str, Any]:
    deletion.delete_job_queue(svc, reactor_of(svc), req)
    return {}


@operation("DescribeJobQueues")
def describe_job_queues(svc: Services, ctx: RequestContext, req: dict[str, Any]) -> dict[str, Any]:
    refs = _refs(req, "jobQueues")
    limit = pagination.page_size(req)
    jqs = resources.describe_job_queues(svc, refs, pagination.decode(req.get("nextToken")), limit)
    token = None if refs else _paged(jqs, limit, lambda jq: jq.name)
    return {"jobQueues": [render.job_queue(jq) for jq in jqs], "nextToken": token}


# -- job definitions -------------------------------------------------------------------------------------------


@operation("RegisterJobDefinition")
def register_job_definition(svc: Services, ctx: RequestContext, req: dict[str, Any]) -> dict[str, Any]:
    jd = resources.register_job_definition(svc, ctx, req)
    return {"jobDefinitionName": jd.name, "jobDefinitionArn": jd.arn, "revision": jd.revision}


@operation("DeregisterJobDefinition")
def deregister_job_definition(svc: Services, ctx: RequestContext, req: dict[str, Any]) -> dict[str, Any]:
    resources.deregister_job_definition(svc, req)
    return {}


@operation("DescribeJobDefinitions")
def describe_job_definitions(svc: Services, ctx: RequestContext, req: dict[str, Any]) -> dict[str, Any]:
    fetch = functools.partial(resources.describe_job_definitions, svc, req)
    return pagination.page(req, "jobDefinitions", fetch, render.job_definition)


# -- scheduling policies ---------------------------------------------------------------------------------------


@operation("CreateSchedulingPolicy")
def create_scheduling_policy(svc: Services, ctx: RequestContext, req: dict[str, Any]) -> dict[str, Any]:
    sp = resources.create_scheduling_policy(svc, ctx, req)
    return {"name": sp.name, "arn": sp.arn}


@operation("UpdateSchedulingPolicy")
def update_scheduling_policy(svc: Services, ctx: RequestContext, req: dict[str, Any]) -> dict[str, Any]:
    resources.update_scheduling_policy(svc, req)
    return {}


@operation("DeleteSchedulingPolicy")
def delete_scheduling_policy(svc: Services, ctx: RequestContext, req: dict[str, Any]) -> dict[str, Any]:
    resources.delete_scheduling_policy(svc, req)
    return {}


@operation("DescribeSchedulingPolicies")
def describe_scheduling_policies(svc: Services, ctx: RequestContext, req: dict[str, Any]) -> dict[str, Any]:
    refs = _refs(req, "arns") or []
    found = ((a, svc.repo.get_sp(resources.name_of(a, "scheduling-policy", "arns"))) for a in refs)
    return {
        "schedulingPolicies": [
            render.scheduling_policy(sp) for a, sp in found if sp is not None and resources.same_resource(a, sp.arn)
        ]
    }


@operation("ListSchedulingPolicies")
def list_scheduling_policies(svc: Services, ctx: RequestContext, req: dict[str, Any]) -> dict[str, Any]:
    limit = pagination.page_size(req)
    sps = svc.repo.list_sps(pagination.decode(req.get("nextToken")), limit)
    return {
        "schedulingPolicies": [{"arn": sp.arn} for sp in sps],
        "nextToken": _paged(sps, limit, lambda sp: sp.name),
    }


# -- tags ------------------------------------------------------------------------------------------------------


@operation("ListTagsForResource")
def list_tags_for_resource(svc: Services, ctx: RequestContext, req: dict[str, Any]) -> dict[str, Any]:
    return {"tags": tags.list_tags(svc, req["resourceArn"])}


@operation("TagResource")
def tag_resource(svc: Services, ctx: RequestContext, req: dict[str, Any]) -> dict[str, Any]:
    tags.tag_resource(svc, req["resourceArn"], req["tags"])
    return {}


@operation("UntagResource")
def untag_resource(svc: Services, ctx: RequestContext, req: dict[str, Any]) -> dict[str, Any]:
    tags.untag_resource(svc, req["resourceArn"], req["tagKeys"])
    return {}


@operation("GetJobQueueSnapshot")
def get_job_queue_snapshot(svc: Services, ctx: RequestContext, req: dict[str, Any]) -> dict[str, Any]:
    return snapshot.snapshot(svc, req["jobQueue"])
