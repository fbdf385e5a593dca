"""Multi-container jobs across a restart of the server (docs/adr/0028), through the stock boto3 batch client.

Docker: containers outlive the server, so at the next start it re-attaches to the task (holder and members, found by
label), settles the members that ended meanwhile with their real exit codes and output, and carries on the
dependsOn/essential coordination: the job ends once, on its first attempt. Processes cannot be re-adopted (their
output pipes died with the server): at the next start those still running are killed and the attempt is a lost host
(the retry strategy decides), unless every essential container's exit was recorded meanwhile by its supervisor (as a
single-container job's is, tests/e2e/test_kill_restart.py): then the task is settled with those real exit codes,
once. Both after a graceful stop and after a SIGKILL; the kills wait for states, never for a time.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

from chalicelib.compute.local_processes import processes_of as _processes_of
from tests.docker_support import remove_containers
from tests.e2e.conftest import Runtimes, setup_queue, unique, wait_status, wait_terminal, wait_until
from tests.e2e.test_docker_multi_container import container as _container
from tests.e2e.test_kill_restart import CLIENT, Server, serve
from tests.e2e.test_multi_container import container as process_container
from tests.e2e.test_multi_container import register_task
from tests.multi_container_support import containers_of

pytestmark = pytest.mark.e2e

GO = "/tmp/go"  # inside the init container: created by the test (docker exec) to let it end
RETRY_LOST = {"attempts": 2, "evaluateOnExit": [{"onStatusReason": "Host EC2*", "action": "RETRY"}]}
# a lost host is retried, an exit of the job's own is not: a second run would show in the ledger
EXIT_ON_CODE = {"onExitCode": "*", "action": "EXIT"}
RETRY_LOST_ONLY = {"attempts": 2, "evaluateOnExit": [*RETRY_LOST["evaluateOnExit"], EXIT_ON_CODE]}


def _task() -> list[dict[str, Any]]:
    """init waits for the test's go, then exits 0; main (essential) starts once init SUCCEEDed and exits 5; side
    sleeps until the task's end stops it."""
    init = _container("init", f"echo before; while [ ! -f {GO} ]; do sleep 0.1; done; echo after", essential=False)
    main = _container("main", "echo main-ran; exit 5", dependsOn=[{"containerName": "init", "condition": "SUCCESS"}])
    side = _container("side", "sleep 120", essential=False)
    return [init, main, side]


def _submit(batch: Any) -> str:
    jd = batch.register_job_definition(
        jobDefinitionName=unique("rmc"), type="container", ecsProperties={"taskProperties": [{"containers": _task()}]}
    )["jobDefinitionArn"]
    queue, _ = setup_queue(batch, 4, name=unique("ec2"), platform="EC2")
    return str(batch.submit_job(jobName="rmc", jobQueue=queue, jobDefinition=jd)["jobId"])  # one attempt


def _members(engine: Any, job_id: str) -> dict[str, dict[str, Any]]:
    found = engine.containers(all=True, filters={"label": f"batchplane.job-id={job_id}"})
    return {c["Labels"]["batchplane.container"]: c for c in found}


def _let_init_end(engine: Any, job_id: str) -> None:
    init = _members(engine, job_id)["init"]
    engine.exec_start(engine.exec_create(init["Id"], ["touch", GO]))
    wait_until(lambda: _members(engine, job_id)["init"]["State"] == "exited", "init to end while the server is down")


def _lines(logs: Any, stream: str) -> list[str]:
    events = logs.get_log_events(logGroupName="/aws/batch/job", logStreamName=stream, startFromHead=True)["events"]
    return [e["message"] for e in events]


