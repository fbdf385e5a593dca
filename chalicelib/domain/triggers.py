"""Triggers: submit a job when an object lands under a bucket prefix, or on a schedule. Pure.

One definition format for both runtimes (CreateTrigger's request):

    {"triggerName": "nightly", "jobQueue": "q", "jobDefinition": "etl", "jobName": "etl",
     "parameters": {...}?, "containerOverrides": {...}?,
     "source": {"s3": {"bucket": "b", "prefix": "in/"?, "suffix": ".csv"?}}
             | {"schedule": {"expression": "rate(1 hour)" | "cron(0 9 ? * MON-FRI *)", "timezone": "UTC"?}}}

The job a trigger submits gets the trigger's parameters plus what the source says: `bucket` and `key` for an
object (usable as Ref::bucket / Ref::key), `scheduledTime` for a schedule, and `triggerName` for both. Locally a
bucket is the folder `<state-dir>/buckets/<bucket>` and a schedule is the runtime's own timer; on AWS an S3 "Object
Created" event through EventBridge, and an EventBridge Scheduler schedule.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from chalicelib.domain import schedules
from chalicelib.domain.errors import InvalidRequest

TRIGGER_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")  # fits an EventBridge Scheduler name with our prefix
# S3 bucket names: 3-63 characters, lowercase letters, digits, dots and hyphens, a letter or digit at both ends.
BUCKET_NAME = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
MAX_KEY_PART = 1024
DEFINITION_KEYS = frozenset(
    {"triggerName", "jobQueue", "jobDefinition", "jobName", "parameters", "containerOverrides", "source"}
)
TRIGGER_TAG = "batchplane:trigger"  # the tag every job a trigger submits carries, naming the trigger
_FIRINGS = uuid.UUID("5f0e7a52-6c1d-4d3e-9a51-2b7c0f4e8d19")  # namespace of firing ids (uuid5)


@dataclass(frozen=True)
class S3Source:
    bucket: str
    prefix: str = ""
    suffix: str = ""


@dataclass(frozen=True)
class ScheduleSource:
    expression: str
    timezone: str = "UTC"


Source = S3Source | ScheduleSource


@dataclass(frozen=True)
class Trigger:
    name: str
    arn: str
    job_queue: str
    job_definition: str
    job_name: str
    source: Source
    created_at: int
    parameters: dict[str, str] = field(default_factory=dict)
    container_overrides: dict[str, Any] = field(default_factory=dict)
    version: int = 0


# -- validation ------------------------------------------------------------------------------------------------


def _string(req: Mapping[str, Any], key: str, path: str, *, required: bool = True) -> str | None:
    value = req.get(key)
    name = f"{path}{key}"
    if value is None:
        if required:
            raise InvalidRequest(f"{name} is required")
        return None
    if not isinstance(value, str):
        raise InvalidRequest(f"{name} must be a string")
    return value


def trigger_name(value: Any, field: str = "triggerName") -> str:
    if not isinstance(value, str):
        raise InvalidRequest(f"{field} is required" if value is None else f"{field} must be a string")
    if not TRIGGER_NAME.fullmatch(value):
        raise InvalidRequest(f"{field} must be 1-64 letters, numbers, hyphens or underscores; got {value!r}")
    return value


def check_definition(req: Mapping[str, Any]) -> None:
    """The trigger-specific members (the job members are checked as a SubmitJob request would be)."""
    unknown = sorted(set(req) - DEFINITION_KEYS)
    if unknown:
        raise InvalidRequest(f"{unknown[0]} is not a trigger member; expected {', '.join(sorted(DEFINITION_KEYS))}")
    trigger_name(req.get("triggerName"))
    for key in ("jobQueue", "jobDefinition", "jobName"):
        _string(req, key, "")
    parse_source(req.get("source"))


def parse_source(raw: Any) -> Source:
    if raw is None:
        raise InvalidRequest("source is required")
    if not isinstance(raw, dict):
        raise InvalidRequest("source must be an object")
    kinds = sorted(raw)
    if kinds not in (["s3"], ["schedule"]):
        raise InvalidRequest("source must have exactly one member: s3 or schedule")
    body = raw[kinds[0]]
    path = f"source.{kinds[0]}"
    if not isinstance(body, dict):
        raise InvalidRequest(f"{path} must be an object")
    if kinds == ["s3"]:
        return _s3(body, path)
    return _schedule(body, path)


def _only(body: Mapping[str, Any], allowed: set[str], path: str) -> None:
    for key in sorted(body):
        if key not in allowed:
            raise InvalidRequest(f"{path}.{key} is not a member of {path}; expected {', '.join(sorted(allowed))}")


def _s3(body: Mapping[str, Any], path: str) -> S3Source:
    _only(body, {"bucket", "prefix", "suffix"}, path)
    bucket = _string(body, "bucket", f"{path}.")
    assert bucket is not None
    if not BUCKET_NAME.fullmatch(bucket) or ".." in bucket:
        raise InvalidRequest(f"{path}.bucket must be an S3 bucket name (3-63 of a-z 0-9 . -); got {bucket!r}")
    prefix = _string(body, "prefix", f"{path}.", required=False) or ""
    suffix = _string(body, "suffix", f"{path}.", required=False) or ""
    for key, value in (("prefix", prefix), ("suffix", suffix)):
        if len(value.encode()) > MAX_KEY_PART:
            raise InvalidRequest(f"{path}.{key} must be at most {MAX_KEY_PART} bytes")
        if "\0" in value or "\\" in value:
            raise InvalidRequest(f"{path}.{key} must not contain NUL or backslash characters")
    if prefix.startswith("/") or any(part in (".", "..") for part in prefix.split("/")[:-1]):
        # Locally a prefix is a path under the bucket folder: it must stay inside it.
        raise InvalidRequest(f"{path}.prefix must be a relative key prefix without '.' or '..' segments")
    return S3Source(bucket, prefix, suffix)


def _schedule(body: Mapping[str, Any], path: str) -> ScheduleSource:
    _only(body, {"expression", "timezone"}, path)
    expression = _string(body, "expression", f"{path}.")
    assert expression is not None
    schedules.parse(expression, f"{path}.expression")
    timezone = _string(body, "timezone", f"{path}.", required=False) or "UTC"
    schedules.zone(timezone, f"{path}.timezone")
    return ScheduleSource(expression.strip(), timezone)


def submit_request(trigger: Trigger, parameters: Mapping[str, str]) -> dict[str, Any]:
    """The SubmitJob request a firing makes: the trigger's job, its parameters overlaid with the source's."""
    req: dict[str, Any] = {
        "jobName": trigger.job_name,
        "jobQueue": trigger.job_queue,
        "jobDefinition": trigger.job_definition,
        "parameters": {**trigger.parameters, **parameters, "triggerName": trigger.name},
        "tags": {TRIGGER_TAG: trigger.name},
    }
    if trigger.container_overrides:
        req["containerOverrides"] = trigger.container_overrides
    return req


def definition_as_submit(req: Mapping[str, Any]) -> dict[str, Any]:
    """A definition's job members as a SubmitJob request, to validate them the way SubmitJob would."""
    job = {k: req[k] for k in ("jobName", "jobQueue", "jobDefinition", "parameters", "containerOverrides") if k in req}
    job["tags"] = {TRIGGER_TAG: req.get("triggerName", "")}
    return job


