"""`batchplane up` as a user runs it: a real process on a real port, state surviving SIGTERM and SIGKILL.

The server is `python -m app up` (the `batchplane` console script's module), started from a scratch
directory so nothing depends on the repository being the working directory.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import socket
import stat
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config

from tests.functional.builders import (
    arn,
    container,
    fairshare,
    make_ec2_ce,
    make_fargate_ce,
    make_jd,
    make_policy,
    make_queue,
    snapshot,
)

pytestmark = pytest.mark.e2e

UP_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 15.0
UP_LINE = re.compile(r"batchplane is up: the AWS Batch API at (http://\S+) \(state in (.+)\)")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def port_answers(port: int) -> bool:
    """A full request/response on the port (not just a connect), so no server thread is still starting when the
    caller goes on to signal the process."""
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/v1/describejobqueues",
        data=b"{}",
        method="POST",
        headers={"Content-Type": "application/json", "Connection": "close", "X-Amz-Date": "20260101T000000Z"},
    )
    with contextlib.suppress(OSError), urllib.request.urlopen(request, timeout=2) as resp:
        return bool(resp.status == 200)
    return False


@dataclass
class Up:
    """One `batchplane up` process; a thread drains its output so the pipe never fills."""

    proc: subprocess.Popen[str]
    port: int
    lines: list[str] = field(default_factory=list)
    endpoint: str = ""
    _reader: threading.Thread | None = None

    def drain(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))

    def output(self) -> str:
        return "\n".join(self.lines)

    def wait_up(self) -> None:
        deadline = time.monotonic() + UP_TIMEOUT_S
        while time.monotonic() < deadline:
            match = next((m for m in map(UP_LINE.search, list(self.lines)) if m), None)
            if match and port_answers(self.port):
                self.endpoint = match.group(1)
                return
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        raise AssertionError(f"`batchplane up` did not come up (exit {self.proc.poll()}):\n{self.output()}")

    def stop(self, sig: signal.Signals) -> int:
        """Send `sig`; return the exit code, failing if the process takes longer than STOP_TIMEOUT_S."""
        self.proc.send_signal(sig)
        try:
            code = self.proc.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"`batchplane up` ignored {sig.name}:\n{self.output()}") from None
        if self._reader is not None:
            self._reader.join(timeout=5)
        return code


def default_executor(extra: tuple[str, ...]) -> tuple[str, ...]:
    """These tests run host commands: the process executor unless a test chooses."""
    return () if "--executor" in extra else ("--executor", "process")


@pytest.fixture
def up(tmp_path: Path) -> Iterator[Any]:
    """start(state_dir, port) -> a running Up; anything still running at teardown is killed."""
    started: list[Up] = []
    cwd = tmp_path / "cwd"
    cwd.mkdir()

    def start(state_dir: Path, port: int, *extra: str) -> Up:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "app",
                "up",
                "--port",
                str(port),
                "--state-dir",
                str(state_dir),
                *extra,
                *default_executor(extra),
            ],
            cwd=cwd,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        server = Up(proc, port)
        started.append(server)
        server._reader = threading.Thread(target=server.drain, name=f"up-{port}", daemon=True)
        server._reader.start()
        server.wait_up()
        return server

    yield start
    for server in started:
        if server.proc.poll() is None:
            server.proc.kill()
        with contextlib.suppress(subprocess.TimeoutExpired):
            server.proc.wait(timeout=10)
        if server.proc.stdout is not None:
            server.proc.stdout.close()


@pytest.fixture(scope="module")
def boto_session() -> boto3.session.Session:
    return boto3.session.Session(aws_access_key_id="testing", aws_secret_access_key="testing", region_name="us-east-1")


def client(session: boto3.session.Session, endpoint: str) -> Any:
    return session.client(
        "batch", endpoint_url=endpoint, config=Config(retries={"total_max_attempts": 1}, read_timeout=30)
    )


def populate(batch: Any) -> None:
    """One of everything, tagged, plus the state changes a restart must keep (a revision, a disabled CE)."""
    make_fargate_ce(batch, "ce", 8, tags={"team": "a"})
    make_fargate_ce(batch, "spare", spot=True)
    batch.update_compute_environment(computeEnvironment="spare", state="DISABLED")
    policy = make_policy(batch, "fair", ("teamA", 2.0), ("teamB*", 1.0), tags={"kind": "policy"})
    make_queue(batch, "q", ["ce"], priority=5, schedulingPolicyArn=policy, tags={"kind": "queue"})
    make_jd(batch, "jd", tags={"kind": "jd"})
    make_jd(batch, "jd", parameters={"p": "2"})
    batch.deregister_job_definition(jobDefinition="jd:1")
    batch.tag_resource(resourceArn=arn("job-definition", "jd:2"), tags={"added": "later"})
    batch.update_scheduling_policy(arn=policy, fairsharePolicy=fairshare(("teamA", 3.0), decay=60))


def assert_populated(state: dict[str, Any]) -> None:
    """The snapshot is the populated one (so 'identical after restart' cannot pass on two empty stores)."""
    assert [c["computeEnvironmentName"] for c in state["ces"]] == ["ce", "spare"]
    assert [c["state"] for c in state["ces"]] == ["ENABLED", "DISABLED"]
    assert [(d["revision"], d["status"]) for d in state["jds"]] == [(1, "INACTIVE"), (2, "ACTIVE")]
    assert state["tags"][arn("job-queue", "q")] == {"kind": "queue"}
    assert state["tags"][arn("job-definition", "jd:2")] == {"added": "later"}
    assert state["sps"][0]["fairsharePolicy"]["shareDistribution"] == [
        {"shareIdentifier": "teamA", "weightFactor": 3.0}
    ]


def test_up_binds_loopback_by_default_and_keeps_state_across_sigterm(
    up: Any, tmp_path: Path, boto_session: boto3.session.Session
) -> None:
    # GIVEN `batchplane up` on a free port with no --host
    state_dir = tmp_path / "state"
    port = free_port()
    first = up(state_dir, port)
    # THEN it serves on 127.0.0.1 (this machine only) and keeps its state directory private
    assert first.endpoint == f"http://127.0.0.1:{port}"
    assert stat.S_IMODE(state_dir.stat().st_mode) == 0o700
    # WHEN resources are created through boto3
    batch = client(boto_session, first.endpoint)
    populate(batch)
    before = snapshot(batch)
    assert_populated(before)
    batch.close()
    # AND the server gets SIGTERM
    # THEN it shuts down cleanly (exit 0, within the bound) and says so
    assert first.stop(signal.SIGTERM) == 0
    assert "batchplane: shutting down" in first.lines
    # WHEN it is started again on the same state dir (and the same port)
    second = up(state_dir, port)
    # THEN everything is still there, identical
    batch = client(boto_session, second.endpoint)
    assert snapshot(batch) == before
    # AND new writes continue from the stored state
    assert make_jd(batch, "jd")["revision"] == 3
    batch.close()
    assert second.stop(signal.SIGINT) == 0


def test_acknowledged_writes_survive_sigkill(up: Any, tmp_path: Path, boto_session: boto3.session.Session) -> None:
    # GIVEN a server that acknowledged a set of writes
    state_dir = tmp_path / "state"
    first = up(state_dir, free_port())
    batch = client(boto_session, first.endpoint)
    populate(batch)
    before = snapshot(batch)
    assert_populated(before)
    batch.close()
    # WHEN it is killed without a chance to clean up
    assert first.stop(signal.SIGKILL) == -signal.SIGKILL
    assert "shutting down" not in first.output()
    # THEN a new server on the same state dir has every acknowledged write
    second = up(state_dir, free_port())
    batch = client(boto_session, second.endpoint)
    assert snapshot(batch) == before
    assert make_jd(batch, "jd")["revision"] == 3
    batch.close()
    assert second.stop(signal.SIGTERM) == 0


def test_host_can_be_chosen_explicitly(up: Any, tmp_path: Path) -> None:
    port = free_port()
    server = up(tmp_path / "state", port, "--host", "127.0.0.1", "--region", "eu-west-1", "--account", "210987654321")
    assert server.endpoint == f"http://127.0.0.1:{port}"
    assert "--region eu-west-1" in server.output()
    # AND ARNs carry the account given (an unsigned request: the region given too)
    request = urllib.request.Request(
        f"{server.endpoint}/v1/registerjobdefinition",
        data=json.dumps(
            {"jobDefinitionName": "jd", "type": "container", "containerProperties": {"image": "busybox"}}
        ).encode(),
        method="POST",
        headers={"Content-Type": "application/json", "X-Amz-Date": "20260101T000000Z"},  # as SDKs send (unsigned)
    )
    with urllib.request.urlopen(request, timeout=10) as resp:
        arn = json.loads(resp.read())["jobDefinitionArn"]
    assert arn == "arn:aws:batch:eu-west-1:210987654321:job-definition/jd:1"
    assert server.stop(signal.SIGTERM) == 0


def test_the_allow_flags_reach_the_server(up: Any, tmp_path: Path, boto_session: boto3.session.Session) -> None:
    # GIVEN definitions asking for a privileged container and for a host folder (registered on any server)
    allowed = tmp_path / "shared"
    allowed.mkdir()
    mount = {
        "volumes": [{"name": "d", "host": {"sourcePath": str(allowed / "in")}}],
        "mountPoints": [{"sourceVolume": "d", "containerPath": "/d"}],
    }

    def set_up(batch: Any) -> None:
        # EC2 (no platformCapabilities) on an EC2 CE: Fargate has no privileged containers or host volumes
        make_ec2_ce(batch, "ce")
        make_queue(batch, "q", ["ce"])
        batch.update_compute_environment(computeEnvironment="ce", state="DISABLED")  # nothing needs to run
        make_jd(batch, "root", containerProperties=container(privileged=True), platformCapabilities=None)
        make_jd(batch, "host", containerProperties=container(**mount), platformCapabilities=None)

    # WHEN `batchplane up` runs without the flags THEN both are refused, naming the flag
    plain = up(tmp_path / "plain", free_port())
    batch = client(boto_session, plain.endpoint)
    set_up(batch)
    for jd, flag in (("root", "--allow-privileged"), ("host", "--allow-host-path PREFIX")):
        with pytest.raises(batch.exceptions.ClientException, match=flag):
            batch.submit_job(jobName="j", jobQueue="q", jobDefinition=jd)
    batch.close()
    # WHEN it runs with --allow-privileged and --allow-host-path (a relative one, resolved against its directory)
    cwd = tmp_path / "cwd"
    (cwd / "link").symlink_to(allowed)
    opened = up(tmp_path / "open", free_port(), "--allow-privileged", "--allow-host-path", "link")
    batch = client(boto_session, opened.endpoint)
    set_up(batch)
    # THEN both are accepted
    assert batch.submit_job(jobName="j", jobQueue="q", jobDefinition="root")["jobId"]
    assert batch.submit_job(jobName="j", jobQueue="q", jobDefinition="host")["jobId"]
    batch.close()