def _assert_carried_on(batch: Any, logs: Any, job_id: str, engine: Any) -> None:
    job = wait_terminal(batch, [job_id], timeout=90)[job_id]
    # THEN the job ended once, on its first attempt, as its essential container decided after the restart
    assert job["status"] == "FAILED" and len(job["attempts"]) == 1, (job.get("statusReason"), job["attempts"])
    assert job["statusReason"] == "Essential container in task exited"
    found = {c["name"]: c for c in job["ecsProperties"]["taskProperties"][0]["containers"]}
    assert (found["init"]["exitCode"], found["main"]["exitCode"]) == (0, 5)
    assert found["side"]["exitCode"] in (137, 143)
    # AND the output written while the server was down reached the log stream, once
    assert _lines(logs, found["init"]["logStreamName"]) == ["before", "after"]
    assert _lines(logs, found["main"]["logStreamName"]) == ["main-ran"]
    # AND no container (holder included) is left
    wait_until(lambda: not _members(engine, job_id), "the task's containers removed")


def test_docker_a_clean_restart_re_attaches_and_carries_on(
    docker_runtimes: Runtimes, clients: Any, docker_engine: Any
) -> None:
    # GIVEN a task whose init container runs and whose main container waits for it, when the server stops
    rt = docker_runtimes.start()
    batch = clients("batch", rt.endpoint)
    job_id = _submit(batch)
    wait_status(batch, [job_id], "RUNNING", timeout=60)
    wait_until(lambda: _members(docker_engine, job_id).get("init", {}).get("State") == "running", "init running")
    docker_runtimes.stop(rt)
    # (the containers outlive it) AND init ends while it is down
    assert {n: c["State"] for n, c in _members(docker_engine, job_id).items()}["main"] == "created"
    _let_init_end(docker_engine, job_id)
    # WHEN it starts again
    again = docker_runtimes.start()
    _assert_carried_on(clients("batch", again.endpoint), clients("logs", again.endpoint), job_id, docker_engine)


@pytest.fixture
def docker_server(tmp_path: Path, docker_engine: Any) -> Iterator[Server]:
    yield from serve(tmp_path, "--executor", "docker", after=lambda srv: remove_containers(docker_engine, srv.state))


def _clients(server: Server) -> tuple[Any, Any]:
    session = boto3.session.Session(aws_access_key_id="k", aws_secret_access_key="s", region_name="us-east-1")
    return (
        session.client("batch", endpoint_url=server.endpoint, config=CLIENT),
        session.client("logs", endpoint_url=server.endpoint, config=CLIENT),
    )


def test_docker_a_sigkilled_server_re_attaches_and_carries_on(docker_server: Server, docker_engine: Any) -> None:
    docker_server.start()
    batch, logs = _clients(docker_server)
    job_id = _submit(batch)
    wait_until(lambda: _members(docker_engine, job_id).get("init", {}).get("State") == "running", "init running")
    docker_server.kill()
    _let_init_end(docker_engine, job_id)
    docker_server.start()
    _assert_carried_on(batch, logs, job_id, docker_engine)
    assert "Traceback" not in docker_server.output(), docker_server.output()


@pytest.fixture
def process_server(tmp_path: Path) -> Iterator[Server]:
    yield from serve(tmp_path)


def test_processes_a_sigkilled_server_ends_the_attempt_as_a_lost_host_once(
    process_server: Server, tmp_path: Path
) -> None:
    # GIVEN a two-process task whose essential container blocks on its first attempt, when the server is SIGKILLed
    process_server.start()
    batch, _ = _clients(process_server)
    marks = tmp_path / "attempts"
    side = process_container("side", "sleep 60", essential=False)
    main = process_container(
        "main", f'echo "$AWS_BATCH_JOB_ATTEMPT" >> {marks}; [ "$AWS_BATCH_JOB_ATTEMPT" = 2 ] || sleep 60'
    )
    jd = register_task(batch, side, main)
    queue, _ = setup_queue(batch, 4, name=unique("ce"))
    job_id = batch.submit_job(jobName="pmc", jobQueue=queue, jobDefinition=jd, retryStrategy=RETRY_LOST)["jobId"]
    wait_until(lambda: marks.exists() and marks.read_text().split() == ["1"], "the first attempt to run")
    process_server.kill()
    # WHEN it starts again
    process_server.start()
    job = wait_terminal(batch, [job_id], timeout=60)[job_id]
    # THEN the first attempt's processes were killed, it ended as a lost host, the second ran the task once
    assert job["status"] == "SUCCEEDED", job.get("statusReason")
    assert [a["statusReason"][:8] for a in job["attempts"][:1]] == ["Host EC2"]
    assert marks.read_text().split() == ["1", "2"]
    assert _processes_of(job_id, 1) == []
    assert "Traceback" not in process_server.output(), process_server.output()


