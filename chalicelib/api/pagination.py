"""Opaque page tokens and maxResults rules (spec §1.3)."""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from chalicelib.api import safe_json
from chalicelib.domain.errors import InvalidRequest

T = TypeVar("T")


def encode(cursor: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps({"c": cursor}).encode()).decode()


def decode(token: str | None, kind: type = str) -> Any:
    """The cursor `encode` wrapped, which must be a `kind` (resource cursors are sort keys: strings).

    Batch operations reach here type-checked by the wire model; batchplane's own operations do not, so the type
    of the token itself is checked here too."""
    if token is not None and not isinstance(token, str):
        raise InvalidRequest("nextToken must be a string")
    if not token:
        return None
    try:
        # safe_json: a token is client input like any other (depth, encodable text); token.encode() cannot fail, the
        # request's strings were checked as the body was parsed.
        cursor = safe_json.loads(base64.urlsafe_b64decode(token.encode()), "nextToken")["c"]
    except (binascii.Error, ValueError, KeyError, TypeError):
        cursor = None
    if not isinstance(cursor, kind):
        # A token we did not issue could carry any JSON; only the expected type may reach the store.
        raise InvalidRequest("nextToken is not a token this service issued")
    return cursor


def page_size(req: dict[str, Any], default: int = 100, maximum: int = 100) -> int:
    value = req.get("maxResults")
    if value is None:
        return default
    if not isinstance(value, int) or isinstance(value, bool):
        raise InvalidRequest("maxResults must be an integer")
    if not 1 <= value <= maximum:
        raise InvalidRequest(f"maxResults must be between 1 and {maximum}; got {value}")
    return int(value)


def page(
    req: dict[str, Any],
    key: str,
    fetch: Callable[[Any, int], tuple[Sequence[T], Any]],
    render: Callable[[T], Any],
) -> dict[str, Any]:
    """The response of a cursor-paged operation: `fetch(cursor, limit)` returns one page and the cursor to continue
    after (None when done); the page, each entry rendered, goes under `key`, the next cursor as the `nextToken`."""
    limit = page_size(req)
    found, cursor = fetch(decode(req.get("nextToken")), limit)
    return {key: [render(x) for x in found], "nextToken": encode(cursor) if cursor is not None else None}
