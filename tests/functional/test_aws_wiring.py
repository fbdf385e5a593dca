"""The AWS runtime's wiring: every Lambda entry point of app.py reaches the right control code with the right inputs.

The handlers are invoked the way Lambda would (chalice.test.Client), on an AwsRuntime whose store is SQLite and whose
AWS clients are recording fakes; the control functions other modules own (task events, sweep, capacity, triggers)
are injected stand-ins. tests/functional/test_serverless_e2e.py runs the same wiring on moto end to end.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pytest
from chalice.test import Client

from app import app
from chalicelib.compute import ecs_events
from chalicelib.control.context import Services
from chalicelib.control.react import Reactor
from chalicelib.domain import lifecycle
from chalicelib.domain.effects import CARRIED, effects_of
from chalicelib.domain.jobs import FAILED, PENDING, RUNNABLE, RUNNING, STARTING, SUCCEEDED, ArrayInfo, Job
from chalicelib.runtime import aws, plane, stream
from chalicelib.runtime.aws import AwsConfig, AwsRuntime, Clients, Controls
from chalicelib.runtime.aws import runtime as aws_runtime
from chalicelib.store import dynamo
from chalicelib.store.jobs import job_item
from chalicelib.store.sqlite import SqliteItemStore
from tests.unit.builders import NOW, a_child, a_job, a_parent, a_running_job, an_attempt, retries

REGION = "us-east-1"
ACCOUNT = "123456789012"
QUEUE_URL = f"https://sqs.{REGION}.amazonaws.com/{ACCOUNT}/batchplane-dispatch.fifo"


# -- fakes ----------------------------------------------------------------------------------------------------------


@dataclass
class FakeAws:
    """A boto3 session whose clients record every call and answer with canned responses."""

    calls: list[tuple[str, str, dict[str, Any]]] = field(default_factory=list)
    fail: set[tuple[str, str]] = field(default_factory=set)
    responses: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)

    def client(self, service: str, **_: Any) -> Any:
        aws_ = self

        class _Client:
            def __getattr__(self, operation: str) -> Any:
                def call(**params: Any) -> dict[str, Any]:
                    from botocore.exceptions import ClientError

                    aws_.calls.append((service, operation, params))
                    if (service, operation) in aws_.fail:
                        raise ClientError({"Error": {"Code": "InternalFailure", "Message": "boom"}}, operation)
                    if (service, operation) == ("events", "put_events"):
                        return {"FailedEntryCount": 0, "Entries": [{"EventId": "e"} for _ in params["Entries"]]}
                    return aws_.responses.get((service, operation), {})

                return call

        return _Client()

    def of(self, service: str, operation: str) -> list[dict[str, Any]]:
        return [p for s, o, p in self.calls if (s, o) == (service, operation)]

    def published(self) -> list[dict[str, Any]]:
        return [e for p in self.of("events", "put_events") for e in p["Entries"]]


@dataclass
class Recorded:
    calls: list[tuple[str, tuple[Any, ...]]] = field(default_factory=list)

    def controls(self) -> Controls:
        def record(name: str, result: Any = None) -> Any:
            def fn(*args: Any) -> Any:
                self.calls.append((name, args))
                return result

            return fn

        return Controls(
            on_ecs_task_event=record("on_ecs_task_event"),
            on_ec2_event=record("on_ec2_event"),
            sweep=record("sweep"),
            reconcile=record("reconcile"),
            on_object_created=record("on_object_created", ["job-a"]),
            on_schedule=record("on_schedule", "job-b"),
        )


@dataclass
class Harness:
    rt: AwsRuntime
    fake: FakeAws
    recorded: Recorded
    client: Client

    @property
    def svc(self) -> Services:
        return self.rt.services

    def invoke(self, name: str, payload: Any) -> Any:
        return self.client.lambda_.invoke(name, payload).payload


@pytest.fixture
def harness(tmp_path: Path) -> Iterator[Harness]:
    fake, recorded = FakeAws(), Recorded()
    config = AwsConfig(
        table="batchplane",
        region=REGION,
        account=ACCOUNT,
        cluster="batchplane",
        dispatch_queue_url=QUEUE_URL,
        state_change_events="ALL",  # every change published, as AWS Batch does (the stack's default is TERMINAL)
    )
    store = SqliteItemStore(str(tmp_path / "state.db"))
    rt = plane.build_aws(config, Clients(REGION, lambda: fake), store=store, controls=recorded.controls())
    plane.configure_aws(rt)
    try:
        with Client(app) as client:
            yield Harness(rt, fake, recorded, client)
    finally:
        plane.configure_aws(None)
        store.close()


# -- stream records -------------------------------------------------------------------------------------------------

_sequence = iter(range(1000, 100_000))


def image(job: Job) -> dict[str, Any]:
    """The job's item as the table stores it (keys, version, body, index keys), in DynamoDB JSON."""
    return dynamo.image(replace(job_item(job), version=job.version))


def record(old: Job | None, new: Job | None) -> dict[str, Any]:
    job = new or old
    assert job is not None
    ddb: dict[str, Any] = {
        "ApproximateCreationDateTime": NOW / 1000,
        "Keys": {"pk": {"S": f"JOB#{job.job_id}"}, "sk": {"S": "#"}},
        "SequenceNumber": str(next(_sequence)),
        "SizeBytes": 100,
        "StreamViewType": "NEW_AND_OLD_IMAGES",
    }
    if old is not None:
        ddb["OldImage"] = image(old)
    if new is not None:
        ddb["NewImage"] = image(new)
    return {
        "eventID": "1",
        "eventName": "MODIFY" if old and new else ("INSERT" if new else "REMOVE"),
        "eventSource": "aws:dynamodb",
        "awsRegion": REGION,
        "eventSourceARN": aws.STREAM_ARN,
        "dynamodb": ddb,
    }


def changes(*pairs: tuple[Job | None, Job | None]) -> dict[str, Any]:
    return {"Records": [record(old, new) for old, new in pairs]}


def kinds(effects: tuple[lifecycle.Effect, ...]) -> set[str]:
    return {type(e).__name__ for e in effects}


# -- the routes ------------------------------------------------------------------------------------------------------


def test_routes_require_iam_where_api_gateway_is_configured_and_nowhere_else() -> None:
    # packaged or deployed by the Chalice CLI, and in Lambda: IAM; the local server: none (tests/infra checks the
    # packaged template's every method)
    assert aws.api_authorizer({"AWS_CHALICE_CLI_MODE": "true"}).name == "sigv4"
    assert aws.api_authorizer({"AWS_LAMBDA_FUNCTION_NAME": "batchplane-dev"}).name == "sigv4"
    assert aws.api_authorizer({}) is None


