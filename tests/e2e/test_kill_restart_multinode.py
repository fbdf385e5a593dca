"""A multi-node parallel job across a SIGKILL of `batchplane up` (process executor): the server dies while both
nodes of the first attempt run; restarted on the same state directory, it recovers the attempt as a lost host
(docs/adr/0027: its nodes' processes are killed, the attempt fails "Host EC2 ...") and the retry runs every node
again. The nodes' own ledger counts real executions: no node runs twice beyond the retries, and no process of the
first attempt is left behind."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from chalicelib.compute.local_processes import processes_of as _processes_of
from tests.e2e.conftest import sh
from tests.e2e.test_kill_restart import HOST_TERMINATED, Server, client_with_queue, server, wait_all_terminal

pytestmark = pytest.mark.e2e
__all__ = ["server"]  # the fixture


def test_a_sigkill_mid_run_fails_the_attempt_as_a_lost_host_and_the_retry_runs_every_node_once(
    server: Server, tmp_path: Path
) -> None:
    # GIVEN a 2-node job whose first attempt runs until stopped; every node run appends "<node job> <attempt>"
    ledger = tmp_path / "ledger"
    script = f'echo "$AWS_BATCH_JOB_ID $AWS_BATCH_JOB_ATTEMPT" >> {ledger}; '
    script += '[ "$AWS_BATCH_JOB_ATTEMPT" = 1 ] && sleep 600; '
    # the main node of attempt 2 waits (bounded) for the other node's line: it would be stopped with the main node
    script += '[ "$AWS_BATCH_JOB_NODE_INDEX" = 0 ] && for i in $(seq 300); do '
    script += f'[ "$(wc -l < {ledger})" -ge 4 ] && break; sleep 0.1; done; exit 0'
    server.start()
    batch, queue = client_with_queue(server, 4, platform="EC2")
    node = {"image": "busybox", "command": sh(script), "resourceRequirements": [{"type": "VCPU", "value": "1"}]}
    props = {"numNodes": 2, "mainNode": 0, "nodeRangeProperties": [{"targetNodes": "0:", "container": node}]}
    jd = batch.register_job_definition(
        jobDefinitionName="mnp", type="multinode", nodeProperties=props, retryStrategy={"attempts": 2}
    )["jobDefinitionArn"]
    job_id = batch.submit_job(jobName="mnp", jobQueue=queue, jobDefinition=jd)["jobId"]
    deadline = time.monotonic() + 30
    while not (ledger.exists() and len(ledger.read_text().splitlines()) == 2):
        assert time.monotonic() < deadline, "the nodes did not start"
        time.sleep(0.05)

    # WHEN the server is SIGKILLed while both nodes run, and started again on the same state
    server.kill()
    server.start()
    job = wait_all_terminal(batch, [job_id], 60)[job_id]

    # THEN the first attempt failed as a lost host and the retry ran every node once more, and succeeded
    assert job["status"] == "SUCCEEDED", job.get("statusReason")
    assert job["attempts"][0]["statusReason"] == HOST_TERMINATED
    assert len(job["attempts"]) == 2
    runs = sorted(ledger.read_text().splitlines())
    assert runs == sorted(f"{job_id}#{i} {a}" for i in (0, 1) for a in (1, 2))  # no node ran twice
    nodes = {n["jobId"]: n["status"] for n in batch.describe_jobs(jobs=[f"{job_id}#0", f"{job_id}#1"])["jobs"]}
    assert set(nodes.values()) == {"SUCCEEDED"}
    # AND no process of any attempt's nodes is left
    assert [p for i in (0, 1) for a in (1, 2) for p in _processes_of(f"{job_id}#{i}", a)] == []


def test_a_lost_multi_node_attempt_keeps_the_task_arns_its_nodes_showed_before_the_sigkill(
    server: Server, tmp_path: Path
) -> None:
    # GIVEN a 3-node job (main node 1) whose attempt runs until stopped, shown RUNNING by DescribeJobs
    ledger = tmp_path / "ledger"
    server.start()
    batch, queue = client_with_queue(server, 4, platform="EC2")
    node = {
        "image": "busybox",
        "command": sh(f'echo "$AWS_BATCH_JOB_ID" >> {ledger}; sleep 600'),
        "resourceRequirements": [{"type": "VCPU", "value": "1"}],
    }
    props = {"numNodes": 3, "mainNode": 1, "nodeRangeProperties": [{"targetNodes": "0:", "container": node}]}
    jd = batch.register_job_definition(jobDefinitionName="mnp-arns", type="multinode", nodeProperties=props)
    job_id = batch.submit_job(jobName="mnp", jobQueue=queue, jobDefinition=jd["jobDefinitionArn"])["jobId"]
    ids = [f"{job_id}#{i}" for i in range(3)]
    deadline = time.monotonic() + 30
    while not (ledger.exists() and len(ledger.read_text().splitlines()) == 3):
        assert time.monotonic() < deadline, "the nodes did not start"
        time.sleep(0.05)
    before = {j["jobId"]: j for j in batch.describe_jobs(jobs=ids)["jobs"]}
    assert {j["status"] for j in before.values()} == {"RUNNING"}
    shown = {i: (j["container"]["taskArn"], j["container"].get("containerInstanceArn")) for i, j in before.items()}
    assert len({arn for arn, _ in shown.values()}) == 3  # each node its own task
    assert len({host for _, host in shown.values()}) == 1 and None not in {host for _, host in shown.values()}

    # WHEN the server is SIGKILLed while every node runs, and started again on the same state
    server.kill()
    server.start()
    wait_all_terminal(batch, [job_id], 60)

    # THEN the job and each node job show one attempt, lost with its host, on the task it showed before the kill
    after = {j["jobId"]: j for j in batch.describe_jobs(jobs=[job_id, *ids])["jobs"]}
    shown[job_id] = shown[f"{job_id}#1"]  # the job's task is its main node's
    for i, job in after.items():
        (attempt,) = job["attempts"]
        assert attempt["statusReason"] == HOST_TERMINATED, i
        ecs = (attempt["container"]["taskArn"], attempt["container"].get("containerInstanceArn"))
        assert ecs == shown[i], i
        if i != job_id:  # (a multi-node job shows no container of its own)
            assert ecs == (job["container"]["taskArn"], job["container"].get("containerInstanceArn")), i
