"""Issue 12, item 20: what a fuzzer found, each as raw HTTP against a running server. No 5xx, no dropped connection:
every request is answered with an AWS-style 4xx (ClientException for Batch, the Logs protocol's own types at `/`),
with a request id, and a rejected request writes nothing.
"""

from __future__ import annotations

import base64
import contextlib
import json
from typing import Any

import pytest

from app import app
from chalicelib.api import safe_json, wire
from chalicelib.api.operations import EXTENSIONS
from chalicelib.compute.logs_port import LOG_GROUP, LogStore
from chalicelib.runtime.local import LocalRuntime
from chalicelib.runtime.server import ApiServer
from tests.functional.builders import BatchClient, container, make_fargate_ce, make_jd, make_queue, nothing_written
from tests.functional.raw_http import Answer, assert_aws_error, exchange, exchange_many, request

LOGS_TARGET = "Logs_20140328."
LOGS_TYPE = "application/x-amz-json-1.1"
BATCH_PATHS = sorted(path for (method, path) in wire.operations_by_path() if method == "POST")
EXTENSION_PATHS = sorted(ext.path for ext in EXTENSIONS.values())
LOGS_OPERATIONS = ["GetLogEvents", "FilterLogEvents", "DescribeLogStreams", "DescribeLogGroups"]
STREAM = "jd/default/0000"


def post(endpoint: str, path: str, body: bytes | dict[str, Any], **kwargs: Any) -> Answer:
    return exchange(endpoint, request("POST", path, body, **kwargs))


def logs_call(endpoint: str, operation: str, body: bytes | dict[str, Any]) -> Answer:
    data = request("POST", "/", body, {"X-Amz-Target": LOGS_TARGET + operation}, content_type=LOGS_TYPE)
    return exchange(endpoint, data)


def surrogate_json(obj: dict[str, Any]) -> bytes:
    """JSON whose strings may hold lone surrogates, written as \\ud800 escapes (json.dumps escapes them)."""
    return json.dumps(obj).encode()


@pytest.fixture
def world(batch: BatchClient) -> dict[str, str]:
    make_fargate_ce(batch, "ce")
    make_queue(batch, "q", ["ce"])
    make_jd(batch, "jd")
    return {"queue": "q", "jd": "jd"}


# -- nesting -----------------------------------------------------------------------------------------------------


def test_a_deeply_nested_body_is_a_client_error_on_every_operation(endpoint: str) -> None:
    nested = b"[" * 1000 + b"]" * 1000
    for path in BATCH_PATHS + EXTENSION_PATHS:
        assert_aws_error(post(endpoint, path, nested), 400, "ClientException")
    for operation in LOGS_OPERATIONS:
        assert_aws_error(logs_call(endpoint, operation, nested), 400, "SerializationException")


def test_nesting_deeper_than_the_bound_is_refused_and_within_it_is_read(endpoint: str) -> None:
    def deep(levels: int) -> bytes:
        return b'{"jobQueues": ["q"], "x": ' + b"[" * (levels - 1) + b"]" * (levels - 1) + b"}"

    assert post(endpoint, "/v1/describejobqueues", deep(safe_json.MAX_DEPTH)).status == 200
    message = assert_aws_error(post(endpoint, "/v1/describejobqueues", deep(safe_json.MAX_DEPTH + 1)), 400)
    assert f"deeper than {safe_json.MAX_DEPTH} levels" in message


def test_a_deeply_nested_next_token_is_an_invalid_token(endpoint: str, runtime: LocalRuntime) -> None:
    token = base64.urlsafe_b64encode(b'{"c": ' + b"[" * 1000 + b"]" * 1000 + b"}").decode()
    for path in ("/v1/describejobqueues", "/v1/listschedulingpolicies", "/v1/listtriggers"):
        message = assert_aws_error(post(endpoint, path, {"nextToken": token}), 400, "ClientException")
        assert "nextToken" in message
    store = runtime.services.logs
    assert store is not None
    store.append(STREAM, [(1, "a line")])
    body = {"logGroupName": LOG_GROUP, "nextToken": token}
    for operation in ("DescribeLogStreams", "FilterLogEvents"):
        message = assert_aws_error(logs_call(endpoint, operation, body), 400, "InvalidParameterException")
        assert "nextToken" in message


