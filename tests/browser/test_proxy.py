"""`batchplane console --endpoint URL`: the console served on this machine, its API calls forwarded to the endpoint
and signed with the user's credentials there (chalicelib/console_web/proxy.py). Raw HTTP against a capturing
endpoint shows what is forwarded and how it is signed; a browser shows the console working through it."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from chalicelib.console.client import Api
from chalicelib.console_web.proxy import COOKIE, ConsoleServer, upstream
from tests.e2e.conftest import setup_queue, unique

try:
    from playwright.sync_api import expect
except ImportError:
    expect = None


@pytest.fixture
def creds(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDPROXYUSER")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "proxy-secret")
    monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)
    monkeypatch.delenv("AWS_PROFILE", raising=False)


@pytest.fixture
def captured() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    """An endpoint that records each request and answers {"ok": true}."""
    seen: list[dict[str, Any]] = []

    class Capture(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            seen.append({"path": self.path, "headers": {k.lower(): v for k, v in self.headers.items()}, "body": body})
            payload = b'{"ok": true}'
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Capture)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", seen
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def console_for() -> Iterator[Any]:
    servers: list[ConsoleServer] = []

    def start(endpoint: str, region: str = "eu-west-1") -> ConsoleServer:
        server = ConsoleServer(Api(endpoint, region), "127.0.0.1", 0)
        server.start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


def post(url: str, body: bytes, headers: dict[str, str]) -> tuple[int, bytes]:
    request = urllib.request.Request(url, data=body, method="POST", headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=10) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()


def base_of(console: ConsoleServer) -> str:
    return console.url.split("/console/", 1)[0]


def cookie(console: ConsoleServer) -> dict[str, str]:
    return {"Cookie": f"{COOKIE}={console.token}"}


def test_calls_are_forwarded_and_signed_with_the_users_credentials(
    creds: None, captured: Any, console_for: Any
) -> None:
    endpoint, seen = captured
    console = console_for(endpoint)
    base = base_of(console)
    body = b'{"jobQueue": "q", "jobStatus": "RUNNING"}'
    browser_auth = "AWS4-HMAC-SHA256 Credential=BROWSER/20260101/us-east-1/batch/aws4_request, Signature=00"
    status, answer = post(
        f"{base}/v1/listjobs",
        body,
        {"Content-Type": "application/json", "Authorization": browser_auth, **cookie(console)},
    )
    assert status == 200 and json.loads(answer) == {"ok": True}
    status, _ = post(
        f"{base}/",
        b'{"logGroupName": "/aws/batch/job"}',
        {
            "Content-Type": "application/x-amz-json-1.1",
            "X-Amz-Target": "Logs_20140328.GetLogEvents",
            **cookie(console),
        },
    )
    assert status == 200
    listed, logs = seen
    assert listed["path"] == "/v1/listjobs" and listed["body"] == body
    assert "Credential=AKIDPROXYUSER/" in listed["headers"]["authorization"]  # the user's key, not the browser's
    assert "/eu-west-1/batch/aws4_request" in listed["headers"]["authorization"]
    assert logs["path"] == "/" and logs["headers"]["x-amz-target"] == "Logs_20140328.GetLogEvents"
    assert "/eu-west-1/logs/aws4_request" in logs["headers"]["authorization"]


def test_only_what_the_console_sends_is_forwarded(creds: None, captured: Any, console_for: Any) -> None:
    endpoint, seen = captured
    console = console_for(endpoint)
    base, token = base_of(console), cookie(console)
    date = {"X-Amz-Date": "20260101T000000Z"}
    assert post(f"{base}/admin", b"{}", {**token, **date})[0] == 403
    assert post(f"{base}/v1/tags/arn%3Aaws", b"{}", {**token, **date})[0] == 403
    assert post(f"{base}/v1/ListJobs", b"{}", {**token, **date})[0] == 403
    assert post(f"{base}/", b"{}", {"X-Amz-Target": "DynamoDB_20120810.Scan", **token})[0] == 403
    group = b'{"logGroupName": "/aws/batch/job"}'
    status, answer = post(f"{base}/", group, {"X-Amz-Target": "Logs_20140328.DeleteLogGroup", **token})
    assert status == 403 and json.loads(answer)["__type"] == "AccessDeniedException"
    assert b"DeleteLogGroup" in answer
    other = b'{"logGroupName": "/aws/lambda/prod"}'
    assert post(f"{base}/", other, {"X-Amz-Target": "Logs_20140328.GetLogEvents", **token})[0] == 403
    assert post(f"{base}/v1/listjobs", b"{}", {**token, **date})[0] == 200  # the guard is not all there is
    assert len(seen) == 1 and seen[0]["path"] == "/v1/listjobs"
    seen.clear()
    with urllib.request.urlopen(f"{base}/console/jobs/some-job", timeout=10) as resp:  # a deep link: the app
        assert resp.status == 200 and b'src="/console/assets/js/app.js"' in resp.read()


def test_a_request_without_the_launchs_token_is_refused(creds: None, captured: Any, console_for: Any) -> None:
    endpoint, seen = captured
    console = console_for(endpoint)
    base = base_of(console)
    headers = {"Content-Type": "application/json", "X-Amz-Date": "20260101T000000Z"}
    status, answer = post(f"{base}/v1/listjobs", b"{}", headers)
    assert status == 403 and b"token" in answer
    assert post(f"{base}/v1/listjobs", b"{}", {**headers, "Cookie": f"{COOKIE}=guessed"})[0] == 403
    other = console_for(endpoint)  # another launch's token opens only that launch
    assert post(f"{base}/v1/listjobs", b"{}", {**headers, **cookie(other)})[0] == 403
    assert seen == []
    # The printed URL carries the token; loading it sets the cookie (HttpOnly, SameSite=Strict).
    with urllib.request.urlopen(console.url, timeout=10) as resp:
        set_cookie = resp.headers["Set-Cookie"]
    assert set_cookie.startswith(f"{COOKIE}={console.token};")
    assert "HttpOnly" in set_cookie and "SameSite=Strict" in set_cookie
    with urllib.request.urlopen(f"{base}/console/", timeout=10) as resp:
        assert resp.status == 200 and resp.headers["Set-Cookie"] is None  # the files are public; the token is not


def test_a_page_on_another_site_cannot_use_the_proxy(creds: None, captured: Any, console_for: Any) -> None:
    endpoint, seen = captured
    console = console_for(endpoint)
    base, token = base_of(console), cookie(console)
    port = base.rsplit(":", 1)[1]
    simple = {"Content-Type": "text/plain", **token}
    assert post(f"{base}/v1/submitjob", b"{}", {**simple, "Origin": "http://evil.example"})[0] == 403
    assert post(f"{base}/v1/submitjob", b"{}", {**simple, "Sec-Fetch-Site": "cross-site"})[0] == 403
    assert post(f"{base}/v1/submitjob", b"{}", simple)[0] == 403  # no X-Amz-Date: could be a no-cors fetch
    status, answer = post(f"{base}/v1/listjobs", b"{}", {**token, "Host": f"evil.example:{port}", "X-Amz-Date": "x"})
    assert status == 403 and b"does not name this server" in answer
    assert seen == []


def test_the_console_command_refuses_a_non_loopback_host(creds: None, captured: Any) -> None:
    endpoint, _ = captured
    for host in ("0.0.0.0", ""):
        done = subprocess.run(
            [sys.executable, "-m", "chalicelib.cli", "console", "--endpoint", endpoint, "--host", host, "--port", "0"],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 2 and "not a loopback address" in done.stderr


def test_a_deployed_endpoint_is_signed_as_the_cli_signs_it() -> None:
    function_url = Api("https://abc123.lambda-url.eu-west-1.on.aws", "eu-west-1")
    assert upstream(function_url, "/v1/listjobs", None) == (
        "https://abc123.lambda-url.eu-west-1.on.aws/v1/listjobs",
        "lambda",
    )
    assert upstream(function_url, "/", "Logs_20140328.GetLogEvents") == (
        "https://logs.eu-west-1.amazonaws.com/",
        "logs",
    )
    gateway = Api("https://xyz789.execute-api.us-east-2.amazonaws.com/api", "us-east-2")
    assert upstream(gateway, "/v1/listjobs", None) == (
        "https://xyz789.execute-api.us-east-2.amazonaws.com/api/v1/listjobs",
        "execute-api",
    )
    local = Api("http://127.0.0.1:8000", "us-east-1")
    assert upstream(local, "/", "Logs_20140328.GetLogEvents") == ("http://127.0.0.1:8000/", "logs")


@pytest.mark.browser
def test_the_console_works_through_the_proxy(
    page: Any, creds: None, runtime: Any, batch: Any, console_for: Any
) -> None:
    queue, _ = setup_queue(batch, name=unique("proxied"))
    console = console_for(runtime.endpoint, "us-east-1")
    page.goto(console.url)
    expect(page.get_by_role("link", name=queue, exact=True)).to_be_visible()
    page.get_by_role("link", name=queue, exact=True).click()
    expect(page.get_by_role("heading", level=1)).to_have_text(f"Queue {queue}")


def test_the_console_command_serves_until_stopped(creds: None, captured: Any) -> None:
    endpoint, _ = captured
    proc = subprocess.Popen(
        [sys.executable, "-m", "chalicelib.cli", "console", "--endpoint", endpoint, "--port", "0"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        url = line.rsplit(": ", 1)[1].strip()
        assert line.startswith(f"the batchplane console for {endpoint}: http://127.0.0.1:")
        assert "/console/?token=" in url
        with urllib.request.urlopen(url, timeout=10) as resp:
            assert resp.status == 200 and b"batchplane console" in resp.read()
    finally:
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=15) == 130
