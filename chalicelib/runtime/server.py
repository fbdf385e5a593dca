"""The local HTTP front end: Chalice's own local gateway on a threaded server tuned for keep-alive clients.

Why not `chalice local`: it cannot be embedded with our wiring, and its handler leaves Nagle's algorithm on, which
costs ~44 ms per keep-alive request from boto3 (headers and body go out in separate sends; see
shared/notes/stack-findings.md). We reuse Chalice's LocalGateway, so routing and event shapes are Chalice's.

With a Gate (`batchplane up --auth`, docs/adr/0019) every request that reaches the gateway must be SigV4-signed by
one of its keys; the gateway is wrapped per connection, so a refused request is answered 403 before it is routed.
Before that, every request passes runtime/origin_guard.py (Host, Origin, Sec-Fetch-Site, the preflight header): web
pages the user opens must not be able to drive the server.
"""

from __future__ import annotations

import json
import logging
import threading
import uuid
from http.server import ThreadingHTTPServer
from typing import Any, cast

from chalice.app import Chalice
from chalice.config import Config
from chalice.local import ChaliceRequestHandler, CustomLocalChalice, ForbiddenError, LocalChalice

from chalicelib import console_web
from chalicelib.runtime import origin_guard
from chalicelib.runtime.auth import Gate

log = logging.getLogger("batchplane.http")


class _Handler(ChaliceRequestHandler):
    disable_nagle_algorithm = True  # TCP_NODELAY: see the module docstring

    def log_message(self, format: str, *args: Any) -> None:
        pass  # one line per request is noise; errors are logged by the API layer

    def _generic_handle(self) -> None:
        """GET/HEAD of /console/...: the web console's files (chalicelib/console_web), unsigned even with --auth;
        everything else goes to the API. Every request first passes the origin guard."""
        console = self.command in ("GET", "HEAD") and console_web.handles(self.path)
        hosts: frozenset[str] | None = getattr(self.server, "hosts", None)
        why = origin_guard.refusal(self.command, self.headers.items(), hosts, api=not console)
        if why is not None:
            self._deny(why)
        elif console:
            console_web.respond(self, head_only=self.command == "HEAD")
        else:
            super()._generic_handle()

    def _deny(self, message: str) -> None:
        """403 AccessDeniedException, AWS-style; the connection is closed, since the body is left unread."""
        is_logs = self.path.split("?", 1)[0] == "/"
        request_id = str(uuid.uuid4())
        log.warning(
            "refused %s %s from %s: %s (request %s)",
            self.command,
            self.path[:200],
            self.client_address[0],
            message,
            request_id,
        )
        body = json.dumps({"__type": origin_guard.ACCESS_DENIED, "message": message}).encode()
        self.close_connection = True
        self.send_response(403)
        self.send_header("Content-Type", "application/x-amz-json-1.1" if is_logs else "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("x-amzn-ErrorType", origin_guard.ACCESS_DENIED)
        self.send_header("x-amzn-RequestId", request_id)
        self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    # Chalice's handler binds its do_* names to its own _generic_handle; every method must reach the one above.
    do_GET = do_PUT = do_POST = do_HEAD = do_DELETE = do_PATCH = do_OPTIONS = _generic_handle

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
        if isinstance(verdict, tuple):
            _, refusal_headers, payload = verdict  # always 403, Chalice's ForbiddenError
            raise ForbiddenError(refusal_headers, payload)
        return self._inner.handle_request(method=method, path=path, headers=headers, body=body)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    gate: Gate | None = None
    hosts: frozenset[str] | None = None  # the Host values accepted (None: any; origin_guard)


def _make_local(app: Chalice) -> None:
    """Give the app a thread-local `current_request`, as `chalice local` does (idempotent)."""
    if not isinstance(app, LocalChalice):
        CustomLocalChalice.__bases__ = (LocalChalice, app.__class__)
        app.__class__ = CustomLocalChalice


class ApiServer:
    def __init__(self, app: Chalice, host: str, port: int, gate: Gate | None = None) -> None:
        _make_local(app)
        config = Config(chalice_stage="local", function_name="api_handler")

        def handler(request: Any, client_address: Any, server: Any) -> _Handler:
            return _Handler(request, client_address, server, app_object=app, config=config)

        self._server = _Server((host, port), handler)
        self._server.gate = gate
        # With --auth any Host: every request is signed (docs/adr/0019); without, only names of this server.
        self._server.hosts = None if gate is not None else origin_guard.host_names(*self.address)
        self._thread: threading.Thread | None = None

    @property
    def gate(self) -> Gate | None:
        return self._server.gate

    @property
    def address(self) -> tuple[str, int]:
        host, port = self._server.server_address[:2]
        return str(host), int(port)

    @property
    def endpoint(self) -> str:
        host, port = self.address
        return f"http://{host}:{port}"

    def start(self) -> None:
        self._thread = threading.Thread(target=self._server.serve_forever, name="api", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
