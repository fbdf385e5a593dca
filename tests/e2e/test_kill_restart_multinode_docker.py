"""A multi-node parallel job across a SIGKILL of `batchplane up --executor docker` (docs/adr/0016, 0027).

Containers do not die with the server: restarted on the same state directory, it re-attaches to the job's node
containers (those still running and those that ended while it was down), reports each node's real end, and the job
ends as its main node did, on its first attempt. Unlike the process executor (test_kill_restart_multinode.py, where
the attempt is a lost host and the retry runs every node again), no node runs twice.

Each node appends `<node job> <attempt> <container hostname> start|done` to a ledger on a host volume (the server
allows its directory with --allow-host-path): the ledger counts real executions and says which container ran them.
The nodes finish when the test creates a file there, so the kill always catches them running (never a timing), and
the test decides in which order they end, and whether after the restart or while the server is down. The
assertions are about outcomes, never durations.
"""

from __future__ import annotations

import contextlib
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.docker_support import TEST_IMAGE, node_networks, remove_containers
from tests.e2e.conftest import describe, sh
from tests.e2e.test_kill_restart import Server, client_with_queue, serve, wait_all_terminal

pytestmark = pytest.mark.e2e

NODES, MAIN = 3, 0
FINISH_TIMEOUT_S = 90.0
LABEL_STATE = "batchplane.state-dir"
WITH_MAIN = "Main node exited; the job's other nodes were stopped"


@pytest.fixture
def server(tmp_path: Path, docker_engine: Any) -> Iterator[Server]:
    (tmp_path / "ledger").mkdir()

    def clean(srv: Server) -> None:  # the safety net: whatever a failed run left (containers, then node networks)
        remove_containers(docker_engine, srv.state)
        for n in node_networks(docker_engine, srv.state):
            with contextlib.suppress(Exception):
                docker_engine.remove_network(n["Id"])

    yield from serve(tmp_path, *("--executor", "docker", "--allow-host-path", str(tmp_path / "ledger")), after=clean)


def _containers(engine: Any, srv: Server, *, running: bool = False) -> dict[str, str]:
    """The containers of the server's state, by id: their node job (batchplane.job-id label)."""
    label = f"{LABEL_STATE}={(srv.state / 'executor-id').read_text().strip()}"
    found = engine.containers(all=not running, filters={"label": label})
    return {c["Id"]: c["Labels"]["batchplane.job-id"] for c in found}


def _ledger(ledger: Path) -> list[tuple[str, int, str, str]]:
    lines = ledger.read_text().splitlines() if ledger.exists() else []
    return [(job, int(attempt), host, what) for job, attempt, host, what in (line.split() for line in lines)]


