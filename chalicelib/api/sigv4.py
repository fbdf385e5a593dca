"""Check an AWS Signature Version 4 the way an AWS JSON service does, for `batchplane up --auth` (docs/adr/0019).

`Verifier.verify(method, target, headers, body, now)` returns the Principal (which key signed) or the Refusal AWS
would answer with. It is pure: the keys are given, the clock is an argument, nothing is logged.

The expected signature is computed by botocore's own SigV4Auth (the signer every boto3 client and the AWS CLI use),
fed the request as received: its method, its raw path (SigV4Auth normalizes and re-encodes it, as AWS does for every
service but S3), its query parameters (decoded, then re-encoded by SigV4Auth), only the headers the client listed in
SignedHeaders, and the SHA-256 of the body as received. Two places where SigV4Auth is a signer and not a verifier,
overridden here: it signs every header it is given except a few it never signs (User-Agent, Expect,
X-Amzn-Trace-Id), where a verifier must use exactly the client's list; and it trusts an X-Amz-Content-SHA256 header
for the payload hash, where a verifier must check that header against the body it got.

Errors, as AWS's JSON services answer them (botocore raises ClientError with the code; all HTTP 403 here):
MissingAuthenticationTokenException (no Authorization header), IncompleteSignatureException (a malformed one),
UnrecognizedClientException (an unknown access key id, or a session token the key does not have),
InvalidSignatureException (wrong service or region, outside the 5-minute window, a body or signature that does not
match).
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, cast
from urllib.parse import unquote_plus

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.compat import HTTPHeaders
from botocore.credentials import Credentials

ALGORITHM = "AWS4-HMAC-SHA256"
WINDOW = timedelta(minutes=5)
AMZ_DATE = "%Y%m%dT%H%M%SZ"
BATCH = "batch"
LOGS = "logs"
UNSIGNED_PAYLOAD = "UNSIGNED-PAYLOAD"
_REGION = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,30}[a-z0-9])?$")

MISSING = "MissingAuthenticationTokenException"
INCOMPLETE = "IncompleteSignatureException"
UNRECOGNIZED = "UnrecognizedClientException"
INVALID = "InvalidSignatureException"
MISMATCH_MESSAGE = (
    "The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key "
    "and signing method. Consult the service documentation for details."
)
UNRECOGNIZED_MESSAGE = "The security token included in the request is invalid."


@dataclass(frozen=True)
class Key:
    """One accepted credential: an access key id and its secret, from the profile (INI section) `name`."""

    access_key_id: str
    secret_access_key: str = field(repr=False)
    name: str = ""
    session_token: str | None = field(default=None, repr=False)  # when set, requests must carry exactly this token


@dataclass(frozen=True)
class Principal:
    """Who signed an accepted request."""

    access_key_id: str
    name: str
    region: str
    service: str


@dataclass(frozen=True)
class Refusal:
    code: str
    message: str
    status: int = 403


def service_for(path: str) -> str:
    """The signing name a request to `path` must carry: `logs` for the CloudWatch Logs wire (POST /), else `batch`."""
    return LOGS if path.split("?", 1)[0] in ("", "/") else BATCH


class _Expected(SigV4Auth):
    """botocore's signer, held to the client's SignedHeaders and to the hash of the body received."""

    def __init__(self, key: Key, service: str, region: str, signed: list[str], payload_hash: str) -> None:
        super().__init__(Credentials(key.access_key_id, key.secret_access_key, key.session_token), service, region)
        self._signed = signed
        self._payload_hash = payload_hash

    def headers_to_sign(self, request: AWSRequest) -> HTTPHeaders:
        header_map = HTTPHeaders()
        for name in self._signed:
            for value in request.headers.get_all(name) or ():
                header_map[name] = value
        return header_map

    def payload(self, request: AWSRequest) -> str:
        return self._payload_hash

    def expected(self, request: AWSRequest) -> str:
        canonical = self.canonical_request(request)
        return str(self.signature(self.string_to_sign(request, canonical), request))


class Verifier:
    def __init__(self, keys: Iterable[Key], window: timedelta = WINDOW) -> None:
        self._keys = {k.access_key_id: k for k in keys}
        self._window = window

    def __len__(self) -> int:
        return len(self._keys)

    def verify(
        self,
        method: str,
        target: str,
        headers: Mapping[str, str] | Iterable[tuple[str, str]],
        body: bytes | None,
        now: datetime,
    ) -> Principal | Refusal:
        """`target` is the request target as received (raw path and query); `headers` every header received."""
        pairs = list(headers.items() if isinstance(headers, Mapping) else headers)
        lower: dict[str, str] = {}
        for name, value in pairs:
            lower.setdefault(name.lower(), value)
        auth = lower.get("authorization")
        if auth is None:
            return Refusal(MISSING, "Request is missing Authentication Token")
        parsed = _parse_authorization(auth)
        if isinstance(parsed, Refusal):
            return parsed
        credential, signed, signature = parsed
        key_id, date, region, service, terminator = credential
        amz_date = lower.get("x-amz-date")
        if amz_date is None:
            return Refusal(INCOMPLETE, "Authorization header requires existence of a 'X-Amz-Date' header.")
        key = self._keys.get(key_id)
        if key is None:
            return Refusal(UNRECOGNIZED, UNRECOGNIZED_MESSAGE)
        token = lower.get("x-amz-security-token")
        if not _same_token(key.session_token, token):
            return Refusal(UNRECOGNIZED, UNRECOGNIZED_MESSAGE)
        timing = _check_time(amz_date, date, now, self._window)
        if timing is not None:
            return timing
        scope = _check_scope(service_for(target), service, region, terminator)
        if scope is not None:
            return scope
        # Every x-amz-* header sent must be signed, as AWS requires: otherwise one could be added or changed in
        # transit. botocore signs every header it sends (but User-Agent, Expect, X-Amzn-Trace-Id), aws4fetch every
        # one but a few non-x-amz ones; x-amz-content-sha256 included (its value is also checked below).
        sent = sorted(name for name in lower if name.startswith("x-amz-"))
        required = ["host", "x-amz-date"] + (["x-amz-security-token"] if token is not None else [])
        required += [name for name in sent if name not in required]
        unsigned = [h for h in required if h not in signed]
        if unsigned:
            return Refusal(INCOMPLETE, f"'{unsigned[0]}' must be a 'SignedHeader' in the AWS Authorization.")
        payload_hash = hashlib.sha256(body or b"").hexdigest()
        claimed = lower.get("x-amz-content-sha256")
        if claimed is not None and claimed != payload_hash:
            if claimed == UNSIGNED_PAYLOAD:
                return Refusal(INVALID, "batchplane requires a signed payload; UNSIGNED-PAYLOAD is not accepted.")
            return Refusal(INVALID, "The provided 'x-amz-content-sha256' header does not match what was computed.")
        expected = _expected(method, target, pairs, signed, key, service, region, amz_date, payload_hash)
        if not hmac.compare_digest(expected.encode(), signature.encode()):
            return Refusal(INVALID, MISMATCH_MESSAGE)
        return Principal(key.access_key_id, key.name, region, service)


def _parse_authorization(
    value: str,
) -> tuple[tuple[str, str, str, str, str], list[str], str] | Refusal:
    """`AWS4-HMAC-SHA256 Credential=<id>/<date>/<region>/<service>/aws4_request, SignedHeaders=a;b, Signature=<hex>`."""
    algorithm, _, rest = value.strip().partition(" ")
    if algorithm != ALGORITHM:
        return Refusal(INCOMPLETE, f"Unsupported AWS 'algorithm': '{algorithm}'; batchplane accepts '{ALGORITHM}'.")
    parts: dict[str, str] = {}
    for item in rest.split(","):
        name, sep, val = item.strip().partition("=")
        if sep:
            parts[name] = val.strip()
    missing = [p for p in ("Credential", "SignedHeaders", "Signature") if not parts.get(p)]
    if missing:
        return Refusal(INCOMPLETE, " ".join(f"Authorization header requires '{p}' parameter." for p in missing))
    credential = parts["Credential"].split("/")
    if len(credential) != 5 or not all(credential):
        return Refusal(
            INCOMPLETE,
            "Credential should be of the form '<access key id>/<YYYYMMDD>/<region>/<service>/aws4_request'.",
        )
    signed = parts["SignedHeaders"].split(";")
    if any(h != h.strip().lower() or not h for h in signed):
        return Refusal(INCOMPLETE, "SignedHeaders must be lower-case header names separated by ';'.")
    key_id, date, region, service, terminator = credential
    return (key_id, date, region, service, terminator), signed, parts["Signature"]


def _same_token(expected: str | None, given: str | None) -> bool:
    if expected is None or given is None:
        return expected is None and given is None
    return hmac.compare_digest(expected.encode(), given.encode())


def _check_time(amz_date: str, scope_date: str, now: datetime, window: timedelta) -> Refusal | None:
    try:
        signed_at = datetime.strptime(amz_date, AMZ_DATE).replace(tzinfo=UTC)
    except ValueError:
        return Refusal(
            INCOMPLETE, f"X-Amz-Date must be in ISO-8601 basic format (YYYYMMDD'T'HHMMSS'Z'), not '{amz_date}'."
        )
    now = now.astimezone(UTC)
    minutes = int(window.total_seconds() // 60)
    if signed_at < now - window:
        return Refusal(
            INVALID,
            f"Signature expired: {amz_date} is now earlier than {_fmt(now - window)} ({_fmt(now)} - {minutes} min.)",
        )
    if signed_at > now + window:
        return Refusal(
            INVALID,
            f"Signature not yet current: {amz_date} is still later than {_fmt(now + window)} "
            f"({_fmt(now)} + {minutes} min.)",
        )
    if scope_date != amz_date[:8]:
        return Refusal(
            INVALID,
            "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP: "
            f"'{scope_date}' != '{amz_date[:8]}', from '{amz_date}'.",
        )
    return None


def _check_scope(expected_service: str, service: str, region: str, terminator: str) -> Refusal | None:
    if terminator != "aws4_request":
        return Refusal(
            INCOMPLETE, f"Credential should be scoped with a valid terminator: 'aws4_request', not '{terminator}'."
        )
    if service != expected_service:
        return Refusal(INVALID, f"Credential should be scoped to correct service: '{expected_service}'. ")
    if not _REGION.match(region):
        return Refusal(INVALID, f"Credential should be scoped to a valid region, not '{region}'. ")
    return None


def _fmt(moment: datetime) -> str:
    return moment.strftime(AMZ_DATE)


def _expected(
    method: str,
    target: str,
    pairs: list[tuple[str, str]],
    signed: list[str],
    key: Key,
    service: str,
    region: str,
    amz_date: str,
    payload_hash: str,
) -> str:
    path, _, query = target.partition("?")
    params = [_query_pair(piece) for piece in query.split("&") if piece]
    request = AWSRequest(method=method.upper(), url=f"http://batchplane{path or '/'}")
    request.params = cast(Any, params)  # a list keeps repeated names; SigV4Auth takes a Mapping or pairs
    received = HTTPHeaders()
    for name, value in pairs:
        if name.lower() in signed:
            received[name.lower()] = value
    request.headers = received
    request.context["timestamp"] = amz_date
    return _Expected(key, service, region, signed, payload_hash).expected(request)


def _query_pair(piece: str) -> tuple[str, str]:
    # '+' is a space, as in a form-encoded query: botocore never sends a bare '+' (it percent-encodes with quote),
    # and JavaScript signers (aws4fetch) read the query through URLSearchParams, which decodes '+' as a space, then
    # sign it as %20 (as SigV4Auth re-encodes it here).
    name, _, value = piece.partition("=")
    return unquote_plus(name), unquote_plus(value)


def refusal_body(refusal: Refusal) -> dict[str, Any]:
    return {"__type": refusal.code, "message": refusal.message}
