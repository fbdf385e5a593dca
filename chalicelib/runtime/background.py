"""An HTTP server served from a daemon thread: the local API server (runtime/server.py) and the console's signing
proxy (console_web/proxy.py) start, address and stop their servers this one way."""

from __future__ import annotations

import threading
from http.server import HTTPServer


class BackgroundServer:
    """Serves `server` on a daemon thread named `name` between `start` and `stop`."""

    def __init__(self, server: HTTPServer, name: str) -> None:
        self._server = server
        self._name = name
        self._thread: threading.Thread | None = None

    @property
    def address(self) -> tuple[str, int]:
        host, port = self._server.server_address[:2]
        return str(host), int(port)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._server.serve_forever, name=self._name, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop serving (requests under way finish first), close the socket, and wait a little for the thread."""
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
