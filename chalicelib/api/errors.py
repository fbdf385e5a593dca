"""The one place that maps typed errors to Batch wire errors (spec §1.2)."""

from __future__ import annotations

import json
import logging
from typing import Any

from chalicelib.domain.errors import Conflict, InvalidRequest, Throttled

log = logging.getLogger("batchplane.api")

Response = tuple[int, dict[str, str], str]


def error_response(exc: BaseException, request_id: str) -> Response:
    if isinstance(exc, InvalidRequest):
        return _error(400, "ClientException", str(exc), request_id)
    if isinstance(exc, Throttled):
        return _error(429, "TooManyRequestsException", "Too Many Requests", request_id)
    if isinstance(exc, Conflict):
        # Conflicts are retried inside the use cases; one that escapes means sustained contention.
        return _error(429, "TooManyRequestsException", "Too Many Requests (concurrent update, retry)", request_id)
    log.exception("unhandled error in request %s", request_id, exc_info=exc)
    return _error(500, "ServerException", f"Internal error; request id {request_id}", request_id)


def edge_error_type(status: int, logs: bool, unknown_operation: bool = False) -> str:
    """The error type of an answer made at the HTTP edge (framing, routing, media type; ADR 0018), by protocol: the
    Batch REST-JSON paths, or the CloudWatch Logs JSON 1.1 path `/`."""
    if unknown_operation:
        return "UnknownOperationException"
    if status >= 500:
        return "ServiceUnavailableException" if logs else "ServerException"
    return "SerializationException" if logs else "ClientException"


def _error(status: int, code: str, message: str, request_id: str) -> Response:
    headers = {"Content-Type": "application/json", "x-amzn-ErrorType": code, "x-amzn-RequestId": request_id}
    return status, headers, json.dumps({"__type": code, "message": message})


def ok(body: dict[str, Any], request_id: str) -> Response:
    return 200, {"Content-Type": "application/json", "x-amzn-RequestId": request_id}, json.dumps(body)
