"""`batchplane console --endpoint URL`: the web console served on this machine for a batchplane elsewhere.

The browser talks to this server only (same origin, no CORS): GET /console/... are the console's files; POST
/v1/<operation> and the CloudWatch Logs JSON 1.1 calls (POST / with X-Amz-Target) are forwarded to the endpoint and
signed with the user's AWS credentials exactly as the CLI signs them (chalicelib/console/client.py: `execute-api` or
`lambda` for a deployed batchplane, `batch` locally; job logs of a deployed batchplane are read from CloudWatch Logs
itself, signed for `logs`). Whatever Authorization the browser sent is dropped: here the user's credentials sign.
It binds 127.0.0.1 by default: anyone who can reach it acts with the user's credentials.
"""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest

from chalicelib import auth_plugin, console_web
from chalicelib.console.client import Api

MAX_BODY = 10 * 1024 * 1024
FORWARDED = ("Content-Type", "X-Amz-Target")
TIMEOUT_S = 30


def upstream(api: Api, path: str, target: str | None) -> tuple[str, str]:
    """(URL, signing service) for a request the console sent to `path` (a /v1/ path, or / with an X-Amz-Target)."""
    base = api.endpoint.rstrip("/")
    if target is not None:  # CloudWatch Logs
        if api.deployed:
            return f"https://logs.{api.region}.amazonaws.com/", "logs"
        return base + "/", "logs"
    return base + path, auth_plugin.signing_name_for(api.endpoint) or "batch"


def forward(api: Api, path: str, headers: dict[str, str], body: bytes) -> tuple[int, dict[str, str], bytes]:
    target = headers.get("X-Amz-Target")
    url, service = upstream(api, path, target)
    sent = {name: headers[name] for name in FORWARDED if name in headers}
    sent.update(auth_plugin.signed_headers(service, body))
    request = AWSRequest(method="POST", url=url, data=body, headers=sent)
    creds = api.session.get_credentials().get_frozen_credentials()
    SigV4Auth(creds, service, api.region).add_auth(request)
    prepared = urllib.request.Request(url, data=body, method="POST", headers=dict(request.headers.items()))
    try:
        with urllib.request.urlopen(prepared, timeout=TIMEOUT_S) as resp:
            return resp.status, dict(resp.headers.items()), resp.read()
    except urllib.error.HTTPError as err:
        return err.code, dict(err.headers.items()), err.read()


class _Handler(BaseHTTPRequestHandler):
    api: Api
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        if console_web.handles(self.path):
            console_web.respond(self)
        else:
            self._send(308 if self.path == "/" else 404, {"Location": "/console/"}, b"")

    def do_HEAD(self) -> None:
        if console_web.handles(self.path):
            console_web.respond(self, head_only=True)
        else:
            self._send(404, {}, b"")

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY:
            self._send(413, {"Content-Type": "text/plain"}, b"request too large\n")
            return
        body = self.rfile.read(length)
        is_logs = self.path == "/" and self.headers.get("X-Amz-Target", "").startswith("Logs_20140328.")
        if not (self.path.startswith("/v1/") or is_logs):
            self._send(404, {"Content-Type": "text/plain"}, b"not found\n")
            return
        headers = {name: value for name in FORWARDED if (value := self.headers.get(name)) is not None}
        try:
            status, got, payload = forward(self.api, self.path, headers, body)
        except OSError as err:
            message = {"__type": "ProxyError", "message": f"cannot reach {self.api.endpoint}: {err}"}
            self._send(502, {"Content-Type": "application/json"}, json.dumps(message).encode())
            return
        self._send(status, {"Content-Type": got.get("Content-Type", "application/json")}, payload)

    def _send(self, status: int, headers: dict[str, str], body: bytes) -> None:
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


class ConsoleServer:
    """The console and its signing proxy on host:port (port 0 picks a free one)."""

    def __init__(self, api: Api, host: str, port: int) -> None:
        handler = type("Handler", (_Handler,), {"api": api})
        self._server = ThreadingHTTPServer((host, port), handler)
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{int(port)}/console/"

    def start(self) -> None:
        self._thread = threading.Thread(target=self._server.serve_forever, name="console", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
