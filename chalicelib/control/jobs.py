"""Job use cases: SubmitJob, DescribeJobs, ListJobs, Cancel/Terminate.

Submission writes the job once, already evaluated (RUNNABLE, PENDING, or FAILED when a dependency failed), with
its dependency edges in the same transaction; AWS's transient SUBMITTED state is never persisted. That keeps a
plain job at four writes over its life (submit, claim, running, done).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

from chalicelib.control import consumables, idempotent, lazy_children, resources
from chalicelib.control.context import RequestContext, Services
from chalicelib.control.react import Reactor
from chalicelib.domain import (
    arns,
    conditions,
    digits,
    ecs_task,
    host_access,
    job_spec,
    lifecycle,
    nodes,
    platform,
    unsupported,
    validation,
)
from chalicelib.domain.errors import InvalidRequest, NotFound
from chalicelib.domain.jobs import (
    FAILED,
    RUNNING,
    STATUSES,
    SUBMITTED,
    ArrayInfo,
    Dependency,
    Job,
)
from chalicelib.domain.model import JobDefinition, JobQueue
from chalicelib.store.jobs import order_key


def submit(svc: Services, reactor: Reactor, ctx: RequestContext, req: dict[str, Any]) -> Job:
    limits = svc.settings.limits
    unsupported.submit(req)
    job_spec.validate_submit(req, limits)
    earlier = idempotent.earlier_job(svc, req)  # a retried submit with a client token (docs/adr/0029)
    if isinstance(earlier, Job):
        return earlier
    queue = resources.get_jq(svc, req["jobQueue"])
    if queue.deleting:
        raise InvalidRequest(f"jobQueue: job queue {queue.name} is being deleted and does not accept new jobs")
    if queue.state != "ENABLED":
        raise InvalidRequest(f"jobQueue: job queue {queue.name} is DISABLED and does not accept new jobs")
    jd = resources.resolve_job_definition(svc, req["jobDefinition"])
    ecs = jd.spec.get("ecsProperties")
    multinode = jd.jd_type == "multinode" and "nodeProperties" in jd.spec
    if not multinode and (jd.jd_type != "container" or ("containerProperties" not in jd.spec and ecs is None)):
        raise InvalidRequest(
            f"jobDefinition: {jd.name}:{jd.revision} is not a single-container, multi-container or multi-node job "
            "definition; batchplane runs containerProperties, ecsProperties and nodeProperties jobs"
        )
    job_spec.validate_share(req.get("shareIdentifier"), queue.scheduling_policy_arn is not None, queue.name)
    on = platform.platform_of(jd.spec.get("platformCapabilities"))
    node_properties = _node_properties(svc, queue, jd.spec, req) if multinode else None
    if not multinode and req.get("nodeOverrides") is not None:
        raise InvalidRequest(
            f"nodeOverrides: job definition {jd.name}:{jd.revision} is not a multi-node job definition"
        )
    platform.queue_runs(on, _queue_platforms(svc, queue))
    ecs_properties = None
    container: dict[str, Any] = {}  # a multi-node or multi-container job's containers are in its properties
    if node_properties is not None:
        for i in range(nodes.num_nodes(node_properties)):  # every node's container, as a single job's is
            check_host_access(svc, nodes.container_of(node_properties, i), jd.name, jd.revision)
        vcpus, memory = nodes.totals(node_properties)
    elif ecs is not None:  # a multi-container job (docs/adr/0028)
        ecs_properties, vcpus, memory = _multi_container(svc, req, ecs, jd.name, jd.revision)
    else:
        if req.get("ecsPropertiesOverride") is not None:
            raise InvalidRequest("ecsPropertiesOverride: is only valid for an ecsProperties job definition")
        platform.overrides(req.get("containerOverrides") or {}, on)
        container = job_spec.effective_container(jd.spec["containerProperties"], req.get("containerOverrides") or {})
        platform.effective_resources(container, on)  # before host access: a FARGATE host path is refused anywhere
        check_host_access(svc, container, jd.name, jd.revision)
        vcpus, memory = job_spec.vcpus_and_memory(container)
    needs = _consumables(svc, req, jd)
    size = (req.get("arrayProperties") or {}).get("size")
    depends_on = tuple(Dependency(d.get("jobId"), d.get("type")) for d in req.get("dependsOn") or [])
    plain = _check_dependencies(svc, depends_on, size)

    job_id = svc.ids.new_id()
    now = svc.clock.now_ms()
    job = Job(
        job_id=job_id,
        name=req["jobName"],
        arn=arns.build(ctx.region, svc.settings.account, "job", job_id),
        queue=queue.name,
        queue_arn=queue.arn,
        job_definition_arn=jd.arn,
        job_definition_name=jd.name,
        status=SUBMITTED,
        created_at=now,
        updated_at=now,
        container=container,
        ecs_properties=ecs_properties,
        parameters={**(jd.spec.get("parameters") or {}), **(req.get("parameters") or {})},
        retry_strategy=job_spec.retry_strategy(req, jd.spec),
        timeout=job_spec.timeout(req, jd.spec),
        depends_on=depends_on,
        array=ArrayInfo(size=size, window=svc.settings.array_window) if size is not None else None,
        vcpus=vcpus,
        memory=memory,
        share_identifier=req.get("shareIdentifier"),
        scheduling_priority=req.get("schedulingPriorityOverride", jd.spec.get("schedulingPriority")),
        tags=dict(req.get("tags") or {}),
        propagate_tags=bool(req.get("propagateTags", jd.spec.get("propagateTags", False))),
        platform_capabilities=(on,),
        consumable_resources=needs,
        node_properties=node_properties,
    )

    # Decide the first state from what the dependencies are now; edges make later completions reach the job.
    # Every plain dependency gets an edge, finished or not, so the graph (ListJobDependents, `batchplane dag`)
    # is complete; a notification from an already-settled dependency changes nothing.
    edges = list(dict.fromkeys(d.job_id for d in plain))
    now_known = conditions.at_submit(depends_on, plain)  # what the dependencies that already ended decide
    pending = now_known.pending
    if now_known.failure is not None:
        job = replace(job, status=FAILED, status_reason=now_known.failure, stopped_at=now)
        created = idempotent.create(svc, job, edges, earlier, req)
        if created is None:
            return idempotent.winner(svc, req)
        reactor.committed(None, created)
        return created
    outcome = lifecycle.transition(replace(job, pending=pending), lifecycle.Evaluate(), now)
    assert outcome.job is not None
    created = idempotent.create(svc, outcome.job, edges, earlier, req)
    if created is None:  # a concurrent retry with the same client token inserted its job first
        return idempotent.winner(svc, req)
    saved = created
    reactor.committed(None, saved)  # an insert: its effects are those of the change (Evaluate decides no command)
    if pending:
        reactor.settle_pending(saved)
    return saved


def _consumables(svc: Services, req: dict[str, Any], jd: JobDefinition) -> dict[str, int]:
    """The units of each consumable resource the job takes: the submit override's list, which replaces the job
    definition's ("consumableResourcePropertiesOverride"), else the definition's. Each must exist now."""
    override = req.get("consumableResourcePropertiesOverride")
    if override is not None:
        return consumables.resolve(svc, override, "consumableResourcePropertiesOverride")
    props = jd.spec.get("consumableResourceProperties")
    return consumables.resolve(svc, props, f"jobDefinition {jd.name}:{jd.revision} consumableResourceProperties")


def _node_properties(svc: Services, queue: JobQueue, spec: dict[str, Any], req: dict[str, Any]) -> dict[str, Any]:
    """A multi-node job's nodeProperties after nodeOverrides; refused where AWS does not run such jobs."""
    for key in ("arrayProperties", "containerOverrides"):
        if req.get(key) is not None:
            what = "an array job" if key == "arrayProperties" else "given; use nodeOverrides"
            raise InvalidRequest(f"{key}: a multi-node parallel job cannot be {what}")
    if platform.FARGATE in _queue_platforms(svc, queue):
        # "AWS Fargate doesn't support multi-node parallel jobs" (AWS Batch user guide); AWS's SubmitJob wording
        # for this case is not documented: batchplane names the rule (docs/adr/0027).
        raise InvalidRequest(
            f"jobQueue: job queue {queue.name} runs on Fargate compute environments, "
            "which do not support multi-node parallel jobs"
        )
    np = nodes.effective(spec["nodeProperties"], req.get("nodeOverrides"))
    nodes.validate(np, field="nodeOverrides")
    return np


