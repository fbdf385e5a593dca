"""A web page on another site, in a real browser, cannot make `batchplane up` (no --auth) do anything: its
`fetch(..., {mode: 'no-cors'})` POSTs, which need no CORS preflight, are refused before they are routed
(chalicelib/runtime/origin_guard.py). The page is served on 127.0.0.2, another site for the browser."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from tests.e2e.conftest import register, setup_queue, unique

pytestmark = pytest.mark.browser


@pytest.fixture
def other_site() -> Iterator[str]:
    class Page(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

        def do_GET(self) -> None:
            body = b"<!doctype html><title>another site</title><p>nothing to see"
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = ThreadingHTTPServer(("127.0.0.2", 0), Page)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.2:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


ATTACK = """async ([url, queue, definition]) => {
  const simple = (path, body) => fetch(url + path, {mode: 'no-cors', method: 'POST', body: JSON.stringify(body)});
  await simple('/v1/submitjob', {jobName: 'pwned', jobQueue: queue, jobDefinition: definition});
  await simple('/v1/createjobqueue', {jobQueueName: queue + '-evil', priority: 1, computeEnvironmentOrder: []});
  return 'sent';
}"""


def test_a_page_on_another_site_cannot_submit_jobs(
    page: Any, runtime: Any, batch: Any, other_site: str, caplog: pytest.LogCaptureFixture
) -> None:
    queue, _ = setup_queue(batch, name=unique("xorigin"))
    definition = register(batch, unique("xorigin-jd"), ["true"])
    page.goto(other_site)
    with caplog.at_level(logging.WARNING, logger="batchplane.http"):
        assert page.evaluate(ATTACK, [runtime.endpoint, queue, definition]) == "sent"
    refused = [r.getMessage() for r in caplog.records if r.getMessage().startswith("refused POST")]
    assert any("/v1/submitjob" in m and "cross-origin" in m for m in refused), refused  # it did reach the server
    assert any("/v1/createjobqueue" in m for m in refused), refused
    assert batch.list_jobs(jobQueue=queue, filters=[{"name": "JOB_NAME", "values": ["*"]}])["jobSummaryList"] == []
    names = [q["jobQueueName"] for q in batch.describe_job_queues()["jobQueues"]]
    assert f"{queue}-evil" not in names and queue in names
