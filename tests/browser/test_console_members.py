"""The web console's job page on the jobs that run more than one thing (issue 13 item 5): a multi-container job's
containers (essential, dependsOn, exit, log stream, each container's log) and a multi-node job's nodes."""

from __future__ import annotations

import re
from typing import Any

import pytest

from tests.e2e.conftest import setup_queue, sh, submit, unique, wait_terminal
from tests.e2e.test_multi_container import register_task, sidecar_demo

pytestmark = pytest.mark.browser

try:
    from playwright.sync_api import expect
except ImportError:  # the `browser` fixture skips (or fails in CI)
    expect = None


def test_a_multi_container_jobs_containers_and_their_logs(page: Any, runtime: Any, batch: Any, shot: Any) -> None:
    # GIVEN a finished two-container job: a sidecar that failed (non-essential) and the essential main container
    jd = register_task(batch, *sidecar_demo(), prefix="webmc")
    queue, _ = setup_queue(batch, max_vcpus=4, name=unique("webmc"))
    job_id = submit(batch, queue, jd, "sidecar-demo")
    job = wait_terminal(batch, [job_id])[job_id]
    assert job["status"] == "SUCCEEDED"
    streams = {c["name"]: c["logStreamName"] for c in job["ecsProperties"]["taskProperties"][0]["containers"]}
    # WHEN its page is opened
    page.goto(f"{runtime.endpoint}/console/jobs/{job_id}")
    # THEN the containers are listed with their role, order, exit and log stream
    rows = page.get_by_role("table", name=re.compile("Containers of the task")).locator("tbody tr")
    expect(rows).to_have_count(2)
    expect(rows.nth(0)).to_contain_text("side")
    expect(rows.nth(0)).to_contain_text("no")
    expect(rows.nth(0)).to_contain_text("5")
    expect(rows.nth(0)).to_contain_text(streams["side"])
    expect(rows.nth(1)).to_contain_text("side COMPLETE")
    expect(rows.nth(1)).to_contain_text(streams["main"])
    # ... the log shown is the essential container's, and another container's is one click away
    log = page.get_by_label("Log lines")
    expect(page.locator("#log-title")).to_have_text("Log of attempt 1 (container main)")
    expect(log).to_have_text("main-out")
    shot(page, "job-containers")
    page.get_by_role("button", name="Show the log of container side").click()
    expect(page.locator("#log-title")).to_have_text("Log of attempt 1 (container side)")
    expect(log).to_have_text("side-out")


def test_a_multi_node_jobs_nodes(page: Any, runtime: Any, batch: Any, shot: Any) -> None:
    # GIVEN a finished two-node job whose main node is node 1
    queue, _ = setup_queue(batch, 4, name=unique("webmn"), platform="EC2")
    node = {"image": "busybox", "command": sh("echo node $AWS_BATCH_JOB_NODE_INDEX"), "resourceRequirements": []}
    props = {"numNodes": 2, "mainNode": 1, "nodeRangeProperties": [{"targetNodes": "0:", "container": node}]}
    jd = batch.register_job_definition(jobDefinitionName=unique("webmn"), type="multinode", nodeProperties=props)
    job_id = submit(batch, queue, jd["jobDefinitionArn"], "gang")
    assert wait_terminal(batch, [job_id])[job_id]["status"] == "SUCCEEDED"
    # WHEN its page is opened
    page.goto(f"{runtime.endpoint}/console/jobs/{job_id}")
    # THEN its nodes are listed, the main one marked, each a link to its own job page (with its log)
    expect(page.get_by_role("heading", name="Nodes (2, main node 1)")).to_be_visible()
    rows = page.get_by_role("table", name=re.compile("Nodes of the job")).locator("tbody tr")
    expect(rows).to_have_count(2)
    expect(rows.nth(1)).to_contain_text("node 1 (main)")
    expect(rows.nth(1)).to_contain_text("SUCCEEDED")
    expect(page.get_by_text("A multi-node job: its nodes have the logs")).to_be_visible()
    shot(page, "job-nodes")
    rows.nth(1).get_by_role("link").click()
    expect(page.get_by_label("Log lines")).to_have_text("node 1")
