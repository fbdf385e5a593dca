"""Hypothesis strategies for batchplane's API, generated from botocore's shapes (issue 12, item 21).

Every Batch operation of botocore's `batch` model, the CloudWatch Logs operations the server speaks (from botocore's
`logs` model), and batchplane's own operations (triggers, ListJobDependents), each as a `Call` (how it travels and
its JSON body). Bodies are drawn from the input shape: required members always, optional ones sometimes, strings
mostly from a pool of names that exist in the fuzzed server (so requests get past "not found" into deeper code) and
sometimes free text, numbers across the model's type widths. `mutated` then breaks a drawn body the ways clients do:
a wrong type, an unknown member, an odd string (lone surrogate, NUL, Unicode digits, 5,000 characters), a huge or
non-finite number, a deeply nested value. `raw_requests` breaks the HTTP around it: framing, methods, paths, HEAD.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass
from functools import cache
from typing import Any
from urllib.parse import quote

from botocore.loaders import Loader
from hypothesis import strategies as st

from chalicelib.api.logs_api import TARGET_PREFIX
from chalicelib.api.operations import EXTENSIONS
from chalicelib.compute.logs_port import LOG_GROUP

ACCOUNT, REGION = "123456789012", "us-east-1"
LOGS_OPERATIONS = ("GetLogEvents", "FilterLogEvents", "DescribeLogStreams", "DescribeLogGroups")
LOGS_CONTENT_TYPE = "application/x-amz-json-1.1"
MAX_SHAPE_DEPTH = 7  # below this, structures get their required members only and lists stay short
MAX_BODY_FOR_WIRE = 200_000


def _arn(kind: str, name: str) -> str:
    return f"arn:aws:batch:{REGION}:{ACCOUNT}:{kind}/{name}"


@dataclass(frozen=True)
class World:
    """What the fuzzed server holds before the first example: the names the pool draws from."""

    ce: str = "fuzz-ce"
    queue: str = "fuzz-q"
    jd: str = "fuzz-jd"
    policy: str = "fuzz-sp"
    job_id: str = ""
    stream: str = "fuzz-jd/default/0001"

    def pool(self) -> list[str]:
        return [
            self.ce,
            self.queue,
            self.jd,
            f"{self.jd}:1",
            self.policy,
            self.job_id,
            f"{self.job_id}:0",
            self.stream,
            LOG_GROUP,
            _arn("compute-environment", self.ce),
            _arn("job-queue", self.queue),
            _arn("job-definition", f"{self.jd}:1"),
            _arn("scheduling-policy", self.policy),
            _arn("job", self.job_id),
            "arn:aws:batch:eu-west-1:999999999999:job-queue/other",
            "new-name",
            "busybox",
            "MEMORY",
            "VCPU",
            "rate(1 hour)",
            "cron(0 12 * * ? *)",
            "data-in",
            "incoming/",
            "",
        ]


@dataclass(frozen=True)
class Call:
    """One request: the operation, how it travels (POST path and X-Amz-Target, or a tag path) and its body."""

    operation: str
    method: str
    path: str
    body: dict[str, Any]
    target: str | None = None  # X-Amz-Target for the Logs protocol

    @property
    def logs(self) -> bool:
        return self.target is not None

    def headers(self) -> dict[str, str]:
        if self.target is None:
            return {"Content-Type": "application/json"}
        return {"Content-Type": LOGS_CONTENT_TYPE, "X-Amz-Target": self.target}


@cache
def _model(service: str) -> dict[str, Any]:
    loaded: dict[str, Any] = Loader().load_service_model(service, "service-2")
    return loaded


class Shapes:
    """Strategies for the shapes of one botocore model."""

    def __init__(self, service: str, pool: list[str]) -> None:
        self.shapes: dict[str, Any] = _model(service)["shapes"]
        self.pool = pool

    def of(self, name: str, depth: int = 0) -> st.SearchStrategy[Any]:
        shape = self.shapes[name]
        kind = shape["type"]
        if kind == "structure":
            members = {
                member: ref
                for member, ref in shape.get("members", {}).items()
                if ref.get("location") not in ("header", "querystring") and not ref.get("deprecated")
            }
            required = [m for m in shape.get("required", []) if m in members]
            optional = [m for m in members if m not in required] if depth < MAX_SHAPE_DEPTH else []
            return st.fixed_dictionaries(
                {m: st.deferred(lambda m=m: self.of(members[m]["shape"], depth + 1)) for m in required},
                optional={m: st.deferred(lambda m=m: self.of(members[m]["shape"], depth + 1)) for m in optional},
            )
        if kind == "list":
            size = 3 if depth < MAX_SHAPE_DEPTH else 1
            return st.lists(self.of(shape["member"]["shape"], depth + 1), max_size=size)
        if kind == "map":
            return st.dictionaries(
                self.of(shape["key"]["shape"], depth + 1), self.of(shape["value"]["shape"], depth + 1), max_size=3
            )
        if kind == "string":
            if shape.get("enum"):
                return st.sampled_from(shape["enum"])
            return st.one_of(st.sampled_from(self.pool), st.text(max_size=12))
        if kind == "integer":
            return st.one_of(st.integers(-1, 20), st.integers(-(2**31), 2**31 - 1))
        if kind == "long":
            return st.one_of(st.integers(-1, 2**41), st.integers(-(2**63), 2**63 - 1))
        if kind == "boolean":
            return st.booleans()
        if kind in ("float", "double"):
            return st.floats(-1e6, 1e9, allow_nan=False, allow_infinity=False)
        if kind == "timestamp":
            return st.integers(0, 2**41)
        return st.none()


def _batch_calls(pool: list[str]) -> list[tuple[str, str, str, st.SearchStrategy[dict[str, Any]]]]:
    shapes = Shapes("batch", pool)
    out: list[tuple[str, str, str, st.SearchStrategy[dict[str, Any]]]] = []
    for name, op in _model("batch")["operations"].items():
        method, uri = op["http"]["method"], op["http"]["requestUri"]
        body = shapes.of(op["input"]["shape"]) if "input" in op else st.just({})
        out.append((name, method, uri, body))
    return out


def _extension_bodies(pool: list[str]) -> dict[str, st.SearchStrategy[dict[str, Any]]]:
    """batchplane's own operations: their members as api/triggers.py and api/graph.py read them."""
    submit = Shapes("batch", pool)
    name = st.one_of(st.sampled_from(pool), st.text(max_size=12))
    source = st.one_of(
        st.fixed_dictionaries(
            {"s3": st.fixed_dictionaries({"bucket": name}, optional={"prefix": name, "suffix": name})}
        ),
        st.fixed_dictionaries({"schedule": st.fixed_dictionaries({"expression": name}, optional={"timezone": name})}),
    )
    paging = {"maxResults": st.integers(-1, 2000), "nextToken": name}
    return {
        "CreateTrigger": st.fixed_dictionaries(
            {"triggerName": name, "jobQueue": name, "jobDefinition": name, "jobName": name, "source": source},
            optional={
                "parameters": submit.of("ParametersMap"),
                "containerOverrides": submit.of("ContainerOverrides"),
            },
        ),
        "DescribeTrigger": st.fixed_dictionaries({"triggerName": name}),
        "DeleteTrigger": st.fixed_dictionaries({"triggerName": name}),
        "ListTriggers": st.fixed_dictionaries({}, optional=paging),
        "ListJobDependents": st.fixed_dictionaries({"jobId": name}, optional=paging),
    }


