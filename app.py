"""The Chalice app: routes only. Parse the HTTP request, hand it to the gateway, render its response.

The same `app` serves AWS (API Gateway -> Lambda) and `batchplane up` (chalicelib/runtime/server.py).
"""

from __future__ import annotations

from chalice.app import Chalice, Response

from chalicelib.api import gateway, logs_api
from chalicelib.runtime import wiring

app = Chalice(app_name="batchplane")

# botocore and the AWS CLI send application/json; tolerate the other bodies clients send by accident.
CONTENT_TYPES = [
    "application/json",
    "application/x-amz-json-1.1",
    "application/x-www-form-urlencoded",
    "text/plain",
]


def _serve(path: str) -> Response:
    request = app.current_request
    assert request is not None  # Chalice sets it for every routed call
    params = request.query_params
    query = {k: params.getlist(k) for k in params} if params else {}
    status, headers, body = gateway.handle(
        wiring.services(), request.method, path, dict(request.headers), request.raw_body, query
    )
    return Response(body=body, status_code=status, headers=dict(headers))


@app.route("/v1/{operation}", methods=["POST"], content_types=CONTENT_TYPES)
def batch_operation(operation: str) -> Response:
    return _serve(f"/v1/{operation}")


@app.route("/v1/tags/{resource_arn}", methods=["GET", "POST", "DELETE"], content_types=CONTENT_TYPES)
def tags(resource_arn: str) -> Response:
    return _serve(f"{gateway.TAGS_PREFIX}{resource_arn}")


@app.route("/", methods=["POST"], content_types=CONTENT_TYPES)
def logs_operation() -> Response:
    """CloudWatch Logs (JSON 1.1, X-Amz-Target) for the local runtime's job logs."""
    request = app.current_request
    assert request is not None
    status, headers, body = logs_api.handle_logs(wiring.services(), dict(request.headers), request.raw_body)
    return Response(body=body, status_code=status, headers=dict(headers))
