"""Use cases for compute environments, job queues and scheduling policies (job definitions: control/job_definitions.py,
whose operations are also reachable from here).

Requests arrive wire-shaped and already checked against the Batch model (api/wire.py); the semantic rules run here
through domain/validation.py before anything is written. Every write is conditional; a lost race re-reads and
re-decides (`retry_on_conflict`).
"""

from __future__ import annotations

import dataclasses
from typing import Any

from chalicelib.control.conflicts import retry_on_conflict
from chalicelib.control.context import RequestContext, Services
from chalicelib.control.job_definitions import (
    deregister_job_definition,
    describe_job_definitions,
    parse_jd_ref,
    register_job_definition,
    resolve_job_definition,
)
from chalicelib.domain import arns, caps, platform, unsupported, validation
from chalicelib.domain.errors import Conflict, InvalidRequest, NotFound
from chalicelib.domain.model import (
    CE_HEALTHY,
    DELETING,
    VALID,
    ComputeEnvironment,
    ComputeEnvironmentOrder,
    FairsharePolicy,
    JobQueue,
    SchedulingPolicy,
    ShareWeight,
)

# Reached as resources.* by the API and the other use cases (job definitions moved to control/job_definitions.py).
__all__ = [
    "deregister_job_definition",
    "describe_job_definitions",
    "parse_jd_ref",
    "register_job_definition",
    "resolve_job_definition",
    "retry_on_conflict",
]


def name_of(ref: str, kind: str, field: str) -> str:
    """A resource reference is a name or an ARN of `kind`; returns the name."""
    if not arns.looks_like_arn(ref):
        return ref
    arn = arns.parse(ref, field)
    if arn.kind != kind:
        raise InvalidRequest(f"{field} must reference a {kind}; got an ARN of a {arn.kind}")
    return arn.resource


def same_resource(ref: str, arn: str) -> bool:
    """A reference by name matches by name; one by ARN must be the resource's own ARN. Names are looked up in the
    store, so without this an ARN of another account or region would resolve to the local resource of that name;
    on AWS such a resource is simply not there (docs/adr/0022-platform-rules.md)."""
    return not arns.looks_like_arn(ref) or ref == arn


# -- compute environments --------------------------------------------------------------------------------------


def get_ce(svc: Services, ref: str, field: str = "computeEnvironment") -> ComputeEnvironment:
    name = name_of(ref, "compute-environment", field)
    ce = svc.repo.get_ce(name)
    if ce is None or not same_resource(ref, ce.arn):
        raise NotFound(f"{field}: compute environment {ref} does not exist")
    return ce


def create_compute_environment(svc: Services, ctx: RequestContext, req: dict[str, Any]) -> ComputeEnvironment:
    unsupported.compute_environment(req)
    validation.compute_environment(req)
    validation.tags(req.get("tags"), svc.settings.limits)
    name = req["computeEnvironmentName"]
    extra: dict[str, Any] = {
        k: req[k] for k in ("updatePolicy", "ecsSettings", "context", "eksConfiguration") if k in req
    }
    ce = ComputeEnvironment(
        name=name,
        arn=arns.build(ctx.region, svc.settings.account, "compute-environment", name),
        ce_type=req["type"],
        state=req.get("state", "ENABLED"),
        status=VALID,
        status_reason=CE_HEALTHY,
        uuid=svc.ids.new_id(),
        created_at=svc.clock.now_ms(),
        compute_resources=_initial_resources(req.get("computeResources")),
        unmanaged_vcpus=req.get("unmanagedvCpus"),
        service_role=req.get("serviceRole"),
        tags=dict(req.get("tags") or {}),
        extra=extra,
    )
    try:
        return svc.repo.save_ce(ce)
    except Conflict:
        existing = svc.repo.get_ce(name)
        if existing is not None and existing.status == DELETING:
            raise InvalidRequest(
                f"computeEnvironmentName: a compute environment named {name} is being deleted; the name can be "
                "reused once it is gone"
            ) from None
        raise InvalidRequest(f"computeEnvironmentName: a compute environment named {name} already exists") from None