def http_api_event(
    method: str, path: str, resource: str, body: str | None = None, headers: dict[str, str] | None = None
) -> dict[str, Any]:
    """An API Gateway HTTP API request in payload format 1.0, as the AWS documentation shows it."""
    headers = {
        "content-type": "application/json",
        "host": "abc123.execute-api.us-east-1.amazonaws.com",
        **(headers or {}),
    }
    return {
        "version": "1.0",
        "resource": resource,
        "path": path,
        "httpMethod": method,
        "headers": headers,
        "multiValueHeaders": {k: [v] for k, v in headers.items()},
        "queryStringParameters": None,
        "multiValueQueryStringParameters": None,
        "requestContext": {
            "accountId": ACCOUNT,
            "apiId": "abc123",
            "domainName": "abc123.execute-api.us-east-1.amazonaws.com",
            "domainPrefix": "abc123",
            "extendedRequestId": "e",
            "httpMethod": method,
            "identity": {"accessKey": "AKIA", "caller": "AIDA", "sourceIp": "192.0.2.1", "user": "AIDA"},
            "path": path,
            "protocol": "HTTP/1.1",
            "requestId": "r",
            "requestTime": "04/Mar/2026:19:15:17 +0000",
            "requestTimeEpoch": 1772651717135,
            "resourceId": f"{method} {resource}",
            "resourcePath": resource,
            "stage": "$default",
        },
        "pathParameters": None,
        "stageVariables": None,
        "body": body,
        "isBase64Encoded": False,
    }


def serve(event: dict[str, Any]) -> tuple[int, Any]:
    from chalice.local import LambdaContext

    response = app(event, LambdaContext("api_handler", memory_size=512))
    body = response["body"]
    return response["statusCode"], json.loads(body) if body else None


def test_the_http_api_reaches_the_same_routes(harness: Harness) -> None:
    # GIVEN the AWS runtime with a job queue, created through the REST API
    _queue(harness)
    queue_arn = f"arn:aws:batch:{REGION}:{ACCOUNT}:job-queue/q"

    # WHEN the HTTP API (payload format 1.0) calls a Batch operation
    status, body = serve(http_api_event("POST", "/v1/describejobqueues", "/v1/{operation}", "{}"))

    # THEN it is the REST API's answer
    assert status == 200 and [q["jobQueueArn"] for q in body["jobQueues"]] == [queue_arn]

    # ... and tags, routed as /v1/tags/{proxy+}, whether the ARN's "/" arrives encoded or not
    tags = json.dumps({"tags": {"team": "data"}})
    encoded = "/v1/tags/" + queue_arn.replace(":", "%3A").replace("/", "%2F")
    assert serve(http_api_event("POST", encoded, "/v1/tags/{proxy+}", tags))[0] == 200
    status, body = serve(http_api_event("GET", "/v1/tags/" + queue_arn, "/v1/tags/{proxy+}"))
    assert status == 200 and body == {"tags": {"team": "data"}}


def test_the_http_api_decodes_a_base64_body(harness: Harness) -> None:
    import base64

    # API Gateway's HTTP API base64-encodes bodies whose content type is not text (CloudWatch Logs' JSON 1.1)
    payload = json.dumps({"logGroupName": "/aws/batch/job", "logStreamName": "nope"})
    event = http_api_event(
        "POST",
        "/",
        "/",
        base64.b64encode(payload.encode()).decode(),
        {"content-type": "application/x-amz-json-1.1", "x-amz-target": "Logs_20140328.GetLogEvents"},
    )
    event["isBase64Encoded"] = True

    status, body = serve(event)

    assert status in (200, 400) and body is not None  # answered by the logs route, not rejected as unknown


def test_rest_api_events_pass_unchanged_and_unknown_http_api_paths_are_not_routed() -> None:
    rest = {"resource": "/v1/{operation}", "requestContext": {"resourcePath": "/v1/{operation}"}}
    assert aws.rest_api_event(rest, app.routes) is rest
    routed = aws.rest_api_event(http_api_event("POST", "/v2/x/y", "$default"), app.routes)
    assert routed["requestContext"]["resourcePath"] not in app.routes
    assert serve(http_api_event("POST", "/v2/x/y", "$default"))[0] == 404


def test_unknown_paths_are_answered_404_without_growing_chalices_route_table() -> None:
    # (Chalice's route table is a defaultdict: looking an unknown path up in it adds an entry, per distinct path)
    routes = len(app.routes)
    for i in range(20):
        response = serve_url(function_url_event("POST", f"/v2/unknown{i}/path", "{}"))
        assert response["statusCode"] == 404
        assert response["headers"]["x-amzn-ErrorType"] == "UnknownOperationException"
        assert json.loads(response["body"])["message"] == f"no such operation: POST /v2/unknown{i}/path"
    assert len(app.routes) == routes
    # AND a method no route takes on a known path is refused the same way (Chalice would answer 405)
    wrong_method = serve_url(function_url_event("GET", "/v1/submitjob"))
    assert wrong_method["statusCode"] == 404
    assert json.loads(wrong_method["body"])["message"] == "no such operation: GET /v1/submitjob"


# -- the function URL (payload format 2.0, ADR 0014) ----------------------------------------------------------------

URL_HOST = "abcdefghijklmnopqrstuvwxyz012345.lambda-url.us-east-1.on.aws"


def function_url_event(
    method: str,
    raw_path: str,
    body: str | None = None,
    headers: dict[str, str] | None = None,
    raw_query: str = "",
    base64: bool = False,
    cookies: list[str] | None = None,
) -> dict[str, Any]:
    """A Lambda function URL request (payload format 2.0, AWS_IAM), as the AWS documentation shows it."""
    from urllib.parse import parse_qs

    headers = {"content-type": "application/json", "host": URL_HOST, **(headers or {})}
    event: dict[str, Any] = {
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": raw_path,
        "rawQueryString": raw_query,
        "headers": headers,
        "requestContext": {
            "accountId": ACCOUNT,
            "apiId": URL_HOST.split(".")[0],
            "authorizer": {"iam": {"accessKey": "AKIA", "accountId": ACCOUNT, "callerId": "AIDA", "userId": "AIDA"}},
            "domainName": URL_HOST,
            "domainPrefix": URL_HOST.split(".")[0],
            "http": {
                "method": method,
                "path": raw_path,
                "protocol": "HTTP/1.1",
                "sourceIp": "192.0.2.1",
                "userAgent": "Boto3/1.44.5",
            },
            "requestId": "r",
            "routeKey": "$default",
            "stage": "$default",
            "time": "04/Mar/2026:19:15:17 +0000",
            "timeEpoch": 1772651717135,
        },
        "isBase64Encoded": base64,
    }
    if raw_query:
        event["queryStringParameters"] = {k: ",".join(v) for k, v in parse_qs(raw_query).items()}
    if body is not None:
        event["body"] = body
    if cookies:
        event["cookies"] = cookies
    return event


def serve_url(event: dict[str, Any]) -> dict[str, Any]:
    """The app's answer to a 2.0 event, checked to be a 2.0 response (single-valued headers, no REST fields)."""
    from chalice.local import LambdaContext

    response = app(event, LambdaContext("api_handler", memory_size=512))
    assert set(response) <= {"statusCode", "headers", "body", "isBase64Encoded", "cookies"}, response
    assert all(isinstance(v, str) for v in response["headers"].values()), response["headers"]
    return response


