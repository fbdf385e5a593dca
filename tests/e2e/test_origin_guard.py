"""What `batchplane up` (no --auth) accepts from a browser, over raw HTTP against a running server: a web page the
user opens must not be able to drive it (chalicelib/runtime/origin_guard.py). Cross-origin "simple" requests, a
rebound Host and unsigned changes without X-Amz-Date are refused 403 before anything is routed; stock clients and
same-origin console calls still work."""

from __future__ import annotations

import http.client
import json
import subprocess
import sys
from urllib.parse import urlsplit

import boto3
import pytest
from botocore import UNSIGNED
from botocore.config import Config

from chalicelib.runtime.local import LocalRuntime
from tests.e2e.conftest import unique

pytestmark = pytest.mark.e2e

QUEUE_BODY = b'{"jobQueueName": "%s", "priority": 1, "computeEnvironmentOrder": []}'


def send(
    rt: LocalRuntime, method: str, path: str, headers: dict[str, str], body: bytes | None = None
) -> tuple[int, dict[str, str], bytes]:
    url = urlsplit(rt.endpoint)
    conn = http.client.HTTPConnection(url.hostname or "", url.port, timeout=10)
    try:
        conn.putrequest(method, path, skip_host="Host" in headers, skip_accept_encoding=True)
        for name, value in headers.items():
            conn.putheader(name, value)
        if body is not None:
            conn.putheader("Content-Length", str(len(body)))
        conn.endheaders(body)
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    finally:
        conn.close()


def assert_denied(answer: tuple[int, dict[str, str], bytes], why: str) -> None:
    status, headers, body = answer
    assert status == 403, body
    assert headers["x-amzn-errortype"] == "AccessDeniedException" and headers["x-amzn-requestid"]
    error = json.loads(body)
    assert error["__type"] == "AccessDeniedException" and why in error["message"]


def queues(batch: object) -> list[str]:
    return [q["jobQueueName"] for q in batch.describe_job_queues()["jobQueues"]]  # type: ignore[attr-defined]


def test_a_cross_origin_simple_post_is_refused(runtime: LocalRuntime, batch: object) -> None:
    name = unique("evil")
    headers = {"Content-Type": "text/plain", "Origin": "http://evil.example", "X-Amz-Date": "20260101T000000Z"}
    assert_denied(send(runtime, "POST", "/v1/createjobqueue", headers, QUEUE_BODY % name.encode()), "Origin")
    no_cors = {"Content-Type": "text/plain", "Sec-Fetch-Site": "cross-site", "Sec-Fetch-Mode": "no-cors"}
    assert_denied(send(runtime, "POST", "/v1/createjobqueue", no_cors, QUEUE_BODY % name.encode()), "Sec-Fetch")
    same_site = {"Sec-Fetch-Site": "same-site", "X-Amz-Date": "20260101T000000Z"}  # another port of 127.0.0.1
    assert_denied(send(runtime, "POST", "/v1/describejobqueues", same_site, b"{}"), "same-site")
    assert name not in queues(batch)


def test_describe_job_queues_from_another_origin_is_refused(runtime: LocalRuntime) -> None:
    headers = {"Content-Type": "text/plain", "Origin": "http://evil.example"}
    assert_denied(send(runtime, "POST", "/v1/describejobqueues", headers, b"{}"), "Origin")
    logs = {"Origin": "null", "X-Amz-Target": "Logs_20140328.GetLogEvents", "Content-Type": "text/plain"}
    status, headers_, _ = send(runtime, "POST", "/", logs, b"{}")
    assert status == 403 and headers_["content-type"] == "application/x-amz-json-1.1"


def test_a_rebound_host_is_refused(runtime: LocalRuntime) -> None:
    port = urlsplit(runtime.endpoint).port
    headers = {"Host": f"evil.example:{port}", "X-Amz-Date": "20260101T000000Z"}
    assert_denied(send(runtime, "POST", "/v1/describejobqueues", headers, b"{}"), "does not name this server")
    assert_denied(send(runtime, "GET", "/console/", {"Host": "evil.example"}), "DNS-rebinding")
    assert_denied(send(runtime, "POST", "/v1/describejobqueues", {"Host": "127.0.0.1:1"}, b"{}"), "Host")
    for host in (f"127.0.0.1:{port}", f"localhost:{port}", f"LOCALHOST:{port}", f"[::1]:{port}"):
        status, _, body = send(runtime, "POST", "/v1/describejobqueues", {"Host": host, "X-Amz-Date": "x"}, b"{}")
        assert status == 200, (host, body)


