"""Let stock Batch clients call a deployed batchplane: sign their requests for API Gateway (`execute-api`).

A deployed batchplane authenticates every call with IAM at API Gateway (docs/adr/0007). API Gateway checks SigV4
signatures whose credential scope names the service `execute-api`; botocore signs `batch` requests for `batch`
(the service model's signing name, which `--endpoint-url` does not change, and `Config(signature_version=...)`
only picks the algorithm, not the name). This module registers a handler on botocore's `before-sign.batch` event
that sets the request's signing name to `execute-api` when, and only when, the request goes to a batchplane
endpoint: an API Gateway host (`<api-id>.execute-api.<region>.amazonaws.com[.cn]`) or a host listed in
BATCHPLANE_ENDPOINTS (comma-separated host names, for custom domain names). Calls to the real AWS Batch are left
alone, so one session can talk to both.

Use it from:
- boto3: `chalicelib.auth_plugin.register(session)` before creating the client (or `register()` for boto3's
  default session);
- the AWS CLI v1: `aws configure set plugins.batchplane chalicelib.auth_plugin` (the `[plugins]` section of
  ~/.aws/config), with batchplane installed in the CLI's Python environment;
- the AWS CLI v2: plugins are provisional there; see README "Deploy to AWS" for the `cli_legacy_plugin_path` route.

Stdlib only, so the AWS CLI v2's bundled Python can load it.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from typing import Any
from urllib.parse import urlsplit

SIGNING_NAME = "execute-api"
EVENT = "before-sign.batch"
ENV_ENDPOINTS = "BATCHPLANE_ENDPOINTS"
UNIQUE_ID = "batchplane-execute-api-signing"
_API_GATEWAY_HOST = re.compile(r"^[a-z0-9]+\.execute-api\.[a-z0-9-]+\.amazonaws\.com(\.cn)?$")


def _hosts(extra: Iterable[str] = ()) -> frozenset[str]:
    configured = [h for h in os.environ.get(ENV_ENDPOINTS, "").split(",") if h.strip()]
    return frozenset(_host_of(h) for h in (*configured, *extra))


def _host_of(endpoint: str) -> str:
    """`https://batch.example.com/api` or `batch.example.com` -> `batch.example.com`."""
    text = endpoint.strip().lower()
    return (urlsplit(text).hostname or "") if "://" in text else text.split("/", 1)[0].split(":", 1)[0]


def is_batchplane_endpoint(url: str, hosts: Iterable[str] = ()) -> bool:
    host = (urlsplit(url).hostname or "").lower()
    return bool(_API_GATEWAY_HOST.match(host)) or host in _hosts(hosts)


class ExecuteApiSigner:
    """The `before-sign.batch` handler: re-targets the signature of batchplane-bound requests to `execute-api`."""

    def __init__(self, hosts: Iterable[str] = ()) -> None:
        self.hosts = tuple(hosts)

    def __call__(self, request: Any = None, **kwargs: Any) -> None:
        if request is None or not is_batchplane_endpoint(str(getattr(request, "url", "")), self.hosts):
            return
        # botocore's RequestSigner.sign reads the signing name from request.context["signing"] after this event.
        request.context.setdefault("signing", {})["signing_name"] = SIGNING_NAME


def register(session: Any = None, hosts: Iterable[str] = ()) -> None:
    """Install the signer on a boto3 Session, a botocore Session, or (None) boto3's default session. Clients
    created from the session afterwards sign batchplane calls for `execute-api`. Registering twice is harmless."""
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
