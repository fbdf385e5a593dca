"""Cost per job end to end: real processes under the local runtime. A finished job's resource-seconds are in the
DescribeJobs JSON (batchplaneCost), consistent with its recorded startedAt/stoppedAt, shown by `batchplane
describe`, and summed per share and per queue by `batchplane watch --queue`; the local runtime prices nothing."""

from __future__ import annotations

import json

import pytest

from chalicelib.console.client import Api
from tests.e2e.conftest import Client, register, setup_queue, sh, submit, unique, wait_terminal
from tests.e2e.test_cli import Cli, cli, wide  # noqa: F401 - fixtures

pytestmark = pytest.mark.e2e


def test_a_finished_job_shows_its_resource_seconds_in_describe_and_watch(batch: Client, cli: Cli) -> None:  # noqa: F811
    # GIVEN two 1-vCPU / 2 GiB jobs that ran to the end
    queue, _ = setup_queue(batch, max_vcpus=2)
    jd = register(batch, unique("nap"), sh("sleep 0.2"))
    ids = [submit(batch, queue, jd, f"j{i}") for i in range(2)]
    jobs = wait_terminal(batch, ids, timeout=60)
    assert {j["status"] for j in jobs.values()} == {"SUCCEEDED"}

    # THEN the JSON's batchplaneCost is its attempt's run time times its size (boto3 drops the member)
    assert "batchplaneCost" not in jobs[ids[0]]
    raw = Api(cli.endpoint, "us-east-1").describe(ids)
    for job_id in ids:
        attempt = raw[job_id]["attempts"][0]
        seconds = (attempt["stoppedAt"] - attempt["startedAt"]) / 1000
        got = raw[job_id]["batchplaneCost"]
        assert got["vcpuSeconds"] == pytest.approx(seconds, abs=0.001)
        assert got["memoryGiBSeconds"] == pytest.approx(2 * seconds, abs=0.002)
        assert "costUsd" not in got, json.dumps(got)  # nothing is priced locally

    # WHEN `batchplane describe` shows one  THEN a Cost line gives its vCPU- and GiB-seconds
    code, out, _ = cli("describe", ids[0])
    assert code == 0
    line = next(line for line in out.splitlines() if "Cost" in line and "vCPU" in line)
    assert " s vCPU" in line and " s GiB" in line and "$" not in line

    # WHEN `batchplane watch --queue` shows the queue  THEN it sums the jobs' cost per share and in all
    code, out, _ = cli("watch", "--queue", queue, "--once")
    assert code == 0 and "cost of the jobs listed" in out and "queue total" in out and "(no share)" in out
    total = sum(raw[j]["batchplaneCost"]["vcpuSeconds"] for j in ids)
    code, out, _ = cli("watch", "--queue", queue, "--once", "--plain")
    assert code == 0 and f"| {total:.1f} s vCPU" in out, out
