"""The local HTTP front end: Chalice's own local gateway on a threaded server tuned for keep-alive clients.

Why not `chalice local`: it cannot be embedded with our wiring, and its handler leaves Nagle's algorithm on, which
costs ~44 ms per keep-alive request from boto3 (headers and body go out in separate sends; see
shared/notes/stack-findings.md). We reuse Chalice's LocalGateway, so routing and event shapes are Chalice's.
"""

from __future__ import annotations

import threading
from http.server import ThreadingHTTPServer
from typing import Any

from chalice.app import Chalice
from chalice.config import Config
from chalice.local import ChaliceRequestHandler, CustomLocalChalice, LocalChalice

from chalicelib import console_web


class _Handler(ChaliceRequestHandler):
    disable_nagle_algorithm = True  # TCP_NODELAY: see the module docstring

    def log_message(self, format: str, *args: Any) -> None:
        pass  # one line per request is noise; errors are logged by the API layer

    def do_GET(self) -> None:  # the web console's files at /console/ (chalicelib/console_web); the rest is the API
        if console_web.handles(self.path):
            console_web.respond(self)
        else:
            super().do_GET()

    def do_HEAD(self) -> None:
        if console_web.handles(self.path):
            console_web.respond(self, head_only=True)
        else:
            super().do_HEAD()


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True


def _make_local(app: Chalice) -> None:
    """Give the app a thread-local `current_request`, as `chalice local` does (idempotent)."""
    if not isinstance(app, LocalChalice):
        CustomLocalChalice.__bases__ = (LocalChalice, app.__class__)
        app.__class__ = CustomLocalChalice


class ApiServer:
    def __init__(self, app: Chalice, host: str, port: int) -> None:
        _make_local(app)
        config = Config(chalice_stage="local", function_name="api_handler")

        def handler(request: Any, client_address: Any, server: Any) -> _Handler:
            return _Handler(request, client_address, server, app_object=app, config=config)

        self._server = _Server((host, port), handler)
        self._thread: threading.Thread | None = None

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
