"""The raw-HTTP edge of the local server: every request gets an AWS-style answer, never an HTML page, never silence.

`http.server` (under Chalice's ChaliceRequestHandler) answers what it cannot parse with HTML pages and no request id
(400, 414, 431, 501, 505), closes the connection without a word when `Content-Length` is not an integer (Chalice calls
`int()` on it; a huge one is a MemoryError or a read that never ends), reads a chunked body as the next request, sends
a body after HEAD, and lets Chalice's own answers (403 for a path no route takes, 415, Chalice's 500) through without
`x-amzn-RequestId` or an AWS error type. This handler keeps Chalice's routing and event shapes (LocalGateway) and
replaces the framing around it (docs/adr/0018-http-edge.md):

- the body is framed strictly: one Content-Length of ASCII digits, or `Transfer-Encoding: chunked` (decoded), at most
  MAX_BODY_BYTES; anything else is refused before a byte of the body is read, and the connection is closed;
- a read that stalls for `timeout` seconds is answered 408 (the socket timeout also ends idle keep-alive connections);
- every answer is JSON `{"__type", "message"}` with `x-amzn-ErrorType` and `x-amzn-RequestId`, typed for the protocol
  the path speaks (Batch REST-JSON: ClientException; CloudWatch Logs JSON 1.1 at `/`: SerializationException); a path
  or method no route takes is 404 UnknownOperationException, as the AWS runtime answers it (runtime/aws/http.py);
- nothing a client sends is a 5xx: http.server's 501 (unknown method) is that 404 and its 505 (HTTP version) a 400;
- HEAD answers carry no body.
"""

from __future__ import annotations

import json
import logging
import re
import socket
import uuid
from http import HTTPStatus
from typing import Any

from chalice.local import ChaliceRequestHandler, LocalGatewayException

from chalicelib.api.errors import edge_error_type
from chalicelib.api.safe_json import MAX_BODY_BYTES
from chalicelib.domain import digits

log = logging.getLogger("batchplane.http")

LOGS_PATH = "/"  # the CloudWatch Logs protocol's one path (app.py)
_HEX = re.compile(rb"[0-9A-Fa-f]{1,15}")
_MAX_LINE = 65536  # http.server's own bound on the request line and each header line
_MAX_TRAILERS = 100
LINGER_S = 1.0
LINGER_BYTES = 2 * MAX_BODY_BYTES