def url_client(session_region: str = REGION) -> Any:
    """A stock boto3 batch client, signed by the auth plug-in, whose requests reach the app as a function URL
    delivers them (payload format 2.0) and whose responses are what the function URL makes of the 2.0 answer."""
    from urllib.parse import urlsplit

    import boto3
    from botocore.awsrequest import AWSResponse

    from chalicelib import auth_plugin

    session = boto3.session.Session(
        aws_access_key_id="AKIDEXAMPLE", aws_secret_access_key="secret", region_name=session_region
    )
    auth_plugin.register(session)
    client = session.client("batch", endpoint_url=f"https://{URL_HOST}/")
    signed: list[str] = []

    class Raw:
        def __init__(self, data: bytes) -> None:
            self.data = data

        def stream(self, **_: Any) -> Any:
            yield self.data

    def deliver(request: Any, **_: Any) -> AWSResponse:
        signed.append(request.headers["Authorization"].decode())
        url = urlsplit(request.url)
        headers = {k.lower(): v.decode() if isinstance(v, bytes) else v for k, v in request.headers.items()}
        body = request.body.decode() if isinstance(request.body, bytes) else request.body
        response = serve_url(function_url_event(request.method, url.path, body or None, headers, url.query))
        return AWSResponse(request.url, response["statusCode"], response["headers"], Raw(response["body"].encode()))

    client.meta.events.register("before-send.batch", deliver)
    client.signed = signed
    return client


def test_a_stock_client_runs_jobs_through_the_function_url(harness: Harness) -> None:
    # GIVEN a stock boto3 batch client pointed at the function URL
    batch = url_client()
    batch.create_compute_environment(
        computeEnvironmentName="ce",
        type="MANAGED",
        computeResources={"type": "FARGATE", "maxvCpus": 4, "subnets": ["subnet-1"], "securityGroupIds": ["sg-1"]},
    )
    queue_arn = batch.create_job_queue(
        jobQueueName="q", priority=1, computeEnvironmentOrder=[{"order": 1, "computeEnvironment": "ce"}]
    )["jobQueueArn"]
    batch.register_job_definition(
        jobDefinitionName="hello",
        type="container",
        platformCapabilities=["FARGATE"],
        containerProperties={
            "image": "busybox",
            "resourceRequirements": [{"type": "VCPU", "value": "1"}, {"type": "MEMORY", "value": "2048"}],
            "executionRoleArn": "arn:aws:iam::123456789012:role/batchplane-execution",
        },
    )

    # WHEN it submits a job and describes it
    job_id = batch.submit_job(jobName="j", jobQueue="q", jobDefinition="hello")["jobId"]
    (job,) = batch.describe_jobs(jobs=[job_id])["jobs"]

    # THEN the job is the API Lambda's, stored RUNNABLE ...
    assert job["jobId"] == job_id and job["status"] == RUNNABLE
    stored = harness.svc.jobs.get(job_id)
    assert stored is not None and stored.status == RUNNABLE
    # ... every request having been signed for the service `lambda`
    assert all("/us-east-1/lambda/aws4_request" in auth for auth in batch.signed)

    # AND tags on an ARN with "/" (botocore sends it as %2F in one path segment) round-trip
    assert "/" in queue_arn
    batch.tag_resource(resourceArn=queue_arn, tags={"team": "data"})
    assert batch.list_tags_for_resource(resourceArn=queue_arn)["tags"] == {"team": "data"}
    batch.untag_resource(resourceArn=queue_arn, tagKeys=["team"])
    assert batch.list_tags_for_resource(resourceArn=queue_arn)["tags"] == {}