def test_an_unsigned_change_needs_x_amz_date(runtime: LocalRuntime, batch: object) -> None:
    name = unique("plain")
    assert_denied(send(runtime, "POST", "/v1/createjobqueue", {}, QUEUE_BODY % name.encode()), "X-Amz-Date")
    assert_denied(send(runtime, "POST", "/v1/describejobqueues", {"Content-Type": "text/plain"}, b"{}"), "X-Amz-Date")
    assert name not in queues(batch)
    status, _, body = send(runtime, "POST", "/v1/describejobqueues", {"X-Amz-Date": "20260101T000000Z"}, b"{}")
    assert status == 200 and "jobQueues" in json.loads(body)
    # What the console sends, same-origin: Origin is this server's own, Sec-Fetch-Site same-origin.
    own = {
        "Origin": runtime.endpoint,
        "Sec-Fetch-Site": "same-origin",
        "Content-Type": "application/json",
        "X-Amz-Date": "20260101T000000Z",
    }
    assert send(runtime, "POST", "/v1/describejobqueues", own, b"{}")[0] == 200
    # A link from another site to the console still opens it (only the API is guarded against cross-site calls).
    assert send(runtime, "GET", "/console/", {"Sec-Fetch-Site": "cross-site"})[0] == 200


def test_an_unsigned_sdk_request_without_a_date_is_served(runtime: LocalRuntime) -> None:
    # GIVEN what `aws --no-sign-request` sends: no signature, no X-Amz-Date, a JSON Content-Type
    headers = {"Content-Type": "application/json", "amz-sdk-invocation-id": "1"}
    # WHEN it calls the API THEN it is served: a browser would have to preflight that Content-Type
    status, _, body = send(runtime, "POST", "/v1/describejobqueues", headers, b"{}")
    assert status == 200 and "jobQueues" in json.loads(body)
    # AND the same boto3 client with signing turned off works end to end
    unsigned = boto3.client(
        "batch", endpoint_url=runtime.endpoint, region_name="us-east-1", config=Config(signature_version=UNSIGNED)
    )
    assert "jobQueues" in unsigned.describe_job_queues()


def test_a_non_ascii_authorization_is_refused_not_dropped(runtime: LocalRuntime) -> None:
    url = urlsplit(runtime.endpoint)
    conn = http.client.HTTPConnection(url.hostname or "", url.port, timeout=10)
    try:
        conn.putrequest("POST", "/v1/nosuchpath/at/all")
        conn.putheader("Authorization", "AWS4-HMAC-SHA256 Credential=\xe9".encode("latin-1"))
        conn.putheader("Content-Length", "2")
        conn.endheaders(b"{}")
        resp = conn.getresponse()
        body = resp.read()
    finally:
        conn.close()
    assert resp.status == 403 and json.loads(body)["__type"] == "AccessDeniedException"


def test_an_unknown_path_does_not_echo_the_authorization_header(runtime: LocalRuntime) -> None:
    secret_looking = "AWS4-HMAC-SHA256 Credential=AKIDSECRET/x, SignedHeaders=host, Signature=deadbeef"
    headers = {"Authorization": secret_looking, "X-Amz-Date": "20260101T000000Z"}
    status, got, body = send(runtime, "POST", "/no/such/route", headers, b"{}")
    assert status == 404 and got["x-amzn-requestid"] and b"AKIDSECRET" not in body and b"deadbeef" not in body
    assert json.loads(body)["__type"] == "UnknownOperationException"


def test_stock_clients_still_work(runtime: LocalRuntime, batch: object, logs: object) -> None:
    assert isinstance(queues(batch), list)
    assert "logGroups" in logs.describe_log_groups()  # type: ignore[attr-defined]
    cli = subprocess.run(
        [
            sys.executable,
            "-m",
            "chalicelib.cli",
            "triggers",
            "list",
            "--endpoint",
            runtime.endpoint,
            "--region",
            "us-east-1",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        env={"AWS_ACCESS_KEY_ID": "k", "AWS_SECRET_ACCESS_KEY": "s", "PATH": "/usr/bin:/bin"},
    )
    assert cli.returncode == 0, cli.stderr