def check_host_access(svc: Services, container: dict[str, Any], name: str, revision: int) -> None:
    """The local runtime's refusal of privileged containers, devices and host paths it was not told to allow."""
    if svc.settings.host_access is not None:
        what = f"job definition {name}:{revision}"
        host_access.check(container, svc.settings.host_access, os.path.realpath, what=what)


def _multi_container(
    svc: Services, req: dict[str, Any], ecs: dict[str, Any], name: str, revision: int
) -> tuple[dict[str, Any], float, int]:
    """The effective ecsProperties of a multi-container job and the vCPUs and MiB its task reserves."""
    if any(v for v in (req.get("containerOverrides") or {}).values()):
        raise InvalidRequest(
            "containerOverrides: is not valid for an ecsProperties job definition; use ecsPropertiesOverride"
        )
    override = req.get("ecsPropertiesOverride") or {}
    ecs_task.validate_override(override)
    effective = ecs_task.effective_properties(ecs, override)
    task = effective["taskProperties"][0]
    for c in task["containers"]:
        modes = {k: task[k] for k in ("ipcMode", "pidMode") if k in task}
        check_host_access(svc, {**c, "volumes": task.get("volumes") or [], **modes}, name, revision)
    vcpus, memory = ecs_task.task_resources(task["containers"], "ecsPropertiesOverride.taskProperties[0].containers")
    return effective, vcpus, memory