def test_batch_errors_survive_the_function_url(harness: Harness) -> None:
    # GIVEN no job queue
    batch = url_client()

    # WHEN a job is submitted to a queue that does not exist
    with pytest.raises(batch.exceptions.ClientException) as info:
        batch.submit_job(jobName="j", jobQueue="missing", jobDefinition="hello")

    # THEN botocore reads the Batch error from the 2.0 response: status, x-amzn-ErrorType, message, request id
    error = info.value.response
    assert error["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert error["ResponseMetadata"]["HTTPHeaders"]["x-amzn-errortype"] == "ClientException"
    assert error["ResponseMetadata"]["RequestId"]
    assert "missing" in error["Error"]["Message"]


def test_function_url_events_are_routed_whether_a_tag_arn_arrives_encoded_or_not(harness: Harness) -> None:
    _queue(harness)
    queue_arn = f"arn:aws:batch:{REGION}:{ACCOUNT}:job-queue/q"
    tags = json.dumps({"tags": {"team": "data"}})

    encoded = "/v1/tags/" + queue_arn.replace(":", "%3A").replace("/", "%2F")
    assert serve_url(function_url_event("POST", encoded, tags))["statusCode"] == 200
    listed = serve_url(function_url_event("GET", "/v1/tags/" + queue_arn))
    assert listed["statusCode"] == 200 and json.loads(listed["body"]) == {"tags": {"team": "data"}}

    # the error of an operation the API does not have keeps its Batch shape too
    unknown = serve_url(function_url_event("POST", "/v1/nosuchoperation", "{}"))
    assert unknown["statusCode"] >= 400 and unknown["statusCode"] < 500
    assert unknown["headers"]["x-amzn-ErrorType"]


def test_the_function_url_decodes_a_base64_body_for_the_logs_route(harness: Harness) -> None:
    import base64

    # a function URL base64-encodes bodies whose content type is not text (CloudWatch Logs' JSON 1.1)
    payload = json.dumps({"logGroupName": "/aws/batch/job", "logStreamName": "nope"})
    event = function_url_event(
        "POST",
        "/",
        base64.b64encode(payload.encode()).decode(),
        {"content-type": "application/x-amz-json-1.1", "x-amz-target": "Logs_20140328.GetLogEvents"},
        base64=True,
    )

    response = serve_url(event)

    assert response["statusCode"] in (200, 400) and json.loads(response["body"])  # answered by the logs route


def test_a_function_url_request_becomes_the_rest_event_chalice_reads() -> None:
    event = function_url_event(
        "delete",
        "/v1/tags/arn%3Aaws%3Abatch%3Aus-east-1%3A123456789012%3Ajob-queue%2Fq",
        headers={"accept": "application/json,text/plain"},
        raw_query="tagKeys=a&tagKeys=b&empty=",
        cookies=["c1=v1", "c2=v2"],
    )

    rest = aws.rest_api_event(event, app.routes)

    assert rest["requestContext"]["resourcePath"] == "/v1/tags/{resource_arn}"
    assert rest["requestContext"]["httpMethod"] == "DELETE"
    assert rest["pathParameters"] == {"resource_arn": "arn%3Aaws%3Abatch%3Aus-east-1%3A123456789012%3Ajob-queue%2Fq"}
    assert rest["multiValueQueryStringParameters"] == {"tagKeys": ["a", "b"], "empty": [""]}
    assert rest["headers"]["accept"] == "application/json,text/plain"
    assert rest["headers"]["cookie"] == "c1=v1; c2=v2"
    assert rest["body"] is None and rest["isBase64Encoded"] is False and rest["stageVariables"] is None
    # AND an unknown path is left for Chalice to refuse
    routed = aws.rest_api_event(function_url_event("POST", "/v2/x/y"), app.routes)
    assert not app.routes.get(routed["requestContext"]["resourcePath"])  # no route of the app
    assert serve_url(function_url_event("POST", "/v2/x/y"))["statusCode"] >= 400


def test_the_answer_to_a_function_url_is_a_payload_2_response() -> None:
    chalice_response = {
        "statusCode": 400,
        "headers": {"Content-Type": "application/json", "x-amzn-ErrorType": "ClientException"},
        "multiValueHeaders": {"Vary": ["Accept", "Origin"], "Set-Cookie": ["a=1; Secure", "b=2"]},
        "body": '{"__type": "ClientException"}',
    }
    event = function_url_event("POST", "/v1/submitjob", "{}")

    response = aws.api_response(event, chalice_response)

    assert response == {
        "statusCode": 400,
        "headers": {"Content-Type": "application/json", "x-amzn-ErrorType": "ClientException", "Vary": "Accept,Origin"},
        "body": '{"__type": "ClientException"}',
        "isBase64Encoded": False,
        "cookies": ["a=1; Secure", "b=2"],
    }
    # API Gateway's events (REST, HTTP API 1.0) get Chalice's answer unchanged
    rest = {"resource": "/v1/{operation}", "requestContext": {"resourcePath": "/v1/{operation}"}}
    assert aws.api_response(rest, chalice_response) == chalice_response
    assert aws.api_response(http_api_event("POST", "/v1/x", "/v1/{operation}"), chalice_response) == chalice_response


def test_every_entry_point_is_a_lambda() -> None:
    assert {
        "on_job_change",
        "dispatch",
        "on_ecs_task_event",
        "on_ec2_event",
        "sweep",
        "reconcile_capacity",
        "on_object_created",
        "on_schedule",
    } <= set(app.handler_map)


def test_the_api_runs_on_the_aws_services_and_leaves_effects_to_the_stream(harness: Harness) -> None:
    # GIVEN the AWS runtime with a queue and a job definition
    post = harness.client.http.post
    headers = {"Content-Type": "application/json"}
    ce = {
        "computeEnvironmentName": "ce",
        "type": "MANAGED",
        "computeResources": {"type": "FARGATE", "maxvCpus": 4, "subnets": ["subnet-1"], "securityGroupIds": ["sg-1"]},
    }
    assert post("/v1/createcomputeenvironment", body=json.dumps(ce), headers=headers).status_code == 200
    jq = {"jobQueueName": "q", "priority": 1, "computeEnvironmentOrder": [{"order": 1, "computeEnvironment": "ce"}]}
    assert post("/v1/createjobqueue", body=json.dumps(jq), headers=headers).status_code == 200
    jd = {
        "jobDefinitionName": "hello",
        "type": "container",
        "platformCapabilities": ["FARGATE"],
        "containerProperties": {
            "image": "busybox",
            "resourceRequirements": [{"type": "VCPU", "value": "1"}, {"type": "MEMORY", "value": "2048"}],
            "executionRoleArn": "arn:aws:iam::123456789012:role/batchplane-execution",
        },
    }
    assert post("/v1/registerjobdefinition", body=json.dumps(jd), headers=headers).status_code == 200
    harness.fake.calls.clear()

    # WHEN a job is submitted through the API Lambda
    submit = {"jobName": "j", "jobQueue": "q", "jobDefinition": "hello"}
    response = post("/v1/submitjob", body=json.dumps(submit), headers=headers)

    # THEN it is stored RUNNABLE with one write, and nothing else happened inline: no event, no wake, no launch
    assert response.status_code == 200, response.body
    job = harness.svc.jobs.get(json.loads(response.body)["jobId"])
    assert job is not None and job.status == RUNNABLE and job.version == 1
    assert harness.fake.calls == []


def test_updating_a_compute_environment_wakes_the_dispatcher_through_the_queue(harness: Harness) -> None:
    headers = {"Content-Type": "application/json"}
    ce = {
        "computeEnvironmentName": "ce",
        "type": "MANAGED",
        "computeResources": {"type": "FARGATE", "maxvCpus": 4, "subnets": ["subnet-1"], "securityGroupIds": ["sg-1"]},
    }
    harness.client.http.post("/v1/createcomputeenvironment", body=json.dumps(ce), headers=headers)
    harness.fake.calls.clear()

    update = {"computeEnvironment": "ce", "computeResources": {"maxvCpus": 8}}
    harness.client.http.post("/v1/updatecomputeenvironment", body=json.dumps(update), headers=headers)

    (wake,) = harness.fake.of("sqs", "send_message")
    assert wake["QueueUrl"] == QUEUE_URL and wake["MessageGroupId"] == aws.DISPATCH_GROUP


# -- the stream: effects derived from images --------------------------------------------------------------------------

LATER = NOW + 1000


def _transition(job: Job, event: lifecycle.Event) -> tuple[Job, tuple[lifecycle.Effect, ...]]:
    outcome = lifecycle.transition(job, event, LATER)
    assert outcome.job is not None
    return replace(outcome.job, version=job.version + 1), outcome.effects


TRANSITIONS = [
    ("evaluate", a_job(), lifecycle.Evaluate()),
    ("claim", a_job(status=RUNNABLE), lifecycle.Claim("ce", "t-1", "hello/default/t-1")),
    ("started", a_running_job(status=STARTING), lifecycle.TaskStarted(1)),
    ("succeeded", a_running_job(), lifecycle.TaskStopped(1, 0)),
    ("retried", a_running_job(retry_strategy=retries(2)), lifecycle.TaskStopped(1, 1)),
    ("failed", a_running_job(), lifecycle.TaskStopped(1, 1)),
    ("child succeeded", a_child("p", 2, status=RUNNING, current=an_attempt()), lifecycle.TaskStopped(1, 0)),
    ("cancelled", a_job(status=RUNNABLE), lifecycle.Cancel("no")),
    ("terminate marks", a_running_job(), lifecycle.Terminate("stop")),
    ("parent children", a_parent(3, status="SUBMITTED"), lifecycle.Evaluate()),
    ("parent terminated", a_parent(3, created=3), lifecycle.Terminate("stop")),
    ("parent cancelled", a_parent(3, created=3), lifecycle.Cancel("no")),
    ("parent done", a_parent(2, created=2, succeeded=[0]), lifecycle.ChildFinished(1, True)),
    ("last dependency", a_job(status=PENDING, pending=("d",)), lifecycle.DependencySucceeded("d")),
    ("dependency failed", a_job(status=PENDING, pending=("d",)), lifecycle.DependencyFailed("d")),
    ("child cancelled", a_child("p", 1, status=RUNNABLE), lifecycle.Cancel("no")),
    ("child claimed", a_child("p", 1, status=RUNNABLE), lifecycle.Claim("ce", "t-1", "hello/default/t-1")),
]


@pytest.mark.parametrize(("name", "job", "event"), TRANSITIONS)
def test_the_stream_derives_what_the_state_machine_decided(name: str, job: Job, event: lifecycle.Event) -> None:
    # GIVEN a persisted transition and the effects the state machine decided for it
    old = replace(job, version=3)
    new, decided = _transition(old, event)

    # WHEN the stream handler derives effects from the record's two images
    derived = effects_of(old, new)

    # THEN it finds every effect the stream carries, and only those (Launch/StopTask stay inline) ...
    expected = {type(e).__name__ for e in decided if type(e) in CARRIED}
    assert kinds(derived) == expected, name
    # ... with the same parameters
    assert [e for e in derived if not isinstance(e, lifecycle.WakeDispatcher)] == [
        e for e in decided if type(e) in CARRIED and not isinstance(e, lifecycle.WakeDispatcher)
    ]


def _passes_the_filter(mode: str, rec: dict[str, Any]) -> bool:
    from moto.events.models import EventPattern  # Lambda's event filtering uses EventBridge's pattern language

    return any(EventPattern.load(json.dumps(p)).matches_event(rec) for p in stream.filter_patterns(mode))


INSERTS = [
    a_job(status=RUNNABLE, version=1),
    a_job(status=PENDING, pending=("d",), version=1),
    a_job(status=FAILED, version=1),
    a_parent(3, status=PENDING, version=1),
    a_child("p", 0, status=RUNNABLE, version=1),
]


@pytest.mark.parametrize("mode", stream.STATE_CHANGE_EVENTS)
def test_every_record_the_stream_handler_acts_on_passes_the_stream_filter(mode: str) -> None:
    # GIVEN every kind of persisted change (the transitions above, and inserts)
    changes_: list[tuple[Job | None, Job]] = [(None, job) for job in INSERTS]
    for _, job, event in TRANSITIONS:
        old = replace(job, version=3)
        changes_.append((old, _transition(old, event)[0]))

    for old, new in changes_:
        # WHEN the handler would act on the record: an effect besides Publish, or a Publish the mode keeps
        derived = effects_of(old, new)
        publishes = any(isinstance(e, lifecycle.Publish) for e in derived) and stream.publishes(mode, new)
        acts = publishes or any(not isinstance(e, lifecycle.Publish) for e in derived)
        passes = _passes_the_filter(mode, record(old, new))
        # THEN the event source mapping's filter lets it through
        assert passes or not acts, (mode, old and old.status, new.status, derived)
        # ... and unless every change is published, a change to STARTING or RUNNING never invokes the handler
        if mode != stream.ALL and new.status in (STARTING, RUNNING):
            assert not passes, (mode, new.status)


def test_records_of_other_items_never_pass_the_stream_filter() -> None:
    edge = record(None, a_job(status=RUNNABLE, version=1))
    edge["dynamodb"]["Keys"]["pk"]["S"] = "DEP#x"
    for mode in stream.STATE_CHANGE_EVENTS:
        assert not _passes_the_filter(mode, edge)


@pytest.mark.parametrize(
    ("mode", "statuses"), [("ALL", [RUNNABLE, STARTING, SUCCEEDED]), ("TERMINAL", [SUCCEEDED]), ("NONE", [])]
)
def test_the_stream_handler_publishes_the_state_changes_the_stack_asks_for(
    harness: Harness, mode: str, statuses: list[str]
) -> None:
    harness.rt.config = replace(harness.rt.config, state_change_events=mode)
    runnable = a_job("j1", status=RUNNABLE, version=1)
    claimed, _ = _transition(runnable, lifecycle.Claim("ce", "t", "hello/default/t"))
    running = a_running_job(job_id="j2", version=2)
    done, _ = _transition(running, lifecycle.TaskStopped(1, 0))

    result = harness.invoke("on_job_change", changes((None, runnable), (runnable, claimed), (running, done)))

    assert result == {"batchItemFailures": []}
    assert [json.loads(e["Detail"])["status"] for e in harness.fake.published()] == statuses


def test_a_submitted_job_is_published_and_a_runnable_one_wakes_the_dispatcher() -> None:
    assert kinds(effects_of(None, a_job(status=RUNNABLE, version=1))) == {"Publish", "WakeDispatcher"}
    assert kinds(effects_of(None, a_job(status=PENDING, pending=("d",), version=1))) == {"Publish"}
    assert kinds(effects_of(None, a_job(status=FAILED, version=1))) == {"Publish"}  # nobody depends on it yet


def test_a_change_without_a_new_state_derives_nothing() -> None:
    job = a_job(status=RUNNABLE, version=2)
    assert effects_of(job, replace(job, status_reason="MISCONFIGURATION: ...", version=3)) == ()


def test_a_parent_with_children_left_to_write_creates_them_on_every_change() -> None:
    # (lifecycle decides CreateChildren once; the stream re-derives it until all exist, which makes creation resumable)
    parent = a_parent(500, created=100, version=4)
    more = replace(parent, array=ArrayInfo(size=500, children_created=200), version=5)
    assert kinds(effects_of(parent, more)) == {"CreateChildren"}
    done = replace(parent, array=ArrayInfo(size=500, children_created=500))
    assert effects_of(done, replace(done, version=5)) == ()


def test_records_of_other_items_are_skipped() -> None:
    other = record(None, a_job(version=1))
    other["dynamodb"]["Keys"]["pk"]["S"] = "DEP#x"
    assert stream.decode(other) is None


# -- the stream handler ------------------------------------------------------------------------------------------------


def test_the_stream_handler_publishes_every_state_change_to_eventbridge(harness: Harness) -> None:
    runnable = a_job("j1", status=RUNNABLE, version=1)
    claimed, _ = _transition(runnable, lifecycle.Claim("ce", "t", "hello/default/t"))

    result = harness.invoke("on_job_change", changes((None, runnable), (runnable, claimed)))

    assert result == {"batchItemFailures": []}
    entries = harness.fake.published()
    assert [json.loads(e["Detail"])["status"] for e in entries] == [RUNNABLE, STARTING]
    assert {e["Source"] for e in entries} == {"batchplane"}
    assert {e["DetailType"] for e in entries} == {"Batch Job State Change"}
    assert entries[0]["Resources"] == [runnable.arn]
    (wake,) = harness.fake.of("sqs", "send_message")  # one wake for the batch
    assert wake["MessageGroupId"] == aws.DISPATCH_GROUP


def test_a_finished_job_releases_its_dependents(harness: Harness) -> None:
    # GIVEN a job and a dependent waiting for it
    dep = harness.svc.jobs.create_with_edges(a_job("dep", status=RUNNING, current=an_attempt()), [])
    waiting = harness.svc.jobs.create_with_edges(a_job("w", status=PENDING, pending=("dep",)), ["dep"])
    done, _ = _transition(dep, lifecycle.TaskStopped(1, 0))
    harness.svc.jobs.save(replace(done, version=dep.version))

    # WHEN the stream delivers the dependency's change to SUCCEEDED
    harness.invoke("on_job_change", changes((dep, replace(done, version=dep.version + 1))))

    # THEN the dependent is RUNNABLE (its own record will publish and wake)
    after = harness.svc.jobs.get(waiting.job_id)
    assert after is not None and after.status == RUNNABLE


def test_a_finished_child_is_counted_by_its_parent(harness: Harness) -> None:
    parent = harness.svc.jobs.create_with_edges(a_parent(2, created=2, succeeded=[0]), [])
    child = a_child("parent", 1, status=RUNNING, current=an_attempt(), version=2)
    done, _ = _transition(child, lifecycle.TaskStopped(1, 0))

    harness.invoke("on_job_change", changes((child, done)))

    after = harness.svc.jobs.get(parent.job_id)
    assert after is not None and after.status == SUCCEEDED


def test_an_array_parent_gets_its_children_from_the_stream(harness: Harness) -> None:
    parent = harness.svc.jobs.create_with_edges(a_parent(3, status=PENDING), [])

    harness.invoke("on_job_change", changes((None, parent)))

    children = [harness.svc.jobs.get(f"parent:{i}") for i in range(3)]
    assert all(c is not None and c.status == RUNNABLE for c in children)
    assert harness.fake.of("events", "put_events")  # the parent's PENDING; the children publish from their inserts


def test_a_failing_record_is_reported_and_the_rest_of_the_batch_waits(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN a batch whose second record's effect fails (notifying the dependents of job b)
    def notify(job_id: str, succeeded: bool) -> None:
        if job_id == "b":
            raise RuntimeError("DynamoDB is having a bad day")

    monkeypatch.setattr(harness.rt.reactor, "notify_dependents", notify)
    first = a_job("a", status=RUNNABLE, version=1)
    running = a_running_job(job_id="b", version=2)
    done, _ = _transition(running, lifecycle.TaskStopped(1, 0))
    third = a_job("c", status=RUNNABLE, version=1)
    event = changes((None, first), (running, done), (None, third))

    # WHEN the batch is delivered
    result = harness.invoke("on_job_change", event)

    # THEN Lambda is told to retry from the failed record; what came before it was published, nothing after it
    failed_sequence = event["Records"][1]["dynamodb"]["SequenceNumber"]
    assert result == {"batchItemFailures": [{"itemIdentifier": failed_sequence}]}
    assert [json.loads(e["Detail"])["jobId"] for e in harness.fake.published()] == ["a"]


def test_when_eventbridge_refuses_the_record_is_retried(harness: Harness) -> None:
    harness.fake.fail.add(("events", "put_events"))
    event = changes((None, a_job("a", status=PENDING, pending=("x",), version=1)))

    result = harness.invoke("on_job_change", event)

    assert result == {"batchItemFailures": [{"itemIdentifier": event["Records"][0]["dynamodb"]["SequenceNumber"]}]}


def test_when_the_wake_cannot_be_sent_the_waking_record_is_retried(harness: Harness) -> None:
    harness.fake.fail.add(("sqs", "send_message"))
    event = changes(
        (None, a_job("p", status=PENDING, pending=("x",), version=1)), (None, a_job("r", status=RUNNABLE, version=1))
    )

    result = harness.invoke("on_job_change", event)

    assert result == {"batchItemFailures": [{"itemIdentifier": event["Records"][1]["dynamodb"]["SequenceNumber"]}]}


def _queue(harness: Harness, name: str = "q", state: str = "ENABLED") -> None:
    from chalicelib.domain.model import ComputeEnvironmentOrder, JobQueue

    arn = f"arn:aws:batch:{REGION}:{ACCOUNT}:job-queue/{name}"
    order = (ComputeEnvironmentOrder(1, f"arn:aws:batch:{REGION}:{ACCOUNT}:compute-environment/ce"),)
    queue = JobQueue(name, arn, 1, state, "VALID", "", NOW, compute_environment_order=order)
    harness.svc.repo.save_jq(queue)


def test_a_job_that_frees_capacity_wakes_the_dispatcher_only_when_a_job_waits(harness: Harness) -> None:
    # GIVEN a job that finished while nothing is RUNNABLE
    _queue(harness)
    running = a_running_job(job_id="r", version=2)
    done, _ = _transition(running, lifecycle.TaskStopped(1, 0))

    # WHEN its change comes through the stream: no wake, nothing would use the capacity
    harness.invoke("on_job_change", changes((running, done)))
    assert harness.fake.of("sqs", "send_message") == []

    # ... but with a job waiting (even in a queue of its own), the freed capacity wakes the dispatcher
    _queue(harness, "other")
    harness.svc.jobs.create_with_edges(a_job("waiting", status=RUNNABLE, queue="other"), [])
    harness.invoke("on_job_change", changes((running, done)))
    assert len(harness.fake.of("sqs", "send_message")) == 1


def test_a_job_waiting_in_a_disabled_queue_is_woken_for(harness: Harness) -> None:
    # GIVEN a RUNNABLE job in a DISABLED queue (which still runs the jobs it holds, domain/scheduling.py)
    _queue(harness, "off", state="DISABLED")
    harness.svc.jobs.create_with_edges(a_job("waiting", status=RUNNABLE, queue="off"), [])
    running = a_running_job(job_id="r", version=2)
    done, _ = _transition(running, lifecycle.TaskStopped(1, 0))

    # WHEN another job finishes THEN the freed capacity wakes the dispatcher for it
    harness.invoke("on_job_change", changes((running, done)))

    assert len(harness.fake.of("sqs", "send_message")) == 1


def test_a_job_left_in_a_queue_being_deleted_needs_no_wake(harness: Harness) -> None:
    from chalicelib.domain.model import DELETING

    _queue(harness, "gone", state="DISABLED")
    jq = harness.svc.repo.get_jq("gone")
    assert jq is not None
    harness.svc.repo.save_jq(dataclasses.replace(jq, status=DELETING))
    harness.svc.jobs.create_with_edges(a_job("waiting", status=RUNNABLE, queue="gone"), [])
    running = a_running_job(job_id="r", version=2)
    done, _ = _transition(running, lifecycle.TaskStopped(1, 0))

    harness.invoke("on_job_change", changes((running, done)))

    assert harness.fake.of("sqs", "send_message") == []


def test_when_the_check_for_waiting_jobs_fails_the_dispatcher_is_woken(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    def unavailable(*_: Any, **__: Any) -> Any:
        raise RuntimeError("DynamoDB is having a bad day")

    monkeypatch.setattr(harness.svc.repo, "list_jqs", unavailable)
    running = a_running_job(job_id="r", version=2)
    done, _ = _transition(running, lifecycle.TaskStopped(1, 0))

    assert harness.invoke("on_job_change", changes((running, done))) == {"batchItemFailures": []}
    assert len(harness.fake.of("sqs", "send_message")) == 1


# -- the invocation cache ---------------------------------------------------------------------------------------------


@dataclass
class CountingStore:
    store: SqliteItemStore
    reads: list[str] = field(default_factory=list)

    def __getattr__(self, name: str) -> Any:
        method = getattr(self.store, name)
        if name not in ("get", "query", "batch_get", "count"):
            return method

        def read(*args: Any, **kwargs: Any) -> Any:
            self.reads.append(f"{name}:{args[1] if name == 'query' else args[0]}")
            return method(*args, **kwargs)

        return read


def test_an_invocation_reads_each_resource_once(tmp_path: Path) -> None:
    from chalicelib.domain.model import ComputeEnvironment
    from chalicelib.store.repository import Repository, ce_item

    # GIVEN the runtime's store, counted
    counted = CountingStore(SqliteItemStore(str(tmp_path / "c.db")))
    cache = aws.InvocationCache(counted)  # type: ignore[arg-type]
    repo = Repository(cache)
    ce = ComputeEnvironment("ce", "arn:ce", "UNMANAGED", "ENABLED", "VALID", "", "uuid", NOW)
    counted.store.put(ce_item(ce), None)

    # WHEN one invocation lists the CEs and gets one twice, and reads a job twice
    with cache.scope():
        for _ in range(2):
            repo.list_ces(None, 1000)
            repo.get_ce("ce")
            cache.get("JOB#j", "")
        # THEN the resources were read once, the job every time
        assert counted.reads == ["query:CE", "get:CE", "get:JOB#j", "get:JOB#j"]
        # ... and a write to the CE partition is seen by the next read
        repo.save_ce(repo.get_ce("ce") or ce)
        assert repo.list_ces(None, 1000)[0].version == 2
        assert counted.reads[4:] == ["query:CE"]  # (the get before the save was still the cached one)

    # ... and outside an invocation (or in another thread) nothing is cached
    counted.reads.clear()
    repo.list_ces(None, 1000)
    repo.list_ces(None, 1000)
    assert counted.reads == ["query:CE", "query:CE"]
    counted.store.close()


# -- dispatch ---------------------------------------------------------------------------------------------------------


class Cycles:
    def __init__(self, placed: list[int | Exception]) -> None:
        self.placed = placed
        self.runs = 0

    def cycle(self) -> int:
        self.runs += 1
        result = self.placed.pop(0)
        if isinstance(result, Exception):
            raise result
        return result

    def cycles(self, stop: Any) -> int:
        """Dispatcher.cycles, with every cycle that placed jobs leaving more to place."""
        placed = 0
        while n := self.cycle():
            placed += n
            if stop():
                break
        return placed


def test_dispatch_cycles_until_nothing_more_is_placed(harness: Harness, monkeypatch: pytest.MonkeyPatch) -> None:
    cycles = Cycles([3, 1, 0])
    monkeypatch.setattr(harness.rt, "dispatcher", lambda: cycles)
    monkeypatch.setattr(aws_runtime, "RESERVE_MS", 0)  # chalice.test's Lambda context has 3 s

    harness.invoke("dispatch", harness.client.events.generate_sqs_event(['{"wake": true}'] * 3))

    assert cycles.runs == 3
    assert harness.fake.of("sqs", "send_message") == []


def test_a_failed_cycle_does_not_fail_the_wake(harness: Harness, monkeypatch: pytest.MonkeyPatch) -> None:
    # (failing would block the FIFO group for a visibility timeout; the sweep wakes the dispatcher every minute)
    cycles = Cycles([RuntimeError("throttled")])
    monkeypatch.setattr(harness.rt, "dispatcher", lambda: cycles)

    harness.invoke("dispatch", harness.client.events.generate_sqs_event(['{"wake": true}']))

    assert cycles.runs == 1


def test_dispatch_hands_over_when_its_time_runs_out() -> None:
    rt_calls: list[str] = []

    class Rt(AwsRuntime):
        def __init__(self) -> None:
            self.items = aws.InvocationCache(SqliteItemStore(":memory:"))

        def dispatcher(self) -> Any:
            return Cycles([2, 2, 2])

        def wake_dispatcher(self) -> None:
            rt_calls.append("wake")

    placed = Rt().on_dispatch(remaining_ms=lambda: aws.RESERVE_MS - 1)

    assert placed == 2 and rt_calls == ["wake"]


# -- task and instance events, sweeps, triggers ---------------------------------------------------------------------


def test_ecs_task_state_changes_reach_task_events(harness: Harness) -> None:
    envelope = harness.client.events.generate_cw_event(
        source="aws.ecs", detail_type="ECS Task State Change", detail={"group": "batchplane:j:1"}, resources=[]
    )

    harness.invoke("on_ecs_task_event", envelope)

    ((name, (svc, reactor, got)),) = harness.recorded.calls
    assert name == "on_ecs_task_event" and svc is harness.svc and isinstance(reactor, Reactor)
    assert got["detail"] == {"group": "batchplane:j:1"}


def test_the_ecs_rule_passes_on_only_the_task_states_that_change_a_job() -> None:
    # GIVEN the ECS rule as `make package` deploys it, and every state change ECS emits for a task that runs
    from moto.events.models import EventPattern

    from bench.aws_harness import ECS_TASK_STATES, Template, task_envelope

    cluster = f"arn:aws:ecs:{REGION}:{ACCOUNT}:cluster/batchplane"
    rule = EventPattern.load(json.dumps(Template(refs={("Cluster", "Arn"): cluster}).rule_pattern("on_ecs_task_event")))
    task = {"taskArn": f"{cluster}/t-1", "clusterArn": cluster, "group": "batchplane:j:1", "containers": []}

    # WHEN EventBridge matches them
    events = [task_envelope(task, last, desired=desired) for last, desired in ECS_TASK_STATES]
    passed = [state for state, event in zip(ECS_TASK_STATES, events, strict=True) if rule.matches_event(event)]

    # THEN only RUNNING (while meant to run) and STOPPED invoke the Lambda: the two that change a job
    assert passed == [("RUNNING", "RUNNING"), ("STOPPED", "STOPPED")]
    translated = [
        ecs_events.task_event(task_envelope(task, last, desired=desired)) for last, desired in ECS_TASK_STATES
    ]
    acting = [state for state, t in zip(ECS_TASK_STATES, translated, strict=True) if t is not None]
    assert set(passed) <= set(acting)
    # ... and not the tasks of another cluster, nor those batchplane did not start
    other = task_envelope(task, "STOPPED")
    assert not rule.matches_event(other | {"detail": {**other["detail"], "clusterArn": cluster + "-other"}})
    assert not rule.matches_event(other | {"detail": {**other["detail"], "group": "service:web"}})


def test_ec2_events_reach_task_events(harness: Harness) -> None:
    envelope = harness.client.events.generate_cw_event(
        source="aws.ec2",
        detail_type="EC2 Spot Instance Interruption Warning",
        detail={"instance-id": "i-0123456789abcdef0", "instance-action": "terminate"},
        resources=[],
    )

    harness.invoke("on_ec2_event", envelope)

    ((name, (_, _, got)),) = harness.recorded.calls
    assert name == "on_ec2_event" and got["detail"]["instance-id"] == "i-0123456789abcdef0"


def test_the_sweep_runs_then_wakes_the_dispatcher(harness: Harness) -> None:
    harness.invoke("sweep", harness.client.events.generate_cw_event("aws.events", "Scheduled Event", {}, []))

    ((name, (svc, _, now, policy)),) = harness.recorded.calls
    assert name == "sweep" and svc is harness.svc and isinstance(now, int)
    assert policy.remaining_ms is not None  # the Lambda's clock: the sweep's deletions stop short of its timeout
    assert len(harness.fake.of("sqs", "send_message")) == 1


def test_capacity_is_reconciled_with_an_autoscaling_client(harness: Harness) -> None:
    harness.invoke(
        "reconcile_capacity", harness.client.events.generate_cw_event("aws.events", "Scheduled Event", {}, [])
    )

    ((name, (svc, groups)),) = harness.recorded.calls
    assert name == "reconcile" and svc is harness.svc
    groups.client.describe_auto_scaling_groups()
    assert harness.fake.calls[-1][:2] == ("autoscaling", "describe_auto_scaling_groups")


def test_an_s3_object_created_event_reaches_the_triggers(harness: Harness) -> None:
    detail = {
        "bucket": {"name": "inbox"},
        "object": {"key": "data/file 1.csv", "size": 10, "sequencer": "00617F08299329D189"},
        "reason": "PutObject",
    }
    envelope = harness.client.events.generate_cw_event("aws.s3", "Object Created", detail, [])

    result = harness.invoke("on_object_created", envelope)

    ((name, (_, _, bucket, key, version)),) = harness.recorded.calls
    assert (name, bucket, key, version) == ("on_object_created", "inbox", "data/file 1.csv", "00617F08299329D189")
    assert result == ["job-a"]


def test_a_scheduler_invocation_reaches_the_triggers(harness: Harness) -> None:
    result = harness.invoke("on_schedule", {"trigger": "nightly"})

    ((name, (_, _, trigger)),) = harness.recorded.calls
    assert (name, trigger, result) == ("on_schedule", "nightly", "job-b")


def test_a_scheduler_invocation_without_a_trigger_name_does_nothing(harness: Harness) -> None:
    assert harness.invoke("on_schedule", {"something": "else"}) is None
    assert harness.recorded.calls == []


# -- configuration ----------------------------------------------------------------------------------------------------


def test_the_configuration_is_read_from_the_lambda_environment() -> None:
    config = AwsConfig.from_environment(
        {
            "BATCHPLANE_TABLE": "stack-JobsTable-1",
            "AWS_REGION": "eu-west-1",
            "BATCHPLANE_ACCOUNT_ID": "111122223333",
            "BATCHPLANE_CLUSTER": "stack-Cluster-1",
            "BATCHPLANE_DISPATCH_QUEUE_URL": QUEUE_URL,
            "BATCHPLANE_LOG_GROUP": "/aws/batch/job",
            "BATCHPLANE_EXECUTION_ROLE_ARN": "arn:aws:iam::111122223333:role/exec",
        }
    )
    assert (config.table, config.region, config.account, config.cluster) == (
        "stack-JobsTable-1",
        "eu-west-1",
        "111122223333",
        "stack-Cluster-1",
    )
    assert config.ecs_precheck is False and config.event_source == "batchplane" and config.event_bus == "default"
    assert config.state_change_events == "TERMINAL"  # the default (docs/adr/0010)


def test_the_state_change_events_setting_is_checked() -> None:
    env = {"BATCHPLANE_TABLE": "t", "BATCHPLANE_STATE_CHANGE_EVENTS": " all "}
    assert AwsConfig.from_environment(env).state_change_events == "ALL"
    with pytest.raises(ValueError, match="ALL, TERMINAL, NONE"):
        AwsConfig.from_environment({**env, "BATCHPLANE_STATE_CHANGE_EVENTS": "SOME"})


def test_no_aws_client_is_made_until_an_entry_point_needs_one(tmp_path: Path) -> None:
    made: list[str] = []

    class Session:
        def client(self, service: str, **_: Any) -> Any:
            made.append(service)
            return FakeAws().client(service)

    store = SqliteItemStore(str(tmp_path / "s.db"))
    config = AwsConfig(table="t", region=REGION, account=ACCOUNT, cluster="c", dispatch_queue_url=QUEUE_URL)
    plane.build_aws(config, Clients(REGION, Session), store=store)
    store.close()

    assert made == []


def test_the_local_runtime_is_not_the_aws_one() -> None:
    plane.configure_aws(None)
    assert plane.aws_active() is False


def test_cancelling_an_array_parent_reaches_its_children_through_the_stream(harness: Harness) -> None:
    # GIVEN an array parent whose two children wait in RUNNABLE
    parent = harness.svc.jobs.create_with_edges(a_parent(2, created=2), [])
    for i in range(2):
        harness.svc.jobs.create_with_edges(a_child("parent", i, status=RUNNABLE), [])

    # WHEN CancelJob marks the parent (the API Lambda's one write) and the stream delivers that change
    cancelled = harness.rt.reactor.apply(parent.job_id, lifecycle.Cancel("not needed"))
    assert cancelled is not None and cancelled.is_cancelled
    harness.invoke("on_job_change", changes((parent, cancelled)))

    # THEN the children are cancelled ...
    children = [harness.svc.jobs.get(f"parent:{i}") for i in range(2)]
    assert [c.status if c else None for c in children] == [FAILED, FAILED]

    # ... and when their own changes come through the stream, the parent counts them and fails
    before = [replace(c, status=RUNNABLE, version=c.version - 1) for c in children if c is not None]
    harness.invoke("on_job_change", changes(*[(b, c) for b, c in zip(before, children, strict=True)]))
    after = harness.svc.jobs.get(parent.job_id)
    assert after is not None and after.status == FAILED and after.status_reason == "not needed"


def test_with_stream_effects_the_reactor_runs_only_launch_and_stop_inline(tmp_path: Path) -> None:
    from chalicelib.compute.port import NullLauncher
    from chalicelib.store.repository import Repository

    # GIVEN the AWS routing on a reactor over a plain store
    published: list[str] = []

    class Sink:
        def publish(self, detail_type: str, resources: list[str], detail: dict[str, Any]) -> None:
            published.append(detail["status"])

    store = SqliteItemStore(str(tmp_path / "r.db"))
    launcher, woken = NullLauncher(), []
    svc = Services(
        repo=Repository(store),
        events=Sink(),
        launcher=launcher,
        wake=lambda: woken.append(1),
        effects_from_stream=True,
    )
    reactor = Reactor(svc, launcher)
    job = svc.jobs.create_with_edges(a_job(status=RUNNABLE), [])

    # WHEN the job is claimed, and later terminated while running
    reactor.apply(job.job_id, lifecycle.Claim("ce", "t-1", "sleep/default/t-1"))
    reactor.apply(job.job_id, lifecycle.TaskStarted(1))
    reactor.apply(job.job_id, lifecycle.Terminate("stop it"))

    # THEN the launch and the stop happened inline, and nothing the stream carries did
    assert [s.key for s in launcher.launched] == [f"{job.job_id}#1"]
    assert launcher.stopped == [(job.job_id, 1, "stop it")]
    assert published == [] and woken == []
    store.close()


def test_schedule_triggers_are_registered_with_eventbridge_scheduler(tmp_path: Path) -> None:
    from chalicelib.events.schedules import EventBridgeSchedules

    fake = FakeAws()
    target = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:batchplane-on-schedule"
    role = f"arn:aws:iam::{ACCOUNT}:role/batchplane-SchedulerRole-1"
    config = AwsConfig.from_environment(
        {
            "BATCHPLANE_TABLE": "t",
            "AWS_REGION": REGION,
            "BATCHPLANE_SCHEDULE_TARGET_ARN": target,
            "BATCHPLANE_SCHEDULER_ROLE_ARN": role,
            "BATCHPLANE_SCHEDULE_GROUP": "batchplane-stack",
        }
    )
    store = SqliteItemStore(str(tmp_path / "s.db"))
    rt = plane.build_aws(config, Clients(REGION, lambda: fake), store=store)

    schedules = rt.services.schedules
    assert isinstance(schedules, EventBridgeSchedules)
    assert (schedules.target_arn, schedules.role_arn, schedules.group) == (target, role, "batchplane-stack")
    assert fake.calls == []  # the scheduler client is made on first use
    schedules.unregister("nightly")
    assert fake.calls == [("scheduler", "delete_schedule", {"Name": "nightly", "GroupName": "batchplane-stack"})]
    store.close()


def test_a_new_container_reindexes_active_jobs_of_an_earlier_version_before_serving(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN a RUNNING job indexed the way versions before the shared ACTIVE partition did (docs/adr/0013)
    _queue(harness)
    item = job_item(a_running_job(job_id="old", queue="q"))
    assert item.gsi1 is not None and item.gsi1[0] == "Q#q#ACTIVE"
    harness.rt.store.put(replace(item, gsi1=("Q#q#RUNNING", item.gsi1[1])), None)
    assert [j.job_id for j in harness.svc.jobs.iter_statuses("q", (RUNNING,))] == []  # invisible to the dispatcher
    # WHEN a Lambda container creates its runtime
    plane.configure_aws(None)
    monkeypatch.setattr(plane, "build_aws", lambda config: harness.rt)
    monkeypatch.setattr(plane.AwsConfig, "from_environment", classmethod(lambda cls: harness.rt.config))
    assert plane.aws_runtime() is harness.rt
    # THEN the job is active again for everything that reads the active jobs, before the first sweep
    assert [j.job_id for j in harness.svc.jobs.iter_statuses("q", (RUNNING,))] == ["old"]
    assert harness.rt.reindex_legacy() == 0  # nothing left to move
