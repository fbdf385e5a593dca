"""batchplane's trigger operations (POST /v1/createtrigger, /v1/listtriggers, /v1/describetrigger,
/v1/deletetrigger; JSON in and out, errors exactly like the Batch ones), registered in api/extensions.py.

The Batch model does not know these operations, so each brings its own request validation. The job members of a
trigger (jobName, parameters, containerOverrides, ...) are checked against the SubmitJob input shape, so a trigger
that validates submits a job that validates.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from chalicelib.api import pagination, wire
from chalicelib.api.extension import Extension
from chalicelib.control import triggers
from chalicelib.control.context import RequestContext, Services
from chalicelib.domain import triggers as domain

MAX_RESULTS = 100


def _create_request(req: dict[str, Any]) -> dict[str, Any]:
    domain.check_definition(req)
    wire.validate_request("SubmitJob", domain.definition_as_submit(req))
    return req


def _name_request(req: dict[str, Any]) -> dict[str, Any]:
    domain.trigger_name(req.get("triggerName"))
    return req


def list_request(req: dict[str, Any]) -> dict[str, Any]:
    """ListTriggers holds only maxResults and nextToken, which api/pagination checks where they are read."""
    return req


def create_trigger(svc: Services, ctx: RequestContext, req: dict[str, Any]) -> dict[str, Any]:
    trigger = triggers.create(svc, ctx, req)
    return {"triggerName": trigger.name, "triggerArn": trigger.arn}


def describe_trigger(svc: Services, ctx: RequestContext, req: dict[str, Any]) -> dict[str, Any]:
    trigger = triggers.get(svc, req["triggerName"])
    return {"trigger": domain.detail(trigger, svc.clock.now_ms())}


def list_triggers(svc: Services, ctx: RequestContext, req: dict[str, Any]) -> dict[str, Any]:
    limit = pagination.page_size(req, default=MAX_RESULTS, maximum=MAX_RESULTS)
    page = triggers.list_triggers(svc, pagination.decode(req.get("nextToken")), limit)
    now = svc.clock.now_ms()
    out: dict[str, Any] = {"triggers": [domain.detail(t, now) for t in page]}
    if len(page) == limit:
        out["nextToken"] = pagination.encode(page[-1].name)
    return out


def delete_trigger(svc: Services, ctx: RequestContext, req: dict[str, Any]) -> dict[str, Any]:
    triggers.delete(svc, req["triggerName"])
    return {}


TRIGGER_OPERATIONS: Mapping[str, Extension] = {
    "CreateTrigger": Extension("/v1/createtrigger", _create_request, create_trigger),
    "DescribeTrigger": Extension("/v1/describetrigger", _name_request, describe_trigger),
    "ListTriggers": Extension("/v1/listtriggers", list_request, list_triggers),
    "DeleteTrigger": Extension("/v1/deletetrigger", _name_request, delete_trigger),
}
