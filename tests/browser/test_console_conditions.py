"""The web console's dependency graph names batchplane's conditional dependencies (AFTER_ANY, AFTER_NOT_OK) on their
edges (docs/adr/0029)."""

from __future__ import annotations

import re
from typing import Any

import pytest

from tests.e2e.conftest import register, setup_queue, submit, unique

pytestmark = pytest.mark.browser

try:
    from playwright.sync_api import expect
except ImportError:  # the `browser` fixture skips (or fails in CI)
    expect = None


def test_the_graph_names_each_conditional_edge(page: Any, runtime: Any, batch: Any) -> None:
    # GIVEN a job with a plain, an AFTER_ANY and an AFTER_NOT_OK dependent, all waiting (the CE is disabled)
    queue, ce = setup_queue(batch, name=unique("cond"))
    batch.update_compute_environment(computeEnvironment=ce, state="DISABLED")
    jd = register(batch, unique("work"), ["true"])
    train = submit(batch, queue, jd, "train")
    submit(batch, queue, jd, "publish", dependsOn=[{"jobId": train}])
    submit(batch, queue, jd, "cleanup", dependsOn=[{"jobId": train, "type": "AFTER_ANY"}])
    submit(batch, queue, jd, "alert", dependsOn=[{"jobId": train, "type": "AFTER_NOT_OK"}])

    # WHEN the dependency's page is open
    page.goto(f"{runtime.endpoint}/console/jobs/{train}")
    graph = page.get_by_role("group", name="Dependency graph")

    # THEN every dependent is drawn, and the two conditional edges carry their condition
    for name in ("publish", "cleanup", "alert"):
        expect(graph.get_by_role("link", name=re.compile(f"^{name}, PENDING"))).to_be_visible()
    expect(graph.get_by_text("AFTER_ANY", exact=True)).to_be_visible()
    expect(graph.get_by_text("AFTER_NOT_OK", exact=True)).to_be_visible()
    assert graph.locator("path.edge.cond").count() == 2
    assert graph.locator("path.edge").count() == 3
