"""The AWS HTTP edge: API Gateway HTTP API (payload format 1.0) and Lambda function URL (payload format 2.0) events
as the REST API proxy events Chalice reads, and its answers back in each front end's shape (docs/adr/0012, 0014,
0018); the routes' IAM authorizer (docs/adr/0007)."""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Collection, Mapping
from typing import Any
from urllib.parse import parse_qs


def api_authorizer(env: Mapping[str, str] | None = None) -> Any:
    """The authorizer of every API route: IAM (SigV4 for execute-api) wherever API Gateway is configured from the
    app, i.e. when the Chalice CLI packages or deploys it (AWS_CHALICE_CLI_MODE) and in Lambda; None for the local
    server, which has no API Gateway, authenticates nothing and binds 127.0.0.1 (docs/adr/0007).
    tests/infra/test_package.py checks that every method of the packaged API requires SigV4."""
    e = os.environ if env is None else env
    if e.get("AWS_CHALICE_CLI_MODE") or e.get("AWS_LAMBDA_FUNCTION_NAME"):
        from chalice.app import IAMAuthorizer

        return IAMAuthorizer()
    return None


def rest_api_event(event: Mapping[str, Any], routes: Collection[str]) -> Mapping[str, Any]:
    """An API Gateway HTTP API event (payload format 1.0) or a Lambda function URL event (payload format 2.0) in the
    shape Chalice's handler reads, that of a REST API proxy event; any other event unchanged (docs/adr/0012, 0014).

    The 1.0 and REST shapes share their fields (headers, multiValueQueryStringParameters, pathParameters, body,
    isBase64Encoded, requestContext.httpMethod); what differs is the route: Chalice looks `requestContext.resourcePath`
    up among its routes. The event's `resource` is used when it is one of them; otherwise (the HTTP API routes tags
    as `/v1/tags/{proxy+}`, so that an ARN whose `/` arrives decoded still matches) the route is found from the path:
    the most specific route whose literal segments match, its last parameter taking the rest of the path. A 2.0 event
    names no route at all (a function URL has one, `$default`): `function_url_event` finds it from `rawPath`."""
    if _is_payload_v2(event):
        return function_url_event(event, routes)
    if event.get("version") != "1.0" or not isinstance(event.get("requestContext"), Mapping):
        return event
    context: Mapping[str, Any] = event["requestContext"]
    path = str(event.get("path") or context.get("path") or "/")
    declared = str(event.get("resource") or context.get("resourcePath") or "")
    if declared in routes:
        segments = [s for s in path.split("/") if s]
        route, parameters = declared, event.get("pathParameters") or _match(declared, segments) or {}
    else:
        route, parameters = _route(path, routes)
    method = event.get("httpMethod") or context.get("httpMethod")
    return {
        **event,
        "resource": route,
        "pathParameters": parameters or None,
        "multiValueQueryStringParameters": event.get("multiValueQueryStringParameters"),
        "stageVariables": event.get("stageVariables"),
        "requestContext": {**context, "resourcePath": route, "httpMethod": method},
    }


def _is_payload_v2(event: Any) -> bool:
    """A Lambda function URL (or HTTP API 2.0) request: `version` 2.0 and the method in `requestContext.http`."""
    if not isinstance(event, Mapping) or event.get("version") != "2.0":
        return False
    context = event.get("requestContext")
    return isinstance(context, Mapping) and isinstance(context.get("http"), Mapping)


def function_url_event(event: Mapping[str, Any], routes: Collection[str]) -> dict[str, Any]:
    """A payload format 2.0 request as the REST proxy event Chalice reads (docs/adr/0014).

    2.0 carries the path undecoded in `rawPath` (routed like a 1.0 path: a tag ARN's `%2F` stays in its one segment,
    a decoded `/` is taken by the route's last parameter, and the Batch gateway unquotes the ARN either way), the
    method in `requestContext.http.method`, the query in `rawQueryString`, single-valued headers (duplicates
    comma-joined, as HTTP allows) and the request's cookies apart, in `cookies`."""
    context: Mapping[str, Any] = event["requestContext"]
    http: Mapping[str, Any] = context["http"]
    path = str(event.get("rawPath") or http.get("path") or "/")
    route, parameters = _route(path, routes)
    method = str(http.get("method") or "").upper()
    headers = {str(k).lower(): str(v) for k, v in (event.get("headers") or {}).items()}
    cookies = event.get("cookies") or []
    if cookies:
        headers["cookie"] = "; ".join(str(c) for c in cookies)
    query = parse_qs(str(event.get("rawQueryString") or ""), keep_blank_values=True)
    return {
        "resource": route,
        "path": path,
        "httpMethod": method,
        "headers": headers,
        "multiValueHeaders": {k: [v] for k, v in headers.items()},
        "queryStringParameters": {k: v[-1] for k, v in query.items()} or None,
        "multiValueQueryStringParameters": query or None,
        "pathParameters": parameters or None,
        "stageVariables": None,
        "requestContext": {**context, "resourcePath": route, "httpMethod": method, "path": path},
        "body": event.get("body"),
        "isBase64Encoded": bool(event.get("isBase64Encoded", False)),
    }