@cache
def _all_calls(world: World) -> list[tuple[str, str, str, str | None, st.SearchStrategy[dict[str, Any]]]]:
    pool = world.pool()
    calls: list[tuple[str, str, str, str | None, st.SearchStrategy[dict[str, Any]]]] = []
    for name, method, uri, body in _batch_calls(pool):
        calls.append((name, method, uri, None, body))
    extensions = EXTENSIONS
    for name, body in _extension_bodies(pool).items():
        calls.append((name, "POST", extensions[name].path, None, body))
    logs = Shapes("logs", pool)
    logs_ops = _model("logs")["operations"]
    for name in LOGS_OPERATIONS:
        calls.append((name, "POST", "/", TARGET_PREFIX + name, logs.of(logs_ops[name]["input"]["shape"])))
    return calls


def _anchors(world: World, operation: str) -> dict[str, Any]:
    """Top-level members set to values that exist (or are free to create), so that a drawn request often passes the
    first checks and reaches the code behind them."""
    return {
        "jobQueue": world.queue,
        "jobDefinition": world.jd,
        "jobName": "fuzz-job",
        "computeEnvironment": world.ce,
        "computeEnvironmentName": "fuzz-ce-new",
        "jobQueueName": "fuzz-q-new",
        "jobDefinitionName": "fuzz-jd-new",
        "name": "fuzz-sp-new",
        "type": "container" if operation == "RegisterJobDefinition" else "MANAGED",
        "computeResources": {"type": "FARGATE", "maxvCpus": 4, "subnets": ["subnet-1"], "securityGroupIds": ["sg-1"]},
        "jobId": world.job_id,
        "logGroupName": LOG_GROUP,
        "logStreamName": world.stream,
        "containerProperties": {"image": "busybox", "command": ["true"]},
    }


