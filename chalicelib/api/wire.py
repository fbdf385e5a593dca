"""The Batch wire model (vendored from botocore, see scripts/vendor_model.py) and request validation against it.

botocore validates types and required members on the client, but any HTTP client can reach us, so the server
checks the same things again, plus the model's min/max/enum constraints that botocore does not enforce, and the
width of every number: an `integer` shape is a 32-bit signed integer and a `long` a 64-bit one (the model's
Integer/Long, Java's int/long on AWS's side), and a `float`/`double` is finite. Semantic limits the model does not
carry (name patterns, AWS quotas, documented ranges) live in `domain/validation.py`.

Members the input shape does not define are dropped here, at the edge, so no use case sees, stores or echoes them:
AWS's JSON services ignore unknown members (botocore refuses them client-side, a raw HTTP client can still send
them), and batchplane does the same (docs/adr/0022-platform-rules.md).
"""

from __future__ import annotations

import json
import math
import re
from functools import cache
from importlib import resources
from typing import Any

from chalicelib.domain.conditions import CONDITIONS
from chalicelib.domain.errors import InvalidRequest

MODEL_FILE = "batch-2016-08-10.json"


@cache
def model() -> dict[str, Any]:
    text = resources.files("chalicelib.api").joinpath(MODEL_FILE).read_text()
    loaded: dict[str, Any] = json.loads(text)
    return loaded


@cache
def operations_by_path() -> dict[tuple[str, str], str]:
    """(HTTP method, request URI) -> operation name, e.g. ("POST", "/v1/submitjob") -> "SubmitJob"."""
    return {(op["http"]["method"], op["http"]["requestUri"]): name for name, op in model()["operations"].items()}


def input_shape(operation: str) -> str | None:
    op = model()["operations"][operation]
    shape = op.get("input", {}).get("shape")
    return str(shape) if shape else None


def validate_request(operation: str, body: Any) -> dict[str, Any]:
    """Check `body` against the operation's input shape; returns it (a dict) or raises InvalidRequest."""
    shape_name = input_shape(operation)
    if body is None:
        body = {}
    if not isinstance(body, dict):
        raise InvalidRequest("The request body must be a JSON object")
    if shape_name:
        _check(model()["shapes"][shape_name], body, "", shape_name)
    return body


# Enums whose model documentation says "The values aren't case sensitive" (EvaluateOnExit.action).
_CASE_INSENSITIVE_ENUMS = frozenset({"RetryAction"})
# batchplane's extensions that ride on an enum (docs/adr/0029): botocore does not check enum values client-side, so a
# stock client sends them; the server accepts them here, on top of the model's own.
_EXTENDED_ENUMS: dict[str, tuple[str, ...]] = {"ArrayJobDependency": CONDITIONS}

_PY_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "boolean": (bool,),
    "integer": (int,),
    "long": (int,),
    "float": (int, float),
    "double": (int, float),
    "timestamp": (int, float),
    "structure": (dict,),
    "list": (list,),
    "map": (dict,),
}

# The model's Integer and Long: 32-bit and 64-bit signed (what botocore's shapes map to in AWS's Java services).
INT32 = (-(2**31), 2**31 - 1)
INT64 = (-(2**63), 2**63 - 1)
_WIDTH = {"integer": INT32, "long": INT64}

_TYPE_WORDS = {
    "string": "a string",
    "boolean": "a boolean",
    "integer": "an integer",
    "long": "an integer",
    "float": "a number",
    "double": "a number",
    "timestamp": "a number",
    "structure": "an object",
    "list": "a list",
    "map": "an object",
}


def _check(shape: dict[str, Any], value: Any, path: str, shape_name: str) -> None:
    kind = shape["type"]
    field = path or "request"
    if not _type_ok(kind, value):
        raise InvalidRequest(f"{field} must be {_TYPE_WORDS.get(kind, kind)}")
    if kind == "structure":
        for req in shape.get("required", []):
            if req not in value or value[req] is None:
                raise InvalidRequest(f"{_join(path, req)} is required")
        members = shape.get("members", {})
        for key in [k for k, v in value.items() if v is None]:
            del value[key]  # JSON null means absent (botocore never sends it; any other client may)
        for key in [k for k in value if k not in members]:
            del value[key]  # unknown members are ignored, as AWS ignores them: dropped, never stored or echoed
        for key, member_value in value.items():
            member = members[key]
            if member.get("location") in ("uri", "querystring", "header"):
                continue
            _check(model()["shapes"][member["shape"]], member_value, _join(path, key), member["shape"])
    elif kind == "list":
        _bounds(shape, len(value), field, "entries")
        member_shape = shape["member"]["shape"]
        for i, element in enumerate(value):
            _check(model()["shapes"][member_shape], element, f"{field}[{i}]", member_shape)
    elif kind == "map":
        _bounds(shape, len(value), field, "entries")
        key_shape = model()["shapes"][shape["key"]["shape"]]
        value_shape = model()["shapes"][shape["value"]["shape"]]
        for k, v in value.items():
            _check(key_shape, k, f"{field} key {k!r}", shape["key"]["shape"])
            _check(value_shape, v, f"{field}[{k!r}]", shape["value"]["shape"])
    elif kind == "string":
        enum = shape.get("enum")
        if enum and shape_name in _EXTENDED_ENUMS:
            enum = [*enum, *_EXTENDED_ENUMS[shape_name]]
        if enum and value not in enum and not (shape_name in _CASE_INSENSITIVE_ENUMS and value.upper() in enum):
            raise InvalidRequest(f"{field} must be one of {', '.join(enum)}; got {value!r}")
        _bounds(shape, len(value), field, "characters")
        pattern = shape.get("pattern")
        if pattern and not re.fullmatch(pattern, value):
            raise InvalidRequest(f"{field} must match the pattern {pattern}")
    elif kind in ("integer", "long"):
        low, high = _WIDTH[kind]
        if value < shape.get("min", low):
            raise InvalidRequest(f"{field} must be at least {shape.get('min', low)}")
        if value > shape.get("max", high):
            raise InvalidRequest(f"{field} must be at most {shape.get('max', high)}")


def _type_ok(kind: str, value: Any) -> bool:
    allowed = _PY_TYPES.get(kind, (object,))
    if value is None or not isinstance(value, allowed) or (kind != "boolean" and isinstance(value, bool)):
        return False
    return not isinstance(value, float) or math.isfinite(value)  # json.loads accepts NaN and Infinity


def _bounds(shape: dict[str, Any], size: int, field: str, unit: str) -> None:
    if "min" in shape and size < shape["min"]:
        raise InvalidRequest(f"{field} must have at least {shape['min']} {unit}")
    if "max" in shape and size > shape["max"]:
        raise InvalidRequest(f"{field} must have at most {shape['max']} {unit}")


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key
