"""Use cases of consumable resources: Create/Update/Delete/Describe/ListConsumableResources,
ListJobsByConsumableResource, and resolving the resources a job definition or a job names
(domain/consumables.py for the rules, docs/adr/0026-consumable-resources.md for the choices).
"""

from __future__ import annotations

from typing import Any, TypeVar

from chalicelib.control.conflicts import retry_on_conflict
from chalicelib.control.context import RequestContext, Services
from chalicelib.domain import arns, consumables, validation
from chalicelib.domain.consumables import ConsumableResource
from chalicelib.domain.errors import Conflict, InvalidRequest, NotFound
from chalicelib.domain.jobs import STATUSES, Job
from chalicelib.store.consumables import ConsumableRepository

T = TypeVar("T")


def repo(svc: Services) -> ConsumableRepository:
    return ConsumableRepository(svc.repo.items)


def name_of(ref: str, field: str) -> str:
    """A consumable resource reference is a name or its ARN (arn:aws:batch:<region>:<account>:consumable-resource/
    <name>; domain/arns.py does not list the kind, so it is parsed here)."""
    if not arns.looks_like_arn(ref):
        return ref
    head, sep, name = ref.partition(f":{consumables.KIND}/")
    if not sep or not name or len(head.split(":")) != 5 or not head.startswith("arn:aws:batch:"):
        raise InvalidRequest(f"{field} must be a consumable resource name or ARN ({consumables.KIND}/<name>)")
    return name


def get(svc: Services, ref: str, field: str = "consumableResource") -> ConsumableResource:
    resource = repo(svc).get(name_of(ref, field))
    if resource is None or (arns.looks_like_arn(ref) and ref != resource.arn):
        raise NotFound(f"{field}: consumable resource {ref} does not exist")
    return resource


def create(svc: Services, ctx: RequestContext, req: dict[str, Any]) -> ConsumableResource:
    consumables.check_create(req)
    validation.tags(req.get("tags"), svc.settings.limits)
    name = req["consumableResourceName"]
    resource = ConsumableResource(
        name=name,
        arn=f"arn:aws:batch:{ctx.region}:{svc.settings.account}:{consumables.KIND}/{name}",
        resource_type=req.get("resourceType") or consumables.REPLENISHABLE,
        total_quantity=int(req.get("totalQuantity") or 0),
        created_at=svc.clock.now_ms(),
        tags=dict(req.get("tags") or {}),
    )
    try:
        return repo(svc).save(resource)
    except Conflict:
        raise InvalidRequest(f"consumableResourceName: a consumable resource named {name} already exists") from None


def update(svc: Services, req: dict[str, Any]) -> ConsumableResource:
    def attempt() -> ConsumableResource:
        resource = get(svc, req["consumableResource"])
        return repo(svc).save(consumables.updated(resource, req.get("operation"), req.get("quantity")))

    saved = retry_on_conflict(attempt)
    svc.wake()  # units added may let a waiting job run
    return saved


def delete(svc: Services, req: dict[str, Any]) -> None:
    """A resource whose units jobs hold is not deleted (they would return them to nothing); jobs still waiting for
    it get a MISCONFIGURATION reason (domain/scheduling.py step 4b)."""

    def attempt() -> None:
        resource = get(svc, req["consumableResource"])
        if resource.in_use_quantity > 0:
            raise InvalidRequest(
                f"consumableResource: {resource.name} has {resource.in_use_quantity} unit(s) in use by running jobs; "
                "delete it once they have finished"
            )
        repo(svc).delete(resource)

    retry_on_conflict(attempt)
    svc.wake()  # jobs waiting for it now get their reason


def describe(resource: ConsumableResource) -> dict[str, Any]:
    return {
        "consumableResourceName": resource.name,
        "consumableResourceArn": resource.arn,
        "totalQuantity": resource.total_quantity,
        "inUseQuantity": resource.in_use_quantity,
        "availableQuantity": resource.available_quantity,
        "resourceType": resource.resource_type,
        "createdAt": resource.created_at,
        "tags": dict(resource.tags),
    }


def summary(resource: ConsumableResource) -> dict[str, Any]:
    return {
        "consumableResourceName": resource.name,
        "consumableResourceArn": resource.arn,
        "totalQuantity": resource.total_quantity,
        "inUseQuantity": resource.in_use_quantity,
        "resourceType": resource.resource_type,
    }