# -- text that cannot be encoded ---------------------------------------------------------------------------------


def test_a_lone_surrogate_anywhere_is_a_client_error_naming_the_member(
    endpoint: str, batch: BatchClient, world: dict[str, str]
) -> None:
    cases = [
        ("/v1/deletejobqueue", {"jobQueue": "q\ud800"}, "jobQueue"),
        ("/v1/describejobdefinitions", {"jobDefinitionName": "jd\ud800"}, "jobDefinitionName"),
        ("/v1/describejobdefinitions", {"jobDefinitions": ["jd", "\udfff"]}, "jobDefinitions[1]"),
        ("/v1/submitjob", {"jobName": "a", "jobQueue": "q", "jobDefinition": "jd", "tags": {"k": "\ud83d"}}, "tags.k"),
        ("/v1/submitjob", {"jobName": "a", "jobQueue": "q", "jobDefinition": "jd", "x\ud800": 1}, "member name"),
        (
            "/v1/createtrigger",
            {
                "triggerName": "t",
                "jobQueue": "q",
                "jobDefinition": "jd",
                "jobName": "n",
                "source": {"s3": {"bucket": "b", "prefix": "in/\ud800"}},
            },
            "source.s3.prefix",
        ),
    ]
    for path, body, member in cases:
        with nothing_written(batch):
            message = assert_aws_error(post(endpoint, path, surrogate_json(body)), 400, "ClientException")
        assert member in message and "lone surrogate" in message, message
    assert batch.list_jobs(jobQueue="q", jobStatus="SUBMITTED")["jobSummaryList"] == []
    triggers = post(endpoint, "/v1/listtriggers", {})
    assert triggers.status == 200 and triggers.json()["triggers"] == []


def test_terminate_job_refuses_a_reason_it_could_not_store(
    endpoint: str, batch: BatchClient, world: dict[str, str]
) -> None:
    make_jd(batch, "sleeper", containerProperties=container(command=["sleep", "30"]))
    job_id = batch.submit_job(jobName="j", jobQueue="q", jobDefinition="sleeper")["jobId"]
    answer = post(endpoint, "/v1/terminatejob", surrogate_json({"jobId": job_id, "reason": "stop \ud800"}))
    assert "reason" in assert_aws_error(answer, 400, "ClientException")
    job = batch.describe_jobs(jobs=[job_id])["jobs"][0]
    assert job["status"] != "FAILED" and not job.get("statusReason", "").startswith("stop"), job


def test_a_lone_surrogate_in_a_logs_request_is_the_logs_protocols_error(endpoint: str) -> None:
    answer = logs_call(endpoint, "GetLogEvents", surrogate_json({"logGroupName": LOG_GROUP, "logStreamName": "\ud800"}))
    assert "logStreamName" in assert_aws_error(answer, 400, "SerializationException")


def test_bytes_that_are_not_utf8_are_not_json(endpoint: str) -> None:
    assert_aws_error(post(endpoint, "/v1/describejobqueues", b'{"jobQueues": ["\xff\xfe"]}'), 400, "ClientException")


# -- numbers in text ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("ref", ["jd:\u00b2", "jd:" + "1" * 5000, "jd:\u0661", "jd:2147483648", "jd:0"])
def test_a_job_definition_revision_that_is_not_a_decimal_integer_is_a_client_error(
    endpoint: str, batch: BatchClient, world: dict[str, str], ref: str
) -> None:
    body = {"jobName": "a", "jobQueue": "q", "jobDefinition": ref}
    message = assert_aws_error(post(endpoint, "/v1/submitjob", body), 400, "ClientException")
    assert "revision must be a positive 32-bit integer" in message
    describe = post(endpoint, "/v1/describejobdefinitions", {"jobDefinitions": [ref]})
    assert describe.status < 500, describe


def test_array_child_ids_with_odd_indexes_are_simply_not_found(endpoint: str) -> None:
    for job_id in ("x:" + "1" * 5000, "x:\u00b2", "x:" + "9" * 30):
        answer = post(endpoint, "/v1/describejobs", {"jobs": [job_id]})
        assert answer.status == 200 and answer.json() == {"jobs": []}, answer


