"""The one reader of client JSON: request bodies and the page tokens clients hand back (docs/adr/0018-http-edge.md).

Everything a client sends passes through `loads` before any handler sees it, so three things hold for every string
and every value of every request, whatever the operation:
- **bounded size**: at most MAX_BODY_BYTES (Lambda's 6 MB synchronous payload quota, the tightest front the AWS
  runtime sits behind; API Gateway allows 10 MB). Every Batch request is far smaller: AWS's own quotas are 24 KiB for
  RegisterJobDefinition and 30 KiB for SubmitJob (domain/validation.Limits).
- **bounded depth**: at most MAX_DEPTH nested objects/arrays. The deepest input shape of the Batch model
  (RegisterJobDefinition) is 13 levels; without a bound, ~1,000 nested `[` exhaust Python's recursion limit inside
  `json.loads` (RecursionError), and anything that walks the value recursively later fails the same way.
- **encodable text**: no string (key or value) holds a lone surrogate. JSON's `\\ud800` escape decodes to one in
  Python; such a str cannot be encoded as UTF-8, so it would fail wherever it is written (SQLite, DynamoDB, a log,
  a response) long after validation, as a 500 — or, worse, after part of the work is done.

Numbers: `json.loads` refuses integer literals over 4,300 digits (Python's int_max_str_digits) with ValueError, which
is reported as invalid JSON; the width of each number is the wire model's business (api/wire.py).
"""

from __future__ import annotations

import json
import re
from typing import Any

MAX_BODY_BYTES = 6 * 1024 * 1024
MAX_DEPTH = 64
_SURROGATE = re.compile("[\ud800-\udfff]")


class JsonRejected(ValueError):
    """The text is not acceptable JSON; the message says why (and names the member when there is one)."""


def loads(data: bytes | str, what: str = "The request body") -> Any:
    """Parse `data` (UTF-8/16/32 bytes or str) or raise JsonRejected whose message starts with `what`."""
    if len(data) > MAX_BODY_BYTES:
        raise JsonRejected(f"{what} must be at most {MAX_BODY_BYTES} bytes; got {len(data)}")
    try:
        value = json.loads(data)
    except RecursionError:
        raise JsonRejected(f"{what} nests deeper than {MAX_DEPTH} levels") from None
    except ValueError:  # also UnicodeDecodeError, and integer literals over Python's 4,300-digit limit
        raise JsonRejected(f"{what} is not valid JSON") from None
    problem = check(value)
    if problem is not None:
        raise JsonRejected(problem if problem.startswith(_NESTED) else f"{what}: {problem}")
    return value


_NESTED = "nests deeper"


def check(value: Any) -> str | None:
    """None if `value` (parsed JSON, or a request assembled from it) is acceptable, else what is wrong, naming the
    member. Iterative, so it cannot itself hit the recursion limit."""
    stack: list[tuple[Any, str, int]] = [(value, "", 0)]
    while stack:
        node, path, depth = stack.pop()
        if isinstance(node, str):
            problem = text_problem(node)
            if problem is not None:
                return f"{_short(path) or 'the value'} {problem}"
        elif isinstance(node, dict | list):
            if depth >= MAX_DEPTH:
                return f"The request body {_NESTED} than {MAX_DEPTH} levels (at {_short(path) or 'the top'})"
            if isinstance(node, dict):
                for key, item in node.items():
                    problem = text_problem(key) if isinstance(key, str) else None
                    if problem is not None:
                        return f"the member name {_short(path + '.' + ascii(key)) if path else ascii(key)} {problem}"
                    stack.append((item, f"{path}.{key}" if path else str(key), depth + 1))
            else:
                stack.extend((item, f"{path}[{i}]", depth + 1) for i, item in enumerate(node))
    return None


def text_problem(text: str) -> str | None:
    """Why `text` is not valid Unicode text (None if it is): a lone surrogate cannot be encoded in any UTF."""
    if text.isascii():
        return None
    match = _SURROGATE.search(text)
    if match is None:
        return None
    return (
        f"must be valid Unicode text; it holds the lone surrogate U+{ord(match.group()):04X} "
        f"at position {match.start()}"
    )


def _short(path: str, limit: int = 120) -> str:
    return path if len(path) <= limit else f"{path[:limit]}..."