def unrouted(event: Any, routes: Mapping[str, Mapping[str, Any]]) -> bool:
    """Is this a REST proxy event whose route (`requestContext.resourcePath`) and method no route of the app takes?
    False for any other event. Reads `routes` without adding to it."""
    context = event.get("requestContext") if isinstance(event, Mapping) else None
    if not isinstance(context, Mapping) or not isinstance(context.get("resourcePath"), str):
        return False
    methods = routes.get(context["resourcePath"])
    return not methods or context.get("httpMethod") not in methods


def unknown_route_response(event: Mapping[str, Any]) -> dict[str, Any]:
    """The REST proxy response to a request no route of the app takes (path, or method on it): 404, as API Gateway
    answers a request it has no route for, with an error type botocore reads."""
    context: Mapping[str, Any] = event.get("requestContext") or {}
    path = event.get("path") or context.get("path") or context.get("resourcePath")
    message = f"no such operation: {context.get('httpMethod') or event.get('httpMethod')} {path}"
    code = "UnknownOperationException"
    request_id = str(context.get("requestId") or uuid.uuid4())
    return {
        "statusCode": 404,
        "headers": {"Content-Type": "application/json", "x-amzn-ErrorType": code, "x-amzn-RequestId": request_id},
        "multiValueHeaders": {},
        "body": json.dumps({"__type": code, "message": message}),
    }


def typed_error(event: Mapping[str, Any], response: Mapping[str, Any]) -> Mapping[str, Any]:
    """An error answer Chalice made itself (415 for a content type no route takes, its 500 for an exception outside
    the gateway), in the AWS form every other answer has: `{"__type", "message"}`, x-amzn-ErrorType and
    x-amzn-RequestId, typed for the protocol the path speaks (docs/adr/0018-http-edge.md). Other answers unchanged."""
    headers = {str(k).lower() for k in (response.get("headers") or {})}
    if int(response.get("statusCode") or 200) < 400 or "x-amzn-errortype" in headers:
        return response
    from chalicelib.api.errors import edge_error_type

    context: Mapping[str, Any] = event.get("requestContext") or {}
    status = int(response["statusCode"])
    code = edge_error_type(status, (event.get("path") or context.get("path") or context.get("resourcePath")) == "/")
    try:
        parsed = json.loads(response.get("body") or "{}")
    except ValueError:
        parsed = {}
    message = parsed.get("Message") or parsed.get("message") if isinstance(parsed, dict) else None
    return {
        **response,
        "headers": {
            "Content-Type": "application/json",
            "x-amzn-ErrorType": code,
            "x-amzn-RequestId": str(context.get("requestId") or uuid.uuid4()),
        },
        "multiValueHeaders": {},
        "body": json.dumps({"__type": code, "message": str(message or "The request was refused")}),
        "isBase64Encoded": False,
    }


def api_response(event: Mapping[str, Any], response: Mapping[str, Any]) -> dict[str, Any]:
    """Chalice's REST proxy response in the shape the request's front end reads: unchanged for API Gateway's REST
    and 1.0 events; for a 2.0 event, `statusCode`, single-valued `headers` (a multi-valued header comma-joined, as
    HTTP allows), `body`, `isBase64Encoded` and `cookies` (Set-Cookie values, which a comma cannot join)."""
    if not _is_payload_v2(event):
        return dict(response)
    headers: dict[str, str] = {}
    cookies: list[str] = []
    single = [(str(k), [v]) for k, v in (response.get("headers") or {}).items()]
    multi = [(str(k), list(v)) for k, v in (response.get("multiValueHeaders") or {}).items()]
    for name, values in single + multi:
        if name.lower() == "set-cookie":
            cookies.extend(str(v) for v in values)
            continue
        joined = ",".join(str(v) for v in values)
        headers[name] = f"{headers[name]},{joined}" if name in headers else joined
    out: dict[str, Any] = {
        "statusCode": response["statusCode"],
        "headers": headers,
        "body": response.get("body"),
        "isBase64Encoded": bool(response.get("isBase64Encoded", False)),
    }
    if cookies:
        out["cookies"] = cookies
    return out


def _route(path: str, routes: Collection[str]) -> tuple[str, dict[str, str]]:
    segments = [s for s in path.split("/") if s]
    best: tuple[int, str, dict[str, str]] | None = None
    for route in routes:
        if isinstance(routes, Mapping) and not routes[route]:
            continue  # an empty entry of Chalice's route table (a defaultdict): not a route of the app
        parameters = _match(route, segments)
        literal = sum(1 for part in route.split("/") if part and not part.startswith("{"))
        if parameters is not None and (best is None or literal > best[0]):
            best = (literal, route, parameters)
    if best is None:
        return path, {}  # no route: Chalice answers it as an unknown request
    return best[1], best[2]


def _match(route: str, segments: list[str]) -> dict[str, str] | None:
    """The route's parameters in a path (its last parameter takes the rest of the path), None if it does not match."""
    template = [s for s in route.split("/") if s]
    greedy = bool(template) and template[-1].startswith("{")
    if len(segments) < len(template) or (len(segments) > len(template) and not greedy):
        return None
    parameters: dict[str, str] = {}
    for i, part in enumerate(template):
        value = "/".join(segments[i:]) if i == len(template) - 1 else segments[i]
        if part.startswith("{") and part.endswith("}"):
            parameters[part[1:-1]] = value
        elif part != value:
            return None
    return parameters