def test_list_jobs_time_filters_take_only_decimal_digits(endpoint: str, world: dict[str, str]) -> None:
    for value in ("\u00b2", "1" * 5000):
        body = {"jobQueue": "q", "filters": [{"name": "AFTER_CREATED_AT", "values": [value]}]}
        assert "epoch milliseconds" in assert_aws_error(post(endpoint, "/v1/listjobs", body), 400)


def test_a_get_log_events_token_with_odd_digits_is_invalid(endpoint: str, runtime: LocalRuntime) -> None:
    store: LogStore | None = runtime.services.logs
    assert store is not None
    store.append(STREAM, [(1, "a line")])
    for token in ("f/\u00b2", "b/" + "1" * 5000, "f/-1", "x/1"):
        body = {"logGroupName": LOG_GROUP, "logStreamName": STREAM, "nextToken": token}
        message = assert_aws_error(logs_call(endpoint, "GetLogEvents", body), 400, "InvalidParameterException")
        assert "nextToken" in message


# -- members the model does not require ----------------------------------------------------------------------------


def test_an_environment_variable_without_a_name_is_a_client_error(
    endpoint: str, batch: BatchClient, world: dict[str, str]
) -> None:
    submit = {"jobName": "a", "jobQueue": "q", "jobDefinition": "jd", "containerOverrides": {"environment": [{}]}}
    message = assert_aws_error(post(endpoint, "/v1/submitjob", submit), 400, "ClientException")
    assert "containerOverrides.environment[0].name is required" in message
    register = {
        "jobDefinitionName": "jd2",
        "type": "container",
        "containerProperties": {"image": "busybox", "command": ["true"], "environment": [{"value": "v"}]},
    }
    with nothing_written(batch):
        message = assert_aws_error(post(endpoint, "/v1/registerjobdefinition", register), 400, "ClientException")
    assert "containerProperties.environment[0].name is required" in message


# -- framing -----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("length", ["abc", "", "1.5", "-1", "0x10", "\u00b2".encode().decode("latin-1"), "2, 3"])
def test_a_content_length_that_is_not_one_integer_is_a_client_error(endpoint: str, length: str) -> None:
    answer = exchange(endpoint, request("POST", "/v1/describejobqueues", b"{}", length=length))
    assert "Content-Length" in assert_aws_error(answer, 400, "ClientException")
    assert answer.headers.get("connection") == "close"


def test_a_body_over_the_bound_is_refused_before_it_is_read(endpoint: str) -> None:
    for length in (str(safe_json.MAX_BODY_BYTES + 1), "9" * 18, "9" * 40):
        answer = exchange(endpoint, request("POST", "/v1/submitjob", None, length=length))
        if len(length) <= 18:
            assert "at most" in assert_aws_error(answer, 413, "ClientException")
        else:
            assert_aws_error(answer, 400, "ClientException")
    logs = exchange(endpoint, request("POST", "/", None, length=str(safe_json.MAX_BODY_BYTES + 1)))
    assert_aws_error(logs, 413, "SerializationException")


def test_a_body_shorter_than_its_content_length_is_answered_408_after_the_timeout() -> None:
    server = ApiServer(app, "127.0.0.1", 0, request_timeout=0.5)
    server.start()
    try:
        answer = exchange(server.endpoint, request("POST", "/v1/describejobqueues", b"{", length="10"))
        assert_aws_error(answer, 408, "ClientException")
    finally:
        server.stop()


def test_a_chunked_body_is_read_and_a_malformed_one_refused(endpoint: str) -> None:
    head = "POST /v1/describejobqueues HTTP/1.1\r\nHost: b\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    good = exchange(endpoint, head.encode() + b'5\r\n{"job\r\nc\r\nQueues": []}\r\n0\r\n\r\n')
    assert good.status == 200 and good.json()["jobQueues"] == []
    for bad in (b"zz\r\n{}\r\n0\r\n\r\n", b"2\r\n{}XX0\r\n\r\n"):
        assert_aws_error(exchange(endpoint, head.encode() + bad), 400, "ClientException")
    both = head.replace("Connection", "Content-Length: 2\r\nConnection")
    assert_aws_error(exchange(endpoint, both.encode() + b"2\r\n{}\r\n0\r\n\r\n"), 400, "ClientException")


