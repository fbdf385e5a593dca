"""Trigger use cases: create / list / describe / delete, and firing (an object created, a schedule ticking).

Entry points of the event paths (the AWS Lambda handlers and the local runtime's watcher and timer call them):
- `on_object_created(svc, reactor, bucket, key, version)`: submit one job per trigger whose bucket, prefix and suffix
  match; returns the ids of the jobs submitted. S3 and EventBridge deliver events at least once: the job id derives
  from (trigger, key, version) — on AWS the event's `object.sequencer`, new for every write of the key — so a
  redelivered event submits nothing. The local watcher does the same with the file's mtime (`fire_object`).
- `on_schedule(svc, reactor, trigger_name)`: submit the trigger's job for the fire time the call stands for (the
  latest at or before now); the job id derives from (trigger, fire time), so a redelivered tick submits nothing.
  Returns the job id, or None when nothing was submitted.

A firing is a SubmitJob with the trigger's job and the source's parameters (domain/triggers.submit_request). A
firing that SubmitJob refuses (the queue was deleted since, say) is logged and skipped: retrying cannot fix it.
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import replace
from typing import Any

from chalicelib.control import jobs, resources
from chalicelib.control.context import RequestContext, Services
from chalicelib.control.react import Reactor
from chalicelib.domain import arns, job_spec
from chalicelib.domain import triggers as domain
from chalicelib.domain.errors import Conflict, InvalidRequest, NotFound
from chalicelib.domain.triggers import S3Source, ScheduleSource, Trigger
from chalicelib.store.triggers import TriggerRepository

log = logging.getLogger("batchplane.triggers")


def repo(svc: Services) -> TriggerRepository:
    return TriggerRepository(svc.repo.items)


# -- the API ---------------------------------------------------------------------------------------------------


def create(svc: Services, ctx: RequestContext, req: dict[str, Any]) -> Trigger:
    """`req` passed domain.check_definition and the SubmitJob model checks (api/triggers.py)."""
    domain.check_definition(req)
    submit = domain.definition_as_submit(req)
    job_spec.validate_submit(submit, svc.settings.limits)
    resources.get_jq(svc, req["jobQueue"])
    jd = resources.resolve_job_definition(svc, req["jobDefinition"])
    if "containerProperties" in jd.spec:  # refused now rather than at every firing (each firing checks again)
        container = job_spec.effective_container(jd.spec["containerProperties"], submit.get("containerOverrides") or {})
        jobs.check_host_access(svc, container, jd.name, jd.revision)
    trigger = Trigger(
        name=req["triggerName"],
        arn=arns.build(ctx.region, svc.settings.account, "trigger", req["triggerName"]),
        job_queue=req["jobQueue"],
        job_definition=req["jobDefinition"],
        job_name=req["jobName"],
        source=domain.parse_source(req["source"]),
        created_at=svc.clock.now_ms(),
        parameters=dict(req.get("parameters") or {}),
        container_overrides=dict(req.get("containerOverrides") or {}),
    )
    try:
        saved = repo(svc).create(trigger)
    except Conflict:
        raise InvalidRequest(f"triggerName: trigger {trigger.name} already exists") from None
    try:
        svc.schedules.register(saved)
    except Exception:
        repo(svc).delete(saved)  # nothing is written when the schedule cannot be made
        raise
    return saved


def get(svc: Services, name: str) -> Trigger:
    domain.trigger_name(name)
    trigger = repo(svc).get(name)
    if trigger is None:
        raise NotFound(f"triggerName: trigger {name} does not exist")
    return trigger


def list_triggers(svc: Services, after: str | None, limit: int) -> list[Trigger]:
    return repo(svc).page(after, limit)


def delete(svc: Services, name: str) -> None:
    trigger = get(svc, name)
    svc.schedules.unregister(trigger.name)
    with contextlib.suppress(Conflict):  # deleted concurrently
        repo(svc).delete(trigger)


# -- firing ----------------------------------------------------------------------------------------------------


def on_object_created(svc: Services, reactor: Reactor, bucket: str, key: str, version: str) -> list[str]:
    submitted = []
    for trigger in repo(svc).for_bucket(bucket):
        if domain.matches(trigger.source, bucket, key):
            firing = domain.firing_id(trigger, "s3", key, version)
            job_id = fire_object(svc, reactor, trigger, bucket, key, job_id=firing)
            if job_id is not None:
                submitted.append(job_id)
    return submitted


def on_schedule(svc: Services, reactor: Reactor, trigger_name: str) -> str | None:
    trigger = repo(svc).get(trigger_name)
    if trigger is None or not isinstance(trigger.source, ScheduleSource):
        log.warning("schedule tick for %r, which is not a schedule trigger (deleted?): ignored", trigger_name)
        return None
    now = svc.clock.now_ms()
    fire_ms = domain.due_fire(trigger, now)
    if fire_ms is None:  # called before the first fire time (clock skew): stands for this minute
        fire_ms = now - now % 60_000
    job_id = domain.firing_id(trigger, "schedule", str(fire_ms))
    return _fire(svc, reactor, trigger, domain.schedule_parameters(fire_ms), job_id)


def fire_object(
    svc: Services, reactor: Reactor, trigger: Trigger, bucket: str, key: str, *, job_id: str | None = None
) -> str | None:
    """Submit the trigger's job for one object; with `job_id`, at most once per id. Returns the job id, None when
    nothing was submitted (submitted before under that id, or refused)."""
    assert isinstance(trigger.source, S3Source)
    return _fire(svc, reactor, trigger, domain.object_parameters(bucket, key), job_id)


class _FixedId:
    def __init__(self, job_id: str) -> None:
        self.job_id = job_id

    def new_id(self) -> str:
        return self.job_id


def _fire(svc: Services, reactor: Reactor, trigger: Trigger, params: dict[str, str], job_id: str | None) -> str | None:
    request = domain.submit_request(trigger, params)
    ctx = RequestContext(region=trigger.arn.split(":")[3])
    try:
        job = jobs.submit(svc if job_id is None else replace(svc, ids=_FixedId(job_id)), reactor, ctx, request)
    except Conflict:
        return None  # this id was submitted already: the firing happened before
    except InvalidRequest as e:
        log.warning("trigger %s could not submit its job: %s", trigger.name, e)
        return None
    log.info("trigger %s submitted job %s (%s)", trigger.name, job.job_id, params)
    return job.job_id