@st.composite
def calls(draw: st.DrawFn, world: World) -> Call:
    """A well-formed call of any operation (its body may still break the operation's own rules)."""
    name, method, uri, target, body_strategy = draw(st.sampled_from(_all_calls(world)))
    body = draw(body_strategy)
    if draw(st.booleans()):
        anchors = _anchors(world, name)
        for key in [k for k in body if k in anchors]:
            if isinstance(body[key], dict) and isinstance(anchors[key], dict):
                body[key].update(copy.deepcopy(anchors[key]))
            else:
                body[key] = copy.deepcopy(anchors[key])
        others = sorted(k for k in body if k not in anchors)
        if others and draw(st.booleans()):  # and only a few other members: each is one more rule to break
            kept = set(draw(st.lists(st.sampled_from(others), max_size=2)))
            body = {k: v for k, v in body.items() if k in anchors or k in kept}
    path = uri
    if "{resourceArn}" in uri:  # the tag operations carry the ARN in the path, URL-encoded as botocore sends it
        arn = body.pop("resourceArn", "") or draw(st.sampled_from(world.pool()))
        path = uri.replace("{resourceArn}", quote(str(arn), safe="")) or uri
        if name == "UntagResource":
            keys = body.pop("tagKeys", [])
            path += "?" + "&".join(f"tagKeys={quote(str(k), safe='')}" for k in keys) if keys else ""
    return Call(name, method, path, body, target)


# -- mutations of a body ---------------------------------------------------------------------------------------

WRONG_TYPES: list[Any] = [None, True, False, 0, -1, 1.5, "", "x", [], {}, [1], {"a": 1}, [[]]]
ODD_STRINGS = [
    "\ud800",
    "a\udfffb",
    "\x00",
    "\u00b2",
    "\u0661\u0662",
    "x" * 5000,
    "1" * 5000,
    "x:\u00b2",
    "x:" + "9" * 5000,
    "f/\u00b2",
    "arn:aws:batch:us-east-1:123456789012:job-queue/",
    "../../etc/passwd",
    "AWS_BATCH_JOB_ID",
    "Ref::x",
    "inf",
    "nan",
    "1e400",
    "-0",
    " ",
    "\u202e",
]
HUGE_NUMBERS: list[Any] = [2**31, -(2**31) - 1, 2**63, -(2**63) - 1, 10**30, 1e308, -1e308, 5e-324, 2**53 + 1]