def _wait(predicate: Any, what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def _submit(srv: Server, main_script: str, other_script: str) -> tuple[Any, str]:
    """A 3-node job (main node 0) on an EC2 compute environment (host volumes need EC2), every node's container
    mounting the ledger directory at /ledger; returns (client, job id)."""
    batch, queue = client_with_queue(srv, max_vcpus=4, platform="EC2")
    volume = {"name": "ledger", "host": {"sourcePath": str(srv.state.parent / "ledger")}}

    def container(script: str) -> dict[str, Any]:
        return {
            "image": TEST_IMAGE,
            "command": sh(script),
            "resourceRequirements": [{"type": "VCPU", "value": "1"}, {"type": "MEMORY", "value": "128"}],
            "volumes": [volume],
            "mountPoints": [{"sourceVolume": "ledger", "containerPath": "/ledger"}],
        }

    props = {
        "numNodes": NODES,
        "mainNode": MAIN,
        "nodeRangeProperties": [
            {"targetNodes": f"{MAIN}", "container": container(main_script)},
            {"targetNodes": f"{MAIN + 1}:", "container": container(other_script)},
        ],
    }
    jd = batch.register_job_definition(
        jobDefinitionName="mnp", type="multinode", nodeProperties=props, retryStrategy={"attempts": 2}
    )["jobDefinitionArn"]
    return batch, str(batch.submit_job(jobName="mnp", jobQueue=queue, jobDefinition=jd)["jobId"])


def _mark(what: str) -> str:
    return f'echo "$AWS_BATCH_JOB_ID $AWS_BATCH_JOB_ATTEMPT $(hostname) {what}" >> /ledger/ledger'


def _wait_for(file: str) -> str:
    """Wait (bounded: 300 s) for the test to create /ledger/<file>."""
    return f"for i in $(seq 3000); do [ -e /ledger/{file} ] && break; sleep 0.1; done"


def _kill_while_every_node_runs(srv: Server, engine: Any, ledger: Path, job_id: str) -> dict[str, str]:
    """Wait for every node's start line and running container, SIGKILL the server; returns the job's containers."""
    nodes = {f"{job_id}#{i}" for i in range(NODES)}
    _wait(lambda: {e[0] for e in _ledger(ledger) if e[3] == "start"} == nodes, "every node to start")
    _wait(lambda: set(_containers(engine, srv, running=True).values()) == nodes, "every node's container to run")
    srv.kill()
    running = _containers(engine, srv, running=True)
    assert sorted(running.values()) == sorted(nodes)  # one container per node, outliving the server
    return running


def _assert_each_node_ran_once(ledger: Path, job_id: str, containers: dict[str, str], ends: list[int]) -> None:
    """Each node started once, in the one container it was given before the kill; `ends`: the nodes that wrote
    their done line."""
    entries = _ledger(ledger)
    starts = Counter(e[0] for e in entries if e[3] == "start")
    assert starts == Counter(f"{job_id}#{i}" for i in range(NODES)), entries
    assert sorted(e[0] for e in entries if e[3] == "done") == sorted(f"{job_id}#{i}" for i in ends), entries
    assert {e[1] for e in entries} == {1}  # the first attempt only: nothing retried
    by_node = {job: cid for cid, job in containers.items()}
    for job, _, host, _ in entries:  # busybox's hostname: the container id's first 12 characters
        assert by_node[job].startswith(host), (job, host, by_node)


def _succeeded_once(batch: Any, job_id: str, job: dict[str, Any]) -> dict[str, Any]:
    """The job SUCCEEDED on its first attempt with exit 0, and so did each of its nodes: their descriptions."""
    assert job["status"] == "SUCCEEDED", (job.get("statusReason"), job["attempts"])
    assert [a["container"].get("exitCode") for a in job["attempts"]] == [0]
    nodes: dict[str, Any] = describe(batch, [f"{job_id}#{i}" for i in range(NODES)])
    assert {i: n["status"] for i, n in nodes.items()} == {f"{job_id}#{i}": "SUCCEEDED" for i in range(NODES)}
    return nodes


def _assert_nothing_left(srv: Server, engine: Any) -> None:
    """Every container of the job is removed once its end is recorded, and so is the job's node network."""
    _wait(lambda: not _containers(engine, srv), "the job's containers to be removed", timeout=30)
    _wait(lambda: not node_networks(engine, srv.state), "the node network to be removed", timeout=30)
    assert "Traceback" not in srv.output(), srv.output()


def test_node_containers_outlive_a_sigkill_and_the_job_succeeds_on_its_first_attempt(
    server: Server, tmp_path: Path, docker_engine: Any
) -> None:
    # GIVEN a 3-node job whose other nodes end at the go file, the main node at the go-main file
    ledger = tmp_path / "ledger" / "ledger"
    server.start()
    main = f"{_mark('start')}; {_wait_for('go-main')}; {_mark('done')}"
    batch, job_id = _submit(server, main, f"{_mark('start')}; {_wait_for('go')}; {_mark('done')}")
    containers = _kill_while_every_node_runs(server, docker_engine, ledger, job_id)

    # WHEN the server is started again on the same state while the containers run, and the nodes then finish: the
    # others first (their ends reported: SUCCEEDED while the job runs on), then the main node
    server.start()
    assert _containers(docker_engine, server) == containers  # re-attached: no container was added or replaced
    (tmp_path / "ledger" / "go").touch()
    others = [f"{job_id}#{i}" for i in range(NODES) if i != MAIN]
    _wait(lambda: {j["status"] for j in describe(batch, others).values()} == {"SUCCEEDED"}, "the others' ends")
    assert describe(batch, [job_id])[job_id]["status"] == "RUNNING"
    (tmp_path / "ledger" / "go-main").touch()
    job = wait_all_terminal(batch, [job_id], FINISH_TIMEOUT_S)[job_id]

    # THEN the job SUCCEEDED on its first attempt, with its main node's real end
    nodes = _succeeded_once(batch, job_id, job)
    # AND each node's own end is reported: the others ended on their own (exit 0), before the main node
    for i in range(NODES):
        if i != MAIN:
            attempt = nodes[f"{job_id}#{i}"]["attempts"][0]
            assert attempt["container"].get("exitCode") == 0, attempt
            assert attempt.get("statusReason") != WITH_MAIN, attempt
    # AND no node ran twice, and each ran in its one container
    _assert_each_node_ran_once(ledger, job_id, containers, ends=list(range(NODES)))
    _assert_nothing_left(server, docker_engine)


def test_a_main_node_that_ends_while_the_server_is_down_ends_the_job_and_stops_the_others(
    server: Server, tmp_path: Path, docker_engine: Any
) -> None:
    # GIVEN a 3-node job whose main node ends at the go file, and whose other nodes run until stopped
    ledger = tmp_path / "ledger" / "ledger"
    server.start()
    main = f"{_mark('start')}; {_wait_for('go')}; {_mark('done')}"
    batch, job_id = _submit(server, main, f"{_mark('start')}; exec sleep 600")
    containers = _kill_while_every_node_runs(server, docker_engine, ledger, job_id)

    # WHEN the main node ends (exit 0) while the server is down, and the server is then started again
    (tmp_path / "ledger" / "go").touch()
    _wait(lambda: containers.keys() - _containers(docker_engine, server, running=True).keys() != set(), "main's end")
    still = _containers(docker_engine, server, running=True)
    assert sorted(still.values()) == sorted(f"{job_id}#{i}" for i in range(NODES) if i != MAIN)
    server.start()
    job = wait_all_terminal(batch, [job_id], FINISH_TIMEOUT_S)[job_id]

    # THEN the job ends as its main node did: SUCCEEDED on its first attempt, exit 0
    nodes = _succeeded_once(batch, job_id, job)
    # AND the other nodes were stopped with the main node, and say so
    for i in range(NODES):
        if i != MAIN:
            assert nodes[f"{job_id}#{i}"]["attempts"][0].get("statusReason") == WITH_MAIN, nodes[f"{job_id}#{i}"]
    # AND no node ran twice: the main node's one run, the others' one start each (stopped, never done)
    _assert_each_node_ran_once(ledger, job_id, containers, ends=[MAIN])
    _assert_nothing_left(server, docker_engine)
