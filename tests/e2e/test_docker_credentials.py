"""Credentials through the Docker executor end to end: a LocalRuntime with `executor="docker"` driven through stock
boto3 clients; a job with a jobRoleArn reads the server's credentials at 169.254.170.2 from inside its container, as
on ECS, and one without finds no credentials URI (docs/adr/0017). With port 80 held, on another port of that address
through the full URI; with no port at all, the job fails to start and its retry strategy decides (docs/adr/0037).

Needs the Docker launcher (branch docker-launcher) and its `docker_engine` fixture: skipped until both are merged.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("chalicelib.compute.docker", reason="the Docker launcher is not merged yet")
docker_support = pytest.importorskip("tests.docker_support", reason="the docker_engine fixture is not merged yet")

from tests.e2e.conftest import (  # noqa: E402
    EXEC_ROLE,
    Client,
    ClientFactory,
    Runtimes,
    job_log,
    setup_queue,
    submit,
    unique,
    wait_terminal,
    wait_until,
)
from tests.e2e.test_job_credentials import (  # noqa: E402
    KEY_ID,
    NO_OTHER_SOURCE,
    PROBE,
    ROLE,
    SECRET,
    probe_output,
    register_with_role,
    server_credentials,
)
from tests.multi_container_support import fargate_task, member  # noqa: E402

pytestmark = pytest.mark.e2e
__all__ = ["server_credentials"]  # a fixture

SMALL = [{"type": "VCPU", "value": "0.25"}, {"type": "MEMORY", "value": "512"}]  # a Fargate task size
# The variable the container got (the full URI when the server serves containers on another port than 80: ADR 0037)
URI = "${AWS_CONTAINER_CREDENTIALS_FULL_URI:-$AWS_CONTAINER_CREDENTIALS_RELATIVE_URI}"
URL = "${AWS_CONTAINER_CREDENTIALS_FULL_URI:-http://169.254.170.2$AWS_CONTAINER_CREDENTIALS_RELATIVE_URI}"
FETCH = (
    f"echo uri=${{AWS_CONTAINER_CREDENTIALS_FULL_URI:-${{AWS_CONTAINER_CREDENTIALS_RELATIVE_URI:-none}}}}; "
    f"if env | grep -q {SECRET}; then echo secret-in-env; fi; "
    f'[ -z "{URI}" ] || printf "%s\\n" "$(wget -qO- {URL})"; echo done'
)


@pytest.fixture
def runtimes(state_dir: Path, docker_engine: Any) -> Iterator[Runtimes]:
    runtimes = Runtimes(state_dir, executor="docker")  # type: ignore[call-arg,unused-ignore]
    try:
        yield runtimes
    finally:
        runtimes.stop_all()
        docker_support.remove_containers(docker_engine, state_dir)


def started(
    runtimes: Runtimes, clients: ClientFactory, *, served: bool = True, **config: Any
) -> tuple[Client, Client, str]:
    """A started runtime's batch and logs clients, and a queue (setup_queue's); `served`: skipped (failed with CI
    set) when it serves no container credentials endpoint."""
    runtime = runtimes.start(**config)
    if served:
        docker_support.holds_the_credentials_endpoint(runtime)
    batch, logs = clients("batch", runtime.endpoint), clients("logs", runtime.endpoint)
    queue, _ = setup_queue(batch)
    return batch, logs, queue


def register_fetch(batch: Any, role: str | None) -> str:
    container = {"image": docker_support.TEST_IMAGE, "command": ["sh", "-c", FETCH], "resourceRequirements": SMALL}
    return register_with_role(batch, "fetch", container, role)


def test_a_container_with_a_role_reads_the_servers_credentials_at_the_ecs_address(
    server_credentials: None, runtimes: Runtimes, clients: ClientFactory
) -> None:
    # GIVEN a server with AWS credentials running jobs in containers
    batch, logs, queue = started(runtimes, clients)

    # WHEN a job with a jobRoleArn and one without run
    with_role = submit(batch, queue, register_fetch(batch, ROLE), "with-role")
    without_role = submit(batch, queue, register_fetch(batch, None), "without-role")
    jobs = wait_terminal(batch, [with_role, without_role], timeout=60)

    # THEN the first read the server's credentials from http://169.254.170.2$AWS_CONTAINER_CREDENTIALS_RELATIVE_URI,
    # with only the relative URI in its environment
    assert jobs[with_role]["status"] == "SUCCEEDED", jobs[with_role].get("statusReason")
    # (the log's last lines may be stored just after the job's end is: wait for the job's own last line)
    wait_until(lambda: job_log(logs, jobs[with_role])[-1:] == ["done"], "the with-role job's whole log")
    lines = job_log(logs, jobs[with_role])[:-1]
    assert lines[0].startswith(("uri=/v2/credentials/", "uri=http://169.254.170.2:"))  # (80 held elsewhere: ADR 0037)
    assert "secret-in-env" not in lines
    body = json.loads(lines[-1])
    assert (body["AccessKeyId"], body["SecretAccessKey"], body["RoleArn"]) == (KEY_ID, SECRET, ROLE)

    # AND the second had no credentials URI
    assert jobs[without_role]["status"] == "SUCCEEDED"
    wait_until(lambda: job_log(logs, jobs[without_role])[-1:] == ["done"], "the without-role job's whole log")
    assert job_log(logs, jobs[without_role]) == ["uri=none", "done"]


def test_a_container_with_a_role_cannot_forge_frames_on_the_credentials_network(
    server_credentials: None, runtimes: Runtimes, clients: ClientFactory
) -> None:
    # GIVEN a server with AWS credentials running jobs in containers
    batch, logs, queue = started(runtimes, clients)
    # WHEN a job with a jobRoleArn (on the credentials network) opens a raw socket, as ARP spoofing needs
    arping = ["sh", "-c", "arping -c1 -w1 -I eth0 169.254.170.2 2>&1; echo rc=$?"]
    container = {"image": docker_support.TEST_IMAGE, "command": arping, "resourceRequirements": SMALL}
    jd = register_with_role(batch, "arp", container, ROLE)
    job = wait_terminal(batch, [submit(batch, queue, jd, "arp")], timeout=60)
    [done] = job.values()
    # THEN it may not (NET_RAW is dropped)
    assert done["status"] == "SUCCEEDED", done.get("statusReason")
    wait_until(lambda: any(line.startswith("rc=") for line in job_log(logs, done)), "the job's whole log")
    lines = job_log(logs, done)
    assert "arping: socket: Operation not permitted" in lines and "rc=1" in lines, lines


# -- when port 80 cannot be bound (docs/adr/0037) ----------------------------------------------------------------


def test_with_port_80_held_a_job_with_a_role_resolves_its_credentials_with_botocores_chain_on_another_port(
    server_credentials: None, runtimes: Runtimes, clients: ClientFactory, docker_engine: Any
) -> None:
    # GIVEN a server started while 169.254.170.2:80 is held, whose jobs may mount the host's root (busybox has no
    # Python: the job runs botocore with the host's own interpreter, chrooted into its root mounted read-only)
    with docker_support.port_80_held(docker_engine):
        batch, logs, _ = started(runtimes, clients, allow_host_paths=("/",))
    ec2_queue, _ = setup_queue(batch, platform="EC2")
    container = {
        "image": docker_support.TEST_IMAGE,
        "command": ["chroot", "/host", sys.executable, "-c", PROBE],
        "environment": NO_OTHER_SOURCE,
        "volumes": [{"name": "root", "host": {"sourcePath": "/"}}],
        "mountPoints": [{"sourceVolume": "root", "containerPath": "/host", "readOnly": True}],
        "resourceRequirements": [{"type": "VCPU", "value": "1"}, {"type": "MEMORY", "value": "512"}],
        "jobRoleArn": ROLE,
    }
    jd = batch.register_job_definition(
        jobDefinitionName=unique("boto3"), type="container", containerProperties=container
    )

    # WHEN a job with a role runs botocore's default credential chain (boto3's)
    job_id = submit(batch, ec2_queue, str(jd["jobDefinitionArn"]), "boto3")
    job = wait_terminal(batch, [job_id], timeout=60)[job_id]

    # THEN its container credentials provider found the server's credentials at the full URI, on another port
    assert job["status"] == "SUCCEEDED", job.get("statusReason")
    wait_until(lambda: len(probe_output(logs, job)) == 4, "the job's whole log")
    seen = probe_output(logs, job)
    assert (seen["method"], seen["key"], seen["secret-in-env"]) == ("container-role", KEY_ID, "False")
    assert seen["uri"].startswith("http://169.254.170.2:") and not seen["uri"].startswith("http://169.254.170.2:80/")


def test_when_no_port_can_be_bound_a_job_with_a_role_fails_to_start_and_its_retry_strategy_decides(
    server_credentials: None,
    runtimes: Runtimes,
    clients: ClientFactory,
    docker_engine: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # GIVEN a server started while 169.254.170.2:80 and its configured fallback port are both held
    with docker_support.port_80_held(docker_engine), socket.socket() as other:
        other.bind(("169.254.170.2", 0))
        other.listen(1)
        port = other.getsockname()[1]
        monkeypatch.setenv("BATCHPLANE_CREDENTIALS_PORT", str(port))
        batch, _, queue = started(runtimes, clients, served=False)

        # WHEN a job with a role (two attempts), a multi-container one with a task role, and one without run
        with_role = submit(batch, queue, register_fetch(batch, ROLE), "with-role", retryStrategy={"attempts": 2})
        members = [member(n, ["true"], image=docker_support.TEST_IMAGE, memory="512") for n in ("a", "b")]
        task = fargate_task(unique("mc"), *members, execution_role=EXEC_ROLE, task={"taskRoleArn": ROLE})
        multi = submit(batch, queue, str(batch.register_job_definition(**task)["jobDefinitionArn"]), "multi")
        without_role = submit(batch, queue, register_fetch(batch, None), "without-role")
        jobs = wait_terminal(batch, [with_role, multi, without_role], timeout=60)

    # THEN each attempt of the first failed to start, saying why, rather than run without credentials
    job = jobs[with_role]
    assert job["status"] == "FAILED"
    assert job["statusReason"] == "Task failed to start"
    reasons = [a["container"].get("reason", "") for a in job["attempts"]]
    assert len(reasons) == 2, job["attempts"]
    for reason in reasons:
        assert reason.startswith(
            f"ResourceInitializationError: no AWS credentials can be served for jobRoleArn {ROLE}: "
            "169.254.170.2:80 cannot be bound ("
        ), reason
        assert f"169.254.170.2:{port} cannot be bound either" in reason
    assert [a["statusReason"] for a in job["attempts"]] == ["Task failed to start"] * 2
    # AND the multi-container job's task failed to start too, saying why, none of its containers made
    assert (jobs[multi]["status"], jobs[multi]["statusReason"]) == ("FAILED", "Task failed to start")
    reasons = [c.get("reason", "") for c in jobs[multi]["ecsProperties"]["taskProperties"][0]["containers"]]
    assert len(reasons) == 2 and all(
        r.startswith(f"ResourceInitializationError: no AWS credentials can be served for jobRoleArn {ROLE}: ")
        for r in reasons
    ), reasons
    # AND the job without a role ran as usual
    assert jobs[without_role]["status"] == "SUCCEEDED"


def up_lines(state: Path) -> list[str]:
    """What `batchplane up --executor docker` prints until it says how to stop it (then it is stopped)."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "app", "up", "--port", "0", "--state-dir", str(state), "--executor", "docker"],
        cwd=Path(__file__).resolve().parents[2],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert proc.stdout is not None
    lines: list[str] = []
    try:
        for line in proc.stdout:  # (ends when it exits early)
            lines.append(line.rstrip("\n"))
            if "stop with Ctrl-C" in line:
                break
        return lines
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        proc.stdout.close()


def test_up_says_once_where_containers_get_credentials_and_why(tmp_path: Path, docker_engine: Any) -> None:
    # GIVEN port 80 of 169.254.170.2 held; WHEN `batchplane up` starts with the Docker executor
    with docker_support.port_80_held(docker_engine):
        lines = up_lines(tmp_path / "s")

    # THEN it said, once, that containers get a full URI on another port, and why
    assert any(line.startswith("batchplane is up") for line in lines), lines
    said = [line for line in lines if line.startswith("  credentials for jobs with a jobRoleArn: ")]
    assert len(said) == 1, lines
    assert said[0].startswith(
        "  credentials for jobs with a jobRoleArn: containers get "
        "AWS_CONTAINER_CREDENTIALS_FULL_URI=http://169.254.170.2:"
    ), said
    assert "because 169.254.170.2:80 cannot be bound (" in said[0]
