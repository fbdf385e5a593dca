"""Trigger definitions (domain/triggers.py): validation naming the field, matching objects, what a firing submits."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from chalicelib.domain import triggers
from chalicelib.domain.errors import InvalidRequest
from chalicelib.domain.triggers import S3Source, ScheduleSource, Trigger

S3_DEFINITION: dict[str, Any] = {
    "triggerName": "on-csv",
    "jobQueue": "q",
    "jobDefinition": "etl",
    "jobName": "etl",
    "parameters": {"mode": "fast"},
    "source": {"s3": {"bucket": "data-in", "prefix": "incoming/", "suffix": ".csv"}},
}
SCHEDULE_DEFINITION: dict[str, Any] = {
    "triggerName": "nightly",
    "jobQueue": "q",
    "jobDefinition": "etl",
    "jobName": "nightly",
    "source": {"schedule": {"expression": "cron(0 2 * * ? *)", "timezone": "Europe/Paris"}},
}


def with_(base: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    """A copy of `base` with the member at dotted `path` set to `value` (removed if value is ...)."""
    out = copy.deepcopy(base)
    *parents, last = path.split(".")
    node = out
    for part in parents:
        node = node[part]
    if value is ...:
        del node[last]
    else:
        node[last] = value
    return out


def a_trigger(source: triggers.Source, **kwargs: Any) -> Trigger:
    fields: dict[str, Any] = {
        "name": "t",
        "arn": "arn:aws:batch:eu-west-1:123456789012:trigger/t",
        "job_queue": "q",
        "job_definition": "jd",
        "job_name": "job",
        "source": source,
        "created_at": 1_700_000_000_000,
    }
    fields.update(kwargs)
    return Trigger(**fields)


# -- validation ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("definition", [S3_DEFINITION, SCHEDULE_DEFINITION], ids=["s3", "schedule"])
def test_valid_definitions_pass(definition: dict[str, Any]) -> None:
    triggers.check_definition(definition)


@pytest.mark.parametrize(
    ("definition", "message"),
    [
        (with_(S3_DEFINITION, "triggerName", ...), "triggerName is required"),
        (with_(S3_DEFINITION, "triggerName", 7), "triggerName must be a string"),
        (with_(S3_DEFINITION, "triggerName", "has space"), "triggerName must be 1-64 letters"),
        (with_(S3_DEFINITION, "triggerName", "x" * 65), "triggerName must be 1-64 letters"),
        (with_(S3_DEFINITION, "jobQueue", ...), "jobQueue is required"),
        (with_(S3_DEFINITION, "jobDefinition", ["jd"]), "jobDefinition must be a string"),
        (with_(S3_DEFINITION, "jobName", ...), "jobName is required"),
        (with_(S3_DEFINITION, "sourse", {}), "sourse is not a trigger member"),
        (with_(S3_DEFINITION, "source", ...), "source is required"),
        (with_(S3_DEFINITION, "source", "s3://b"), "source must be an object"),
        (with_(S3_DEFINITION, "source", {}), "source must have exactly one member: s3 or schedule"),
        (
            with_(S3_DEFINITION, "source.schedule", {"expression": "rate(1 hour)"}),
            "source must have exactly one member",
        ),
        (with_(S3_DEFINITION, "source.s3", "b"), "source.s3 must be an object"),
        (with_(S3_DEFINITION, "source.s3.bucket", ...), "source.s3.bucket is required"),
        (with_(S3_DEFINITION, "source.s3.bucket", "Data_In"), "source.s3.bucket must be an S3 bucket name"),
        (with_(S3_DEFINITION, "source.s3.bucket", "ab"), "source.s3.bucket must be an S3 bucket name"),
        (with_(S3_DEFINITION, "source.s3.bucket", "a..b"), "source.s3.bucket must be an S3 bucket name"),
        (with_(S3_DEFINITION, "source.s3.prefix", 3), "source.s3.prefix must be a string"),
        (with_(S3_DEFINITION, "source.s3.prefix", "../etc/"), "source.s3.prefix must be a relative key prefix"),
        (with_(S3_DEFINITION, "source.s3.prefix", "/abs/"), "source.s3.prefix must be a relative key prefix"),
        (with_(S3_DEFINITION, "source.s3.prefix", "a/./b"), "source.s3.prefix must be a relative key prefix"),
        (with_(S3_DEFINITION, "source.s3.suffix", "x" * 1025), "source.s3.suffix must be at most 1024 bytes"),
        (with_(S3_DEFINITION, "source.s3.region", "x"), "source.s3.region is not a member of source.s3"),
        (with_(SCHEDULE_DEFINITION, "source.schedule.expression", ...), "source.schedule.expression is required"),
        (
            with_(SCHEDULE_DEFINITION, "source.schedule.expression", "rate(1 minutes)"),
            "source.schedule.expression: rate(1 minutes) must be written rate(1 minute)",
        ),
        (
            with_(SCHEDULE_DEFINITION, "source.schedule.expression", "cron(0 2 * * * *)"),
            "source.schedule.expression: exactly one of day-of-month and day-of-week must be '?'",
        ),
        (
            with_(SCHEDULE_DEFINITION, "source.schedule.timezone", "Mars/Base"),
            "source.schedule.timezone must be an IANA time zone name",
        ),
    ],
)
def test_invalid_definitions_name_the_field(definition: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidRequest) as info:
        triggers.check_definition(definition)
    assert message in str(info.value)


def test_a_prefix_may_end_in_a_partial_name() -> None:
    assert triggers.parse_source({"s3": {"bucket": "b-1", "prefix": "in/2024-06"}}) == S3Source("b-1", "in/2024-06")


def test_the_schedule_time_zone_defaults_to_utc() -> None:
    parsed = triggers.parse_source({"schedule": {"expression": " rate(1 hour) "}})
    assert parsed == ScheduleSource("rate(1 hour)", "UTC")


# -- matching and firing ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("bucket", "key", "fires"),
    [
        ("data-in", "incoming/a.csv", True),
        ("data-in", "incoming/2024/06/a.csv", True),
        ("data-in", "incoming/a.csv.tmp", False),
        ("data-in", "other/a.csv", False),
        ("data-in", "incoming.csv", False),
        ("data-out", "incoming/a.csv", False),
    ],
)
def test_an_object_fires_a_trigger_when_bucket_prefix_and_suffix_match(bucket: str, key: str, fires: bool) -> None:
    assert triggers.matches(S3Source("data-in", "incoming/", ".csv"), bucket, key) is fires


def test_a_schedule_matches_no_object() -> None:
    assert not triggers.matches(ScheduleSource("rate(1 hour)"), "data-in", "x")


def test_a_firing_submits_the_trigger_job_with_the_source_parameters_on_top() -> None:
    # GIVEN a trigger whose own parameters include one the source also sets
    trigger = a_trigger(
        S3Source("b-1"), parameters={"mode": "fast", "key": "default"}, container_overrides={"command": ["x"]}
    )
    # WHEN an object fires it
    request = triggers.submit_request(trigger, triggers.object_parameters("b-1", "in/a.csv"))
    # THEN the job carries bucket and key (overriding the trigger's), the trigger's name, and its tag
    assert request == {
        "jobName": "job",
        "jobQueue": "q",
        "jobDefinition": "jd",
        "parameters": {"mode": "fast", "key": "in/a.csv", "bucket": "b-1", "triggerName": "t"},
        "tags": {triggers.TRIGGER_TAG: "t"},
        "containerOverrides": {"command": ["x"]},
    }


def test_a_schedule_firing_carries_its_fire_time() -> None:
    trigger = a_trigger(ScheduleSource("rate(1 hour)"))
    request = triggers.submit_request(trigger, triggers.schedule_parameters(1_718_098_200_000))
    assert request["parameters"] == {"scheduledTime": "2024-06-11T09:30:00Z", "triggerName": "t"}


def test_firing_ids_are_stable_per_firing_and_differ_between_firings() -> None:
    trigger = a_trigger(S3Source("b-1"))
    first = triggers.firing_id(trigger, "s3", "in/a.csv", "1")
    assert first == triggers.firing_id(trigger, "s3", "in/a.csv", "1")
    assert len({first, triggers.firing_id(trigger, "s3", "in/a.csv", "2"), triggers.firing_id(trigger, "s3", "b")}) == 3
    # a trigger created again under the same name fires anew
    again = a_trigger(S3Source("b-1"), created_at=trigger.created_at + 1)
    assert triggers.firing_id(again, "s3", "in/a.csv", "1") != first


def test_next_and_due_fire_of_a_schedule_trigger() -> None:
    hour = 3_600_000
    trigger = a_trigger(ScheduleSource("rate(1 hour)"))
    assert triggers.next_fire(trigger, trigger.created_at) == trigger.created_at + hour
    assert triggers.due_fire(trigger, trigger.created_at + hour - 1) is None
    assert triggers.due_fire(trigger, trigger.created_at + 2 * hour + 5) == trigger.created_at + 2 * hour
    assert triggers.next_fire(a_trigger(S3Source("b-1")), 0) is None


def test_detail_is_the_wire_form() -> None:
    trigger = a_trigger(ScheduleSource("rate(1 hour)"), parameters={"p": "1"})
    detail = triggers.detail(trigger, trigger.created_at)
    assert detail == {
        "triggerName": "t",
        "triggerArn": trigger.arn,
        "jobQueue": "q",
        "jobDefinition": "jd",
        "jobName": "job",
        "source": {"schedule": {"expression": "rate(1 hour)", "timezone": "UTC"}},
        "createdAt": trigger.created_at,
        "parameters": {"p": "1"},
        "nextFireAt": trigger.created_at + 3_600_000,
    }
    s3 = triggers.detail(a_trigger(S3Source("b-1", "", ".csv")), 0)
    assert s3["source"] == {"s3": {"bucket": "b-1", "suffix": ".csv"}} and "nextFireAt" not in s3
