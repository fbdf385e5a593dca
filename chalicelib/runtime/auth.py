"""Who may call a local batchplane: the keys file of `batchplane up --auth`, the loopback rule, and the gate the
HTTP server puts in front of the API (docs/adr/0019).

The keys file is an AWS shared-credentials file: one section per key, each with `aws_access_key_id` and
`aws_secret_access_key` (and, for a temporary key, its `aws_session_token`, which requests must then carry). With it,
every request the server routes to the API (the Batch API, the CloudWatch Logs API, batchplane's own operations) must
be SigV4-signed by one of those keys (chalicelib/api/sigv4.py); anything else is answered 403 before it is routed,
so nothing is done for it. Without it, the server may listen only on a loopback address.
"""

from __future__ import annotations

import configparser
import ipaddress
import json
import logging
import os
import socket
import stat
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from chalicelib.api.sigv4 import LOGS, Key, Principal, Refusal, Verifier, refusal_body, service_for

log = logging.getLogger("batchplane.auth")

AUTH_ENV = "BATCHPLANE_AUTH_FILE"
Clock = Callable[[], datetime]


class AuthConfigError(ValueError):
    """The keys file cannot be used (missing, unreadable, malformed); the message says which and why."""


def load_keys(path: Path) -> list[Key]:
    """Every key in an AWS-credentials-style INI file. Secrets never appear in an error message."""
    parser = configparser.ConfigParser(interpolation=None, default_section="\x00none")
    try:
        with open(path, encoding="utf-8") as f:
            parser.read_file(f)
    except OSError as e:
        raise AuthConfigError(f"cannot read the keys file {path}: {e.strerror or e}") from None
    except configparser.Error as e:
        raise AuthConfigError(f"the keys file {path} is not an AWS credentials (INI) file: {_first_line(e)}") from None
    keys: list[Key] = []
    owners: dict[str, str] = {}
    for section in parser.sections():
        items = parser[section]
        key_id = (items.get("aws_access_key_id") or "").strip()
        secret = (items.get("aws_secret_access_key") or "").strip()
        token = (items.get("aws_session_token") or "").strip() or None
        if not key_id or not secret:
            missing = "aws_access_key_id" if not key_id else "aws_secret_access_key"
            raise AuthConfigError(f"the keys file {path}: [{section}] has no {missing}")
        if "/" in key_id or any(c.isspace() for c in key_id):
            raise AuthConfigError(f"the keys file {path}: [{section}] aws_access_key_id must not contain '/' or spaces")
        if key_id in owners:
            raise AuthConfigError(f"the keys file {path}: [{section}] repeats the access key id of [{owners[key_id]}]")
        owners[key_id] = section
        keys.append(Key(key_id, secret, section, token))
    if not keys:
        raise AuthConfigError(
            f"the keys file {path} has no keys (sections with aws_access_key_id and aws_secret_access_key)"
        )
    return keys


def _first_line(e: Exception) -> str:
    return str(e).splitlines()[0]  # configparser quotes the offending line, which may hold a secret


def readable_by_others(path: Path) -> bool:
    try:
        return bool(os.stat(path).st_mode & (stat.S_IRWXG | stat.S_IRWXO))
    except OSError:
        return False


def is_loopback(host: str) -> bool:
    """Does binding `host` keep the server on this machine? (`localhost`, 127.0.0.0/8, ::1; not "" or 0.0.0.0.)"""
    name = host.strip().strip("[]")
    if not name:
        return False
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(name, None)
    except OSError:
        return False
    addresses = {info[4][0] for info in infos}
    return bool(addresses) and all(ipaddress.ip_address(str(a).split("%")[0]).is_loopback for a in addresses)


def exposure_error(host: str) -> str | None:
    """Why `host` may not be bound without --auth (None when it may)."""
    if is_loopback(host):
        return None
    return (
        f"refusing to listen on {host or 'every address'} without authentication: anyone who can reach it could "
        "submit, cancel and read every job. Give it the keys to accept with --auth FILE (or $"
        f"{AUTH_ENV}), an AWS credentials file, e.g.\n"
        "  [alice]\n  aws_access_key_id = AKIA...\n  aws_secret_access_key = ...\n"
        '(README: "Run it for a team on one server"), or bind 127.0.0.1.'
    )


def _utcnow() -> datetime:
    return datetime.now(UTC)


class Gate:
    """The server's check of each API request: the Principal, or the 403 response to send instead."""

    def __init__(self, verifier: Verifier, clock: Clock = _utcnow) -> None:
        self.verifier = verifier
        self.clock = clock

    def check(
        self, method: str, target: str, headers: Any, body: bytes | None, client: str = ""
    ) -> Principal | tuple[int, dict[str, str], bytes]:
        result = self.verifier.verify(method, target, _pairs(headers), body, self.clock())
        if isinstance(result, Principal):
            return result
        request_id = str(uuid.uuid4())
        # The key id and the reason only: never the secret, the signature or the token.
        log.warning(
            "refused %s %s from %s: %s (%s) key=%s request=%s",
            method,
            target.split("?", 1)[0],
            client or "?",
            result.code,
            result.message,
            _key_id(headers),
            request_id,
        )
        return _response(result, target, request_id)


def _pairs(headers: Any) -> list[tuple[str, str]]:
    items = headers.items() if hasattr(headers, "items") else headers
    return [(str(k), str(v)) for k, v in items]


def _key_id(headers: Any) -> str:
    for name, value in _pairs(headers):
        if name.lower() == "authorization" and "Credential=" in value:
            return value.split("Credential=", 1)[1].split("/", 1)[0][:128]
    return "-"


def _response(refusal: Refusal, target: str, request_id: str) -> tuple[int, dict[str, str], bytes]:
    content_type = "application/x-amz-json-1.1" if service_for(target) == LOGS else "application/json"
    headers = {"Content-Type": content_type, "x-amzn-ErrorType": refusal.code, "x-amzn-RequestId": request_id}
    return refusal.status, headers, json.dumps(refusal_body(refusal)).encode()


def gate_from_file(path: Path, clock: Clock = _utcnow) -> Gate:
    return Gate(Verifier(load_keys(path)), clock)
