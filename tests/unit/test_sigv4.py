"""The SigV4 verifier (chalicelib/api/sigv4.py) against requests signed by botocore's own signer, as boto3 signs them.

Every request here is built and signed the way a botocore client does it (AWSRequest + SigV4Auth.add_auth, then
prepare), with the signing time fixed through botocore's clock hook, and checked with an explicit `now`.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from urllib.parse import urlsplit

import pytest
from botocore import auth as botocore_auth
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from botocore.utils import percent_encode_sequence

from chalicelib.api.sigv4 import (
    INCOMPLETE,
    INVALID,
    MISMATCH_MESSAGE,
    MISSING,
    UNRECOGNIZED,
    Key,
    Principal,
    Refusal,
    Verifier,
    service_for,
)

T0 = dt.datetime(2026, 12, 5, 3, 30, 0, tzinfo=dt.UTC)
ALICE = Key("AKIDALICE", "alice-secret", "alice")
BOB = Key("AKIDBOB", "bob-secret", "bob")
TEMP = Key("ASIATEMP", "temp-secret", "temp", session_token="the-token")
VERIFIER = Verifier([ALICE, BOB, TEMP])


@dataclass
class Sent:
    method: str
    target: str
    headers: list[tuple[str, str]]
    body: bytes


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[dt.datetime]]:
    """botocore reads the signing time from botocore.auth.get_current_datetime; the test sets it (naive UTC)."""
    when = [T0]
    monkeypatch.setattr(botocore_auth, "get_current_datetime", lambda: when[0].replace(tzinfo=None))
    yield when


def sign(
    key_id: str = ALICE.access_key_id,
    secret: str = ALICE.secret_access_key,
    *,
    method: str = "POST",
    url: str = "http://127.0.0.1:8000/v1/describejobqueues",
    body: bytes = b"{}",
    service: str = "batch",
    region: str = "us-east-1",
    token: str | None = None,
    headers: dict[str, str] | None = None,
) -> Sent:
    request = AWSRequest(
        method=method, url=url, data=body, headers={"Content-Type": "application/json", **(headers or {})}
    )
    SigV4Auth(Credentials(key_id, secret, token), service, region).add_auth(request)
    prepared = request.prepare()
    parts = urlsplit(prepared.url)
    target = parts.path + (f"?{parts.query}" if parts.query else "")
    sent_headers = [(k, v if isinstance(v, str) else v.decode()) for k, v in prepared.headers.items()]
    if not any(k.lower() == "host" for k, _ in sent_headers):
        sent_headers.append(("Host", parts.netloc))  # urllib3 adds it on the wire
    return Sent(prepared.method, target, sent_headers, prepared.body or b"")


def check(sent: Sent, now: dt.datetime = T0, verifier: Verifier = VERIFIER) -> Principal | Refusal:
    return verifier.verify(sent.method, sent.target, sent.headers, sent.body, now)


def refused(result: Principal | Refusal, code: str) -> Refusal:
    assert isinstance(result, Refusal), result
    assert result.code == code, result
    assert result.status == 403
    return result


def test_a_request_signed_with_a_known_key_is_accepted_with_its_principal(clock: list[dt.datetime]) -> None:
    result = check(sign())
    assert result == Principal("AKIDALICE", "alice", "us-east-1", "batch")


def test_each_key_of_the_file_is_accepted(clock: list[dt.datetime]) -> None:
    result = check(sign(BOB.access_key_id, BOB.secret_access_key, region="eu-west-3"))
    assert result == Principal("AKIDBOB", "bob", "eu-west-3", "batch")


def test_the_logs_api_is_signed_for_logs() -> None:
    assert service_for("/") == "logs"
    assert service_for("/v1/submitjob") == "batch"


def test_logs_requests_must_be_scoped_to_logs(clock: list[dt.datetime]) -> None:
    url = "http://127.0.0.1:8000/"
    ok = check(sign(url=url, service="logs", headers={"X-Amz-Target": "Logs_20140328.DescribeLogGroups"}))
    assert isinstance(ok, Principal) and ok.service == "logs"
    wrong = refused(check(sign(url=url, service="batch")), INVALID)
    assert wrong.message.startswith("Credential should be scoped to correct service: 'logs'")
    refused(check(sign(service="logs")), INVALID)  # a batch path signed for logs


def test_the_tags_path_and_repeated_query_parameters_are_canonicalized_as_botocore_signs_them(
    clock: list[dt.datetime],
) -> None:
    # As a botocore client builds it (prepare_request_dict): the label quoted once, the query percent-encoded.
    arn = "arn%3Aaws%3Abatch%3Aus-east-1%3A123456789012%3Ajob-queue%2Fq%20one"
    query = percent_encode_sequence([("tagKeys", "b key"), ("tagKeys", "a+key/x"), ("tagKeys", "~c")])
    sent = sign(method="DELETE", url=f"http://127.0.0.1:8000/v1/tags/{arn}?{query}", body=b"")
    assert "?" in sent.target
    assert isinstance(check(sent), Principal)


def test_a_plus_in_the_query_is_a_space_as_browsers_signers_read_it(clock: list[dt.datetime]) -> None:
    # aws4fetch (the console's signer) reads the query with URLSearchParams ('+' is a space) and signs it as %20.
    sent = sign(method="DELETE", url="http://127.0.0.1:8000/v1/tags/arn?tagKeys=cost%20center", body=b"")
    sent.target = "/v1/tags/arn?tagKeys=cost+center"
    assert isinstance(check(sent), Principal)


def test_an_unknown_key_id_is_unrecognized(clock: list[dt.datetime]) -> None:
    result = refused(check(sign("AKIDMALLORY", "whatever")), UNRECOGNIZED)
    assert result.message == "The security token included in the request is invalid."


def test_a_wrong_secret_does_not_match(clock: list[dt.datetime]) -> None:
    result = refused(check(sign(ALICE.access_key_id, BOB.secret_access_key)), INVALID)
    assert result.message == MISMATCH_MESSAGE


def test_no_authorization_header_is_a_missing_token() -> None:
    result = refused(VERIFIER.verify("POST", "/v1/describejobqueues", [("Host", "h")], b"{}", T0), MISSING)
    assert result.message == "Request is missing Authentication Token"


@pytest.mark.parametrize(
    ("authorization", "expected"),
    [
        ("Bearer abc", "Unsupported AWS 'algorithm'"),
        ("AWS4-HMAC-SHA256 SignedHeaders=host, Signature=ab", "requires 'Credential' parameter"),
        ("AWS4-HMAC-SHA256 Credential=AKIDALICE/20261205/us-east-1/batch, SignedHeaders=host, Signature=ab", "form"),
    ],
)
def test_a_malformed_authorization_header_is_an_incomplete_signature(authorization: str, expected: str) -> None:
    headers = [("Host", "h"), ("X-Amz-Date", "20261205T033000Z"), ("Authorization", authorization)]
    result = refused(VERIFIER.verify("POST", "/v1/describejobqueues", headers, b"{}", T0), INCOMPLETE)
    assert expected in result.message


def test_a_request_signed_more_than_five_minutes_ago_has_expired(clock: list[dt.datetime]) -> None:
    sent = sign()
    assert isinstance(check(sent, T0 + dt.timedelta(minutes=4, seconds=59)), Principal)  # a replay, in the window
    result = refused(check(sent, T0 + dt.timedelta(minutes=5, seconds=1)), INVALID)
    assert result.message == (
        "Signature expired: 20261205T033000Z is now earlier than 20261205T033001Z (20261205T033501Z - 5 min.)"
    )


def test_a_request_signed_more_than_five_minutes_ahead_is_not_yet_current(clock: list[dt.datetime]) -> None:
    result = refused(check(sign(), T0 - dt.timedelta(minutes=6)), INVALID)
    assert result.message.startswith("Signature not yet current: 20261205T033000Z is still later than")


def test_a_tampered_body_does_not_match(clock: list[dt.datetime]) -> None:
    sent = sign(url="http://127.0.0.1:8000/v1/submitjob", body=json.dumps({"jobName": "a"}).encode())
    sent.body = json.dumps({"jobName": "b"}).encode()
    refused(check(sent), INVALID)


def test_a_body_hash_header_must_match_the_body(clock: list[dt.datetime]) -> None:
    body = b'{"jobName": "a"}'
    signed = sign(body=body, headers={"X-Amz-Content-SHA256": hashlib.sha256(body).hexdigest()})
    assert isinstance(check(signed), Principal)
    signed.body = b'{"jobName": "b"}'  # the signed header still claims the old body
    assert "x-amz-content-sha256" in refused(check(signed), INVALID).message
    unsigned = sign(body=body, headers={"X-Amz-Content-SHA256": "UNSIGNED-PAYLOAD"})
    assert "signed payload" in refused(check(unsigned), INVALID).message


def test_a_tampered_signed_header_or_path_does_not_match(clock: list[dt.datetime]) -> None:
    sent = sign(url="http://127.0.0.1:8000/v1/describejobs")
    moved = Sent(sent.method, "/v1/terminatejob", sent.headers, sent.body)
    assert refused(check(moved), INVALID).message == MISMATCH_MESSAGE
    rehosted = Sent(sent.method, sent.target, [(k, "evil:1" if k == "Host" else v) for k, v in sent.headers], sent.body)
    assert refused(check(rehosted), INVALID).message == MISMATCH_MESSAGE


def test_headers_the_client_did_not_sign_may_change(clock: list[dt.datetime]) -> None:
    sent = sign()
    sent.headers.append(("User-Agent", "changed by a proxy"))
    assert isinstance(check(sent), Principal)


def test_every_x_amz_header_sent_must_be_signed(clock: list[dt.datetime]) -> None:
    signed = sign(headers={"X-Amz-Target": "AWSBatch.DescribeJobQueues", "X-Amz-Meta-Note": "a"})
    assert isinstance(check(signed), Principal)  # botocore signs every x-amz-* header it sends
    added = Sent(signed.method, signed.target, [*signed.headers, ("X-Amz-Meta-Added", "in transit")], signed.body)
    result = refused(check(added), INCOMPLETE)
    assert result.message == "'x-amz-meta-added' must be a 'SignedHeader' in the AWS Authorization."
    # x-amzn-* (a trace id a proxy adds) is not x-amz-*: it may be unsigned, as AWS allows.
    traced = Sent(signed.method, signed.target, [*signed.headers, ("X-Amzn-Trace-Id", "Root=1-x")], signed.body)
    assert isinstance(check(traced), Principal)
    body = b"{}"
    hashed = sign(headers={"X-Amz-Content-SHA256": hashlib.sha256(body).hexdigest()})
    assert isinstance(check(hashed), Principal)  # signed by botocore when sent


def test_a_session_token_is_refused_unless_the_key_has_that_token(clock: list[dt.datetime]) -> None:
    refused(check(sign(token="some-token")), UNRECOGNIZED)  # a long-term key with a token
    assert isinstance(check(sign(TEMP.access_key_id, TEMP.secret_access_key, token="the-token")), Principal)
    refused(check(sign(TEMP.access_key_id, TEMP.secret_access_key, token="other-token")), UNRECOGNIZED)
    refused(check(sign(TEMP.access_key_id, TEMP.secret_access_key)), UNRECOGNIZED)


def test_the_credential_date_must_be_the_signing_date(clock: list[dt.datetime]) -> None:
    sent = sign()
    sent.headers = [(k, v.replace("/20261205/", "/20261204/") if k == "Authorization" else v) for k, v in sent.headers]
    assert "Date in Credential scope" in refused(check(sent), INVALID).message


def test_host_and_date_must_be_signed() -> None:
    authorization = (
        "AWS4-HMAC-SHA256 Credential=AKIDALICE/20261205/us-east-1/batch/aws4_request, "
        "SignedHeaders=x-amz-date, Signature=" + "0" * 64
    )
    headers = [("Host", "h"), ("X-Amz-Date", "20261205T033000Z"), ("Authorization", authorization)]
    result = refused(VERIFIER.verify("POST", "/v1/describejobqueues", headers, b"{}", T0), INCOMPLETE)
    assert "'host' must be a 'SignedHeader'" in result.message


def test_an_invalid_region_is_refused(clock: list[dt.datetime]) -> None:
    assert "valid region" in refused(check(sign(region="US_EAST")), INVALID).message
