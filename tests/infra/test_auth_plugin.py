"""The auth plug-in: a stock boto3 `batch` client signs batchplane calls for API Gateway (`execute-api`).

Each test sends one real botocore request whose transport is stubbed (a `before-send` handler answers it), and
reads the credential scope of the Authorization header the client computed.
"""

from __future__ import annotations

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


def _scope_of_call(session: boto3.session.Session, endpoint: str | None) -> tuple[str, str, str]:
    """(region, service, URL) of the credential scope a DescribeJobQueues call was signed with."""
    client = session.client("batch", endpoint_url=endpoint)
    seen: dict[str, str] = {}

    def answer(request: Any, **_: Any) -> AWSResponse:
        seen["auth"] = request.headers["Authorization"].decode()
        seen["url"] = request.url
        return AWSResponse(request.url, 200, {"Content-Type": "application/json"}, _Raw())

    client.meta.events.register("before-send.batch", answer)
    client.describe_job_queues()
    match = SCOPE.search(seen["auth"])
    assert match is not None, seen["auth"]
    return match.group(1), match.group(2), seen["url"]


def test_a_registered_session_signs_batchplane_calls_for_execute_api() -> None:
    # GIVEN a boto3 session with the plug-in registered
    session = _session()
    auth_plugin.register(session)

    # WHEN a stock batch client calls a deployed batchplane (API Gateway endpoint, stage path /api)
    region, service, url = _scope_of_call(session, API)

    # THEN API Gateway's IAM authorizer gets what it checks: scope <region>/execute-api, the stage path signed
    assert (region, service) == (REGION, "execute-api")
    assert url == f"{API}/v1/describejobqueues"


def test_calls_through_the_http_api_are_signed_the_same_way() -> None:
    # The stack's HTTP API (ADR 0012): same host form, $default stage (no path), the same execute-api signature
    session = _session()
    auth_plugin.register(session)
    http_api = "https://a1b2c3d4e5.execute-api.eu-west-1.amazonaws.com"

    region, service, url = _scope_of_call(session, http_api)

    assert (region, service, url) == (REGION, "execute-api", f"{http_api}/v1/describejobqueues")


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
    ],
)
def test_which_endpoints_are_batchplane(url: str, expected: bool) -> None:
    assert auth_plugin.is_batchplane_endpoint(url) is expected
