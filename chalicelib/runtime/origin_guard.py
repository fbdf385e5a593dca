"""What the local HTTP servers (`batchplane up`, `batchplane console`) accept from a browser (docs/adr/0019, 0020).

A server on 127.0.0.1 is reachable by every web page the user opens: a page on another site can send it "simple"
cross-origin requests (POST with a text/plain body, no preflight, answer unread) and, with DNS rebinding, requests
whose answers it can read (its own host name resolving to 127.0.0.1). Browsers always tell us which of those a
request is, and non-browser clients (boto3, the AWS CLI, the batchplane CLI) send none of what is refused here, so
every request is checked before it is routed:

- Host must name this server: 127.0.0.1, localhost or [::1] (or the bound address) with its port. A rebound name
  (evil.example:PORT) is refused. With `--auth` every Host is accepted: each request is signed, and a page cannot
  sign without a key (the signed Host is not tied to this server; ADR 0019).
- Origin, when present, must be this server's own origin (http://<the Host sent>); Sec-Fetch-Site must not be
  `cross-site` or `same-site`. Both are set by the browser and cannot be forged by a page.
- Without `--auth`, a request that may change anything (every method but GET and HEAD) must carry X-Amz-Date,
  X-Amz-Target or Authorization, or a Content-Type that is not one of the Fetch standard's CORS-safelisted ones
  (text/plain, application/x-www-form-urlencoded, multipart/form-data): a page can send any of these to another
  origin only after a CORS preflight, which these servers never grant. botocore and aws4fetch send X-Amz-Date when
  they sign; an unsigned client (`aws --no-sign-request`, boto3 with UNSIGNED) sends `application/json` or
  `application/x-amz-json-1.1`; the console sends X-Amz-Date when unsigned. A POST without a Content-Type is refused:
  a page can send one (a typeless Blob body). (With `--auth` the signature check refuses an unsigned request itself.)

Refusals are AWS-style: 403 AccessDeniedException with a message saying why (the callers add the request id).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

ACCESS_DENIED = "AccessDeniedException"
LOOPBACK_NAMES = ("127.0.0.1", "localhost", "[::1]")
PREFLIGHT_HEADERS = ("x-amz-date", "x-amz-target", "authorization")
SAFE_METHODS = ("GET", "HEAD")
# Fetch standard, "CORS-safelisted request-header": a Content-Type whose essence is one of these needs no preflight.
SIMPLE_CONTENT_TYPES = ("text/plain", "application/x-www-form-urlencoded", "multipart/form-data")


def _needs_preflight(content_type: str | None) -> bool:
    """Would a browser preflight a cross-origin request with this Content-Type? (None/absent: no.)"""
    if content_type is None:
        return False
    essence = content_type.split(";", 1)[0].strip().lower()
    return essence not in SIMPLE_CONTENT_TYPES


def host_names(bound: str, port: int) -> frozenset[str]:
    """The Host header values (lower case) that name a server bound to `bound`:`port`."""
    names = {*LOOPBACK_NAMES, f"[{bound}]" if ":" in bound else bound}
    hosts = {f"{name.lower()}:{port}" for name in names if name}
    if port == 80:
        hosts |= {name.lower() for name in names if name}
    return frozenset(hosts)


def _lower(headers: Mapping[str, str] | Iterable[tuple[str, str]]) -> dict[str, str]:
    lower: dict[str, str] = {}
    for name, value in headers.items() if isinstance(headers, Mapping) else headers:
        lower.setdefault(str(name).lower(), str(value))
    return lower


def refusal(
    method: str,
    headers: Mapping[str, str] | Iterable[tuple[str, str]],
    hosts: frozenset[str] | None,
    *,
    api: bool = True,
    signed: bool = False,
) -> str | None:
    """Why this request is refused (None when it is not). `hosts`: the accepted Host values (None: any). `api`: the
    request reaches the API (not a GET of the console's files, which only the Host check applies to). `signed`: a
    signature check follows (`--auth`), which refuses an unsigned request itself, with the AWS error for it."""
    lower = _lower(headers)
    host = lower.get("host", "").strip().lower()
    if hosts is not None and host not in hosts:
        shown = host[:100] or "(none)"
        return (
            f"Host {shown!r} does not name this server; it answers only {', '.join(sorted(hosts))} "
            "(a request for another name is a DNS-rebinding attempt from a web page)"
        )
    if not api:
        return None
    if not lower.get("authorization", "").isascii():  # Chalice would fail encoding it (a dropped connection)
        return "the Authorization header must be ASCII"
    origin = lower.get("origin")
    if origin is not None and origin.strip().lower() not in (f"http://{host}", f"https://{host}"):  # https: a TLS proxy
        return f"cross-origin requests are refused: Origin {origin[:100]!r} is not this server's (http://{host})"
    site = lower.get("sec-fetch-site", "").strip().lower()
    if site in ("cross-site", "same-site"):
        return f"cross-origin requests are refused (Sec-Fetch-Site: {site})"
    preflighted = any(name in lower for name in PREFLIGHT_HEADERS) or _needs_preflight(lower.get("content-type"))
    if not signed and method.upper() not in SAFE_METHODS and not preflighted:
        return (
            "an unsigned request must carry an X-Amz-Date header or a JSON Content-Type (as every AWS SDK sends): "
            "a web page cannot add either to a cross-origin request, so they prove the request is not one"
        )
    return None
