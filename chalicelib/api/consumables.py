"""The consumable resource operations of the Batch API (resource-aware scheduling; control/consumables.py)."""

from __future__ import annotations

import functools
from typing import Any

from chalicelib.api import pagination
from chalicelib.api.handlers import Handler, table
from chalicelib.control import consumables
from chalicelib.control.context import RequestContext, Services

OPERATIONS: dict[str, Handler] = {}  # joined with the other operations in api/operations.py
operation = table(OPERATIONS)


def _names(resource: Any) -> dict[str, Any]:
    return {"consumableResourceName": resource.name, "consumableResourceArn": resource.arn}


@operation("CreateConsumableResource")
def create_consumable_resource(svc: Services, ctx: RequestContext, req: dict[str, Any]) -> dict[str, Any]:
    return _names(consumables.create(svc, ctx, req))


@operation("UpdateConsumableResource")
def update_consumable_resource(svc: Services, ctx: RequestContext, req: dict[str, Any]) -> dict[str, Any]:
    resource = consumables.update(svc, req)
    return {**_names(resource), "totalQuantity": resource.total_quantity}


@operation("DeleteConsumableResource")
def delete_consumable_resource(svc: Services, ctx: RequestContext, req: dict[str, Any]) -> dict[str, Any]:
    consumables.delete(svc, req)
    return {}


@operation("DescribeConsumableResource")
def describe_consumable_resource(svc: Services, ctx: RequestContext, req: dict[str, Any]) -> dict[str, Any]:
    return consumables.describe(consumables.get(svc, req["consumableResource"]))


@operation("ListConsumableResources")
def list_consumable_resources(svc: Services, ctx: RequestContext, req: dict[str, Any]) -> dict[str, Any]:
    fetch = functools.partial(consumables.list_resources, svc, req)
    return pagination.page(req, "consumableResources", fetch, consumables.summary)


@operation("ListJobsByConsumableResource")
def list_jobs_by_consumable_resource(svc: Services, ctx: RequestContext, req: dict[str, Any]) -> dict[str, Any]:
    fetch = functools.partial(consumables.list_jobs, svc, req)
    return pagination.page(req, "jobs", fetch, lambda listed: consumables.job_summary(*listed))
