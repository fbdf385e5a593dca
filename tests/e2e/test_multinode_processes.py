"""Multi-node parallel jobs on the process executor across a server restart: the attempt whose node processes the
stopped server left is failed as a lost host and retried, every node launched again (no node runs twice)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.e2e.conftest import ClientFactory, Runtimes, describe_one, sh, submit, wait_terminal, wait_until
from tests.e2e.conftest import setup_queue as make_queue

pytestmark = pytest.mark.e2e


def test_a_restart_mid_run_fails_the_attempt_as_a_lost_host_and_the_retry_runs_every_node(
    make_runtime: Runtimes, clients: ClientFactory, tmp_path: Path
) -> None:
    ledger = tmp_path / "ledger"
    first = make_runtime.start()
    batch = clients("batch", first.endpoint)
    queue, _ = make_queue(batch, 4, platform="EC2")
    script = f'echo "$AWS_BATCH_JOB_ID $AWS_BATCH_JOB_ATTEMPT" >> {ledger}; '
    script += '[ "$AWS_BATCH_JOB_ATTEMPT" = 1 ] && sleep 600; '
    # the main node of attempt 2 waits (bounded) for the other node's line: it would be stopped with the main node
    script += '[ "$AWS_BATCH_JOB_NODE_INDEX" = 0 ] && for i in $(seq 300); do '
    script += f'[ "$(wc -l < {ledger})" -ge 4 ] && break; sleep 0.1; done; exit 0'
    node = {"image": "busybox", "command": sh(script), "resourceRequirements": [{"type": "VCPU", "value": "1"}]}
    props = {"numNodes": 2, "mainNode": 0, "nodeRangeProperties": [{"targetNodes": "0:", "container": node}]}
    jd = batch.register_job_definition(
        jobDefinitionName="mnp", type="multinode", nodeProperties=props, retryStrategy={"attempts": 2}
    )["jobDefinitionArn"]
    job_id = submit(batch, queue, jd)
    wait_until(lambda: ledger.exists() and len(ledger.read_text().splitlines()) == 2, "both nodes to run")
    make_runtime.stop(first)
    second = make_runtime.start()
    batch = clients("batch", second.endpoint)
    job = wait_terminal(batch, [job_id], timeout=60)[job_id]
    assert job["status"] == "SUCCEEDED", job.get("statusReason")
    assert job["attempts"][0]["statusReason"].startswith("Host EC2")
    assert sorted(ledger.read_text().splitlines()) == sorted(f"{job_id}#{i} {a}" for i in (0, 1) for a in (1, 2))
    assert [describe_one(batch, f"{job_id}#{i}")["status"] for i in (0, 1)] == ["SUCCEEDED", "SUCCEEDED"]
