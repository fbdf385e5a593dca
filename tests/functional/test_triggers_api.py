"""Triggers through the API (batchplane's own operations, raw HTTP: botocore has no model for them), the firing
entry points the Lambda handlers call, ListJobDependents, and the EventBridge Scheduler adapter on moto."""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

from chalicelib.control import triggers as control
from chalicelib.control.context import Services
from chalicelib.control.react import Reactor
from chalicelib.domain.errors import BatchplaneError, InvalidRequest
from chalicelib.domain.triggers import ScheduleSource, Trigger
from chalicelib.events.schedules import EventBridgeSchedules
from chalicelib.runtime.local import LocalRuntime
from tests.functional.builders import (
    REGION,
    BatchClient,
    assert_client_error,
    container,
    make_fargate_ce,
    make_jd,
    make_queue,
    raw_operation,
)

S3_TRIGGER: dict[str, Any] = {
    "triggerName": "on-csv",
    "jobQueue": "q",
    "jobDefinition": "jd",
    "jobName": "ingest",
    "parameters": {"mode": "fast"},
    "source": {"s3": {"bucket": "data-in", "prefix": "incoming/", "suffix": ".csv"}},
}
SCHEDULE_TRIGGER: dict[str, Any] = {
    "triggerName": "hourly",
    "jobQueue": "q",
    "jobDefinition": "jd",
    "jobName": "tick",
    "source": {"schedule": {"expression": "rate(1 hour)"}},
}
MINUTE = 60_000


class FixedClock:
    def __init__(self, now_ms: int) -> None:
        self.now = now_ms

    def now_ms(self) -> int:
        return self.now


@pytest.fixture
def queue(batch: BatchClient) -> str:
    """A queue `q` on a Fargate CE (disabled: jobs stay RUNNABLE, nothing runs) and a job definition `jd`."""
    make_fargate_ce(batch, "ce")
    make_queue(batch, "q", ["ce"])
    batch.update_compute_environment(computeEnvironment="ce", state="DISABLED")
    make_jd(batch, "jd", containerProperties=container(command=["echo", "Ref::key"]))
    return "q"


def op(endpoint: str, operation: str, body: dict[str, Any]) -> dict[str, Any]:
    resp = raw_operation(endpoint, operation, body)
    assert resp.status == 200, resp
    assert resp.header("x-amzn-RequestId")
    result: dict[str, Any] = resp.body
    return result


def names(endpoint: str) -> list[str]:
    return [t["triggerName"] for t in op(endpoint, "ListTriggers", {})["triggers"]]


