"""A multi-node job on the Docker executor whose gang launch a SIGKILL of `batchplane up` cut short (docs/adr/0027):
after the claim, before every node's container was created. Live, nothing fails there; after the restart nothing
must either, and no node may run twice: the nodes that never ran are launched under the same attempt (none of
them, or the main node alone, had run), those that ran run on.

The server talks to the engine through an `EngineGate` (tests/docker_support.py) that holds one node's container
create: before the engine sees it (the container never exists) or once the engine made it (it exists, never
started, the server never knew its id). The server is SIGKILLed while it is held, the gate lets everything through,
and the server starts again. The main node (0) waits for the other two nodes' start lines, then exits 0; the others
run until they are stopped with it. Every wait is for a state, never for a time."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from chalicelib.compute.port import local_container_instance_arn
from tests.docker_support import EngineGate
from tests.e2e.test_kill_restart import Server, wait_all_terminal
from tests.e2e.test_kill_restart_multinode_docker import (
    NODES,
    WITH_MAIN,
    _assert_nothing_left,
    _containers,
    _ledger,
    _mark,
    _submit,
    _succeeded_once,
    _wait,
)
from tests.e2e.test_kill_restart_multinode_docker import server as server  # (the fixture)

pytestmark = pytest.mark.e2e

MAIN_SCRIPT = f"{_mark('start')}; "
MAIN_SCRIPT += 'for i in $(seq 3000); do [ "$(grep -c start /ledger/ledger)" -ge 3 ] && break; sleep 0.1; done; '
MAIN_SCRIPT += f"{_mark('done')}"
OTHER_SCRIPT = f"{_mark('start')}; sleep 600"


@pytest.fixture
def gates() -> Iterator[list[EngineGate]]:
    made: list[EngineGate] = []
    yield made
    for gate in made:
        gate.close()


@pytest.mark.parametrize("hold", ["request", "response"], ids=["never-created", "created"])
@pytest.mark.parametrize("node", [0, 1], ids=["main-node", "after-the-main-node"])
def test_a_gang_launch_cut_short_by_a_sigkill_completes_on_the_same_attempt_and_no_node_runs_twice(
    server: Server,
    tmp_path: Path,
    docker_engine: Any,
    monkeypatch: pytest.MonkeyPatch,
    gates: list[EngineGate],
    node: int,
    hold: str,
) -> None:
    # GIVEN a 3-node job whose launch is held at node `node`'s container create (node 0: nothing of it runs; node
    # 1: the main node runs, node 1 is not created or not started, node 2 not launched yet), when the server dies
    gates.append(gate := EngineGate(hold, match=f".node{node}-1".encode()))
    monkeypatch.setenv("DOCKER_HOST", gate.docker_host)  # (the server's environment: it talks through the gate)
    server.start()
    ledger = tmp_path / "ledger" / "ledger"
    batch, job_id = _submit(server, MAIN_SCRIPT, OTHER_SCRIPT)
    _wait(gate.held.is_set, f"node {node}'s create to be held")
    if node:  # (the main node's start line: it ran, and must not run again)
        _wait(lambda: [e[0] for e in _ledger(ledger)] == [f"{job_id}#0"], "the main node to run")
    server.kill()
    gate.release()

    # WHEN the server starts again on the same state
    server.start()
    job = wait_all_terminal(batch, [job_id], 90)[job_id]

    # THEN the job succeeded on its first attempt, as live: the nodes never run are launched, none ran twice
    nodes = _succeeded_once(batch, job_id, job)
    starts = Counter(e[0] for e in _ledger(ledger) if e[3] == "start")
    assert starts == Counter(f"{job_id}#{i}" for i in range(NODES)), _ledger(ledger)
    assert {e[1] for e in _ledger(ledger)} == {1}
    assert nodes[f"{job_id}#1"]["attempts"][0]["statusReason"] == WITH_MAIN
    # AND each node job shows the task it ran as, the job its main node's, with the host
    (attempt,) = job["attempts"]
    tasks = {i: n["attempts"][0]["container"]["taskArn"] for i, n in nodes.items()}
    assert attempt["container"]["taskArn"] == tasks[f"{job_id}#0"] and len(set(tasks.values())) == NODES
    assert attempt["container"]["containerInstanceArn"] == local_container_instance_arn(attempt["container"]["taskArn"])
    _assert_nothing_left(server, docker_engine)
    assert not _containers(docker_engine, server)