def _queue_platforms(svc: Services, queue: JobQueue) -> list[str]:
    """The platforms the queue's compute environments run, from its jobQueueType (no read), else from its CEs."""
    if queue.job_queue_type is not None:
        return [platform.FARGATE if queue.job_queue_type == "ECS_FARGATE" else platform.EC2]
    ces = (svc.repo.get_ce(arns.parse(a).resource) for a in queue.ce_arns_in_order())
    return [platform.ce_platform(ce.resource_type) for ce in ces if ce is not None]


def _check_dependencies(svc: Services, deps: tuple[Dependency, ...], size: int | None) -> list[Job]:
    """The plain dependencies' current jobs; N_TO_N targets must be arrays of the same size. A non-array job's
    dependency is plain whatever its type (job_spec.validate_submit)."""
    ids = [d.job_id for d in deps if d.job_id]
    found = {j.job_id: j for j in svc.jobs.get_many(ids)}
    found.update(lazy_children.views(svc, [j for j in ids if j not in found]))  # a child not written yet
    plain = []
    for i, dep in enumerate(deps):
        if dep.job_id is None:
            continue
        target = found.get(dep.job_id)
        if target is None:
            raise InvalidRequest(f"dependsOn[{i}].jobId: job {dep.job_id} does not exist")
        if dep.type == "N_TO_N" and size is not None:
            if target.array is None or target.array.size != size:
                raise InvalidRequest(
                    f"dependsOn[{i}].jobId: an N_TO_N dependency must be an array job of the same size ({size})"
                )
        else:
            plain.append(target)
    return plain


def get_job(svc: Services, job_id: str, field: str = "jobId") -> Job:
    job = svc.jobs.get(job_id)
    if job is None:
        raise NotFound(f"{field}: job {job_id} does not exist")
    return job


