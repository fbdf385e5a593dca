"""The console against `batchplane up --auth FILE` (docs/adr/0019): its files are served unsigned, every API call is
refused until the user signs in, a wrong secret is refused with the server's own reason, and once signed in every
page works — the Batch API and the logs, signed in the browser."""

from __future__ import annotations

import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

from app import app
from chalicelib.console.client import Api
from chalicelib.console_web.proxy import COOKIE, ConsoleServer
from chalicelib.runtime.local import LocalConfig, LocalRuntime
from chalicelib.runtime.plane import build_local
from tests.e2e.conftest import CLIENT_CONFIG, REGION, register, setup_queue, sh, submit, unique, wait_terminal
from tests.runtimes import stop_runtime

pytestmark = pytest.mark.browser

try:
    from playwright.sync_api import expect
except ImportError:
    expect = None

KEY = ("AKIDCONSOLEALICE0001", "alice/console+secret000000000000000000001")


@pytest.fixture
def secured(tmp_path: Path) -> Iterator[LocalRuntime]:
    keys = tmp_path / "keys"
    keys.write_text(f"[alice]\naws_access_key_id = {KEY[0]}\naws_secret_access_key = {KEY[1]}\n")
    keys.chmod(0o600)
    rt = build_local(LocalConfig(state_dir=tmp_path / "state", port=0, auth_file=keys, grace_seconds=1.0), app)
    rt.start()
    try:
        yield rt
    finally:
        stop_runtime(rt, 15.0)


def sign_in(page: Any, key_id: str, secret: str) -> None:
    page.get_by_label("Access key id").fill(key_id)
    page.get_by_label("Secret access key").fill(secret)
    page.get_by_role("button", name="Sign in").click()


def test_sign_in_to_a_server_that_requires_signatures(page: Any, secured: LocalRuntime) -> None:
    session = boto3.session.Session(aws_access_key_id=KEY[0], aws_secret_access_key=KEY[1], region_name=REGION)
    batch = session.client("batch", endpoint_url=secured.endpoint, config=CLIENT_CONFIG)
    queue, _ = setup_queue(batch, name=unique("secured"))
    job_id = submit(batch, queue, register(batch, unique("hi"), sh("echo hello from a secured server")), "secured-job")
    wait_terminal(batch, [job_id])

    page.goto(f"{secured.endpoint}/console/jobs/{job_id}")  # the files are served; the API refuses
    banner = page.locator("#banner")
    expect(banner).to_contain_text("MissingAuthenticationTokenException")
    banner.get_by_role("link", name="Sign in").click()

    sign_in(page, KEY[0], "not-the-secret")
    expect(page.locator("main").get_by_role("alert")).to_contain_text("InvalidSignatureException")
    sign_in(page, KEY[0], KEY[1])

    expect(page).to_have_url(f"{secured.endpoint}/console/jobs/{job_id}")  # back to the page that asked
    expect(page.get_by_role("heading", level=1)).to_contain_text("secured-job")
    expect(page.get_by_label("Log lines")).to_contain_text("hello from a secured server")  # logs: signed for `logs`
    expect(banner).to_be_empty()
    page.get_by_role("link", name="Dashboard").click()
    expect(page.get_by_role("link", name=queue, exact=True)).to_be_visible()


def test_the_console_command_signs_for_a_secured_server(secured: LocalRuntime, monkeypatch: pytest.MonkeyPatch) -> None:
    """`batchplane console --endpoint` in front of `up --auth`: the browser sends nothing signed, the proxy signs."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", KEY[0])
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", KEY[1])
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)
    server = ConsoleServer(Api(secured.endpoint, REGION), "127.0.0.1", 0)
    server.start()
    try:
        base = server.url.split("/console/", 1)[0]
        token = {"Cookie": f"{COOKIE}={server.token}", "X-Amz-Date": "20260101T000000Z"}  # as the console sends
        headers = {"Content-Type": "application/json", **token}
        req = urllib.request.Request(base + "/v1/describejobqueues", data=b"{}", method="POST", headers=headers)
        with urllib.request.urlopen(req, timeout=10) as resp:
            assert resp.status == 200
        headers = {"Content-Type": "application/x-amz-json-1.1", "X-Amz-Target": "Logs_20140328.GetLogEvents", **token}
        body = b'{"logGroupName": "/aws/batch/job", "logStreamName": "no/such/stream"}'
        req = urllib.request.Request(base + "/", data=body, method="POST", headers=headers)
        with pytest.raises(urllib.error.HTTPError) as missing:  # past the signature check: the stream is not there
            urllib.request.urlopen(req, timeout=10)
        assert missing.value.code == 400 and b"ResourceNotFoundException" in missing.value.read()
        unsigned = urllib.request.Request(secured.endpoint + "/v1/describejobqueues", data=b"{}", method="POST")
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(unsigned, timeout=10)
        assert refused.value.code == 403
    finally:
        server.stop()
