"""The local HTTP front end: Chalice's own local gateway on a threaded server tuned for keep-alive clients.

The request handler is runtime/http_edge.py: Chalice's, with strict framing and AWS-style answers to everything.

Why not `chalice local`: it cannot be embedded with our wiring, and its handler leaves Nagle's algorithm on, which
costs ~44 ms per keep-alive request from boto3 (headers and body go out in separate sends; see
shared/notes/stack-findings.md). We reuse Chalice's LocalGateway, so routing and event shapes are Chalice's.

With a Gate (`batchplane up --auth`, docs/adr/0019) every request that reaches the gateway must be SigV4-signed by
one of its keys; the gateway is wrapped per connection, so a refused request is answered 403 before it is routed.
Before that, every request passes runtime/origin_guard.py (Host, Origin, Sec-Fetch-Site, the preflight header): web
pages the user opens must not be able to drive the server.
"""

from __future__ import annotations

import logging
import sys
import uuid
from http.server import ThreadingHTTPServer
from typing import Any, cast

from chalice.app import Chalice
from chalice.config import Config
from chalice.local import CustomLocalChalice, LocalChalice

from chalicelib import console_web
from chalicelib.runtime import origin_guard
from chalicelib.runtime.auth import Gate
from chalicelib.runtime.background import BackgroundServer
from chalicelib.runtime.http_edge import EdgeHandler, Refused

log = logging.getLogger("batchplane.http")
REQUEST_TIMEOUT_S = 60.0  # a read that stalls this long is answered 408; idle keep-alive connections close too


class _Handler(EdgeHandler):
    def _generic_handle(self) -> None:
        """GET/HEAD of /console/...: the web console's files (chalicelib/console_web), unsigned even with --auth;
        everything else goes to the API. Every request first passes the origin guard."""
        console = self.command in ("GET", "HEAD") and console_web.handles(self.path)
        hosts: frozenset[str] | None = getattr(self.server, "hosts", None)
        signed = getattr(self.server, "gate", None) is not None
        why = origin_guard.refusal(self.command, self.headers.items(), hosts, api=not console, signed=signed)
        if why is not None:
            self._deny(why)
        elif console:
            console_web.respond(self, head_only=self.command == "HEAD")
        else:
            super()._generic_handle()

    def _deny(self, message: str) -> None:
        """403 AccessDeniedException, AWS-style, before the body is read; the edge drains it and closes."""
        request_id = str(uuid.uuid4())
        log.warning(
            "refused %s %s from %s: %s (request %s)",
            self.command,
            self.path[:200],
            self.client_address[0],
            message,
            request_id,
        )
        self._refuse(Refused(403, message, error_type=origin_guard.ACCESS_DENIED, request_id=request_id))

    def setup(self) -> None:
        super().setup()
        gate: Gate | None = getattr(self.server, "gate", None)
        if gate is not None:
            self.local_gateway = cast(Any, _GuardedGateway(self.local_gateway, gate, str(self.client_address[0])))


class _GuardedGateway:
    """Chalice's LocalGateway behind the Gate: the raw request target, headers and body are checked first."""

    def __init__(self, inner: Any, gate: Gate, client: str) -> None:
        self._inner, self._gate, self._client = inner, gate, client

    def handle_request(self, method: str, path: str, headers: dict[str, str], body: bytes | None) -> Any:
        verdict = self._gate.check(method, path, headers, body, self._client)
        if isinstance(verdict, tuple):  # a typed 403 (x-amzn-ErrorType set): EdgeHandler sends it as it is
            status, refusal_headers, payload = verdict
            return {"statusCode": status, "headers": refusal_headers, "body": payload, "isBase64Encoded": False}
        return self._inner.handle_request(method=method, path=path, headers=headers, body=body)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    gate: Gate | None = None
    hosts: frozenset[str] | None = None  # the Host values accepted (None: any; origin_guard)
    request_timeout: float | None = REQUEST_TIMEOUT_S  # read by EdgeHandler

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that went away mid-answer is not an error of ours; anything else is logged, not printed."""
        exc = sys.exc_info()[1]
        if isinstance(exc, ConnectionError | TimeoutError):
            return
        log.error("error serving %s", client_address, exc_info=exc)


def _make_local(app: Chalice) -> None:
    """Give the app a thread-local `current_request`, as `chalice local` does (idempotent)."""
    if not isinstance(app, LocalChalice):
        CustomLocalChalice.__bases__ = (LocalChalice, app.__class__)
        app.__class__ = CustomLocalChalice


class ApiServer(BackgroundServer):
    def __init__(
        self,
        app: Chalice,
        host: str,
        port: int,
        gate: Gate | None = None,
        request_timeout: float | None = REQUEST_TIMEOUT_S,
    ) -> None:
        _make_local(app)
        config = Config(chalice_stage="local", function_name="api_handler")

        def handler(request: Any, client_address: Any, server: Any) -> _Handler:
            return _Handler(request, client_address, server, app_object=app, config=config)

        server = _Server((host, port), handler)
        super().__init__(server, "api")
        server.gate = gate
        server.request_timeout = request_timeout
        # With --auth any Host: every request is signed (docs/adr/0019); without, only names of this server.
        server.hosts = None if gate is not None else origin_guard.host_names(*self.address)
        self._api = server

    @property
    def gate(self) -> Gate | None:
        return self._api.gate

    @property
    def endpoint(self) -> str:
        host, port = self.address
        return f"http://{host}:{port}"