def describe(svc: Services, job_ids: list[str]) -> list[Job]:
    limit = svc.settings.limits.max_describe_jobs
    if len(job_ids) > limit:
        raise InvalidRequest(f"jobs: Maximum number of jobs supported is {limit}")
    wanted = list(dict.fromkeys(job_ids))
    node_ids = {j: parsed for j in wanted if (parsed := nodes.split_node_id(j)) is not None}
    found = {j.job_id: j for j in svc.jobs.get_many([j for j in wanted if j not in node_ids])}
    parents = {p.job_id: p for p in svc.jobs.get_many(list({parent for parent, _ in node_ids.values()}))}
    for job_id, (parent_id, index) in node_ids.items():  # node jobs are views of their job (domain/nodes.py)
        parent = parents.get(parent_id)
        np = parent.node_properties if parent is not None and parent.is_multinode else None
        if parent is not None and np is not None and index < nodes.num_nodes(np):
            found[job_id] = nodes.node_view(parent, index)
    found.update(lazy_children.views(svc, [j for j in wanted if j not in found and j not in node_ids]))
    return [found[j] for j in wanted if j in found]


def cancel(svc: Services, reactor: Reactor, job_id: str, reason: str) -> None:
    """An unknown jobId is not an error: AWS answers 200 `{}` (the wire log in aws/aws-cli#2551), as it does for
    CancelJobs / TerminateJobs. An empty one is (AWS answers ClientException, as found for getmoto/moto#5394)."""
    _check_job_id(job_id)
    validation.reason(reason, svc.settings.limits)
    reactor.apply(job_id, lifecycle.Cancel(reason))


def terminate(svc: Services, reactor: Reactor, job_id: str, reason: str) -> None:
    """As `cancel`: an unknown jobId answers 200 `{}` (aws/aws-cli#2551)."""
    _check_job_id(job_id)
    validation.reason(reason, svc.settings.limits)
    reactor.apply(job_id, lifecycle.Terminate(reason))


def _check_job_id(job_id: str) -> None:
    if not job_id:
        raise InvalidRequest("jobId must not be empty")


def cancel_many(svc: Services, reactor: Reactor, job_ids: list[str], reason: str, *, terminate: bool) -> list[str]:
    """CancelJobs / TerminateJobs: unknown ids count as successful, as AWS does (spec §3.6)."""
    limit = svc.settings.limits.max_batch_cancel
    if len(job_ids) > limit:
        raise InvalidRequest(f"jobs must have at most {limit} entries")
    validation.reason(reason, svc.settings.limits)
    event: lifecycle.Event = lifecycle.Terminate(reason) if terminate else lifecycle.Cancel(reason)
    for job_id in job_ids:
        reactor.apply(job_id, event)
    return job_ids


# -- ListJobs --------------------------------------------------------------------------------------------------

FILTERS = ("JOB_NAME", "JOB_DEFINITION", "BEFORE_CREATED_AT", "AFTER_CREATED_AT", "SHARE_IDENTIFIER")


def list_jobs(svc: Services, req: dict[str, Any], cursor: Any, limit: int) -> tuple[list[Job], Any]:
    """One page of ListJobs and the cursor for the next (None when done)."""
    targets = [k for k in ("jobQueue", "arrayJobId", "multiNodeJobId") if req.get(k)]
    if len(targets) != 1:
        raise InvalidRequest("exactly one of jobQueue, arrayJobId or multiNodeJobId must be given")
    status = req.get("jobStatus") or RUNNING
    if req.get("multiNodeJobId"):
        parent = get_job(svc, req["multiNodeJobId"], "multiNodeJobId")
        if not parent.is_multinode:
            raise InvalidRequest(f"multiNodeJobId: job {parent.job_id} is not a multi-node parallel job")
        views = nodes.node_views(parent, status)
        start = (digits.parse(str(cursor)) or 0) if cursor else 0  # the node index to go on from
        page = [v for v in views if (v.node_index or 0) >= start][:limit]
        more = len(page) == limit and page[-1] is not views[-1]
        return page, (str((page[-1].node_index or 0) + 1) if more else None)
    filters = req.get("filters") or []
    if len(filters) > 1:
        raise InvalidRequest("filters: only one filter can be given at a time")
    if req.get("arrayJobId"):
        parent = get_job(svc, req["arrayJobId"], "arrayJobId")
        if parent.array is None or parent.array.size is None:
            raise InvalidRequest(f"arrayJobId: job {parent.job_id} is not an array job")
        return lazy_children.list_children(svc, parent, status, cursor, limit)
    queue = resources.get_jq(svc, req["jobQueue"])
    if not filters:
        jobs = svc.jobs.in_queue(queue.name, status, after=cursor, limit=limit)
        return jobs, (order_key(jobs[-1]) if len(jobs) == limit else None)
    return _filtered(svc, queue.name, filters, cursor, limit, req.get("jobStatus"))


