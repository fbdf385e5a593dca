"""Job operations of the Batch API: SubmitJob, DescribeJobs, ListJobs, Cancel/Terminate (and their batch forms)."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from chalicelib.api import pagination
from chalicelib.api.handlers import Handler, table
from chalicelib.control import jobs
from chalicelib.control.context import RequestContext, Services
from chalicelib.control.react import reactor_of
from chalicelib.domain import cost
from chalicelib.domain.errors import InvalidRequest
from chalicelib.domain.job_detail import job_detail, job_summary

OPERATIONS: dict[str, Handler] = {}  # joined with the other operations in api/operations.py
operation = table(OPERATIONS)


@operation("SubmitJob")
def submit_job(svc: Services, ctx: RequestContext, req: dict[str, Any]) -> dict[str, Any]:
    job = jobs.submit(svc, reactor_of(svc), ctx, req)
    return {"jobArn": job.arn, "jobName": job.name, "jobId": job.job_id}


@operation("DescribeJobs")
def describe_jobs(svc: Services, ctx: RequestContext, req: dict[str, Any]) -> dict[str, Any]:
    reactor = reactor_of(svc)
    found = jobs.describe(svc, req["jobs"])
    region = _price_region(svc, ctx)
    return {
        "jobs": [
            {**job_detail(j, reactor.parent_counts(j) if j.is_array_parent else None), **cost.member(j, region)}
            for j in found
        ]
    }


def _price_region(svc: Services, ctx: RequestContext) -> str | None:
    """The region jobs' costs are priced in (the extension member batchplaneCost, domain/cost.py); None: not priced
    (the local runtime)."""
    return ctx.region if svc.settings.price_jobs else None


@operation("ListJobs")
def list_jobs(svc: Services, ctx: RequestContext, req: dict[str, Any]) -> dict[str, Any]:
    maximum = 100 if req.get("filters") else 1000
    limit = pagination.page_size(req, default=maximum, maximum=maximum)
    query = _query_key(req)
    page, cursor = jobs.list_jobs(svc, req, _cursor(req.get("nextToken"), query), limit)
    reactor = reactor_of(svc)
    region = _price_region(svc, ctx)
    return {
        "jobSummaryList": [
            {**job_summary(j, reactor.parent_counts(j) if j.is_array_parent else None), **cost.member(j, region)}
            for j in page
        ],
        "nextToken": pagination.encode(f"{query}|{cursor}") if cursor is not None else None,
    }


def _query_key(req: dict[str, Any]) -> str:
    """What a ListJobs nextToken is bound to: the request without its paging members, hashed."""
    query = {k: v for k, v in req.items() if k not in ("nextToken", "maxResults")}
    return hashlib.sha256(json.dumps(query, sort_keys=True).encode()).hexdigest()[:16]


def _cursor(token: str | None, query: str) -> str | None:
    """The cursor of a ListJobs token. A token is only valid for the request that issued it: reused with another
    queue, status or filter it would silently skip jobs, so it is refused (AWS's tokens are opaque and per query)."""
    wrapped = pagination.decode(token)
    if wrapped is None:
        return None
    issued_for, sep, cursor = str(wrapped).partition("|")
    if not sep or issued_for != query:
        raise InvalidRequest(
            "nextToken was issued for a ListJobs request with other parameters; repeat the same jobQueue, "
            "arrayJobId, jobStatus and filters to get the next page, or start again without nextToken"
        )
    return cursor


@operation("CancelJob")
def cancel_job(svc: Services, ctx: RequestContext, req: dict[str, Any]) -> dict[str, Any]:
    jobs.cancel(svc, reactor_of(svc), req["jobId"], req["reason"])
    return {}


@operation("TerminateJob")
def terminate_job(svc: Services, ctx: RequestContext, req: dict[str, Any]) -> dict[str, Any]:
    jobs.terminate(svc, reactor_of(svc), req["jobId"], req["reason"])
    return {}


@operation("CancelJobs")
def cancel_jobs(svc: Services, ctx: RequestContext, req: dict[str, Any]) -> dict[str, Any]:
    done = jobs.cancel_many(svc, reactor_of(svc), req["jobs"], req["reason"], terminate=False)
    return {"successful": done, "errors": []}


@operation("TerminateJobs")
def terminate_jobs(svc: Services, ctx: RequestContext, req: dict[str, Any]) -> dict[str, Any]:
    done = jobs.cancel_many(svc, reactor_of(svc), req["jobs"], req["reason"], terminate=True)
    return {"successful": done, "errors": []}
