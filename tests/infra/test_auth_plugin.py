"""The auth plug-in: a stock boto3 `batch` client signs batchplane calls for API Gateway (`execute-api`) or for the
stack's function URL (`lambda`).

Each test sends one real botocore request whose transport is stubbed (a `before-send` handler answers it), and
reads the credential scope of the Authorization header the client computed.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any

import boto3
import pytest
from botocore.awsrequest import AWSResponse
from botocore.hooks import HierarchicalEmitter

from chalicelib import auth_plugin

API = "https://a1b2c3d4e5.execute-api.eu-west-1.amazonaws.com/api"
REGION = "eu-west-1"
SCOPE = re.compile(r"Credential=[^/]+/\d{8}/([a-z0-9-]+)/([a-z0-9-]+)/aws4_request")


class _Raw:
    def stream(self, **_: Any) -> Any:
        yield b'{"jobQueues": []}'


def _session() -> boto3.session.Session:
    return boto3.session.Session(aws_access_key_id="AKIDEXAMPLE", aws_secret_access_key="secret", region_name=REGION)


def _signed_call(session: boto3.session.Session, endpoint: str | None) -> Any:
    """The request a DescribeJobQueues call sent, as signed."""
    client = session.client("batch", endpoint_url=endpoint)
    seen: list[Any] = []

    def answer(request: Any, **_: Any) -> AWSResponse:
        seen.append(request)
        return AWSResponse(request.url, 200, {"Content-Type": "application/json"}, _Raw())

    client.meta.events.register("before-send.batch", answer)
    client.describe_job_queues()
    return seen[0]


def _scope_of_call(session: boto3.session.Session, endpoint: str | None) -> tuple[str, str, str]:
    """(region, service, URL) of the credential scope a DescribeJobQueues call was signed with."""
    request = _signed_call(session, endpoint)
    auth = request.headers["Authorization"].decode()
    match = SCOPE.search(auth)
    assert match is not None, auth
    return match.group(1), match.group(2), request.url


def test_a_registered_session_signs_batchplane_calls_for_execute_api() -> None:
    # GIVEN a boto3 session with the plug-in registered
    session = _session()
    auth_plugin.register(session)

    # WHEN a stock batch client calls a deployed batchplane (API Gateway endpoint, stage path /api)
    region, service, url = _scope_of_call(session, API)

    # THEN API Gateway's IAM authorizer gets what it checks: scope <region>/execute-api, the stage path signed
    assert (region, service) == (REGION, "execute-api")
    assert url == f"{API}/v1/describejobqueues"


@pytest.mark.parametrize(
    ("endpoint", "service", "path"),
    [
        # the stack's HTTP API (ADR 0012): same host form, $default stage (no path), the same execute-api signature
        ("https://a1b2c3d4e5.execute-api.eu-west-1.amazonaws.com", "execute-api", "/v1/describejobqueues"),
        # its function URL (ADR 0014): Lambda checks SigV4 for the service `lambda`; the output ends with "/"
        ("https://abcdefghijklmnopqrstuvwxyz012345.lambda-url.eu-west-1.on.aws/", "lambda", "v1/describejobqueues"),
    ],
)
def test_calls_through_the_other_endpoints_are_signed_for_their_service(endpoint: str, service: str, path: str) -> None:
    session = _session()
    auth_plugin.register(session)

    assert _scope_of_call(session, endpoint) == (REGION, service, f"{endpoint}{path}")


def test_function_url_requests_carry_the_signed_hash_of_their_body() -> None:
    import hashlib

    session = _session()
    auth_plugin.register(session)

    request = _signed_call(session, "https://abc123.lambda-url.eu-west-1.on.aws")

    # the body's SHA-256 in X-Amz-Content-SHA256, among the signed headers
    body = request.body if isinstance(request.body, bytes) else (request.body or "").encode()
    assert request.headers["X-Amz-Content-SHA256"].decode() == hashlib.sha256(body).hexdigest()
    assert "x-amz-content-sha256" in request.headers["Authorization"].decode().split("SignedHeaders=")[1]
    # ... and API Gateway requests are signed as before, without it
    assert "X-Amz-Content-SHA256" not in _signed_call(session, API).headers


def test_calls_to_aws_batch_itself_keep_the_batch_signature() -> None:
    session = _session()
    auth_plugin.register(session)

    _, service, url = _scope_of_call(session, None)

    assert service == "batch"
    assert url.startswith(f"https://batch.{REGION}.amazonaws.com/")


def test_without_the_plug_in_a_batch_client_signs_for_batch() -> None:
    _, service, _ = _scope_of_call(_session(), API)

    assert service == "batch"


def test_custom_domain_names_are_opted_in_by_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(auth_plugin.ENV_ENDPOINTS, "batch.example.com, other.example.org")
    session = _session()
    auth_plugin.register(session)

    _, service, _ = _scope_of_call(session, "https://batch.example.com")

    assert service == "execute-api"


def test_custom_domain_names_can_be_passed_to_register() -> None:
    session = _session()
    auth_plugin.register(session, hosts=["https://batch.example.com/prod"])

    assert _scope_of_call(session, "https://batch.example.com/prod")[1] == "execute-api"
    assert _scope_of_call(session, "https://elsewhere.example.com")[1] == "batch"


def test_registering_twice_installs_one_handler() -> None:
    emitter = HierarchicalEmitter()  # what a botocore Session registers on

    auth_plugin.register(emitter)
    auth_plugin.register(emitter)

    responses = emitter.emit("before-sign.batch.SubmitJob", request=None)
    assert len(responses) == 1


def test_the_aws_cli_entry_point_registers_on_the_cli_emitter() -> None:
    # GIVEN the emitter the AWS CLI (v1) hands to `awscli_initialize` of each [plugins] module
    emitter = HierarchicalEmitter()
    auth_plugin.awscli_initialize(emitter)

    # WHEN the CLI's client signs a batch call to a batchplane endpoint
    class Request:
        url = f"{API}/v1/submitjob"
        context: dict[str, Any] = {}

    request = Request()
    emitter.emit("before-sign.batch.SubmitJob", request=request)

    # THEN its signing name is execute-api
    assert request.context["signing"]["signing_name"] == "execute-api"


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://abc123.execute-api.us-east-1.amazonaws.com/api/v1/submitjob", True),
        ("https://abc123.execute-api.cn-north-1.amazonaws.com.cn/api/v1/submitjob", True),
        ("https://batch.us-east-1.amazonaws.com/v1/submitjob", False),
        ("http://127.0.0.1:8000/v1/submitjob", False),
        ("https://execute-api.us-east-1.amazonaws.com.evil.example/v1", False),
        ("https://abc123.lambda-url.us-east-1.on.aws/v1/submitjob", True),
        ("https://abc123.lambda-url.us-east-1.on.aws.evil.example/v1", False),
        ("https://lambda.us-east-1.amazonaws.com/2015-03-31/functions", False),
    ],
)
def test_which_endpoints_are_batchplane(url: str, expected: bool) -> None:
    assert auth_plugin.is_batchplane_endpoint(url) is expected


@pytest.mark.parametrize(
    ("url", "service"),
    [
        ("https://abc123.lambda-url.us-east-1.on.aws/v1/submitjob", "lambda"),
        ("https://abc123.execute-api.us-east-1.amazonaws.com/v1/submitjob", "execute-api"),
        ("https://batch.us-east-1.amazonaws.com/v1/submitjob", None),
    ],
)
def test_each_endpoint_is_signed_for_the_service_that_checks_it(url: str, service: str | None) -> None:
    assert auth_plugin.signing_name_for(url) == service


@pytest.mark.parametrize(
    ("endpoint", "service"),
    [
        ("https://abc123.lambda-url.eu-west-1.on.aws/", "lambda"),
        (API, "execute-api"),
        ("http://127.0.0.1:8000", "batch"),
    ],
)
def test_the_cli_signs_its_own_operations_for_the_endpoints_service(
    endpoint: str, service: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import io
    import urllib.request

    from chalicelib.console.client import Api

    # GIVEN the `batchplane` CLI's API on an endpoint, with credentials
    sent: list[Any] = []

    def urlopen(request: Any, timeout: float = 0) -> Any:
        sent.append(request)
        return io.BytesIO(b"{}")

    monkeypatch.setattr(urllib.request, "urlopen", urlopen)
    api = Api(endpoint=endpoint, region=REGION, _session=_session())

    # WHEN it calls one of batchplane's own operations (a signed JSON POST, not a boto3 call)
    api.call("ListJobDependents", {"jobId": "j"})

    # THEN it is signed for the service that endpoint checks, a function URL call with its body's hash signed too
    headers = {k.lower(): v for k, v in sent[0].header_items()}
    match = SCOPE.search(headers["authorization"])
    assert match is not None and match.groups() == (REGION, service)
    body_hash = hashlib.sha256(sent[0].data).hexdigest()
    assert headers.get("x-amz-content-sha256") == (body_hash if service == "lambda" else None)
    assert ("x-amz-content-sha256" in headers["authorization"]) == (service == "lambda")
