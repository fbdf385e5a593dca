"""A job on the Docker executor stopped (TerminateJob) before its container started, when the server is SIGKILLed
(docs/adr/0033): live, the container never runs and the attempt ends with the stop's reason and no exit code; after
the restart it must end the same way, never started by the recovery (or launched again) and then stopped.

The server talks to the engine through an `EngineGate` (tests/docker_support.py) that holds its container create:
before the engine sees it (the container never exists) or once the engine made it (it exists, never started). The
job is terminated while the create is held; then the server is SIGKILLed (or not), the gate lets everything through
and the server starts again. Each scenario runs live and with the SIGKILL, and both must agree. Every wait is for a
state (the gate, a job status), never for a time."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.docker_support import TEST_IMAGE, EngineGate
from tests.e2e.conftest import setup_queue, unique, wait_terminal, wait_until
from tests.e2e.test_kill_restart import Server
from tests.e2e.test_restart_multi_container_stop import REASON, RETRY_LOST, batch_of
from tests.e2e.test_restart_stop_docker import MOUNT, _container
from tests.e2e.test_restart_stop_docker import server as server  # (the fixture: --executor docker, a host volume)
from tests.multi_container_support import containers_of

pytestmark = pytest.mark.e2e

RAN = "trap 'exit 143' TERM; touch /shared/ran; sleep 120 & wait"  # a command that leaves a trace once it runs


@pytest.fixture
def gates() -> Iterator[list[EngineGate]]:
    made: list[EngineGate] = []
    yield made
    for gate in made:
        gate.close()


def _stopped_while_held(
    server: Server, monkeypatch: pytest.MonkeyPatch, gate: EngineGate, definition: dict[str, Any], *, crash: bool
) -> dict[str, Any]:
    """Submit a job of `definition`; once its create is held, terminate it; SIGKILL the server (`crash`), open the
    gate, start the server again. The job once terminal."""
    monkeypatch.setenv("DOCKER_HOST", gate.docker_host)  # (the server's environment: it talks through the gate)
    server.start()
    batch = batch_of(server)
    jd = batch.register_job_definition(jobDefinitionName=unique("early"), type="container", **definition)
    queue, _ = setup_queue(batch, 4, name=unique("ec2"), platform="EC2")  # EC2: host volumes
    job_id = batch.submit_job(
        jobName="early", jobQueue=queue, jobDefinition=jd["jobDefinitionArn"], retryStrategy=RETRY_LOST
    )["jobId"]
    wait_until(gate.held.is_set, "its container's create to be held", 60)
    batch.terminate_job(jobId=job_id, reason=REASON)  # (the launcher's stop runs before the call returns)
    if crash:
        server.kill()
    gate.release()
    if crash:
        server.start()
    job: dict[str, Any] = wait_terminal(batch, [job_id], timeout=90)[job_id]
    assert "Traceback" not in server.output(), server.output()
    return job


@pytest.mark.parametrize("hold", ["request", "response"], ids=["never-created", "created"])
@pytest.mark.parametrize("crash", [False, True], ids=["live", "sigkill"])
def test_a_single_container_stopped_before_it_started_never_runs_after_a_crash(
    server: Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, gates: list[EngineGate], crash: bool, hold: str
) -> None:
    # GIVEN a single-container job terminated while its container is being created (not yet, or created, not started)
    gates.append(gate := EngineGate(hold))
    shared = tmp_path / "shared"
    definition = {
        "containerProperties": {
            "image": TEST_IMAGE,
            "command": ["sh", "-c", RAN],
            "resourceRequirements": [{"type": "VCPU", "value": "1"}, {"type": "MEMORY", "value": "128"}],
            "volumes": [{"name": "shared", "host": {"sourcePath": str(shared)}}],
            "mountPoints": MOUNT,
        }
    }
    # WHEN the server is SIGKILLed (or not) and starts again
    job = _stopped_while_held(server, monkeypatch, gate, definition, crash=crash)
    # THEN as live: its command never ran, the stop's reason is the job's and the attempt's, no exit code
    facts = (
        job["status"],
        job.get("statusReason"),
        job.get("startedAt"),
        [(a.get("statusReason"), a["container"].get("exitCode")) for a in job["attempts"]],
        (shared / "ran").exists(),
    )
    assert facts == ("FAILED", REASON, None, [(REASON, None)], False)


@pytest.mark.parametrize("crash", [False, True], ids=["live", "sigkill"])
def test_a_task_stopped_while_it_is_prepared_never_starts_after_a_crash(
    server: Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, gates: list[EngineGate], crash: bool
) -> None:
    # GIVEN a multi-container job terminated while it is prepared: its network holder runs, `main` is created (the
    # engine's answer held), `side` not yet
    gates.append(gate := EngineGate("response", match=b"-main "))
    shared = tmp_path / "shared"
    main = _container("main", RAN, mountPoints=MOUNT)
    side = _container("side", RAN, essential=False, mountPoints=MOUNT)
    task = {"containers": [main, side], "volumes": [{"name": "shared", "host": {"sourcePath": str(shared)}}]}
    # WHEN the server is SIGKILLed (or not) and starts again
    job = _stopped_while_held(server, monkeypatch, gate, {"ecsProperties": {"taskProperties": [task]}}, crash=crash)
    # THEN as live: nothing of it started, the stop's reason is the job's and the attempt's
    facts = (
        job["status"],
        job.get("statusReason"),
        job.get("startedAt"),
        [a.get("statusReason") for a in job["attempts"]],
        {n: (c.get("exitCode"), c.get("reason")) for n, c in containers_of(job).items()},
        (shared / "ran").exists(),
    )
    never = (None, "Task stopped before the container started")
    assert facts == ("FAILED", REASON, None, [REASON], {"main": never, "side": never}, False)