def _initial_resources(res: dict[str, Any] | None) -> dict[str, Any] | None:
    if res is None:
        return None
    res = dict(res)
    if res["type"] in ("EC2", "SPOT"):
        res.setdefault("minvCpus", 0)
        res.setdefault("desiredvCpus", res["minvCpus"])
        res.setdefault("allocationStrategy", "BEST_FIT")
    return res


def update_compute_environment(svc: Services, req: dict[str, Any]) -> ComputeEnvironment:
    unsupported.compute_environment(req)
    update = req.get("computeResources")
    if update is not None:
        validation.compute_resources(update, "computeResources", update=True)

    def attempt() -> ComputeEnvironment:
        ce = get_ce(svc, req["computeEnvironment"])
        if ce.status == DELETING:
            raise InvalidRequest(f"computeEnvironment: {ce.name} is being deleted and cannot be updated")
        changes: dict[str, Any] = {}
        if "state" in req:
            changes["state"] = req["state"]
        if "unmanagedvCpus" in req:
            if ce.ce_type != "UNMANAGED":
                raise InvalidRequest("unmanagedvCpus is only supported for UNMANAGED compute environments")
            validation.in_range(req["unmanagedvCpus"], 0, None, "unmanagedvCpus")
            changes["unmanaged_vcpus"] = req["unmanagedvCpus"]
        if "serviceRole" in req:
            changes["service_role"] = req["serviceRole"]
        if "updatePolicy" in req:
            changes["extra"] = {**ce.extra, "updatePolicy": req["updatePolicy"]}
        if update is not None:
            changes["compute_resources"] = _merge_resources(ce, update)
        return svc.repo.save_ce(dataclasses.replace(ce, **changes))

    ce = retry_on_conflict(attempt)
    svc.wake()
    return ce


def _merge_resources(ce: ComputeEnvironment, update: dict[str, Any]) -> dict[str, Any]:
    if ce.compute_resources is None:
        raise InvalidRequest("computeResources cannot be updated on an UNMANAGED compute environment")
    current = ce.compute_resources
    if update.get("type") not in (None, current["type"]):
        raise InvalidRequest(f"computeResources.type cannot change from {current['type']} to {update['type']}")
    desired = update.get("desiredvCpus")
    if desired is not None and desired < current.get("desiredvCpus", 0):
        raise InvalidRequest(
            "computeResources.desiredvCpus: Manually scaling down compute environment is not supported. "
            "Disconnecting job queues from compute environment will cause it to scale-down to minvCpus."
        )
    merged = {**current, **{k: v for k, v in update.items() if v is not None}}
    if merged["type"] in ("EC2", "SPOT") and desired is None:
        # A scaling update of min/max alone moves the current desiredvCpus into the new range, as Batch does
        # ("Batch modifies this value between the minimum and maximum values"); an explicit one is checked.
        low, high = merged.get("minvCpus", 0), merged["maxvCpus"]
        if low <= high:
            merged["desiredvCpus"] = min(max(merged.get("desiredvCpus", 0), low), high)
    validation.compute_resources(merged, "computeResources", update=True)
    return merged


def describe_compute_environments(
    svc: Services, refs: list[str] | None, after: str | None, limit: int
) -> list[ComputeEnvironment]:
    if refs:
        found = ((r, svc.repo.get_ce(name_of(r, "compute-environment", "computeEnvironments"))) for r in refs)
        return [ce for r, ce in found if ce is not None and same_resource(r, ce.arn)]
    return svc.repo.list_ces(after, limit)


# -- job queues ------------------------------------------------------------------------------------------------


def get_jq(svc: Services, ref: str, field: str = "jobQueue") -> JobQueue:
    jq = svc.repo.get_jq(name_of(ref, "job-queue", field))
    if jq is None or not same_resource(ref, jq.arn):
        raise NotFound(f"{field}: JobQueue {ref} not found")
    return jq


