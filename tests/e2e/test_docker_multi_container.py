"""Multi-container jobs (ecsProperties) on the Docker executor, through the stock boto3 batch client: the containers
of a task share localhost and the task's volumes, dependsOn and essential decide, each container logs to its own
stream (docs/adr/0028). Needs the `docker_engine` fixture (skipped without an engine)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.docker_support import TEST_IMAGE
from tests.e2e.conftest import (
    Client,
    log_lines,
    setup_queue,
    submit,
    unique,
    wait_status,
    wait_terminal,
    wait_until,
)
from tests.multi_container_support import containers_of, member

pytestmark = pytest.mark.e2e


def container(name: str, script: str, *, essential: bool = True, **props: Any) -> dict[str, Any]:
    return member(name, ["sh", "-c", script], image=TEST_IMAGE, memory="256", essential=essential, **props)


def run_task(batch: Client, *containers: dict[str, Any], volumes: list[dict[str, Any]] | None = None) -> str:
    task: dict[str, Any] = {"containers": list(containers)}
    if volumes:
        task["volumes"] = volumes
    jd = batch.register_job_definition(
        jobDefinitionName=unique("dmc"),
        type="container",
        ecsProperties={"taskProperties": [task]},
    )["jobDefinitionArn"]
    queue, _ = setup_queue(batch, 4, name=unique("ec2"), platform="EC2")  # EC2: any container sizes add up
    return submit(batch, queue, jd)


def test_containers_reach_each_other_on_localhost_and_share_volumes(dbatch: Client, dlogs: Client) -> None:
    # GIVEN a server listening on localhost:7000 (busybox nc), a writer filling a shared volume first, and a client
    # (the greeting from a file, not `echo ... | nc`: busybox nc exits at the socket's EOF, and the client, whose stdin
    # is /dev/null, half-closes at once: a greeting not yet piped in when that EOF came was never sent)
    server = container(
        "server", "echo hello-from-server > /tmp/greeting; nc -l -p 7000 < /tmp/greeting", essential=False
    )
    writer = container(
        "writer",
        "echo shared-data > /data/file",
        essential=False,
        mountPoints=[{"sourceVolume": "scratch", "containerPath": "/data"}],
    )
    client = container(
        "client",
        "for i in $(seq 1 100); do nc 127.0.0.1 7000 && break; sleep 0.1; done; cat /data/file",
        dependsOn=[
            {"containerName": "server", "condition": "START"},
            {"containerName": "writer", "condition": "SUCCESS"},
        ],
        mountPoints=[{"sourceVolume": "scratch", "containerPath": "/data"}],
    )
    job_id = run_task(dbatch, server, writer, client, volumes=[{"name": "scratch"}])
    # WHEN it runs
    job = wait_terminal(dbatch, [job_id], timeout=90)[job_id]
    # THEN the client read the server's greeting over localhost and the writer's file from the shared volume
    assert job["status"] == "SUCCEEDED", job.get("statusReason")
    found = containers_of(job)
    assert found["client"]["exitCode"] == 0 and found["writer"]["exitCode"] == 0
    assert log_lines(dlogs, found["client"]["logStreamName"]) == ["hello-from-server", "shared-data"]


def test_essential_failure_stops_the_sidecar_and_fails_the_job(dbatch: Client) -> None:
    job_id = run_task(
        dbatch,
        container("sidecar", "sleep 120", essential=False),
        container("main", "exit 4", dependsOn=[{"containerName": "sidecar", "condition": "START"}]),
    )
    job = wait_terminal(dbatch, [job_id], timeout=90)[job_id]
    assert job["status"] == "FAILED" and job["statusReason"] == "Essential container in task exited"
    found = containers_of(job)
    assert found["main"]["exitCode"] == 4
    assert found["sidecar"]["exitCode"] in (137, 143)


def test_a_bad_image_fails_the_task_before_anything_runs(dbatch: Client) -> None:
    job_id = run_task(
        dbatch,
        container("main", "echo ran"),
        {**container("extra", "true", essential=False), "image": "batchplane-no-such-image:never"},
    )
    job = wait_terminal(dbatch, [job_id], timeout=90)[job_id]
    assert job["status"] == "FAILED" and job["statusReason"] == "Task failed to start"
    assert containers_of(job)["extra"]["reason"].startswith("CannotPullContainerError")
    assert "exitCode" not in containers_of(job)["main"]


def test_terminate_stops_every_container(dbatch: Client, docker_engine: Any) -> None:
    job_id = run_task(dbatch, container("a", "sleep 120"), container("b", "sleep 120", essential=False))
    wait_status(dbatch, [job_id], "RUNNING", timeout=60)
    dbatch.terminate_job(jobId=job_id, reason="enough")
    job = wait_terminal(dbatch, [job_id], timeout=90)[job_id]
    assert job["status"] == "FAILED" and job["statusReason"] == "enough"
    assert {c.get("exitCode") for c in containers_of(job).values()} <= {137, 143}
    label = {"label": f"batchplane.job-id={job_id}"}
    wait_until(lambda: not docker_engine.containers(all=True, filters=label), "the task's containers removed")


def test_pid_mode_task_shares_the_process_namespace(dbatch: Client, dlogs: Client) -> None:
    # GIVEN a task with pidMode task: a container sleeping, another listing the processes it can see
    sleeper = container("sleeper", "exec sleep 120", essential=False)
    looker = container(
        "looker",
        "ps -o args | grep -q '[s]leep 120' && echo seen",
        dependsOn=[{"containerName": "sleeper", "condition": "START"}],
    )
    jd = dbatch.register_job_definition(
        jobDefinitionName=unique("pid"),
        type="container",
        ecsProperties={"taskProperties": [{"containers": [sleeper, looker], "pidMode": "task", "ipcMode": "task"}]},
    )["jobDefinitionArn"]
    queue, _ = setup_queue(dbatch, 4, name=unique("ec2"), platform="EC2")
    job_id = submit(dbatch, queue, jd)
    job = wait_terminal(dbatch, [job_id], timeout=90)[job_id]
    # THEN the looker saw the sleeper's process
    assert job["status"] == "SUCCEEDED", (job.get("statusReason"), containers_of(job))
    assert log_lines(dlogs, containers_of(job)["looker"]["logStreamName"]) == ["seen"]
