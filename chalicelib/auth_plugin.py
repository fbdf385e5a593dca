"""Let stock Batch clients call a deployed batchplane: sign their requests for API Gateway (`execute-api`) or for
the stack's Lambda function URL (`lambda`).

A deployed batchplane authenticates every call with IAM, at API Gateway (docs/adr/0007) or at its function URL
(docs/adr/0014). API Gateway checks SigV4 signatures whose credential scope names the service `execute-api`, a
function URL signatures for `lambda`; botocore signs `batch` requests for `batch` (the service model's signing name,
which `--endpoint-url` does not change, and `Config(signature_version=...)` only picks the algorithm, not the name).
This module registers a handler on botocore's `before-sign.batch` event that changes the request's signing name when,
and only when, the request goes to a batchplane endpoint: to `lambda` for a function URL host
(`<url-id>.lambda-url.<region>.on.aws`), to `execute-api` for an API Gateway host
(`<api-id>.execute-api.<region>.amazonaws.com[.cn]`) or a host listed in BATCHPLANE_ENDPOINTS (comma-separated
host names, for custom domain names). Calls to the real AWS Batch are left alone, so one session can talk to both.
To a function URL it also sends the body's SHA-256 in `X-Amz-Content-SHA256` (signed, and the same value botocore
puts in the canonical request), which function URLs require of some signers for requests with a body.

Use it from:
- boto3: `chalicelib.auth_plugin.register(session)` before creating the client (or `register()` for boto3's
  default session);
- the AWS CLI v1: `aws configure set plugins.batchplane chalicelib.auth_plugin` (the `[plugins]` section of
  ~/.aws/config), with batchplane installed in the CLI's Python environment;
- the AWS CLI v2: plugins are provisional there; see README "Deploy to AWS" for the `cli_legacy_plugin_path` route.

Stdlib only, so the AWS CLI v2's bundled Python can load it.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Iterable
from typing import Any
from urllib.parse import urlsplit

SIGNING_NAME = "execute-api"
FUNCTION_URL_SIGNING_NAME = "lambda"
EVENT = "before-sign.batch"
ENV_ENDPOINTS = "BATCHPLANE_ENDPOINTS"
UNIQUE_ID = "batchplane-execute-api-signing"
_API_GATEWAY_HOST = re.compile(r"^[a-z0-9]+\.execute-api\.[a-z0-9-]+\.amazonaws\.com(\.cn)?$")
_FUNCTION_URL_HOST = re.compile(r"^[a-z0-9]+\.lambda-url\.[a-z0-9-]+\.on\.aws$")


def _hosts(extra: Iterable[str] = ()) -> frozenset[str]:
    configured = [h for h in os.environ.get(ENV_ENDPOINTS, "").split(",") if h.strip()]
    return frozenset(_host_of(h) for h in (*configured, *extra))


def _host_of(endpoint: str) -> str:
    """`https://batch.example.com/api` or `batch.example.com` -> `batch.example.com`."""
    text = endpoint.strip().lower()
    return (urlsplit(text).hostname or "") if "://" in text else text.split("/", 1)[0].split(":", 1)[0]


def signing_name_for(url: str, hosts: Iterable[str] = ()) -> str | None:
    """The service a batchplane endpoint checks signatures for (`lambda`, `execute-api`); None for other hosts."""
    host = (urlsplit(url).hostname or "").lower()
    if _FUNCTION_URL_HOST.match(host):
        return FUNCTION_URL_SIGNING_NAME
    if _API_GATEWAY_HOST.match(host) or host in _hosts(hosts):
        return SIGNING_NAME
    return None


def signed_headers(signing_name: str, body: Any) -> dict[str, str]:
    """The headers a request to a batchplane endpoint adds before it is signed: for a function URL, the body's
    SHA-256 in `X-Amz-Content-SHA256` (the value botocore puts in the canonical request), which function URLs
    require of some signers for requests with a body."""
    if signing_name != FUNCTION_URL_SIGNING_NAME or not isinstance(body, (bytes, str)):
        return {}
    data = body.encode("utf-8") if isinstance(body, str) else body
    return {"X-Amz-Content-SHA256": hashlib.sha256(data).hexdigest()}


def is_batchplane_endpoint(url: str, hosts: Iterable[str] = ()) -> bool:
    return signing_name_for(url, hosts) is not None


class ExecuteApiSigner:
    """The `before-sign.batch` handler: re-targets the signature of batchplane-bound requests to the service their
    endpoint checks (`execute-api` for API Gateway, `lambda` for a function URL)."""

    def __init__(self, hosts: Iterable[str] = ()) -> None:
        self.hosts = tuple(hosts)

    def __call__(self, request: Any = None, **kwargs: Any) -> None:
        name = None if request is None else signing_name_for(str(getattr(request, "url", "")), self.hosts)
        if name is None:
            return
        # botocore's RequestSigner.sign reads the signing name from request.context["signing"] after this event.
        request.context.setdefault("signing", {})["signing_name"] = name
        for header, value in signed_headers(name, getattr(request, "body", None)).items():
            request.headers[header] = value


def register(session: Any = None, hosts: Iterable[str] = ()) -> None:
    """Install the signer on a boto3 Session, a botocore Session, or (None) boto3's default session. Clients
    created from the session afterwards sign batchplane calls for `execute-api` or `lambda`. Registering twice is
    harmless."""
    if session is None:
        import boto3

        session = boto3._get_default_session()
    emitter = getattr(session, "events", None)  # boto3.Session exposes botocore's emitter as `events`
    if emitter is None:
        emitter = session  # a botocore Session registers handlers itself
    emitter.register(EVENT, ExecuteApiSigner(hosts), unique_id=UNIQUE_ID)


def awscli_initialize(cli: Any) -> None:
    """AWS CLI plugin entry point (`[plugins] batchplane = chalicelib.auth_plugin`): `cli` is its event emitter."""
    cli.register(EVENT, ExecuteApiSigner(), unique_id=UNIQUE_ID)