# -- firing ----------------------------------------------------------------------------------------------------


def matches(source: Source, bucket: str, key: str) -> bool:
    """Does an object created at bucket/key fire this source?"""
    if not isinstance(source, S3Source):
        return False
    return bucket == source.bucket and key.startswith(source.prefix) and key.endswith(source.suffix)


def firing_id(trigger: Trigger, *parts: str) -> str:
    """The job id of one firing, the same every time that firing is attempted: submitting it twice is a Conflict.
    The trigger's creation time is part of it, so a trigger re-created under the same name fires anew."""
    return str(uuid.uuid5(_FIRINGS, "\0".join((trigger.name, str(trigger.created_at), *parts))))


def object_parameters(bucket: str, key: str) -> dict[str, str]:
    return {"bucket": bucket, "key": key}


def schedule_parameters(fire_ms: int) -> dict[str, str]:
    return {"scheduledTime": schedules.iso(fire_ms)}


def schedule_of(trigger: Trigger) -> tuple[schedules.Schedule, Any]:
    """(parsed expression, time zone) of a schedule trigger."""
    assert isinstance(trigger.source, ScheduleSource)
    where = "source.schedule"
    return (
        schedules.parse(trigger.source.expression, f"{where}.expression"),
        schedules.zone(trigger.source.timezone, f"{where}.timezone"),
    )


def next_fire(trigger: Trigger, after_ms: int) -> int | None:
    if not isinstance(trigger.source, ScheduleSource):
        return None
    schedule, tz = schedule_of(trigger)
    return schedules.next_fire(schedule, after_ms, trigger.created_at, tz)


def due_fire(trigger: Trigger, now_ms: int) -> int | None:
    """The fire time a call at `now_ms` stands for (the latest at or before it), None before the first."""
    schedule, tz = schedule_of(trigger)
    return schedules.latest_fire(schedule, now_ms, trigger.created_at, tz)


def source_detail(source: Source) -> dict[str, Any]:
    if isinstance(source, S3Source):
        s3 = {"bucket": source.bucket, "prefix": source.prefix, "suffix": source.suffix}
        return {"s3": {k: v for k, v in s3.items() if v or k == "bucket"}}
    return {"schedule": {"expression": source.expression, "timezone": source.timezone}}


def detail(trigger: Trigger, now_ms: int) -> dict[str, Any]:
    """The wire form (DescribeTrigger, ListTriggers)."""
    out: dict[str, Any] = {
        "triggerName": trigger.name,
        "triggerArn": trigger.arn,
        "jobQueue": trigger.job_queue,
        "jobDefinition": trigger.job_definition,
        "jobName": trigger.job_name,
        "source": source_detail(trigger.source),
        "createdAt": trigger.created_at,
    }
    if trigger.parameters:
        out["parameters"] = trigger.parameters
    if trigger.container_overrides:
        out["containerOverrides"] = trigger.container_overrides
    upcoming = next_fire(trigger, now_ms)
    if upcoming is not None:
        out["nextFireAt"] = upcoming
    return out
