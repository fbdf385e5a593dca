"""The web console's files and how they are served, at /console/ on `batchplane up` and `batchplane console`.

The console is a single-page app in plain JavaScript modules (no build step; docs/adr/0020-web-console.md): its
files live in `static/` inside this package, so `pip install` ships them. Every path under /console/assets/ is a
file (404 when missing); every other /console/... path gets index.html, so a deep link such as
/console/jobs/<jobId> survives a reload and the app's router draws the page.
"""

from __future__ import annotations

from http.server import BaseHTTPRequestHandler
from pathlib import Path
from urllib.parse import unquote, urlsplit

STATIC = Path(__file__).parent / "static"
PREFIX = "/console"
ASSETS = "/console/assets/"
TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".mjs": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".txt": "text/plain; charset=utf-8",
}


def handles(path: str) -> bool:
    """Whether a request path is the console's (not the API's)."""
    p = urlsplit(path).path
    return p == PREFIX or p.startswith(PREFIX + "/")


def resolve(path: str) -> tuple[int, str, bytes, dict[str, str]]:
    """(status, content type, body, extra headers) for a GET of a console path."""
    p = unquote(urlsplit(path).path)
    if p == PREFIX:
        return 308, "text/plain; charset=utf-8", b"", {"Location": PREFIX + "/"}
    if p.startswith(ASSETS):
        root = (STATIC / "assets").resolve()
        try:  # a NUL byte (%00) is a ValueError, a name too long an OSError: neither names a file of ours
            target = (STATIC / "assets" / p[len(ASSETS) :]).resolve()
            if root not in target.parents or not target.is_file():  # no escaping the package directory
                return 404, "text/plain; charset=utf-8", b"not found\n", {}
            return 200, TYPES.get(target.suffix, "application/octet-stream"), target.read_bytes(), {}
        except (ValueError, OSError):
            return 404, "text/plain; charset=utf-8", b"not found\n", {}
    return 200, TYPES[".html"], (STATIC / "index.html").read_bytes(), {}


def respond(
    handler: BaseHTTPRequestHandler, head_only: bool = False, extra_headers: dict[str, str] | None = None
) -> None:
    """Answer a GET (or HEAD) of a console path on an http.server handler."""
    status, content_type, body, headers = resolve(handler.path)
    headers = {**headers, **(extra_headers or {})}
    handler.send_response(status)
    handler.send_header("Content-Type", content_type)
    handler.send_header("Content-Length", str(len(body)))
    handler.send_header("Cache-Control", "no-cache")  # revalidate: a new version must not mix with cached modules
    handler.send_header("X-Content-Type-Options", "nosniff")
    if content_type.startswith("text/html"):
        handler.send_header(
            "Content-Security-Policy",
            "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; object-src 'none'; "
            "frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
        )
        handler.send_header("X-Frame-Options", "DENY")  # no framing (clickjacking), for browsers without CSP 2
    for name, value in headers.items():
        handler.send_header(name, value)
    handler.end_headers()
    if not head_only:
        handler.wfile.write(body)