def test_a_keep_alive_connection_survives_chunked_and_error_answers(endpoint: str) -> None:
    import http.client

    from tests.functional.raw_http import address

    conn = http.client.HTTPConnection(*address(endpoint), timeout=10)
    try:
        for body in (b"{}", b"[", b"{}"):
            conn.request(
                "POST",
                "/v1/describejobqueues",
                body=iter([body]),
                headers={"Content-Type": "application/json", "X-Amz-Date": "20260101T000000Z"},
            )
            response = conn.getresponse()
            response.read()
            assert response.status in (200, 400) and response.getheader("x-amzn-RequestId")
    finally:
        conn.close()


# -- http.server's own answers, Chalice's, and HEAD --------------------------------------------------------------


def test_http_servers_refusals_are_json_with_a_request_id(endpoint: str) -> None:
    long_uri = exchange(endpoint, b"GET /" + b"a" * 70_000 + b" HTTP/1.1\r\nHost: b\r\n\r\n")
    assert_aws_error(long_uri, 414, "ClientException")
    headers = b"".join(b"X-H%d: 1\r\n" % i for i in range(120))
    assert_aws_error(exchange(endpoint, b"POST /v1/listjobs HTTP/1.1\r\n" + headers + b"\r\n"), 431, "ClientException")
    long_header = b"POST /v1/listjobs HTTP/1.1\r\nX-Long: " + b"a" * 70_000 + b"\r\n\r\n"
    assert_aws_error(exchange(endpoint, long_header), 431, "ClientException")
    for line in (b"FOO /v1/listjobs HTTP/1.1", b"TRACE / HTTP/1.1"):
        assert_aws_error(exchange(endpoint, line + b"\r\nHost: b\r\n\r\n"), 404, "UnknownOperationException")
    for line in (b"GET / HTTP/9.9", b"GET / HTTP/x", b"\x00\xff garbage", b"GET"):
        assert_aws_error(exchange(endpoint, line + b"\r\n\r\n"), 400)


def test_unrouted_and_unsupported_requests_carry_a_request_id(endpoint: str) -> None:
    unknown = post(endpoint, "/nope", b"{}")
    assert_aws_error(unknown, 404, "UnknownOperationException")
    for method in ("GET", "PUT", "DELETE", "PATCH", "OPTIONS"):
        answer = exchange(endpoint, request(method, "/v1/describejobqueues", None))
        assert "no such operation" in assert_aws_error(answer, 404, "UnknownOperationException")
    media = post(endpoint, "/v1/describejobqueues", b"{}", content_type="application/xml")
    assert_aws_error(media, 415, "ClientException")
    logs_media = exchange(endpoint, request("POST", "/", b"{}", content_type="application/xml"))
    assert_aws_error(logs_media, 415, "SerializationException")


def test_a_head_answer_has_no_body(endpoint: str) -> None:
    for path in ("/v1/describejobqueues", "/", "/nope", "/v1/tags/arn"):
        answer = exchange(endpoint, request("HEAD", path, None, length=None), method="HEAD")
        assert_aws_error(answer, 404, "UnknownOperationException", head=True)


def test_the_server_still_answers_after_every_refusal(endpoint: str, batch: BatchClient) -> None:
    for data in (b"\x00\xff\r\n\r\n", request("POST", "/v1/listjobs", b"{}", length="abc"), b"[" * 10):
        with contextlib.suppress(TimeoutError):  # b"[" * 10 is half a request line: the server waits for the rest
            exchange(endpoint, data, timeout=2)
    assert batch.describe_job_queues()["jobQueues"] == []


def test_a_refused_request_with_a_body_does_not_desynchronise_a_keep_alive_connection(endpoint: str) -> None:
    # Found by the fuzzer: OPTIONS was refused before its body was read, and the body was read as the next request
    first = b"OPTIONS /v1/describejobqueues HTTP/1.1\r\nHost: b\r\nContent-Length: 2\r\n\r\n{}"
    second = b"POST /v1/describejobqueues HTTP/1.1\r\nHost: b\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}"
    answers = exchange_many(endpoint, first + second, ["OPTIONS", "POST"])
    assert_aws_error(answers[0], 404, "UnknownOperationException")
    assert len(answers) == 2 and answers[1].status == 200 and answers[1].json()["jobQueues"] == [], answers