def _slots(value: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every place in `value` (a key path), the top included."""
    out = [path]
    if isinstance(value, dict):
        for key, item in value.items():
            out += _slots(item, (*path, key))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            out += _slots(item, (*path, i))
    return out


def _get(value: Any, path: tuple[Any, ...]) -> Any:
    for part in path:
        value = value[part]
    return value


def _set(value: Any, path: tuple[Any, ...], new: Any) -> Any:
    if not path:
        return new
    _get(value, path[:-1])[path[-1]] = new
    return value


def _nested(depth: int, inner: Any) -> Any:
    for _ in range(depth):
        inner = [inner]
    return inner


@st.composite
def mutated(draw: st.DrawFn, call: Call) -> Call:
    """`call` with up to two mutations of its body (or none: the well-formed call itself)."""
    body: Any = json.loads(json.dumps(call.body))
    for _ in range(draw(st.integers(0, 2))):
        slots = _slots(body)
        path = draw(st.sampled_from(slots))
        current = _get(body, path)
        kind = draw(st.sampled_from(["type", "unknown", "string", "number", "nest", "drop"]))
        if kind == "type" and path:  # copies: a later mutation must not change the module's constants
            body = _set(body, path, copy.deepcopy(draw(st.sampled_from(WRONG_TYPES))))
        elif kind == "unknown" and isinstance(current, dict):
            key = draw(st.sampled_from(["extra", "x" * 300, "\ud800", "__proto__", ""]))
            current[key] = copy.deepcopy(draw(st.sampled_from([*WRONG_TYPES, "v"])))
        elif kind == "string" and path:
            body = _set(body, path, draw(st.sampled_from(ODD_STRINGS)))
        elif kind == "number" and path:
            body = _set(body, path, draw(st.sampled_from(HUGE_NUMBERS)))
        elif kind == "nest" and path:
            body = _set(body, path, _nested(draw(st.sampled_from([5, 63, 64, 65, 200, 500])), "x"))
        elif kind == "drop" and path and isinstance(_get(body, path[:-1]), dict):
            del _get(body, path[:-1])[path[-1]]
    if not isinstance(body, dict):
        body = {"wrapped": body}
    return Call(call.operation, call.method, call.path, body, call.target)


# -- raw HTTP around a body ------------------------------------------------------------------------------------


def encode_body(body: Any) -> bytes:
    """JSON as botocore would write it, except that lone surrogates go out as \\ud800 escapes (ensure_ascii)."""
    return json.dumps(body).encode()


@st.composite
def raw_requests(draw: st.DrawFn, world: World, keep_alive: bool = False) -> tuple[str, bytes]:
    """(method, the bytes of one request): a call's body in broken framing, or a broken request line or header.
    `keep_alive`: without `Connection: close`, so that another request can follow on the connection."""
    call = draw(mutated(draw(calls(world))))
    method = draw(st.sampled_from([call.method] * 4 + ["GET", "HEAD", "PUT", "DELETE", "OPTIONS", "PATCH", "FOO"]))
    path = draw(
        st.sampled_from(
            [call.path] * 4
            + ["/", "/v1/", "/v1/nope", "/nope/deeper", "*", "/v1/tags/", "/v1/tags/%ED%A0%80", "/v1/submitjob?x=%ff"]
        )
    )
    body = draw(
        st.sampled_from(
            [
                encode_body(call.body),
                encode_body(call.body),
                b"",
                b"[" * 3000,
                b'{"a": ' + b"[" * 900 + b"]" * 900 + b"}",
                b"\xff\xfe\x00",
                b"null",
                b"[]",
                b'"text"',
                b"{",
                b'{"maxResults": ' + b"9" * 5000 + b"}",
                b'{"maxResults": 1e999}',
                b'{"x": NaN}',
                encode_body(call.body).decode().encode("utf-16"),
            ]
        )
    )
    framing = draw(st.sampled_from(["length"] * 4 + ["none", "bad-length", "chunked", "bad-chunked", "both", "huge"]))
    content_type = draw(
        st.sampled_from(
            [LOGS_CONTENT_TYPE if call.logs else "application/json"] * 3
            + ["application/json", "text/plain", "application/xml", "", "application/json; charset=utf-16"]
        )
    )
    headers = [f"{method} {path} HTTP/1.1", "Host: batchplane"] + ([] if keep_alive else ["Connection: close"])
    if content_type:
        headers.append(f"Content-Type: {content_type}")
    if call.target is not None or path == "/":
        headers.append(f"X-Amz-Target: {call.target or draw(st.sampled_from(['', 'Logs_20140328.Nope', 'x']))}")
    extra = draw(st.sampled_from([[], ["X-Odd: \xe9"], ["Expect: 100-continue"], [f"X-Big: {'a' * 8000}"]]))
    headers += extra
    if framing == "length":
        headers.append(f"Content-Length: {len(body)}")
        payload = body
    elif framing == "none":
        payload = b""
    elif framing == "bad-length":
        headers.append(f"Content-Length: {draw(st.sampled_from(['abc', '', '1.5', '-1', '0x10', '2, 3', ' 1 1']))}")
        payload = body
    elif framing == "huge":
        headers.append(f"Content-Length: {draw(st.sampled_from(['99999999999', '9' * 30, str(7 * 1024 * 1024)]))}")
        payload = b""
    elif framing in ("chunked", "both"):
        headers.append("Transfer-Encoding: chunked")
        if framing == "both":
            headers.append(f"Content-Length: {len(body)}")
        payload = (f"{len(body):x}\r\n".encode() + body + b"\r\n" if body else b"") + b"0\r\n\r\n"
    else:
        headers.append("Transfer-Encoding: chunked")
        payload = draw(st.sampled_from([b"zz\r\n{}\r\n0\r\n\r\n", b"2\r\n{}XXX\r\n0\r\n\r\n", b"ffffffffffffffff\r\n"]))
    return method, ("\r\n".join(headers) + "\r\n\r\n").encode("latin-1") + payload
