"""The origin guard's rules (chalicelib/runtime/origin_guard.py) as a pure function; the servers' use of it is tested
over raw HTTP (tests/e2e/test_origin_guard.py, tests/browser/test_proxy.py, tests/browser/test_cross_origin.py)."""

from __future__ import annotations

from chalicelib.runtime.origin_guard import host_names, refusal

HOSTS = host_names("127.0.0.1", 8000)
DATE = {"X-Amz-Date": "20260101T000000Z"}


def test_the_names_of_a_loopback_server() -> None:
    assert {"127.0.0.1:8000", "localhost:8000", "[::1]:8000"} == HOSTS
    assert "[::1]:9000" in host_names("::1", 9000) and "127.0.0.2:1" in host_names("127.0.0.2", 1)
    assert "localhost" in host_names("127.0.0.1", 80)  # port 80 may be left out of Host


def test_what_a_stock_client_sends_passes() -> None:
    assert refusal("POST", {"Host": "127.0.0.1:8000", **DATE}, HOSTS) is None
    assert refusal("POST", {"host": "LocalHost:8000", "x-amz-target": "Logs_20140328.GetLogEvents"}, HOSTS) is None
    assert refusal("GET", {"Host": "127.0.0.1:8000"}, HOSTS) is None  # a GET changes nothing
    console = {"Host": "127.0.0.1:8000", "Origin": "http://127.0.0.1:8000", "Sec-Fetch-Site": "same-origin", **DATE}
    assert refusal("POST", console, HOSTS) is None


def test_what_a_page_elsewhere_sends_is_refused() -> None:
    assert "does not name" in str(refusal("POST", {"Host": "evil.example:8000", **DATE}, HOSTS))
    assert "does not name" in str(refusal("GET", {}, HOSTS, api=False))  # no Host at all
    assert "Origin" in str(refusal("POST", {"Host": "127.0.0.1:8000", "Origin": "null", **DATE}, HOSTS))
    other_port = {"Host": "127.0.0.1:8000", "Origin": "http://127.0.0.1:9000", **DATE}
    assert "Origin" in str(refusal("POST", other_port, HOSTS))
    for site in ("cross-site", "same-site"):
        assert site in str(refusal("POST", {"Host": "127.0.0.1:8000", "Sec-Fetch-Site": site, **DATE}, HOSTS))
    assert "X-Amz-Date" in str(refusal("POST", {"Host": "127.0.0.1:8000", "Content-Type": "text/plain"}, HOSTS))
    assert "ASCII" in str(refusal("POST", {"Host": "127.0.0.1:8000", "Authorization": "\xe9", **DATE}, HOSTS))


def test_with_signatures_any_host_and_no_preflight_header_but_still_no_foreign_origin() -> None:
    assert refusal("POST", {"Host": "batch.example.internal:8000"}, None, signed=True) is None
    behind_tls = {"Host": "batch.example.internal", "Origin": "https://batch.example.internal"}
    assert refusal("POST", behind_tls, None, signed=True) is None
    foreign = {"Host": "batch.example.internal", "Origin": "https://evil.example"}
    assert "Origin" in str(refusal("POST", foreign, None, signed=True))


def test_the_consoles_files_only_need_the_right_host() -> None:
    link = {"Host": "127.0.0.1:8000", "Sec-Fetch-Site": "cross-site", "Origin": "http://evil.example"}
    assert refusal("GET", link, HOSTS, api=False) is None


def test_a_content_type_a_browser_would_preflight_proves_an_unsigned_request_is_not_cross_site() -> None:
    # GIVEN unsigned POSTs without X-Amz-Date (`aws --no-sign-request`, boto3 with UNSIGNED send a JSON type)
    host = {"Host": "127.0.0.1:8000"}
    # THEN a JSON (or any non-safelisted) Content-Type passes: a page can send it elsewhere only after a preflight
    for content_type in ("application/json", "application/x-amz-json-1.1", "application/json; charset=utf-8"):
        assert refusal("POST", {**host, "Content-Type": content_type}, HOSTS) is None
    # AND the Fetch standard's safelisted types, or none at all (a typeless Blob body), are still refused
    for simple in (
        "text/plain",
        "TEXT/PLAIN; charset=utf-8",
        "application/x-www-form-urlencoded",
        "multipart/form-data",
    ):
        assert "X-Amz-Date" in str(refusal("POST", {**host, "Content-Type": simple}, HOSTS))
    assert "X-Amz-Date" in str(refusal("POST", host, HOSTS))
