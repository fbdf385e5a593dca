"""HTTP request -> operation -> response, independent of the web framework.

Chalice (app.py) and the local server both call `handle`; so does any test that wants the wire without a socket.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import unquote

from chalicelib.api import safe_json, wire
from chalicelib.api.errors import Response, error_response, ok
from chalicelib.api.handlers import Handler
from chalicelib.api.operations import EXTENSION_PATHS, EXTENSIONS, OPERATIONS
from chalicelib.control.context import RequestContext, Services
from chalicelib.domain import unsupported
from chalicelib.domain.errors import InvalidRequest

TAGS_PREFIX = "/v1/tags/"
_TAG_OPERATIONS = {"GET": "ListTagsForResource", "POST": "TagResource", "DELETE": "UntagResource"}
_CREDENTIAL_REGION = re.compile(r"Credential=[^/,\s]+/\d{8}/([a-z0-9-]+)/")


def region_of(headers: Mapping[str, str], default: str) -> str:
    """The region of the SigV4 credential scope in the Authorization header, else `default`."""
    for key, value in headers.items():
        if key.lower() == "authorization":
            match = _CREDENTIAL_REGION.search(value)
            if match:
                return match.group(1)
    return default


def resolve(method: str, path: str) -> tuple[str, dict[str, Any]]:
    """(operation name, members carried in the URI)."""
    if path.startswith(TAGS_PREFIX) and method in _TAG_OPERATIONS:
        # The ARN arrives URL-encoded in one path segment (%2F for '/'). unquote is idempotent for ARNs, so this is
        # right whether or not the front end (API Gateway, Chalice local) already decoded it.
        return _TAG_OPERATIONS[method], {"resourceArn": unquote(path[len(TAGS_PREFIX) :])}
    key = (method, path.rstrip("/").lower())
    name = wire.operations_by_path().get(key) or EXTENSION_PATHS.get(key)
    if name is None:
        raise InvalidRequest(f"Unknown operation {method} {path}")
    return name, {}


def handle(
    svc: Services,
    method: str,
    path: str,
    headers: Mapping[str, str],
    body: bytes | str | None,
    query: Mapping[str, list[str]] | None = None,
) -> Response:
    request_id = str(uuid.uuid4())
    try:
        operation, uri_members = resolve(method, path)
        payload = _parse_body(body)
        if operation == "UntagResource":
            payload["tagKeys"] = list((query or {}).get("tagKeys", []))
        problem = safe_json.check(uri_members)  # the body was checked as it was parsed; the path and query here
        if problem is not None:
            raise InvalidRequest(problem)
        payload.update(uri_members)
        extension = EXTENSIONS.get(operation)
        handler: Handler | None
        if extension is not None:
            request, handler = extension.validate(payload), extension.handler
        else:
            request = wire.validate_request(operation, payload)
            handler = OPERATIONS.get(operation)
        if handler is None:
            raise InvalidRequest(unsupported.operation_message(operation))
        ctx = RequestContext(region=region_of(headers, svc.settings.default_region))
        return ok(handler(svc, ctx, request), request_id)
    except Exception as exc:
        return error_response(exc, request_id)


def _parse_body(body: bytes | str | None) -> dict[str, Any]:
    return json_object(body, InvalidRequest)


def json_object(body: bytes | str | None, error: Callable[[str], Exception]) -> dict[str, Any]:
    """A request body as a JSON object ({} when empty); anything else raises `error(message)`: too large, too deep,
    not JSON, or holding text that is not valid Unicode (api/safe_json.py)."""
    if not body:
        return {}
    try:
        parsed = safe_json.loads(body)
    except safe_json.JsonRejected as exc:
        raise error(str(exc)) from None
    if not isinstance(parsed, dict):
        raise error("The request body must be a JSON object")
    return parsed
