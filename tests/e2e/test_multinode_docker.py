"""Multi-node parallel jobs on the Docker executor, end to end: real busybox containers on a network of their own per
job, a non-main node reaching the main node at AWS_BATCH_JOB_MAIN_NODE_PRIVATE_IPV4_ADDRESS, the network removed
when the job ends; terminate and failures. Needs the `docker_engine` fixture (tests/docker_support.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from chalicelib.runtime.local import LocalRuntime
from tests.docker_support import TEST_IMAGE, holds_the_credentials_endpoint, node_networks
from tests.e2e.conftest import (
    Client,
    ClientFactory,
    Runtimes,
    describe_one,
    job_log,
    setup_queue,
    sh,
    submit,
    unique,
    wait_status,
    wait_terminal,
    wait_until,
)
from tests.e2e.test_job_credentials import ROLE, server_credentials

pytestmark = pytest.mark.e2e
__all__ = ["server_credentials"]  # a fixture

SMALL = [{"type": "VCPU", "value": "0.25"}, {"type": "MEMORY", "value": "128"}]
LISTEN = 'msg=$(nc -l -p 7000); echo "got $msg"'
MAIN = sh('echo "main $AWS_BATCH_JOB_NODE_INDEX"; ' + LISTEN)
# The peer sends its message from a file, not from a pipe, and without `-w`. busybox nc (1.35) copies stdin and the
# socket in one poll loop and exits 0 as soon as the socket reads EOF. The listening main node's stdin is /dev/null:
# it half-closes its side at once. A peer whose `echo ... |` had not written yet when that EOF came exited 0 without
# sending anything: the main node logged "got " and the job SUCCEEDED (under load, 2 runs in 12; with `(sleep 1;
# echo from-1) | nc` every time). A regular file is readable at the first poll, and stdin is read before the socket
# in the same poll. (`-w 2`: an alarm firing once connect() succeeded would end the peer the same way.)
SEND = (
    "echo from-$AWS_BATCH_JOB_NODE_INDEX > /tmp/msg;"
    " until nc $AWS_BATCH_JOB_MAIN_NODE_PRIVATE_IPV4_ADDRESS 7000 < /tmp/msg; do sleep 0.2; done"
)
PEER = sh(SEND + "; echo main at $AWS_BATCH_JOB_MAIN_NODE_PRIVATE_IPV4_ADDRESS")


def container(command: list[str]) -> dict[str, Any]:
    return {"image": TEST_IMAGE, "command": command, "resourceRequirements": SMALL}


def register_nodes(batch: Client, num: int, main: int, *ranges: tuple[str, list[str]], **extra: Any) -> str:
    props = {
        "numNodes": num,
        "mainNode": main,
        "nodeRangeProperties": [{"targetNodes": t, "container": container(c)} for t, c in ranges],
    }
    jd = batch.register_job_definition(jobDefinitionName=unique("mnp"), type="multinode", nodeProperties=props, **extra)
    return str(jd["jobDefinitionArn"])


def test_a_node_reaches_the_main_node_by_address_on_the_job_network(
    dbatch: Client, dlogs: Client, docker_engine: Any, state_dir: Path
) -> None:
    queue, _ = setup_queue(dbatch, 4, platform="EC2")
    jd = register_nodes(dbatch, 2, 0, ("0", MAIN), ("1", PEER))
    job_id = submit(dbatch, queue, jd)
    wait_until(lambda: bool(node_networks(docker_engine, state_dir)), "the job's node network")
    job = wait_terminal(dbatch, [job_id], timeout=60)[job_id]
    assert job["status"] == "SUCCEEDED", job.get("statusReason")
    main, peer = describe_one(dbatch, f"{job_id}#0"), describe_one(dbatch, f"{job_id}#1")
    # Every node's log is whole once the job has ended, with no wait: each node's watcher appends its output, drained,
    # before it reports the node's end (ADR 0016), and the job's end is reported after every node's.
    assert job_log(dlogs, main) == ["main 0", "got from-1"]  # the peer connected to the main node's address
    peer_log = job_log(dlogs, peer)
    assert len(peer_log) == 1 and peer_log[0].startswith("main at "), peer_log
    address = peer_log[-1].removeprefix("main at ")
    assert address.count(".") == 3 and address != "127.0.0.1"  # an address on the job's own network
    wait_until(lambda: not node_networks(docker_engine, state_dir), "the node network to be removed")


def test_terminate_stops_every_node_container(dbatch: Client, docker_engine: Any, state_dir: Path) -> None:
    queue, _ = setup_queue(dbatch, 4, platform="EC2")
    jd = register_nodes(dbatch, 2, 0, ("0:", sh("sleep 600")))
    job_id = submit(dbatch, queue, jd)
    wait_status(dbatch, [job_id], "RUNNING", timeout=60)
    wait_until(
        lambda: len(dbatch.list_jobs(multiNodeJobId=job_id, jobStatus="RUNNING")["jobSummaryList"]) == 2,
        "both nodes to run",
    )
    dbatch.terminate_job(jobId=job_id, reason="stop it")
    job = wait_terminal(dbatch, [job_id], timeout=60)[job_id]
    assert job["status"] == "FAILED" and job["statusReason"] == "stop it"
    wait_until(lambda: not node_networks(docker_engine, state_dir), "the node network to be removed")


def test_a_main_node_that_fails_fails_the_job_and_stops_the_others(dbatch: Client) -> None:
    queue, _ = setup_queue(dbatch, 4, platform="EC2")
    jd = register_nodes(dbatch, 2, 1, ("0", sh("sleep 600")), ("1", sh("sleep 1; exit 4")))
    job_id = submit(dbatch, queue, jd)
    job = wait_terminal(dbatch, [job_id], timeout=60)[job_id]
    assert job["status"] == "FAILED"
    assert job["attempts"][-1]["container"]["exitCode"] == 4
    other = describe_one(dbatch, f"{job_id}#0")
    assert other["status"] == "FAILED" and other["attempts"][-1]["statusReason"].startswith("Main node exited")


def test_a_node_whose_image_cannot_be_pulled_fails_the_attempt(dbatch: Client) -> None:
    queue, _ = setup_queue(dbatch, 4, platform="EC2")
    props = {
        "numNodes": 2,
        "mainNode": 0,
        "nodeRangeProperties": [
            {"targetNodes": "0", "container": container(sh("sleep 600"))},
            {"targetNodes": "1", "container": {**container(sh("true")), "image": "batchplane-no-such-image:1"}},
        ],
    }
    jd = dbatch.register_job_definition(jobDefinitionName=unique("mnp"), type="multinode", nodeProperties=props)
    job_id = submit(dbatch, queue, str(jd["jobDefinitionArn"]))
    job = wait_terminal(dbatch, [job_id], timeout=90)[job_id]
    assert job["status"] == "FAILED"
    assert job["statusReason"].startswith("Node 1 failed to start: CannotPullContainerError"), job["statusReason"]


def test_a_server_restart_mid_run_re_attaches_the_nodes_and_the_job_ends_on_its_first_attempt(
    docker_runtimes: Runtimes, clients: ClientFactory, docker_engine: Any, state_dir: Path
) -> None:
    # GIVEN a 2-node job whose nodes run until told to end (a /tmp/go file in their container), on a server that then
    # goes away and comes back (its SIGKILL twin: test_kill_restart_multinode_docker.py)
    first = docker_runtimes.start()
    batch = clients("batch", first.endpoint)
    queue, _ = setup_queue(batch, 4, platform="EC2")
    script = sh("until [ -e /tmp/go ]; do sleep 0.1; done; exit 0")
    jd = register_nodes(batch, 2, 0, ("0:", script), retryStrategy={"attempts": 2})
    job_id = submit(batch, queue, jd)
    wait_until(
        lambda: len(batch.list_jobs(multiNodeJobId=job_id, jobStatus="RUNNING")["jobSummaryList"]) == 2,
        "both nodes to run",
    )
    docker_runtimes.stop(first)  # the containers run on without their server
    second = docker_runtimes.start()
    batch = clients("batch", second.endpoint)
    # WHEN the server has re-attached to the nodes and they end
    for i in (0, 1):
        for c in docker_engine.containers(filters={"label": f"batchplane.job-id={job_id}#{i}"}):
            docker_engine.exec_start(docker_engine.exec_create(c["Id"], ["touch", "/tmp/go"]))
    # THEN the job ends as its main node did, on its first attempt: no node ran again
    job = wait_terminal(batch, [job_id], timeout=90)[job_id]
    assert job["status"] == "SUCCEEDED", job.get("statusReason")
    assert [a["container"].get("exitCode") for a in job["attempts"]] == [0]
    assert [describe_one(batch, f"{job_id}#{i}")["status"] for i in (0, 1)] == ["SUCCEEDED", "SUCCEEDED"]
    wait_until(lambda: not node_networks(docker_engine, state_dir), "the node networks to be removed")


def test_the_nodes_of_a_job_with_a_role_get_its_credentials_and_still_reach_each_other(
    server_credentials: None, drt: LocalRuntime, dbatch: Client, dlogs: Client
) -> None:
    # GIVEN a 2-node job with a jobRoleArn: each node fetches its credentials at the ECS address, then the peer
    # connects to the main node on the job's network
    holds_the_credentials_endpoint(drt)  # (on port 80, or another: ADR 0037)
    url = "${AWS_CONTAINER_CREDENTIALS_FULL_URI:-http://169.254.170.2$AWS_CONTAINER_CREDENTIALS_RELATIVE_URI}"
    fetch = f'wget -qO- {url} | grep -o \'"RoleArn": *"[^"]*"\'; '
    main = sh(fetch + LISTEN)
    peer = sh(fetch + SEND + "; echo sent")
    queue, _ = setup_queue(dbatch, 4, platform="EC2")
    props = {
        "numNodes": 2,
        "mainNode": 0,
        "nodeRangeProperties": [
            {"targetNodes": "0", "container": {**container(main), "jobRoleArn": ROLE}},
            {"targetNodes": "1", "container": {**container(peer), "jobRoleArn": ROLE}},
        ],
    }
    jd = dbatch.register_job_definition(jobDefinitionName=unique("mnp"), type="multinode", nodeProperties=props)
    job_id = submit(dbatch, queue, str(jd["jobDefinitionArn"]))
    # WHEN it runs THEN both nodes read the role's credentials and the peer reached the main node
    job = wait_terminal(dbatch, [job_id], timeout=60)[job_id]
    assert job["status"] == "SUCCEEDED", job.get("statusReason")
    role_line = f'"RoleArn": "{ROLE}"'
    main_node, peer_node = describe_one(dbatch, f"{job_id}#0"), describe_one(dbatch, f"{job_id}#1")
    assert job_log(dlogs, main_node) == [role_line, "got from-1"]  # (whole at the job's end: see the first test)
    assert job_log(dlogs, peer_node) == [role_line, "sent"]
