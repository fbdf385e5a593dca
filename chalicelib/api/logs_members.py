"""The CloudWatch Logs wire's errors and request members (api/logs_api.py): each reader checks one member and raises
InvalidParameterException naming it; page tokens are opaque JSON."""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from typing import Any

from chalicelib.api import safe_json
from chalicelib.compute.logs_port import LOG_GROUP


class LogsError(Exception):
    def __init__(self, code: str, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.code = code
        self.status = status


def invalid(message: str) -> LogsError:
    return LogsError("InvalidParameterException", message)


def not_found(message: str) -> LogsError:
    return LogsError("ResourceNotFoundException", message)


@dataclass(frozen=True)
class Scope:
    region: str
    account: str

    def group_arn(self) -> str:
        return f"arn:aws:logs:{self.region}:{self.account}:log-group:{LOG_GROUP}"


# -- members -----------------------------------------------------------------------------------------------------


def text_member(req: dict[str, Any], key: str, *, required: bool = False) -> str | None:
    value = req.get(key)
    if value is None:
        if required:
            raise invalid(f"Missing required parameter {key}")
        return None
    if not isinstance(value, str) or not value:
        raise invalid(f"{key} must be a non-empty string")
    return value


def int_member(
    req: dict[str, Any], key: str, default: int | None = None, lo: int = 0, hi: int | None = None
) -> int | None:
    value = req.get(key)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int) or value < lo or (hi is not None and value > hi):
        bounds = f"{lo}..{hi}" if hi is not None else f">= {lo}"
        raise invalid(f"{key} must be an integer in {bounds}")
    return value


def bool_member(req: dict[str, Any], key: str) -> bool:
    value = req.get(key, False)
    if not isinstance(value, bool):
        raise invalid(f"{key} must be a boolean")
    return value


def page_limit(req: dict[str, Any], hi: int) -> int:
    value = int_member(req, "limit", hi, 1, hi)
    assert value is not None
    return value


def check_group(req: dict[str, Any]) -> None:
    name, identifier = text_member(req, "logGroupName"), text_member(req, "logGroupIdentifier")
    if name is not None and identifier is not None:
        raise invalid("Specify logGroupName or logGroupIdentifier, not both")
    group = name if name is not None else identifier
    if group is None:
        raise invalid("Missing required parameter logGroupName or logGroupIdentifier")
    if group.startswith("arn:"):
        group = group.partition(":log-group:")[2].removesuffix(":*")
    if group != LOG_GROUP:
        raise not_found(f"The specified log group does not exist: {group} (batchplane has only {LOG_GROUP})")


def encode_token(value: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(value, separators=(",", ":")).encode()).decode()


def decode_token(token: str | None) -> dict[str, Any] | None:
    if token is None:
        return None
    try:
        value = safe_json.loads(base64.urlsafe_b64decode(token.encode()), "nextToken")
    except (ValueError, binascii.Error):  # safe_json.JsonRejected is a ValueError
        raise invalid("The specified nextToken is invalid") from None
    if not isinstance(value, dict):
        raise invalid("The specified nextToken is invalid")
    return value