def _order(svc: Services, entries: list[dict[str, Any]]) -> tuple[tuple[ComputeEnvironmentOrder, ...], list[Any]]:
    ces = []
    for i, entry in enumerate(entries):
        field = f"computeEnvironmentOrder[{i}].computeEnvironment"
        ce = get_ce(svc, entry["computeEnvironment"], field)
        if ce.status != VALID:
            raise InvalidRequest(f"{field}: compute environment {ce.name} is {ce.status}, not VALID")
        ces.append(ce)
    validation.queue_environments(ce.resource_type for ce in ces)
    order = tuple(
        ComputeEnvironmentOrder(order=e["order"], compute_environment=ce.arn)
        for e, ce in zip(entries, ces, strict=True)
    )
    return order, ces


def _queue_type(ces: list[ComputeEnvironment], given: str | None) -> str | None:
    """jobQueueType: "ECS or ECS_FARGATE depending on the compute environment" (JobQueueDetail). It is derived
    from the queue's compute environments (None while it has none); a given one must agree with them."""
    derived = None
    if ces:
        derived = "ECS_FARGATE" if platform.ce_platform(ces[0].resource_type) == platform.FARGATE else "ECS"
    if given is not None and given != derived:
        if given not in ("ECS", "ECS_FARGATE"):
            raise InvalidRequest(
                f"jobQueueType: {given} queues are not supported by batchplane; use ECS or ECS_FARGATE"
            )
        raise InvalidRequest(f"jobQueueType: {given} does not match the queue's compute environments ({derived})")
    return derived


def _policy(svc: Services, arn: str, field: str = "schedulingPolicyArn") -> SchedulingPolicy:
    name = name_of(arn, "scheduling-policy", field)
    sp = svc.repo.get_sp(name)
    if sp is None or not same_resource(arn, sp.arn):
        raise NotFound(f"{field}: scheduling policy {arn} does not exist")
    return sp


def create_job_queue(svc: Services, ctx: RequestContext, req: dict[str, Any]) -> JobQueue:
    validation.resource_name(req["jobQueueName"], "jobQueueName")
    validation.job_queue_common(req, svc.settings.limits)
    validation.tags(req.get("tags"), svc.settings.limits)
    caps.check_tags(req.get("tags"), "tags")
    unsupported.job_queue(req)
    if not req.get("computeEnvironmentOrder"):
        # AWS CreateJobQueue: "you associate one or more compute environments to the queue" (or service
        # environments, which batchplane does not run). A queue without any could never run a job.
        raise InvalidRequest(
            "computeEnvironmentOrder: a job queue needs one or more compute environments (batchplane does not "
            "support serviceEnvironmentOrder)"
        )
    order, ces = _order(svc, req["computeEnvironmentOrder"])
    queue_type = _queue_type(ces, req.get("jobQueueType"))
    requires: list[Any] = list(ces)
    policy_arn = req.get("schedulingPolicyArn")
    if policy_arn:
        sp = _policy(svc, policy_arn)
        requires.append(sp)
        policy_arn = sp.arn
    name = req["jobQueueName"]
    jq = JobQueue(
        name=name,
        arn=arns.build(ctx.region, svc.settings.account, "job-queue", name),
        priority=req["priority"],
        state=req.get("state", "ENABLED"),
        status=VALID,
        status_reason="JobQueue Healthy",
        created_at=svc.clock.now_ms(),
        compute_environment_order=order,
        scheduling_policy_arn=policy_arn,
        job_state_time_limit_actions=tuple(req.get("jobStateTimeLimitActions") or ()),
        job_queue_type=queue_type,
        tags=dict(req.get("tags") or {}),
    )
    try:
        svc.repo.save_jq(jq, requires=requires)
    except Conflict:
        existing = svc.repo.get_jq(name)
        if existing is not None and existing.deleting:
            # Jobs name their queue: the name is free only once every job of the old queue has finished.
            raise InvalidRequest(
                f"jobQueueName: a job queue named {name} is being deleted (its jobs are being terminated); the name "
                "can be reused once it is gone"
            ) from None
        if existing is not None:
            raise InvalidRequest(f"jobQueueName: a job queue named {name} already exists") from None
        raise  # a referenced CE or policy changed under us; the caller may retry
    return jq