MIN_READ = 50  # jobs read at a time by a filtered ListJobs, at least


def _filtered(
    svc: Services, queue: str, filters: list[dict[str, Any]], cursor: Any, limit: int, status: str | None
) -> tuple[list[Job], Any]:
    """Filters apply across statuses, newest first (spec §3.5). Each status partition is read newest first and
    merged; the cursor is the order key of the last job returned."""
    f = filters[0]
    name, values = f.get("name"), f.get("values") or []
    if name not in FILTERS:
        raise InvalidRequest(f"filters[0].name must be one of {', '.join(FILTERS)}")
    if len(values) != 1:
        raise InvalidRequest("filters[0].values must hold exactly one value")
    value = str(values[0])
    # Every filter lists newest first: botocore's ListJobsRequest.filters says "The results are sorted by the
    # createdAt field, with the most recent jobs being first". It also says JOB_NAME results are "grouped by the job
    # name and version"; no AWS answer we could find shows another order, and grouping would read the whole queue
    # for every page, so the one documented sort is kept (docs/adr/0022-platform-rules.md).
    match = _matcher(name, value)
    statuses = [status] if (status and name == "SHARE_IDENTIFIER") else list(STATUSES)
    # One read per status partition, not one snapshot: a job that changes status between two reads is seen in
    # both. Keep its newest version, so a job is listed once (reading statuses in lifecycle order, a job moving
    # forward is seen at least once). A page holds the newest `limit` matches of all partitions, so each partition
    # is read only until it has given `limit` + 1 matches (the one more says whether a next page exists).
    newest: dict[str, Job] = {}
    for s in statuses:
        matched = 0
        for job in _newest_first(svc, queue, s, cursor, page=max(limit + 1, MIN_READ)):
            if not match(job):
                continue
            seen = newest.get(job.job_id)
            if seen is None or job.version > seen.version:
                newest[job.job_id] = job
            matched += 1
            if matched > limit:
                break
    merged = sorted(newest.values(), key=order_key, reverse=True)
    page = merged[:limit]
    return page, (order_key(page[-1]) if len(merged) > limit else None)


def _newest_first(svc: Services, queue: str, status: str, before: str | None, *, page: int) -> Iterator[Job]:
    after = before
    while True:
        batch = svc.jobs.in_queue(queue, status, after=after, limit=page, descending=True)
        yield from batch
        if len(batch) < page:
            return
        after = order_key(batch[-1])


def _matcher(name: str, value: str) -> Any:
    def glob(actual: str, *, fold: bool) -> bool:
        pattern, actual = (value.lower(), actual.lower()) if fold else (value, actual)
        return actual.startswith(pattern[:-1]) if pattern.endswith("*") else actual == pattern

    if name == "JOB_NAME":
        return lambda job: glob(job.name, fold=True)
    if name == "JOB_DEFINITION":
        if arns.looks_like_arn(value):
            return lambda job: job.job_definition_arn == value
        return lambda job: glob(job.job_definition_name, fold=False)
    if name in ("BEFORE_CREATED_AT", "AFTER_CREATED_AT"):
        if not re.fullmatch(r"[0-9]{1,19}", value) or int(value) > validation.INT64_MAX:
            raise InvalidRequest(f"filters[0].values: {name} takes epoch milliseconds (64-bit); got {value!r}")
        t = int(value)
        return (lambda job: job.created_at < t) if name == "BEFORE_CREATED_AT" else (lambda job: job.created_at > t)
    return lambda job: job.share_identifier == value