def with_(base: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
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


# -- the operations --------------------------------------------------------------------------------------------


def test_create_describe_list_delete(endpoint: str, queue: str) -> None:
    # WHEN an object trigger and a schedule trigger are created
    created = op(endpoint, "CreateTrigger", S3_TRIGGER)
    op(endpoint, "CreateTrigger", SCHEDULE_TRIGGER)
    # THEN each has an ARN, and both are listed by name
    assert created == {"triggerName": "on-csv", "triggerArn": f"arn:aws:batch:{REGION}:123456789012:trigger/on-csv"}
    assert names(endpoint) == ["hourly", "on-csv"]
    # AND describe returns the definition as given, a schedule with its next fire time
    detail = op(endpoint, "DescribeTrigger", {"triggerName": "on-csv"})["trigger"]
    assert {k: detail[k] for k in ("jobQueue", "jobDefinition", "jobName", "parameters", "source")} == {
        k: S3_TRIGGER[k] for k in ("jobQueue", "jobDefinition", "jobName", "parameters", "source")
    }
    hourly = op(endpoint, "DescribeTrigger", {"triggerName": "hourly"})["trigger"]
    assert hourly["source"] == {"schedule": {"expression": "rate(1 hour)", "timezone": "UTC"}}
    assert hourly["nextFireAt"] == hourly["createdAt"] + 60 * MINUTE
    # WHEN one is deleted THEN it is gone
    assert op(endpoint, "DeleteTrigger", {"triggerName": "on-csv"}) == {}
    assert names(endpoint) == ["hourly"]
    assert_client_error(
        raw_operation(endpoint, "DescribeTrigger", {"triggerName": "on-csv"}), "triggerName: trigger on-csv"
    )


def test_list_pages(endpoint: str, queue: str) -> None:
    for i in range(3):
        op(endpoint, "CreateTrigger", with_(SCHEDULE_TRIGGER, "triggerName", f"t{i}"))
    first = op(endpoint, "ListTriggers", {"maxResults": 2})
    assert [t["triggerName"] for t in first["triggers"]] == ["t0", "t1"]
    rest = op(endpoint, "ListTriggers", {"maxResults": 2, "nextToken": first["nextToken"]})
    assert [t["triggerName"] for t in rest["triggers"]] == ["t2"] and "nextToken" not in rest


@pytest.mark.parametrize(
    ("operation", "body", "fragments"),
    [
        ("CreateTrigger", with_(S3_TRIGGER, "triggerName", ...), ["triggerName is required"]),
        ("CreateTrigger", with_(S3_TRIGGER, "triggerName", "a b"), ["triggerName must be 1-64 letters"]),
        ("CreateTrigger", with_(S3_TRIGGER, "jobQueue", 1), ["jobQueue must be a string"]),
        ("CreateTrigger", with_(S3_TRIGGER, "jobQueue", "nope"), ["jobQueue: JobQueue nope not found"]),
        ("CreateTrigger", with_(S3_TRIGGER, "jobDefinition", "nope"), ["jobDefinition"]),
        ("CreateTrigger", with_(S3_TRIGGER, "jobName", "-bad"), ["jobName"]),
        ("CreateTrigger", with_(S3_TRIGGER, "extra", 1), ["extra is not a trigger member"]),
        ("CreateTrigger", with_(S3_TRIGGER, "source", ...), ["source is required"]),
        ("CreateTrigger", with_(S3_TRIGGER, "source.s3.bucket", "UPPER"), ["source.s3.bucket must be an S3 bucket"]),
        ("CreateTrigger", with_(S3_TRIGGER, "parameters", {"a": 1}), ["parameters['a'] must be a string"]),
        (
            "CreateTrigger",
            with_(S3_TRIGGER, "containerOverrides", {"environment": [{"name": 1}]}),
            ["containerOverrides.environment[0].name must be a string"],
        ),
        (
            "CreateTrigger",
            with_(S3_TRIGGER, "containerOverrides", {"environment": [{"name": "AWS_BATCH_X", "value": "1"}]}),
            ["containerOverrides.environment"],
        ),
        (
            "CreateTrigger",
            with_(SCHEDULE_TRIGGER, "source.schedule.expression", "cron(0 12 * * *)"),
            ["source.schedule.expression: cron takes 6 fields"],
        ),
        (
            "CreateTrigger",
            with_(SCHEDULE_TRIGGER, "source.schedule.timezone", "Nowhere/Land"),
            ["source.schedule.timezone"],
        ),
        ("DescribeTrigger", {}, ["triggerName is required"]),
        ("DescribeTrigger", {"triggerName": "missing"}, ["triggerName: trigger missing does not exist"]),
        ("DeleteTrigger", {"triggerName": "missing"}, ["triggerName: trigger missing does not exist"]),
        ("DeleteTrigger", {"triggerName": 3}, ["triggerName must be a string"]),
        ("ListTriggers", {"maxResults": 0}, ["maxResults must be between 1 and 100"]),
        ("ListTriggers", {"maxResults": "2"}, ["maxResults must be an integer"]),
        ("ListTriggers", {"nextToken": "garbage"}, ["nextToken is not a token this service issued"]),
        ("ListJobDependents", {}, ["jobId is required"]),
        ("ListJobDependents", {"jobId": "nope"}, ["jobId: job nope does not exist"]),
    ],
)
def test_bad_requests_are_client_exceptions_naming_the_field_and_write_nothing(
    endpoint: str, queue: str, operation: str, body: dict[str, Any], fragments: list[str]
) -> None:
    before = names(endpoint)
    assert_client_error(raw_operation(endpoint, operation, body), *fragments)
    assert names(endpoint) == before == []


def test_a_name_is_taken_once(endpoint: str, queue: str) -> None:
    op(endpoint, "CreateTrigger", S3_TRIGGER)
    assert_client_error(raw_operation(endpoint, "CreateTrigger", S3_TRIGGER), "triggerName: trigger on-csv already")


def test_a_body_that_is_not_an_object_is_refused(endpoint: str) -> None:
    assert_client_error(raw_operation(endpoint, "CreateTrigger", b"[1]"), "must be a JSON object")


def test_list_job_dependents(endpoint: str, queue: str, batch: BatchClient) -> None:
    # GIVEN a job two others wait on, and one that waits on nothing
    first = batch.submit_job(jobName="a", jobQueue=queue, jobDefinition="jd")["jobId"]
    kids = sorted(
        batch.submit_job(jobName=n, jobQueue=queue, jobDefinition="jd", dependsOn=[{"jobId": first}])["jobId"]
        for n in ("b", "c")
    )
    # THEN ListJobDependents returns the two, a page at a time
    page = op(endpoint, "ListJobDependents", {"jobId": first, "maxResults": 1})
    rest = op(endpoint, "ListJobDependents", {"jobId": first, "nextToken": page["nextToken"]})
    assert [d["jobId"] for d in page["dependents"] + rest["dependents"]] == kids
    assert op(endpoint, "ListJobDependents", {"jobId": kids[0]}) == {"dependents": []}


# -- firing (the entry points the AWS handlers call) -----------------------------------------------------------


def services(runtime: LocalRuntime, now_ms: int | None = None) -> tuple[Services, Reactor]:
    svc = runtime.services if now_ms is None else dataclasses.replace(runtime.services, clock=FixedClock(now_ms))
    return svc, Reactor(svc, svc.launcher, svc.defer)


def test_on_object_created_submits_a_job_per_matching_trigger(
    runtime: LocalRuntime, endpoint: str, queue: str, batch: BatchClient
) -> None:
    op(endpoint, "CreateTrigger", S3_TRIGGER)
    op(
        endpoint,
        "CreateTrigger",
        with_(S3_TRIGGER, "triggerName", "all-of-bucket") | {"source": {"s3": {"bucket": "data-in"}}},
    )
    svc, reactor = services(runtime)
    # WHEN a csv lands under the prefix THEN both triggers submit a job carrying bucket and key
    ids = control.on_object_created(svc, reactor, "data-in", "incoming/2024/a.csv", "seq-1")
    jobs = batch.describe_jobs(jobs=ids)["jobs"]
    assert sorted(j["parameters"]["triggerName"] for j in jobs) == ["all-of-bucket", "on-csv"]
    on_csv = next(j for j in jobs if j["parameters"]["triggerName"] == "on-csv")
    assert on_csv["jobName"] == "ingest"
    assert on_csv["parameters"] == {
        "mode": "fast",
        "bucket": "data-in",
        "key": "incoming/2024/a.csv",
        "triggerName": "on-csv",
    }
    assert on_csv["tags"] == {"batchplane:trigger": "on-csv"}
    # AND objects the prefix or suffix exclude, or in other buckets, fire only what matches
    assert len(control.on_object_created(svc, reactor, "data-in", "other/a.csv", "seq-2")) == 1  # all-of-bucket only
    assert control.on_object_created(svc, reactor, "elsewhere", "incoming/a.csv", "seq-3") == []
    # AND the same event delivered again submits nothing; the key written again (a new sequencer) fires anew
    assert control.on_object_created(svc, reactor, "data-in", "incoming/2024/a.csv", "seq-1") == []
    assert len(control.on_object_created(svc, reactor, "data-in", "incoming/2024/a.csv", "seq-4")) == 2


def test_on_schedule_submits_once_per_fire_time(
    runtime: LocalRuntime, endpoint: str, queue: str, batch: BatchClient
) -> None:
    op(endpoint, "CreateTrigger", SCHEDULE_TRIGGER)
    created = op(endpoint, "DescribeTrigger", {"triggerName": "hourly"})["trigger"]["createdAt"]
    first_fire = created + 60 * MINUTE
    # WHEN the scheduler calls a little after the first fire time
    svc, reactor = services(runtime, first_fire + 2_000)
    job_id = control.on_schedule(svc, reactor, "hourly")
    # THEN a job is submitted with that fire time
    assert job_id is not None
    job = batch.describe_jobs(jobs=[job_id])["jobs"][0]
    assert job["parameters"]["scheduledTime"].endswith("Z") and job["parameters"]["triggerName"] == "hourly"
    # AND the same tick delivered again submits nothing; the next hour's does
    assert control.on_schedule(svc, reactor, "hourly") is None
    later, _ = services(runtime, first_fire + 60 * MINUTE + 1)
    assert control.on_schedule(later, reactor, "hourly") not in (None, job_id)
    # AND a tick for a trigger that is gone is ignored
    assert control.on_schedule(svc, reactor, "deleted-meanwhile") is None


def test_a_firing_whose_queue_is_gone_submits_nothing(
    runtime: LocalRuntime, endpoint: str, queue: str, batch: BatchClient
) -> None:
    op(endpoint, "CreateTrigger", S3_TRIGGER)
    batch.update_job_queue(jobQueue=queue, state="DISABLED")
    svc, reactor = services(runtime)
    assert control.on_object_created(svc, reactor, "data-in", "incoming/a.csv", "seq-1") == []


class FailingSchedules:
    def register(self, trigger: Trigger) -> None:
        raise InvalidRequest("source.schedule: EventBridge Scheduler rejected the schedule")

    def unregister(self, name: str) -> None:
        raise AssertionError("not expected")


def test_a_trigger_whose_schedule_cannot_be_made_is_not_kept(runtime: LocalRuntime, queue: str) -> None:
    svc = dataclasses.replace(runtime.services, schedules=FailingSchedules())
    with pytest.raises(InvalidRequest, match="EventBridge Scheduler rejected"):
        control.create(svc, control.RequestContext(region=REGION), copy.deepcopy(SCHEDULE_TRIGGER))
    assert control.list_triggers(runtime.services, None, 10) == []


# -- EventBridge Scheduler (moto) ------------------------------------------------------------------------------


@pytest.fixture
def scheduler(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": REGION,
        "AWS_ACCOUNT_ID_ENDPOINT_MODE": "disabled",
    }.items():
        monkeypatch.setenv(name, value)
    with mock_aws():
        yield boto3.client("scheduler", region_name=REGION)


TARGET = "arn:aws:lambda:us-east-1:123456789012:function:batchplane-dev-on_schedule"
ROLE = "arn:aws:iam::123456789012:role/batchplane-scheduler"


def a_schedule_trigger(expression: str = "cron(0 9 ? * MON-FRI *)") -> Trigger:
    return Trigger(
        name="weekdays",
        arn="arn:aws:batch:us-east-1:123456789012:trigger/weekdays",
        job_queue="q",
        job_definition="jd",
        job_name="report",
        source=ScheduleSource(expression, "Europe/Paris"),
        created_at=0,
    )


def test_the_aws_adapter_makes_one_schedule_per_trigger(scheduler: Any) -> None:
    adapter = EventBridgeSchedules(TARGET, ROLE, region=REGION)  # its client is made lazily, on first use
    # WHEN a schedule trigger is registered (the group is created on first use)
    adapter.register(a_schedule_trigger())
    # THEN EventBridge Scheduler holds a schedule of that name that invokes the handler with the trigger's name
    schedule = scheduler.get_schedule(Name="weekdays", GroupName="batchplane")
    assert schedule["ScheduleExpression"] == "cron(0 9 ? * MON-FRI *)"
    assert schedule["ScheduleExpressionTimezone"] == "Europe/Paris"
    assert schedule["FlexibleTimeWindow"] == {"Mode": "OFF"}
    assert schedule["Target"]["Arn"] == TARGET and schedule["Target"]["RoleArn"] == ROLE
    assert schedule["Target"]["Input"] == '{"trigger": "weekdays"}'
    # AND registering again replaces it (a leftover of an earlier trigger of the same name)
    adapter.register(a_schedule_trigger("rate(5 minutes)"))
    assert scheduler.get_schedule(Name="weekdays", GroupName="batchplane")["ScheduleExpression"] == "rate(5 minutes)"
    # WHEN it is unregistered THEN it is gone, and unregistering again is harmless
    adapter.unregister("weekdays")
    assert scheduler.list_schedules(GroupName="batchplane")["Schedules"] == []
    adapter.unregister("weekdays")


def test_the_aws_adapter_turns_errors_into_domain_errors(scheduler: Any) -> None:
    class Refusing:
        def __init__(self, code: str) -> None:
            self.code = code

        def get_schedule_group(self, **kwargs: Any) -> None:
            return None

        def create_schedule(self, **kwargs: Any) -> None:
            from botocore.exceptions import ClientError

            raise ClientError({"Error": {"Code": self.code, "Message": "no"}}, "CreateSchedule")

    with pytest.raises(InvalidRequest, match=r"source\.schedule: EventBridge Scheduler rejected"):
        EventBridgeSchedules(TARGET, ROLE, client=Refusing("ValidationException")).register(a_schedule_trigger())
    with pytest.raises(BatchplaneError, match="AccessDeniedException"):
        EventBridgeSchedules(TARGET, ROLE, client=Refusing("AccessDeniedException")).register(a_schedule_trigger())


def test_create_and_delete_drive_the_schedule_port(scheduler: Any, runtime: LocalRuntime, queue: str) -> None:
    svc = dataclasses.replace(runtime.services, schedules=EventBridgeSchedules(TARGET, ROLE, region=REGION))
    ctx = control.RequestContext(region=REGION)
    control.create(svc, ctx, copy.deepcopy(SCHEDULE_TRIGGER))
    control.create(svc, ctx, copy.deepcopy(S3_TRIGGER))  # an object trigger has no schedule
    assert [s["Name"] for s in scheduler.list_schedules(GroupName="batchplane")["Schedules"]] == ["hourly"]
    control.delete(svc, "hourly")
    assert scheduler.list_schedules(GroupName="batchplane")["Schedules"] == []