def update_job_queue(svc: Services, req: dict[str, Any]) -> JobQueue:
    unsupported.job_queue(req)
    validation.job_queue_common(req, svc.settings.limits)

    def attempt() -> JobQueue:
        jq = get_jq(svc, req["jobQueue"])
        if jq.deleting:
            raise InvalidRequest(f"jobQueue: {jq.name} is being deleted and cannot be updated")
        changes: dict[str, Any] = {}
        requires: list[Any] = []
        for wire, attr in (("state", "state"), ("priority", "priority")):
            if req.get(wire) is not None:
                changes[attr] = req[wire]
        if req.get("computeEnvironmentOrder") is not None:
            changes["compute_environment_order"], requires = _order(svc, req["computeEnvironmentOrder"])
            changes["job_queue_type"] = _queue_type(requires, None)
        if req.get("jobStateTimeLimitActions") is not None:
            changes["job_state_time_limit_actions"] = tuple(req["jobStateTimeLimitActions"])
        if req.get("schedulingPolicyArn"):
            if jq.scheduling_policy_arn is None:
                raise InvalidRequest(
                    f"schedulingPolicyArn: job queue {jq.name} was created without a scheduling policy (FIFO) "
                    "and cannot be given one"
                )
            sp = _policy(svc, req["schedulingPolicyArn"])
            requires.append(sp)
            changes["scheduling_policy_arn"] = sp.arn
        updated = dataclasses.replace(jq, **changes)
        svc.repo.save_jq(updated, requires=requires)
        return updated

    jq = retry_on_conflict(attempt)
    svc.wake()
    return jq


def describe_job_queues(svc: Services, refs: list[str] | None, after: str | None, limit: int) -> list[JobQueue]:
    if refs:
        found = ((r, svc.repo.get_jq(name_of(r, "job-queue", "jobQueues"))) for r in refs)
        return [jq for r, jq in found if jq is not None and same_resource(r, jq.arn)]
    return svc.repo.list_jqs(after, limit)


# -- scheduling policies ---------------------------------------------------------------------------------------


def _fairshare(wire: dict[str, Any] | None) -> FairsharePolicy | None:
    if wire is None:
        return None
    return FairsharePolicy(
        share_decay_seconds=wire.get("shareDecaySeconds", 0),
        compute_reservation=wire.get("computeReservation", 0),
        share_distribution=tuple(
            ShareWeight(s["shareIdentifier"], float(s.get("weightFactor", 1.0)))
            for s in wire.get("shareDistribution") or []
        ),
    )


def create_scheduling_policy(svc: Services, ctx: RequestContext, req: dict[str, Any]) -> SchedulingPolicy:
    validation.scheduling_policy(req)
    validation.tags(req.get("tags"), svc.settings.limits)
    caps.check_tags(req.get("tags"), "tags", shares=True)
    name = req["name"]
    sp = SchedulingPolicy(
        name=name,
        arn=arns.build(ctx.region, svc.settings.account, "scheduling-policy", name),
        created_at=svc.clock.now_ms(),
        fairshare=_fairshare(req.get("fairsharePolicy") or {}),
        tags=dict(req.get("tags") or {}),
    )
    try:
        return svc.repo.save_sp(sp)
    except Conflict:
        raise InvalidRequest(f"name: a scheduling policy named {name} already exists") from None


def get_sp(svc: Services, arn: str, field: str = "arn") -> SchedulingPolicy:
    return _policy(svc, arn, field)


def update_scheduling_policy(svc: Services, req: dict[str, Any]) -> None:
    validation.scheduling_policy(req)

    def attempt() -> None:
        sp = get_sp(svc, req["arn"])
        if req.get("fairsharePolicy") is not None:  # absent means unchanged, not reset to the defaults
            svc.repo.save_sp(dataclasses.replace(sp, fairshare=_fairshare(req["fairsharePolicy"])))

    retry_on_conflict(attempt)
    svc.wake()


def delete_scheduling_policy(svc: Services, req: dict[str, Any]) -> None:
    def attempt() -> None:
        sp = get_sp(svc, req["arn"])
        users = [q.name for q in svc.repo.list_jqs() if q.scheduling_policy_arn == sp.arn]
        if users:
            raise InvalidRequest(f"arn: scheduling policy {sp.name} is in use by job queues ({', '.join(users)})")
        svc.repo.delete_sp(sp)

    retry_on_conflict(attempt)
