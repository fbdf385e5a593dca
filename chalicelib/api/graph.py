"""ListJobDependents (POST /v1/listjobdependents): the jobs that depend on a job, for `batchplane dag` and
`batchplane watch`. Batch answers only the other way (a job's dependsOn); batchplane keeps the reverse edges.

Request {"jobId", "maxResults"? (1-1000, default 100), "nextToken"?}; response {"dependents": [{"jobId"}],
"nextToken"?}. The edges are the ones submission writes (docs/adr/0002), one per plain dependency, including a
dependency that had already finished when the dependent was submitted. N_TO_N and SEQUENTIAL links are between
array children: ask for `<parent>:<index>`. A dependent that put a condition on the job (AFTER_ANY, AFTER_NOT_OK)
carries it as "type": {"jobId", "type"?}.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from typing import Any

from chalicelib.api import pagination
from chalicelib.api.extension import Extension
from chalicelib.control import jobs
from chalicelib.control.context import RequestContext, Services
from chalicelib.domain import conditions
from chalicelib.domain.errors import InvalidRequest

MAX_DEPENDENTS = 1000


def _request(req: dict[str, Any]) -> dict[str, Any]:
    if not isinstance(req.get("jobId"), str) or not req["jobId"]:
        raise InvalidRequest("jobId is required" if req.get("jobId") is None else "jobId must be a string")
    return req  # maxResults and nextToken: checked by api/pagination where they are read


def list_job_dependents(svc: Services, ctx: RequestContext, req: dict[str, Any]) -> dict[str, Any]:
    limit = pagination.page_size(req, default=100, maximum=MAX_DEPENDENTS)
    jobs.get_job(svc, req["jobId"])
    after = pagination.decode(req.get("nextToken"))
    # The store starts after the cursor: a page costs one query, not a re-read of every earlier page.
    page = list(itertools.islice(svc.jobs.dependents(req["jobId"], after=after, page=limit), limit))
    # A conditional dependency (AFTER_ANY, AFTER_NOT_OK: domain/conditions.py) says so with its "type"; the edge
    # holds no condition, the dependent's dependsOn does: one batch read of the page's dependents.
    kinds = {j.job_id: conditions.of(j.depends_on, req["jobId"]) for j in svc.jobs.get_many(page)}
    out: dict[str, Any] = {"dependents": [{"jobId": d, **({"type": kinds[d]} if kinds.get(d) else {})} for d in page]}
    if len(page) == limit:
        out["nextToken"] = pagination.encode(page[-1])
    return out


GRAPH_OPERATIONS: Mapping[str, Extension] = {
    "ListJobDependents": Extension("/v1/listjobdependents", _request, list_job_dependents),
}
