"""Use cases for job definitions: RegisterJobDefinition (revisions), DeregisterJobDefinition,
DescribeJobDefinitions, and resolving a job's reference to one (by name, name:revision or ARN).

Split from control/resources.py, which re-exports these operations."""

from __future__ import annotations

import re
from typing import Any

from chalicelib.control import consumables
from chalicelib.control.conflicts import retry_on_conflict
from chalicelib.control.context import RequestContext, Services
from chalicelib.domain import arns, digits, ecs_task, nodes, retry, unsupported, validation
from chalicelib.domain.errors import InvalidRequest, NotFound
from chalicelib.domain.model import JobDefinition
from chalicelib.store.repository import rev_key

REVISION = re.compile(r"[0-9]{1,10}")


def same_definition(ref: str, jd: JobDefinition) -> bool:
    """`same_resource` for job definitions, whose ARN may leave out the revision."""
    return not arns.looks_like_arn(ref) or ref in (jd.arn, jd.arn.rpartition(":")[0])


# -- operations -------------------------------------------------------------------------------------------

_JD_SPEC_KEYS = (
    "parameters",
    "schedulingPriority",
    "containerProperties",
    "nodeProperties",
    "retryStrategy",
    "propagateTags",
    "timeout",
    "platformCapabilities",
    "eksProperties",
    "ecsProperties",
    "consumableResourceProperties",
)


def register_job_definition(svc: Services, ctx: RequestContext, req: dict[str, Any]) -> JobDefinition:
    unsupported.job_definition(req)
    validation.job_definition(req, svc.settings.limits)
    consumables.resolve(svc, req.get("consumableResourceProperties"), "consumableResourceProperties")
    if req.get("ecsProperties") is not None:
        fargate = "FARGATE" in (req.get("platformCapabilities") or [])
        ecs_task.validate_properties(req["ecsProperties"], fargate=fargate)
    if req["type"] == "multinode":
        nodes.validate(req["nodeProperties"])
    name = req["jobDefinitionName"]
    spec = {k: req[k] for k in _JD_SPEC_KEYS if req.get(k) is not None}
    if "retryStrategy" in spec:
        spec["retryStrategy"] = retry.normalized(spec["retryStrategy"])

    def attempt() -> JobDefinition:
        latest = svc.repo.latest_jd(name)
        revision = (latest.revision if latest else 0) + 1
        jd = JobDefinition(
            name=name,
            revision=revision,
            arn=arns.build(ctx.region, svc.settings.account, "job-definition", f"{name}:{revision}"),
            jd_type=req["type"],
            status="ACTIVE",
            created_at=svc.clock.now_ms(),
            spec=spec,
            tags=dict(req.get("tags") or {}),
        )
        return svc.repo.save_jd(jd)  # create-only: a concurrent register of the same revision conflicts

    return retry_on_conflict(attempt)


def parse_jd_ref(ref: str, field: str = "jobDefinition") -> tuple[str, int | None]:
    """`name`, `name:revision` or an ARN with or without the revision -> (name, revision or None)."""
    value = arns.parse(ref, field).resource if arns.looks_like_arn(ref) else ref
    if arns.looks_like_arn(ref) and arns.parse(ref, field).kind != "job-definition":
        raise InvalidRequest(f"{field} must reference a job-definition")
    name, sep, rev = value.partition(":")
    if not sep:
        return name, None
    revision = digits.parse(rev)  # ASCII digits only ("²".isdigit() is True), so int() never raises
    if revision is None or not 1 <= revision <= digits.INT32_MAX:  # the model's revision is an Integer
        raise InvalidRequest(f"{field}: revision must be a positive 32-bit integer; got {rev[:40]!r}")
    return name, revision


def resolve_job_definition(svc: Services, ref: str, field: str = "jobDefinition") -> JobDefinition:
    """The revision a job runs: the named one, or the latest ACTIVE revision for a bare name."""
    name, revision = parse_jd_ref(ref, field)
    jd = svc.repo.latest_active_jd(name) if revision is None else svc.repo.get_jd(name, revision)
    if jd is None or jd.status != "ACTIVE" or not same_definition(ref, jd):
        raise NotFound(f"{field}: JobDefinition {ref} does not exist or is not in ACTIVE status")
    return jd


def deregister_job_definition(svc: Services, req: dict[str, Any]) -> None:
    name, revision = parse_jd_ref(req["jobDefinition"])
    if revision is None:
        raise InvalidRequest("jobDefinition must be name:revision or a job definition ARN with its revision")

    def attempt() -> None:
        jd = svc.repo.get_jd(name, revision)
        if jd is None or not same_definition(req["jobDefinition"], jd):
            raise NotFound(f"jobDefinition: JobDefinition {req['jobDefinition']} does not exist")
        if jd.status != "INACTIVE":
            svc.repo.save_jd(jd.deregistered())

    retry_on_conflict(attempt)


def describe_job_definitions(
    svc: Services, req: dict[str, Any], after: str | None, limit: int
) -> tuple[list[JobDefinition], str | None]:
    """Returns one page and the key to continue after (None when done)."""
    refs = req.get("jobDefinitions")
    status = req.get("status")
    if refs:
        if req.get("jobDefinitionName") or status:
            raise InvalidRequest("jobDefinitions can't be used with other parameters")
        if len(refs) > 100:
            raise InvalidRequest("jobDefinitions must have at most 100 entries")
        result: list[JobDefinition] = []
        for ref in refs:
            ref_name, revision = parse_jd_ref(ref, "jobDefinitions")
            if revision is None:
                result += [j for j in svc.repo.list_jd_revisions(ref_name, None, 10_000) if same_definition(ref, j)]
            elif (jd := svc.repo.get_jd(ref_name, revision)) is not None and same_definition(ref, jd):
                result.append(jd)
        return result, None
    name = req.get("jobDefinitionName")
    # Filtering by status happens after the key-ordered read; keep reading until the page is full.
    page: list[JobDefinition] = []
    cursor: str | None = after
    while len(page) < limit:
        batch = svc.repo.list_jd_revisions(name, cursor, limit) if name else svc.repo.list_jds(cursor, limit)
        if not batch:
            return page, None
        for jd in batch:
            cursor = _jd_cursor(jd, by_name=bool(name))
            if status is None or jd.status == status:
                page.append(jd)
                if len(page) == limit:
                    return page, cursor
        if len(batch) < limit:
            return page, None
    return page, cursor


def _jd_cursor(jd: JobDefinition, *, by_name: bool) -> str:
    return rev_key(jd.revision) if by_name else f"{jd.name}#{rev_key(jd.revision)}"
