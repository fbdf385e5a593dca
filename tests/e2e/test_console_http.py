"""The web console's files on `batchplane up`'s own port, over raw HTTP (no browser): every /console/ page path is
the app (deep links reload), assets are files, and the API beside them is untouched."""

from __future__ import annotations

import http.client
import json
from urllib.parse import urlsplit

import pytest

from chalicelib.runtime.local import LocalRuntime

pytestmark = pytest.mark.e2e


def request(rt: LocalRuntime, method: str, path: str, body: bytes | None = None) -> tuple[int, dict[str, str], bytes]:
    url = urlsplit(rt.endpoint)
    conn = http.client.HTTPConnection(url.hostname or "", url.port, timeout=10)
    try:
        headers = {"Content-Type": "application/json", "X-Amz-Date": "20260101T000000Z"} if body is not None else {}
        conn.request(method, path, body=body, headers=headers)
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    finally:
        conn.close()


def test_pages_assets_and_the_api_share_the_port(runtime: LocalRuntime) -> None:
    status, headers, body = request(runtime, "GET", "/console/jobs/0f6c1a2b-aaaa-bbbb-cccc-1234567890ab")
    assert status == 200 and headers["content-type"].startswith("text/html")
    assert b'<script type="module" src="/console/assets/js/app.js">' in body
    assert "script-src 'self'" in headers["content-security-policy"]
    status, headers, body = request(runtime, "HEAD", "/console/queues/q")
    assert status == 200 and body == b"" and int(headers["content-length"]) > 0
    status, headers, _ = request(runtime, "GET", "/console")
    assert status == 308 and headers["location"] == "/console/"
    status, headers, body = request(runtime, "GET", "/console/assets/js/app.js")
    assert status == 200 and headers["content-type"].startswith("text/javascript") and b"ROUTES" in body
    assert request(runtime, "GET", "/console/assets/nope.js")[0] == 404
    status, _, body = request(runtime, "POST", "/v1/describejobqueues", b"{}")
    assert status == 200 and json.loads(body)["jobQueues"] == []
    assert request(runtime, "POST", "/console/jobs", b"{}")[0] != 200  # only GET/HEAD are the console's


def test_a_null_byte_in_an_asset_path_is_404_not_a_dropped_connection(runtime: LocalRuntime) -> None:
    status, _, body = request(runtime, "GET", "/console/assets/%00")
    assert status == 404 and body == b"not found\n"
    assert request(runtime, "GET", "/console/assets/js/" + "a" * 5000 + ".js")[0] == 404  # ENAMETOOLONG


def test_the_console_cannot_be_framed(runtime: LocalRuntime) -> None:
    _, headers, _ = request(runtime, "GET", "/console/")
    csp = headers["content-security-policy"]
    for directive in ("frame-ancestors 'none'", "base-uri 'none'", "form-action 'self'", "object-src 'none'"):
        assert directive in csp
    assert headers["x-frame-options"] == "DENY"
