"""Signing in: the console keeps an access key in sessionStorage and signs every call in the browser with SigV4
(aws4fetch). The signatures on the wire are checked against botocore's SigV4 over the same request, for the Batch
API (service `batch`) and the CloudWatch Logs API (service `logs`), so a server that verifies SigV4 the way AWS does
(botocore's canonical request) accepts them. `batchplane up` without --auth accepts signed and unsigned calls alike.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from tests.e2e.conftest import register, setup_queue, sh, submit, unique, wait_terminal

pytestmark = pytest.mark.browser

try:
    from playwright.sync_api import expect
except ImportError:
    expect = None

KEY_ID = "AKIDCONSOLETEST"
SECRET = "console/secret+key"
TOKEN = "session-token-value"
REGION = "eu-west-1"
_AUTH = re.compile(r"AWS4-HMAC-SHA256 Credential=([^,]+), SignedHeaders=([^,]+), Signature=([0-9a-f]{64})")


def botocore_signature(request: Any) -> tuple[str, str, str]:
    """(credential scope, signed headers, the signature botocore computes) for a request the browser sent."""
    headers = request.all_headers()
    match = _AUTH.fullmatch(headers["authorization"])
    assert match, headers["authorization"]
    credential, signed, _ = match.groups()
    service = credential.split("/")[3]
    signed_names = signed.split(";")
    aws = AWSRequest(
        method=request.method,
        url=request.url,
        data=request.post_data_buffer or b"",
        headers={name: headers[name] for name in signed_names if name != "host"},
    )
    aws.context["timestamp"] = headers["x-amz-date"]
    signer = SigV4Auth(Credentials(KEY_ID, SECRET, TOKEN), service, REGION)
    string_to_sign = signer.string_to_sign(aws, signer.canonical_request(aws))
    return credential, signed, signer.signature(string_to_sign, aws)


def test_sign_in_and_every_call_is_signed(page: Any, runtime: Any, batch: Any) -> None:
    queue, _ = setup_queue(batch, name=unique("signed"))
    job_id = submit(batch, queue, register(batch, unique("hello"), sh("echo signed hello")), "signed-job")
    wait_terminal(batch, [job_id])
    sent: list[Any] = []
    page.on("request", lambda r: sent.append(r) if r.method == "POST" else None)

    page.goto(f"{runtime.endpoint}/console/login?next=/console/jobs/{job_id}")
    page.get_by_label("Access key id").fill(KEY_ID)
    page.get_by_label("Secret access key").fill(SECRET)
    page.get_by_label("Session token (optional)").fill(TOKEN)
    page.get_by_label("Region").fill(REGION)
    page.get_by_role("button", name="Sign in").click()

    expect(page).to_have_url(f"{runtime.endpoint}/console/jobs/{job_id}")  # back where sign-in was asked from
    expect(page.get_by_text(f"Signed in as {KEY_ID} ({REGION})")).to_be_visible()
    expect(page.get_by_label("Log lines")).to_contain_text("signed hello")
    stored = page.evaluate("() => [sessionStorage.getItem('batchplane.credentials'), localStorage.length]")
    assert SECRET in stored[0] and stored[1] == 0  # this tab's session only, never localStorage

    services = set()
    for request in sent:
        credential, signed, expected = botocore_signature(request)
        assert credential.startswith(f"{KEY_ID}/") and f"/{REGION}/" in credential
        # aws4fetch leaves content-type unsigned (its UNSIGNABLE_HEADERS); SigV4 requires only host and x-amz-date.
        assert {"host", "x-amz-date", "x-amz-security-token"} <= set(signed.split(";"))
        assert request.all_headers()["authorization"].endswith(f"Signature={expected}"), request.url
        service = credential.split("/")[3]
        services.add(service)
        if service == "logs":
            assert "x-amz-target" in signed.split(";") and request.url.endswith("/")
        else:
            assert "/v1/" in request.url
    assert services == {"batch", "logs"}

    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_role("link", name="Sign in")).to_be_visible()
    assert page.evaluate("() => sessionStorage.getItem('batchplane.credentials')") is None
    sent.clear()
    page.reload()
    expect(page.get_by_label("Log lines")).to_contain_text("signed hello")  # unsigned again, still served
    assert sent and all("authorization" not in r.all_headers() for r in sent)


def test_a_refused_sign_in_says_why(page: Any, runtime: Any) -> None:
    page.route(
        "**/v1/describejobqueues",
        lambda route: route.fulfill(
            status=403,
            content_type="application/json",
            body='{"__type": "UnrecognizedClientException", "message": "The security token is invalid."}',
        ),
    )  # what a server started with --auth answers an unknown key (the refusal itself is that server's to test)
    page.goto(f"{runtime.endpoint}/console/login")
    page.get_by_label("Access key id").fill("AKIDUNKNOWN")
    page.get_by_label("Secret access key").fill("wrong")
    page.get_by_role("button", name="Sign in").click()
    expect(page.locator("main").get_by_role("alert")).to_contain_text("UnrecognizedClientException")
    assert page.evaluate("() => sessionStorage.getItem('batchplane.credentials')") is None
