"""Issue 12, item 20 on the AWS runtime: the body-level cases the local server refuses are refused the same way when
the request arrives as a Lambda event (API Gateway's HTTP API, payload 1.0, and the function URL, payload 2.0)."""

from __future__ import annotations

import base64
import json

import pytest

from tests.functional.test_aws_wiring import _queue, function_url_event, http_api_event, serve, serve_url
from tests.functional.test_aws_wiring import harness as aws_harness  # noqa: F401 - the fixture, by its other name

NESTED = "[" * 1000 + "]" * 1000
DEEP_TOKEN = base64.urlsafe_b64encode(b'{"c": ' + b"[" * 1000 + b"]" * 1000 + b"}").decode()


@pytest.mark.parametrize(
    ("operation", "body", "fragment"),
    [
        ("describejobqueues", NESTED, "deeper than 64 levels"),
        ("describejobqueues", json.dumps({"nextToken": DEEP_TOKEN}), "nextToken"),
        ("deletejobqueue", json.dumps({"jobQueue": "q\ud800"}), "jobQueue must be valid Unicode text"),
        ("terminatejob", json.dumps({"jobId": "j", "reason": "\ud800"}), "reason must be valid Unicode text"),
        ("submitjob", json.dumps({"jobName": "a", "jobQueue": "q", "jobDefinition": "jd:\u00b2"}), "revision"),
        ("submitjob", json.dumps({"jobName": "a", "jobQueue": "q", "jobDefinition": "jd:" + "1" * 5000}), "revision"),
        (
            "submitjob",
            json.dumps(
                {"jobName": "a", "jobQueue": "q", "jobDefinition": "jd", "containerOverrides": {"environment": [{}]}}
            ),
            "environment[0].name is required",
        ),
    ],
)
def test_body_level_refusals_are_the_same_through_the_lambda_adapter(
    request: pytest.FixtureRequest, operation: str, body: str, fragment: str
) -> None:
    _queue(request.getfixturevalue("aws_harness"))
    for event, answer in (
        (http_api_event("POST", f"/v1/{operation}", "/v1/{operation}", body), serve),
        (function_url_event("POST", f"/v1/{operation}", body), lambda e: _status_body(serve_url(e))),
    ):
        status, parsed = answer(event)
        assert status == 400, (status, parsed)
        assert parsed["__type"] == "ClientException" and fragment in parsed["message"], parsed


@pytest.mark.usefixtures("aws_harness")
def test_logs_refusals_are_the_logs_protocols_through_the_lambda_adapter() -> None:
    headers = {"content-type": "application/x-amz-json-1.1", "x-amz-target": "Logs_20140328.GetLogEvents"}
    status, parsed = serve(http_api_event("POST", "/", "/", NESTED, headers))
    assert status == 400 and parsed["__type"] == "SerializationException", parsed


@pytest.mark.usefixtures("aws_harness")
def test_an_unknown_route_is_answered_with_a_request_id() -> None:
    response = serve_url(function_url_event("GET", "/v1/describejobqueues"))
    assert response["statusCode"] == 404
    assert response["headers"]["x-amzn-ErrorType"] == "UnknownOperationException"
    assert response["headers"]["x-amzn-RequestId"]
    body = json.loads(response["body"])
    assert body["__type"] == "UnknownOperationException" and "GET /v1/describejobqueues" in body["message"]


def _status_body(response: dict[str, object]) -> tuple[int, dict[str, str]]:
    return int(str(response["statusCode"])), json.loads(str(response["body"]))


@pytest.mark.usefixtures("aws_harness")
def test_chalices_own_refusals_are_typed_with_a_request_id() -> None:
    # A content type no route takes: Chalice answers 415 {"Code", "Message"} itself, before the gateway
    for path, error_type in (("/v1/describejobqueues", "ClientException"), ("/", "SerializationException")):
        event = function_url_event("POST", path, "{}", {"content-type": "application/xml"})
        response = serve_url(event)
        assert response["statusCode"] == 415, response
        assert response["headers"]["x-amzn-ErrorType"] == error_type and response["headers"]["x-amzn-RequestId"]
        body = json.loads(response["body"])
        assert body["__type"] == error_type and "application/xml" in body["message"], body