def _finishing_while_down(process_server: Server, tmp_path: Path, main_exit: int) -> dict[str, Any]:
    """A two-process task (a non-essential sidecar started first, the essential main container) whose containers
    wait for a go file, then append `<jobId> <attempt> <container>` to a ledger and exit (main with `main_exit`):
    the server is SIGKILLed while they wait, the go file is created, both exits reach the journal, and the server
    starts again. The job once terminal."""
    process_server.start()
    batch, _ = _clients(process_server)
    go, ledger = tmp_path / "go", tmp_path / "ledger"
    # (no output once the go file exists: the output pipe died with the server, a write would be a SIGPIPE)
    run = f'until [ -e {go} ]; do sleep 0.05; done; echo "$AWS_BATCH_JOB_ID $AWS_BATCH_JOB_ATTEMPT {{}}" >> {ledger}'
    side = process_container("side", f"{run.format('side')}; exit 0", essential=False)
    main = process_container(
        "main",
        f"{run.format('main')}; exit {main_exit}",
        dependsOn=[{"containerName": "side", "condition": "START"}],
    )
    queue, _ = setup_queue(batch, 4, name=unique("ce"))
    jd = register_task(batch, side, main)
    job_id = batch.submit_job(jobName="pmc", jobQueue=queue, jobDefinition=jd, retryStrategy=RETRY_LOST_ONLY)["jobId"]
    journal = process_server.state / "work" / "journal"
    wait_until(lambda: f"pid {job_id}#1/main " in journal.read_text(), "both containers to run")
    process_server.kill()
    go.touch()
    exits = [f"exit {job_id}#1/{name} " for name in ("side", "main")]
    wait_until(lambda: all(e in journal.read_text() for e in exits), "both exits recorded while the server is down")
    process_server.start()
    job: dict[str, Any] = wait_terminal(batch, [job_id], timeout=60)[job_id]
    assert sorted(ledger.read_text().splitlines()) == [f"{job_id} 1 main", f"{job_id} 1 side"], "ran once"
    assert _processes_of(job_id, 1) == []
    assert "Traceback" not in process_server.output(), process_server.output()
    return job


def test_processes_a_task_that_succeeded_while_the_server_was_down_succeeds_once(
    process_server: Server, tmp_path: Path
) -> None:
    # GIVEN a running two-process task, WHEN the server is SIGKILLed and the task ends (exit 0) while it is down
    job = _finishing_while_down(process_server, tmp_path, 0)
    # THEN after the restart the job succeeded on its one attempt (not a lost host run again: the ledger, above)
    assert job["status"] == "SUCCEEDED", (job.get("statusReason"), job["attempts"])
    assert [a["statusReason"] for a in job["attempts"]] == ["Essential container in task exited"]
    assert {n: c["exitCode"] for n, c in containers_of(job).items()} == {"side": 0, "main": 0}
    attempt = job["attempts"][0]["taskProperties"][0]
    assert {c["name"]: c["exitCode"] for c in attempt["containers"]} == {"side": 0, "main": 0}


def test_processes_an_essential_container_failing_while_the_server_was_down_fails_the_job(
    process_server: Server, tmp_path: Path
) -> None:
    # GIVEN a running two-process task, WHEN the server is SIGKILLed and main exits 3 while it is down
    job = _finishing_while_down(process_server, tmp_path, 3)
    # THEN after the restart the job failed with main's exit code, on its one attempt (a lost host would be retried)
    assert job["status"] == "FAILED", (job.get("statusReason"), job["attempts"])
    assert [a["statusReason"] for a in job["attempts"]] == ["Essential container in task exited"]
    assert {n: c["exitCode"] for n, c in containers_of(job).items()} == {"side": 0, "main": 3}
