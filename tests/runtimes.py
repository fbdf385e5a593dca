"""Helpers for tests that run a LocalRuntime in-process."""

from __future__ import annotations

import contextlib
import socket
import threading
import time

from chalicelib.runtime.local import LocalRuntime


def stop_runtime(runtime: LocalRuntime, timeout_s: float) -> None:
    """Stop the runtime without waiting out the HTTP server's 0.5 s shutdown poll (bounded by `timeout_s`).

    socketserver's serve_forever notices a shutdown request only when its select() returns; a connection makes it
    return at once. Without this every test would pay half a second on teardown.
    """
    host, port = runtime.server.address
    stopper = threading.Thread(target=runtime.stop, name="stop-runtime", daemon=True)
    stopper.start()
    deadline = time.monotonic() + timeout_s
    while stopper.is_alive():
        assert time.monotonic() < deadline, "the local runtime did not stop"
        with contextlib.suppress(OSError):
            socket.create_connection((host, port), timeout=0.5).close()
        stopper.join(0.01)