class Refused(Exception):
    """A request the edge answers itself: HTTP status, whether the protocol's own type applies, message."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        unknown_operation: bool = False,
        close: bool = True,
        error_type: str | None = None,
        request_id: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.unknown_operation = unknown_operation
        self.close = close
        self.error_type = error_type  # instead of the protocol's own (e.g. AccessDeniedException; origin_guard)
        self.request_id = request_id


class EdgeHandler(ChaliceRequestHandler):
    """ChaliceRequestHandler with strict framing and AWS-style answers (module docstring)."""

    disable_nagle_algorithm = True  # TCP_NODELAY: see runtime/server.py
    max_body_bytes = MAX_BODY_BYTES

    def __init__(self, request: Any, client_address: Any, server: Any, **kwargs: Any) -> None:
        self.timeout = getattr(server, "request_timeout", None)  # read by StreamRequestHandler.setup
        self._received_request = self._answering = False
        self._scratch = bytearray(65536)
        super().__init__(request, client_address, server, **kwargs)

    def log_message(self, format: str, *args: Any) -> None:
        pass  # one line per request is noise; errors are logged by the API layer

    # -- reading ---------------------------------------------------------------------------------------------------

    def handle_one_request(self) -> None:
        """BaseHTTPRequestHandler's, except that a request cut short by the timeout is answered 408 (an idle
        keep-alive connection is closed quietly, as before) and every method is dispatched to `_generic_handle`."""
        self._received_request = self._answering = False
        self.command = self.path = self.requestline = ""
        self.request_version = "HTTP/1.1"
        try:
            self.raw_requestline = self.rfile.readline(_MAX_LINE + 1)
            if not self.raw_requestline:
                self.close_connection = True
                return
            self._received_request = True
            if len(self.raw_requestline) > _MAX_LINE:
                self.requestline = self.request_version = ""
                self.send_error(HTTPStatus.REQUEST_URI_TOO_LONG)
                return
            if not self.parse_request():
                return  # parse_request answered through send_error
            self._generic_handle()
            self.wfile.flush()
        except TimeoutError:
            if self._received_request and not self._answering:  # not in the middle of an answer already
                self._refuse(Refused(408, f"The request was not received within {self.timeout} seconds"))
            self.close_connection = True

    def _read_body(self) -> bytes | None:
        encodings = self.headers.get_all("Transfer-Encoding") or []
        lengths = self.headers.get_all("Content-Length") or []
        if encodings:
            if lengths:
                raise Refused(400, "A request must not have both Content-Length and Transfer-Encoding")
            codings = [c.strip().lower() for c in ",".join(encodings).split(",")]
            if codings != ["chunked"]:
                raise Refused(400, f"Transfer-Encoding {', '.join(codings)!r} is not supported; use chunked")
            return self._read_chunked()
        if not lengths:
            return None
        values = {v.strip() for v in ",".join(lengths).split(",")}
        text = values.pop() if len(values) == 1 else ""
        length = digits.parse(text)
        if length is None:
            shown = ", ".join(sorted(v[:20] for v in values | {text}))
            raise Refused(400, f"Content-Length must be one non-negative integer; got {shown!r}")
        if length > self.max_body_bytes:
            raise Refused(413, f"The request body must be at most {self.max_body_bytes} bytes; got {length}")
        body = self.rfile.read(length) if length else b""
        if len(body) < length:
            raise Refused(400, f"The request body ended after {len(body)} of its {length} bytes (Content-Length)")
        return body or None

    def _read_chunked(self) -> bytes:
        body = bytearray()
        while True:
            line = self.rfile.readline(_MAX_LINE + 1)
            size_text = line.split(b";", 1)[0].strip()
            if not line.endswith(b"\n") or not _HEX.fullmatch(size_text):
                raise Refused(400, "The chunked request body is malformed (chunk size line)")
            size = int(size_text, 16)
            if size == 0:
                break
            if len(body) + size > self.max_body_bytes:
                raise Refused(413, f"The request body must be at most {self.max_body_bytes} bytes")
            chunk = self.rfile.read(size)
            if len(chunk) < size or self.rfile.readline(3) not in (b"\r\n", b"\n"):
                raise Refused(400, "The chunked request body is malformed (chunk data)")
            body += chunk
        for _ in range(_MAX_TRAILERS):
            line = self.rfile.readline(_MAX_LINE + 1)
            if line in (b"\r\n", b"\n"):
                return bytes(body)
            if not line.endswith(b"\n"):
                break
        raise Refused(400, "The chunked request body is malformed (trailer)")

    # -- answering -------------------------------------------------------------------------------------------------

    def _generic_handle(self) -> None:
        try:
            body = self._read_body()  # first, whatever the answer: an unread body would be read as the next request
            if self.command == "OPTIONS":  # Chalice would answer a CORS preflight; no route of the app has CORS
                raise Refused(404, self._no_such_operation(), unknown_operation=True, close=False)
            try:
                response = self.local_gateway.handle_request(
                    method=self.command, path=self.path, headers=dict(self.headers), body=body
                )
            except LocalGatewayException:  # no route matches the path (Chalice: 403 "Missing Authentication Token")
                raise Refused(404, self._no_such_operation(), unknown_operation=True, close=False) from None
        except Refused as refused:
            self._refuse(refused)
            return
        except TimeoutError:
            raise
        except Exception:
            request_id = str(uuid.uuid4())
            log.exception("unhandled error in the HTTP edge, request %s", request_id)
            self._send_error_json(500, "Internal error; request id " + request_id, request_id=request_id)
            self.close_connection = True
            return
        self._send_response(response)

    def _no_such_operation(self) -> str:
        return f"no such operation: {self.command} {self.path.split('?', 1)[0][:200]}"

    def _refuse(self, refused: Refused) -> None:
        if refused.close:  # before the answer, so that it says Connection: close
            self.close_connection = True
        self._send_error_json(
            refused.status,
            str(refused),
            unknown_operation=refused.unknown_operation,
            error_type=refused.error_type,
            request_id=refused.request_id,
        )
        if refused.close:
            self._linger()

    def _linger(self) -> None:
        """Read (and drop) what the client is still sending before the connection closes: closing a socket with
        unread input makes the kernel send a reset, which can destroy the answer before the client reads it (the
        "lingering close" of RFC 9112 section 9.6). Bounded in bytes and time."""
        try:
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_WR)
            self.connection.settimeout(LINGER_S)
            drained = 0
            while drained < LINGER_BYTES:
                received = self.connection.recv_into(self._scratch)
                if not received:
                    break
                drained += received
        except OSError:
            pass  # the client is gone or quiet: nothing more to protect

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """http.server's own refusals (request line, headers, version, method) as JSON; none of them a 5xx."""
        self.close_connection = True
        if code == HTTPStatus.NOT_IMPLEMENTED:  # a method no handler has: no route takes it
            self._send_error_json(404, self._no_such_operation(), unknown_operation=True)
        else:
            status = 400 if code >= 500 else int(code)  # 505: an HTTP version it does not speak is the client's
            self._send_error_json(status, message or HTTPStatus(code).phrase)

    def _send_error_json(
        self,
        status: int,
        message: str,
        *,
        unknown_operation: bool = False,
        request_id: str | None = None,
        error_type: str | None = None,
    ) -> None:
        code = error_type or edge_error_type(status, self._is_logs(), unknown_operation)
        body = json.dumps({"__type": code, "message": message})
        headers = {"x-amzn-ErrorType": code, "x-amzn-RequestId": request_id or str(uuid.uuid4())}
        self._write(status, headers, body.encode(), self._content_type())

    def _send_response(self, response: dict[str, Any]) -> None:
        """Chalice's proxy response, given a request id and, when it is an error Chalice made itself (415, its 500),
        the AWS error form."""
        status = int(response["statusCode"])
        headers: dict[str, Any] = {**(response.get("headers") or {}), **(response.get("multiValueHeaders") or {})}
        lowered = {k.lower(): k for k in headers}
        request_id = str(headers.get(lowered.get("x-amzn-requestid", ""), "")) or str(uuid.uuid4())
        headers[lowered.get("x-amzn-requestid", "x-amzn-RequestId")] = request_id
        if status >= 400 and "x-amzn-errortype" not in lowered:
            self._send_error_json(status, _chalice_message(response.get("body")), request_id=request_id)
            return
        body = self._handle_binary(response)["body"]
        data = b"" if body is None else body if isinstance(body, bytes) else str(body).encode()
        content_type = headers.pop(lowered.get("content-type", "Content-Type"), None) or self._content_type()
        self._write(status, headers, data, str(content_type))

    def _write(self, status: int, headers: dict[str, Any], body: bytes, content_type: str) -> None:
        if self.request_version == "HTTP/0.9" or not self.request_version:
            self.request_version = "HTTP/1.0"  # an answer with a status line and headers, even to a garbled request
            self.close_connection = True
        self._answering = True
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in headers.items():
            if name.lower() in ("content-length", "content-type"):
                continue
            for one in value if isinstance(value, list) else [value]:
                self.send_header(name, str(one))
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _is_logs(self) -> bool:
        return self.path.split("?", 1)[0] == LOGS_PATH

    def _content_type(self) -> str:
        return "application/x-amz-json-1.1" if self._is_logs() else "application/json"


def _chalice_message(body: Any) -> str:
    """The message of an error body Chalice wrote ({"Code", "Message"} or {"message"})."""
    try:
        parsed = json.loads(body) if body else {}
    except ValueError:
        parsed = {}
    if isinstance(parsed, dict):
        message = parsed.get("Message") or parsed.get("message")
        if isinstance(message, str):
            return message
    return "The request was refused"
