"""HTTP at the byte level, for what no HTTP library would send: broken framing, bad methods, huge headers.

`exchange` writes bytes to a fresh connection and parses the answer with http.client; `request` builds the bytes.
Both `exchange`s send each request as a stock client would as to what the server's origin guard checks
(chalicelib/runtime/origin_guard.py): the `Host` line names the server (127.0.0.1:PORT, whatever the bytes said) and
X-Amz-Date follows it, as every AWS SDK sends; tests of the guard itself use http.client.
`assert_aws_error` is the contract every refusal meets: a status, x-amzn-RequestId, x-amzn-ErrorType and a JSON body
{"__type", "message"} of that type (no body after HEAD).
"""

from __future__ import annotations

import contextlib
import http.client
import json
import re
import socket
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

SOCKET_TIMEOUT_S = 15.0
_HOST_LINE = re.compile(rb"\r\nHost: [^\r\n]*\r\n", re.IGNORECASE)


@dataclass(frozen=True)
class Answer:
    status: int
    headers: dict[str, str]  # names lower-cased
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def address(endpoint: str) -> tuple[str, int]:
    parts = urlsplit(endpoint)
    assert parts.hostname is not None and parts.port is not None
    return parts.hostname, parts.port


def request(
    method: str,
    path: str,
    body: bytes | Mapping[str, Any] | None = None,
    headers: Mapping[str, str] | None = None,
    *,
    length: str | None = "auto",
    content_type: str = "application/json",
) -> bytes:
    """The bytes of one request. `length`: "auto" (the body's), None (no Content-Length) or the header's text."""
    data = b"" if body is None else body if isinstance(body, bytes) else json.dumps(body).encode()
    lines = [f"{method} {path} HTTP/1.1", "Host: batchplane", f"Content-Type: {content_type}", "Connection: close"]
    if length == "auto":
        lines.append(f"Content-Length: {len(data)}")
    elif length is not None:
        lines.append(f"Content-Length: {length}")
    lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + data


def as_client(endpoint: str, data: bytes) -> bytes:
    """`data` with every request's Host line naming the server at `endpoint`, and X-Amz-Date beside it."""
    host, port = address(endpoint)
    return _HOST_LINE.sub(b"\r\nHost: %s:%d\r\nX-Amz-Date: 20260101T000000Z\r\n" % (host.encode(), port), data)


def exchange(endpoint: str, data: bytes, method: str = "POST", timeout: float = SOCKET_TIMEOUT_S) -> Answer:
    """Send `data` on a new connection and read one answer. A closed connection without an answer raises
    (http.client.RemoteDisconnected / ConnectionError); a server that never answers raises TimeoutError."""
    data = as_client(endpoint, data)
    with socket.create_connection(address(endpoint), timeout=timeout) as sock:
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            sock.sendall(data)  # the server may answer and close before it reads everything; its answer is there
        response = http.client.HTTPResponse(sock, method=method)
        response.begin()
        body = response.read()
        return Answer(response.status, {k.lower(): v for k, v in response.getheaders()}, body)


class _Shared:
    """A socket stand-in whose makefile() is one buffered reader, so several HTTPResponses read one stream in turn."""

    def __init__(self, sock: socket.socket) -> None:
        self.fp = sock.makefile("rb")

    def makefile(self, mode: str) -> Any:
        return self

    def __getattr__(self, name: str) -> Any:
        return getattr(self.fp, name)

    def close(self) -> None:
        pass  # HTTPResponse closes its reader after a body; the next answer is read from the same one


def exchange_many(endpoint: str, data: bytes, methods: list[str], timeout: float = SOCKET_TIMEOUT_S) -> list[Answer]:
    """Send `data` (several requests) on one connection and read an answer per method, in order, until the server
    closes the connection (an answer that says Connection: close ends the list)."""
    answers: list[Answer] = []
    data = as_client(endpoint, data)
    with socket.create_connection(address(endpoint), timeout=timeout) as sock:
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            sock.sendall(data)
        shared = _Shared(sock)
        for method in methods:
            response = http.client.HTTPResponse(shared, method=method)  # type: ignore[arg-type]
            response.begin()
            body = response.read()
            answers.append(Answer(response.status, {k.lower(): v for k, v in response.getheaders()}, body))
            if response.will_close:
                break
    return answers


def assert_aws_error(
    answer: Answer, status: int | None = None, error_type: str | None = None, *, head: bool = False
) -> str:
    """The answer is an AWS-style error (see the module docstring); returns its message ('' after HEAD)."""
    assert 400 <= answer.status < 500, answer
    if status is not None:
        assert answer.status == status, answer
    assert answer.headers.get("x-amzn-requestid"), answer
    code = answer.headers.get("x-amzn-errortype")
    assert code, answer
    if error_type is not None:
        assert code == error_type, answer
    if head:
        assert answer.body == b"", answer
        return ""
    body = answer.json()
    assert isinstance(body, dict) and body.get("__type") == code and isinstance(body.get("message"), str), answer
    return str(body["message"])
