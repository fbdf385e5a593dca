"""TagResource / UntagResource / ListTagsForResource on every taggable ARN."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from chalicelib.control import consumables, resources
from chalicelib.control.context import Services
from chalicelib.domain import arns, caps, validation
from chalicelib.domain.errors import InvalidRequest, NotFound
from chalicelib.domain.jobs import Job

# Per resource kind: how to load the tagged entity and how to save it back (conditional on its version).
Loader = Callable[[Services, str], Any]
Saver = Callable[[Services, Any], Any]


def _load_jd(svc: Services, arn: str) -> Any:
    name, revision = resources.parse_jd_ref(arn, "resourceArn")
    jd = svc.repo.get_jd(name, revision) if revision else None
    if jd is None:
        raise NotFound(f"resourceArn: job definition {arn} does not exist")
    return jd


def _save_jq(svc: Services, jq: Any) -> None:
    svc.repo.save_jq(jq)


def _load_job(svc: Services, arn: str) -> Job:
    job_id = arns.parse(arn).resource
    job = svc.jobs.get(job_id)
    if job is None:
        raise NotFound(f"resourceArn: job {job_id} does not exist")
    if job.is_array_child:
        raise InvalidRequest("resourceArn: array child jobs cannot be tagged; tag the parent job")
    return job


KINDS: dict[str, tuple[Loader, Saver]] = {
    "compute-environment": (
        lambda svc, arn: resources.get_ce(svc, arn, "resourceArn"),
        lambda s, e: s.repo.save_ce(e),
    ),
    "job-queue": (lambda svc, arn: resources.get_jq(svc, arn, "resourceArn"), _save_jq),
    "job-definition": (_load_jd, lambda s, e: s.repo.save_jd(e)),
    "job": (_load_job, lambda s, job: s.jobs.save(job)),
    "scheduling-policy": (
        lambda svc, arn: resources.get_sp(svc, arn, "resourceArn"),
        lambda s, e: s.repo.save_sp(e),
    ),
    "consumable-resource": (
        lambda svc, arn: consumables.get(svc, arn, "resourceArn"),
        lambda s, e: consumables.repo(s).save(e),
    ),
}


def _handlers(arn: str) -> tuple[Loader, Saver]:
    kind = arns.parse(arn).kind
    if kind not in KINDS:
        raise InvalidRequest(f"resourceArn: resources of type {kind} are not taggable")
    return KINDS[kind]


def _loaded(svc: Services, load: Loader, arn: str) -> Any:
    """The entity of `arn`, which must be its own ARN: one of another account or region is not found."""
    entity = load(svc, arn)
    if entity.arn != arn:
        raise NotFound(f"resourceArn: resource {arn} does not exist")
    return entity


def list_tags(svc: Services, arn: str) -> dict[str, str]:
    load, _ = _handlers(arn)
    return dict(_loaded(svc, load, arn).tags)


def tag_resource(svc: Services, arn: str, tags: dict[str, str]) -> None:
    validation.tags(tags, svc.settings.limits)
    caps.check_tags(tags, "tags", shares=arns.parse(arn).kind == "scheduling-policy")
    load, save = _handlers(arn)

    def attempt() -> None:
        entity = _loaded(svc, load, arn)
        merged = {**entity.tags, **tags}
        if len(merged) > svc.settings.limits.max_tags:
            raise InvalidRequest(f"tags: a resource can have at most {svc.settings.limits.max_tags} tags")
        save(svc, dataclasses.replace(entity, tags=merged))

    resources.retry_on_conflict(attempt)


def untag_resource(svc: Services, arn: str, keys: list[str]) -> None:
    validation.tag_keys(keys, svc.settings.limits)
    load, save = _handlers(arn)

    def attempt() -> None:
        entity = _loaded(svc, load, arn)
        save(svc, dataclasses.replace(entity, tags={k: v for k, v in entity.tags.items() if k not in keys}))

    resources.retry_on_conflict(attempt)