def _filters(req: dict[str, Any], allowed: tuple[str, ...]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for i, f in enumerate(req.get("filters") or []):
        name = f.get("name")
        if name not in allowed:
            raise InvalidRequest(f"filters[{i}].name must be one of {', '.join(allowed)}; got {name!r}")
        out[name] = [str(v) for v in f.get("values") or []]
    return out


def _name_matches(name: str, patterns: list[str]) -> bool:
    """Case-insensitive; a value ending in '*' matches names that begin with what precedes it."""
    low = name.lower()
    return any(low.startswith(p[:-1].lower()) if p.endswith("*") else low == p.lower() for p in patterns)


def list_resources(
    svc: Services, req: dict[str, Any], after: str | None, limit: int
) -> tuple[list[ConsumableResource], str | None]:
    """A page of resources in name order (filter CONSUMABLE_RESOURCE_NAME) and the name to continue after."""
    patterns = _filters(req, ("CONSUMABLE_RESOURCE_NAME",)).get("CONSUMABLE_RESOURCE_NAME")
    page: list[ConsumableResource] = []
    cursor = after
    while len(page) < limit:
        batch = repo(svc).list_all(cursor, limit)
        page += [r for r in batch if patterns is None or _name_matches(r.name, patterns)][: limit - len(page)]
        if len(batch) < limit:
            return page, None
        cursor = batch[-1].name
    return page, page[-1].name


def list_jobs(
    svc: Services, req: dict[str, Any], after: str | None, limit: int
) -> tuple[list[tuple[Job, int]], str | None]:
    """The jobs that name the resource (oldest first) with the units each needs, filtered by JOB_STATUS / JOB_NAME;
    and the sort key to continue after (None when done)."""
    resource = get(svc, req["consumableResource"])
    filters = _filters(req, ("JOB_STATUS", "JOB_NAME"))
    statuses = filters.get("JOB_STATUS")
    for i, status in enumerate(statuses or []):
        if status not in STATUSES:
            raise InvalidRequest(f"filters JOB_STATUS value {i} must be one of {', '.join(STATUSES)}; got {status!r}")
    names = filters.get("JOB_NAME")
    page: list[tuple[Job, int]] = []
    cursor = after
    while len(page) < limit:
        items = repo(svc).consumers(resource.name, cursor, limit)
        found = {j.job_id: j for j in svc.jobs.get_many([i.body["job"] for i in items])}
        for item in items:
            job = found.get(item.body["job"])
            if job is None or resource.arn not in job.consumable_resources:
                continue  # removed after its retention, or an item of an earlier resource of the same name
            if statuses is not None and job.status not in statuses:
                continue
            if names is not None and not _name_matches(job.name, names):
                continue
            page.append((job, job.consumable_resources[resource.arn]))
            if len(page) == limit:
                return page, item.sk
        if len(items) < limit:
            return page, None
        cursor = items[-1].sk
    return page, cursor


def job_summary(job: Job, quantity: int) -> dict[str, Any]:
    return {
        "jobArn": job.arn,
        "jobQueueArn": job.queue_arn,
        "jobName": job.name,
        "jobDefinitionArn": job.job_definition_arn,
        "jobStatus": job.status,
        "quantity": quantity,
        "createdAt": job.created_at,
        "consumableResourceProperties": consumables.wire(job.consumable_resources),
        **{
            k: v
            for k, v in (
                ("shareIdentifier", job.share_identifier),
                ("statusReason", job.status_reason),
                ("startedAt", job.started_at),
            )
            if v is not None
        },
    }


# -- what a definition or a job names ------------------------------------------------------------------------------


def resolve(svc: Services, props: dict[str, Any] | None, field: str) -> dict[str, int]:
    """The resources a consumableResourceProperties names, as {ARN: units}; each must exist (ClientException naming
    the entry otherwise, as AWS refuses a job that names a resource it does not have)."""
    needs: dict[str, int] = {}
    for i, (ref, quantity) in enumerate(consumables.requirements(props, field)):
        where = f"{field}.consumableResourceList[{i}].consumableResource"
        needs[get(svc, ref, where).arn] = quantity
    return needs
