"""`batchplane console --endpoint URL`: the web console served on this machine for a batchplane elsewhere.

The browser talks to this server only (same origin, no CORS): GET /console/... are the console's files; POST
/v1/<operation> and the CloudWatch Logs JSON 1.1 calls (POST / with X-Amz-Target) are forwarded to the endpoint and
signed with the user's AWS credentials exactly as the CLI signs them (chalicelib/console/client.py: `execute-api` or
`lambda` for a deployed batchplane, `batch` locally; job logs of a deployed batchplane are read from CloudWatch Logs
itself, signed for `logs`). Whatever Authorization the browser sent is dropped: here the user's credentials sign.
Anyone who can make it forward a request acts with the user's credentials, so (docs/adr/0020):
- it binds only a loopback address (the CLI refuses another --host);
- each launch has a random token: the URL the command prints carries it, the first page load turns it into an
  HttpOnly SameSite=Strict cookie, and every forwarded request must carry that cookie (a page on another site, or
  another local user's browser, does not have it);
- Host, Origin and Sec-Fetch-Site are checked as `batchplane up` checks them (runtime/origin_guard.py);
- only what the console sends is forwarded: POST /v1/<operation> and CloudWatch Logs GetLogEvents of the job log
  group (never, say, DeleteLogGroup signed with the user's IAM key).
"""

from __future__ import annotations

import hmac
import json
import re
import secrets
import urllib.error
import urllib.request
import uuid
from http.cookies import CookieError, SimpleCookie
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest

from chalicelib import auth_plugin, console_web
from chalicelib.console.client import Api
from chalicelib.runtime import origin_guard
from chalicelib.runtime.background import BackgroundServer

MAX_BODY = 10 * 1024 * 1024
FORWARDED = ("Content-Type", "X-Amz-Target")
TIMEOUT_S = 30
COOKIE = "batchplane_console"
API_PATH = re.compile(r"/v1/[a-z]+")
LOGS_TARGETS = frozenset({"Logs_20140328.GetLogEvents"})  # what the console's job page calls (pages/job.js)
LOG_GROUP = "/aws/batch/job"


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
    token: str
    hosts: frozenset[str]
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        self._get(head_only=False)

    def do_HEAD(self) -> None:
        self._get(head_only=True)

    def _get(self, head_only: bool) -> None:
        """The console's files, to any page load whose Host names this server; the launch's token in the query
        becomes the cookie the API calls need."""
        why = origin_guard.refusal(self.command, self.headers.items(), self.hosts, api=False)
        if why is not None:
            self._deny(why)
        elif not console_web.handles(self.path):
            self._send(308 if self.path == "/" else 404, {"Location": "/console/"}, b"")
        else:
            given = parse_qs(urlsplit(self.path).query).get("token", [""])[0]
            if given and hmac.compare_digest(given.encode(), self.token.encode()):
                cookie = f"{COOKIE}={self.token}; Path=/; HttpOnly; SameSite=Strict"
                console_web.respond(self, head_only=head_only, extra_headers={"Set-Cookie": cookie})
            else:
                console_web.respond(self, head_only=head_only)

    def do_POST(self) -> None:
        length_text = self.headers.get("Content-Length") or "0"
        length = int(length_text) if length_text.isdigit() else -1
        if length < 0 or length > MAX_BODY or self.headers.get("Transfer-Encoding"):
            self.close_connection = True
            self._error(413 if length > MAX_BODY else 400, "ClientException", "a body of at most 10 MiB, by length")
            return
        body = self.rfile.read(length)
        why = origin_guard.refusal("POST", self.headers.items(), self.hosts) or self._unauthorized()
        why = why or self._not_forwarded(body)
        if why is not None:
            self._deny(why)
            return
        headers = {name: value for name in FORWARDED if (value := self.headers.get(name)) is not None}
        try:
            status, got, payload = forward(self.api, self.path, headers, body)
        except OSError as err:
            message = {"__type": "ProxyError", "message": f"cannot reach {self.api.endpoint}: {err}"}
            self._send(502, {"Content-Type": "application/json"}, json.dumps(message).encode())
            return
        self._send(status, {"Content-Type": got.get("Content-Type", "application/json")}, payload)

    def _unauthorized(self) -> str | None:
        try:
            jar = SimpleCookie(self.headers.get("Cookie") or "")
        except CookieError:
            jar = SimpleCookie()
        given = jar[COOKIE].value if COOKIE in jar else ""
        if given and hmac.compare_digest(given.encode(), self.token.encode()):
            return None
        return "no console token: open the console at the URL `batchplane console` printed (it carries the token)"

    def _not_forwarded(self, body: bytes) -> str | None:
        """Why the console would never send this request (None: it would, and it is forwarded)."""
        target = self.headers.get("X-Amz-Target")
        if target is None:
            return None if API_PATH.fullmatch(self.path) else f"the console forwards no POST {self.path[:100]}"
        if self.path != "/" or target not in LOGS_TARGETS:
            return f"the console forwards no {target[:100]} (only {', '.join(sorted(LOGS_TARGETS))} at /)"
        try:
            group = json.loads(body).get("logGroupName")
        except (ValueError, AttributeError):
            group = None
        if group != LOG_GROUP:
            return f"the console reads only the log group {LOG_GROUP}"
        return None

    def _deny(self, message: str) -> None:
        self._error(403, origin_guard.ACCESS_DENIED, message)

    def _error(self, status: int, code: str, message: str) -> None:
        headers = {"Content-Type": "application/json", "x-amzn-ErrorType": code, "x-amzn-RequestId": str(uuid.uuid4())}
        self._send(status, headers, json.dumps({"__type": code, "message": message}).encode())

    def _send(self, status: int, headers: dict[str, str], body: bytes) -> None:
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)


class ConsoleServer(BackgroundServer):
    """The console and its signing proxy on host:port (port 0 picks a free one)."""

    def __init__(self, api: Api, host: str, port: int) -> None:
        self.token = secrets.token_urlsafe(32)
        handler: type[_Handler] = type("Handler", (_Handler,), {"api": api, "token": self.token})
        server = ThreadingHTTPServer((host, port), handler)
        server.daemon_threads = True
        super().__init__(server, "console")
        handler.hosts = origin_guard.host_names(*self.address)

    @property
    def url(self) -> str:
        """The console's address, with this launch's token (the only way in)."""
        host, port = self.address
        shown = f"[{host}]" if ":" in host else host
        return f"http://{shown}:{port}/console/?token={self.token}"
