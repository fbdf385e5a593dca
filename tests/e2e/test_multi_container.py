"""Multi-container jobs (ecsProperties) end to end on the process executor, through the stock boto3 batch client:
dependsOn conditions, essential containers, per-container logs and environment, the job's exit (docs/adr/0028).

Ordering is asserted on files the containers write (never on wall-clock speed); every wait is bounded."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from chalicelib.runtime.local import LocalRuntime
from tests.e2e.conftest import (
    EXEC_ROLE,
    IMAGE,
    Client,
    ClientFactory,
    Runtimes,
    log_lines,
    setup_queue,
    sh,
    submit,
    unique,
    wait_status,
    wait_terminal,
    wait_until,
)
from tests.multi_container_support import containers_of, fargate_task, member

pytestmark = pytest.mark.e2e


def container(name: str, script: str, *, essential: bool = True, **props: Any) -> dict[str, Any]:
    return member(name, sh(script), image=IMAGE, memory="512", essential=essential, **props)


def register_task(batch: Client, *containers: dict[str, Any], prefix: str = "mc") -> str:
    resp = batch.register_job_definition(**fargate_task(unique(prefix), *containers, execution_role=EXEC_ROLE))
    return str(resp["jobDefinitionArn"])


def sidecar_demo() -> tuple[dict[str, Any], dict[str, Any]]:
    """The two containers the CLI's and the console's tests show: a sidecar that prints `side-out` and fails (exit 5,
    non-essential), and the essential main container, started once the sidecar is done, printing `main-out`."""
    return (
        container("side", "echo side-out; exit 5", essential=False),
        container("main", "echo main-out", dependsOn=[{"containerName": "side", "condition": "COMPLETE"}]),
    )


def test_dependson_orders_containers_and_logs_are_per_container(batch: Client, logs: Client, tmp_path: Path) -> None:
    # GIVEN an init container that must succeed, a sidecar that must have started, and the main container
    out = tmp_path / "order"
    jd = register_task(
        batch,
        container("init", f"echo init >> {out}; echo from-init", essential=False),
        container(
            "main",
            f"echo main-$WHO >> {out}; echo from-main",
            dependsOn=[{"containerName": "init", "condition": "SUCCESS"}],
            environment=[{"name": "WHO", "value": "m"}],
        ),
    )
    queue, _ = setup_queue(batch)
    # WHEN it runs, with an override of main's environment
    job_id = submit(
        batch,
        queue,
        jd,
        ecsPropertiesOverride={
            "taskProperties": [{"containers": [{"name": "main", "environment": [{"name": "WHO", "value": "o"}]}]}]
        },
    )
    job = wait_terminal(batch, [job_id])[job_id]
    # THEN init ran before main, the job succeeded, each container has its exit code and its own log stream
    assert job["status"] == "SUCCEEDED", job.get("statusReason")
    assert out.read_text().splitlines() == ["init", "main-o"]
    found = containers_of(job)
    assert found["init"]["exitCode"] == 0 and found["main"]["exitCode"] == 0
    assert found["init"]["essential"] is False and found["main"]["essential"] is True
    assert "container" not in job
    task = job["ecsProperties"]["taskProperties"][0]
    assert task["taskArn"].startswith("arn:aws:ecs:")
    stream = found["main"]["logStreamName"]
    assert stream.split("/")[1] == "main" and stream.split("/")[2] == task["taskArn"].rsplit("/", 1)[1]
    assert log_lines(logs, stream) == ["from-main"]
    assert log_lines(logs, found["init"]["logStreamName"]) == ["from-init"]
    attempt = job["attempts"][0]["taskProperties"][0]
    assert {c["name"]: c["exitCode"] for c in attempt["containers"]} == {"init": 0, "main": 0}


def test_essential_exit_stops_the_others_and_decides_the_job(batch: Client, tmp_path: Path) -> None:
    # GIVEN a long-running non-essential sidecar and an essential container that fails
    jd = register_task(
        batch,
        container("sidecar", "sleep 60", essential=False),
        container("main", "exit 3", dependsOn=[{"containerName": "sidecar", "condition": "START"}]),
    )
    queue, _ = setup_queue(batch)
    # WHEN it runs
    job = wait_terminal(batch, [submit(batch, queue, jd)])
    (detail,) = job.values()
    # THEN the job fails with main's exit code, and the sidecar was stopped (not left to run 60 s)
    assert detail["status"] == "FAILED"
    assert detail["statusReason"] == "Essential container in task exited"
    found = containers_of(detail)
    assert found["main"]["exitCode"] == 3
    assert found["sidecar"]["exitCode"] in (143, 137)


def test_a_failing_non_essential_container_does_not_fail_the_job(batch: Client) -> None:
    jd = register_task(
        batch,
        container("helper", "exit 7", essential=False),
        container("main", "sleep 0.2; exit 0"),
    )
    queue, _ = setup_queue(batch)
    (detail,) = wait_terminal(batch, [submit(batch, queue, jd)]).values()
    assert detail["status"] == "SUCCEEDED"
    assert containers_of(detail)["helper"]["exitCode"] == 7


def test_dependson_success_on_a_failing_container_never_starts_the_dependent(batch: Client, tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    jd = register_task(
        batch,
        container("init", "exit 1", essential=False),
        container("main", f"touch {marker}", dependsOn=[{"containerName": "init", "condition": "SUCCESS"}]),
    )
    queue, _ = setup_queue(batch)
    (detail,) = wait_terminal(batch, [submit(batch, queue, jd)]).values()
    assert detail["status"] == "FAILED"
    assert not marker.exists()
    main = containers_of(detail)["main"]
    assert "exitCode" not in main and main["reason"].startswith("DependencyViolation")


def test_a_missing_program_fails_the_task_before_anything_runs(batch: Client, tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    jd = register_task(
        batch,
        container("main", f"touch {marker}"),
        {**container("bad", "x", essential=False), "command": ["/no/such/program"]},
    )
    queue, _ = setup_queue(batch)
    (detail,) = wait_terminal(batch, [submit(batch, queue, jd)]).values()
    assert detail["status"] == "FAILED"
    assert detail["statusReason"] == "Task failed to start"
    assert not marker.exists()
    assert "No such file" in containers_of(detail)["bad"]["reason"]


def test_terminate_stops_every_container(batch: Client, tmp_path: Path) -> None:
    jd = register_task(batch, container("a", "sleep 60"), container("b", "sleep 60", essential=False))
    queue, _ = setup_queue(batch)
    job_id = submit(batch, queue, jd)
    wait_status(batch, [job_id], "RUNNING")
    batch.terminate_job(jobId=job_id, reason="enough")
    detail = wait_terminal(batch, [job_id])[job_id]
    assert detail["status"] == "FAILED" and detail["statusReason"] == "enough"
    assert {c.get("exitCode") for c in containers_of(detail).values()} <= {143, 137}


def test_containers_share_localhost(batch: Client, tmp_path: Path) -> None:
    # GIVEN a server container and a client that starts once the server has started
    port_file = tmp_path / "port"
    server = (
        "import socket,sys;s=socket.socket();s.bind(('127.0.0.1',0));s.listen(1);"
        f"open('{port_file}','w').write(str(s.getsockname()[1]));c,_=s.accept();c.sendall(b'hello');c.close()"
    )
    client = (
        "import socket,time,os;p=None\n"
        f"while not p:\n p=os.path.exists('{port_file}') and open('{port_file}').read();time.sleep(0.05)\n"
        "s=socket.create_connection(('127.0.0.1',int(p)));print(s.recv(5).decode())"
    )
    import sys

    jd = register_task(
        batch,
        {**container("server", ""), "command": [sys.executable, "-c", server], "essential": False},
        {
            **container("client", ""),
            "command": [sys.executable, "-c", client],
            "dependsOn": [{"containerName": "server", "condition": "START"}],
        },
    )
    queue, _ = setup_queue(batch)
    (detail,) = wait_terminal(batch, [submit(batch, queue, jd)]).values()
    assert detail["status"] == "SUCCEEDED", detail


def test_a_timeout_stops_every_container(batch: Client) -> None:
    jd = register_task(batch, container("a", "sleep 60"), container("b", "sleep 60", essential=False))
    queue, _ = setup_queue(batch)
    job_id = submit(batch, queue, jd, timeout={"attemptDurationSeconds": 1})
    detail = wait_terminal(batch, [job_id])[job_id]
    assert detail["status"] == "FAILED" and detail["statusReason"] == "Job attempt duration exceeded timeout"
    assert {c.get("exitCode") for c in containers_of(detail).values()} <= {143, 137}


def test_parameters_and_reserved_variables_reach_every_container(batch: Client, logs: Client) -> None:
    echo = {"command": ["sh", "-c", 'echo "$AWS_BATCH_JOB_ID $AWS_BATCH_JQ_NAME $0"', "Ref::w"]}
    jd = register_task(
        batch,
        {**container("a", "", essential=False), **echo},
        container("b", "true", dependsOn=[{"containerName": "a", "condition": "SUCCESS"}]),
    )
    queue, _ = setup_queue(batch)
    job_id = submit(batch, queue, jd, parameters={"w": "word"})
    detail = wait_terminal(batch, [job_id])[job_id]
    assert detail["status"] == "SUCCEEDED"
    assert log_lines(logs, containers_of(detail)["a"]["logStreamName"]) == [f"{job_id} {queue} word"]


def test_a_task_running_at_a_clean_stop_is_a_lost_host_at_the_next_start_and_is_retried(
    make_runtime: Runtimes, runtime: LocalRuntime, clients: ClientFactory, tmp_path: Path
) -> None:
    # GIVEN a task whose essential container blocks on its first attempt only (and a sidecar that sleeps)
    batch = clients("batch", runtime.endpoint)
    marks = tmp_path / "attempts"
    jd = register_task(
        batch,
        container("side", "sleep 60", essential=False),
        container("main", f'echo "$AWS_BATCH_JOB_ATTEMPT" >> {marks}; [ "$AWS_BATCH_JOB_ATTEMPT" = 2 ] || sleep 60'),
    )
    queue, _ = setup_queue(batch)
    retry = {"attempts": 2, "evaluateOnExit": [{"onStatusReason": "Host EC2*", "action": "RETRY"}]}
    job_id = submit(batch, queue, jd, retryStrategy=retry)
    wait_status(batch, [job_id], "RUNNING")
    wait_until(lambda: marks.exists() and marks.read_text().split() == ["1"], "the first attempt to run")
    # WHEN the server stops (its processes are killed) and starts again
    make_runtime.stop(runtime)
    again = make_runtime.start()
    batch = clients("batch", again.endpoint)
    job = wait_terminal(batch, [job_id])[job_id]
    # THEN the first attempt ended as a lost host and the second ran the whole task again, once
    assert job["status"] == "SUCCEEDED", job.get("statusReason")
    assert job["attempts"][0]["statusReason"].startswith("Host EC2")
    assert marks.read_text().split() == ["1", "2"]


def test_a_container_stop_timeout_is_its_grace_period(batch: Client, logs: Client, tmp_path: Path) -> None:
    # GIVEN a sidecar that needs a moment after SIGTERM (more than the server's grace period, 1 s in these tests) and
    # gives itself 10 s with stopTimeout, and an essential container that ends once the sidecar is ready
    ready = tmp_path / "ready"
    slow = container(
        "slow",
        f"trap 'echo term; sleep 2; echo graceful; exit 0' TERM; touch {ready}; sleep 120 & wait",
        essential=False,
        stopTimeout=10,
    )
    main = container("main", f"while [ ! -f {ready} ]; do sleep 0.1; done")
    job_id = submit(batch, setup_queue(batch)[0], register_task(batch, slow, main))
    # WHEN the essential container's exit stops the sidecar
    job = wait_terminal(batch, [job_id])[job_id]
    # THEN the sidecar had its stopTimeout to finish: it ended by itself
    assert job["status"] == "SUCCEEDED", job.get("statusReason")
    assert containers_of(job)["slow"]["exitCode"] == 0
    assert log_lines(logs, containers_of(job)["slow"]["logStreamName"]) == ["term", "graceful"]


def test_a_start_timeout_gives_up_on_a_dependency(batch: Client) -> None:
    # GIVEN an essential container waiting for a dependency to COMPLETE, which it does not within its startTimeout
    dep = container("dep", "sleep 60", essential=False, startTimeout=2)
    main = container("main", "echo never", dependsOn=[{"containerName": "dep", "condition": "COMPLETE"}])
    job_id = submit(batch, setup_queue(batch)[0], register_task(batch, dep, main))
    job = wait_terminal(batch, [job_id])[job_id]
    # THEN the essential container gave up and never started, which ended the task
    assert job["status"] == "FAILED"
    found = containers_of(job)
    assert "exitCode" not in found["main"] and "startTimeout" in found["main"]["reason"]
    assert found["dep"]["exitCode"] in (137, 143)
