"""The end-to-end suite: the local runtime running real processes, driven through stock boto3 clients.

Fixtures: `make_runtime` (fresh LocalRuntimes on a state dir, all stopped at teardown), `runtime`, `events` (every
"Batch Job State Change" envelope the runtime published), `batch` / `logs` clients, `cli_server` (the `batchplane up`
CLI as a subprocess, for crash tests). Builders and probes: `setup_queue`, `register`, `submit`, `wait_terminal`,
`wait_status`, `describe`, `log_lines`, `pid_alive`.
"""

from __future__ import annotations

import contextlib
import os
import re
import select
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import boto3
import pytest
from botocore.config import Config

from app import app
from chalicelib.compute.local_processes import alive, processes_of
from chalicelib.compute.logs_port import LOG_GROUP
from chalicelib.domain.validation import Limits
from chalicelib.runtime.local import LocalConfig, LocalRuntime
from chalicelib.runtime.plane import build_local
from tests.docker_support import node_networks, remove_containers
from tests.runtimes import stop_runtime

Client = Any  # botocore builds client classes at runtime
ClientFactory = Callable[[Literal["batch", "logs"], str], Client]  # (service, endpoint) -> client

REGION = "us-east-1"
IMAGE = "public.ecr.aws/docker/library/busybox:latest"
TERMINAL = ("SUCCEEDED", "FAILED")
CLIENT_CONFIG = Config(retries={"max_attempts": 1}, connect_timeout=5, read_timeout=30)
STOP_TIMEOUT_S = 15.0
POLL_S = 0.05

# -- runtimes --------------------------------------------------------------------------------------------------


@dataclass
class Runtimes:
    """Starts LocalRuntimes (limits lowered so 1-second timeouts are valid) and stops each exactly once."""

    state_dir: Path
    events: list[dict[str, Any]] = field(default_factory=list)
    _running: list[LocalRuntime] = field(default_factory=list)
    executor: str = "process"  # these tests run host commands; tests/e2e/test_docker.py runs containers
    allow_host_paths: tuple[str, ...] = ()  # host folders jobs may mount (batchplane up --allow-host-path)

    def start(self, **overrides: Any) -> LocalRuntime:
        """`overrides` are more LocalConfig fields (e.g. allow_host_paths, executor)."""
        config = LocalConfig(
            state_dir=self.state_dir,
            port=0,
            limits=Limits(min_timeout_seconds=1),
            grace_seconds=1.0,
            **{"executor": self.executor, "allow_host_paths": self.allow_host_paths, **overrides},
        )
        rt = build_local(config, app)
        rt.events.subscribe(self.events.append)
        rt.start()
        self._running.append(rt)
        return rt

    def stop(self, rt: LocalRuntime) -> None:
        if rt in self._running:
            self._running.remove(rt)
            stop_runtime(rt, STOP_TIMEOUT_S)

    def stop_all(self) -> None:
        for rt in list(self._running):
            self.stop(rt)
        kill_jobs_under(self.state_dir)


@pytest.fixture(scope="session")
def boto_session() -> boto3.session.Session:
    return boto3.session.Session(aws_access_key_id="testing", aws_secret_access_key="testing", region_name=REGION)


@pytest.fixture
def state_dir(tmp_path: Path) -> Path:
    return tmp_path / "state"


@pytest.fixture
def make_runtime(state_dir: Path) -> Iterator[Runtimes]:
    runtimes = Runtimes(state_dir)
    try:
        yield runtimes
    finally:
        runtimes.stop_all()


@pytest.fixture
def runtime(make_runtime: Runtimes) -> LocalRuntime:
    return make_runtime.start()


@pytest.fixture
def events(make_runtime: Runtimes) -> list[dict[str, Any]]:
    return make_runtime.events


@pytest.fixture
def clients(boto_session: boto3.session.Session) -> Iterator[ClientFactory]:
    """Builds clients ("batch" or "logs") for an endpoint; all closed at teardown."""
    built: list[Client] = []

    def build(service: Literal["batch", "logs"], endpoint: str) -> Client:
        client = boto_session.client(service, endpoint_url=endpoint, config=CLIENT_CONFIG)
        built.append(client)
        return client

    yield build
    for client in built:
        client.close()


@pytest.fixture
def batch(runtime: LocalRuntime, clients: ClientFactory) -> Client:
    return clients("batch", runtime.endpoint)


@pytest.fixture
def logs(runtime: LocalRuntime, clients: ClientFactory) -> Client:
    return clients("logs", runtime.endpoint)


@pytest.fixture
def docker_runtimes(state_dir: Path, docker_engine: Any) -> Iterator[Runtimes]:
    """Runtimes on the Docker executor (skipped without an engine, see tests/docker_support.py); at teardown every
    container, Docker volume and node network their servers created is removed. The tests' host volumes are in their
    tmp_path: allowed, as `batchplane up --allow-host-path` would."""
    runtimes = Runtimes(state_dir, executor="docker", allow_host_paths=(str(state_dir.parent),))
    try:
        yield runtimes
    finally:
        runtimes.stop_all()
        remove_containers(docker_engine, state_dir)
        for n in node_networks(docker_engine, state_dir):
            docker_engine.remove_network(n["Id"])


@pytest.fixture
def drt(docker_runtimes: Runtimes) -> LocalRuntime:
    """A started runtime on the Docker executor."""
    return docker_runtimes.start()


@pytest.fixture
def dbatch(drt: LocalRuntime, clients: ClientFactory) -> Client:
    return clients("batch", drt.endpoint)


@pytest.fixture
def dlogs(drt: LocalRuntime, clients: ClientFactory) -> Client:
    return clients("logs", drt.endpoint)


@pytest.fixture
def marks(tmp_path: Path) -> Path:
    """A directory for the files jobs write (markers, run counters)."""
    path = tmp_path / "marks"
    path.mkdir()
    return path


# -- the CLI as a subprocess -----------------------------------------------------------------------------------

UP_LINE = re.compile(r"the AWS Batch API at (http://\S+)")


@dataclass
class CliServer:
    proc: subprocess.Popen[str]
    endpoint: str


@pytest.fixture
def cli_server() -> Iterator[Callable[[Path], CliServer]]:
    """Starts `python -m app up --port 0 --state-dir D`; every server still alive is killed at teardown."""
    procs: list[subprocess.Popen[str]] = []
    states: set[Path] = set()

    def start(state: Path, timeout: float = 30.0, ignoring: tuple[signal.Signals, ...] = ()) -> CliServer:
        """`ignoring`: signals the server starts with ignored, as `nohup` or a shell's `&` start it."""
        states.add(state)

        def ignore() -> None:
            for sig in ignoring:
                signal.signal(sig, signal.SIG_IGN)

        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "app",
                "up",
                "--port",
                "0",
                "--state-dir",
                str(state),
                "--executor",
                "process",
            ],
            cwd=Path(__file__).resolve().parents[2],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            preexec_fn=ignore if ignoring else None,
        )
        procs.append(proc)
        assert proc.stdout is not None
        deadline = time.monotonic() + timeout
        seen = []
        while time.monotonic() < deadline:
            ready, _, _ = select.select([proc.stdout], [], [], 0.2)
            if ready:
                line = proc.stdout.readline()
                if not line and proc.poll() is not None:
                    break
                seen.append(line)
                if match := UP_LINE.search(line):
                    return CliServer(proc, match.group(1))
            elif proc.poll() is not None:
                break
        raise AssertionError(f"`batchplane up` did not come up: {''.join(seen)!r}")

    yield start
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=10)
        if proc.stdout is not None:
            proc.stdout.close()
    for state in states:
        kill_jobs_under(state)  # a SIGKILLed server leaves its jobs' processes running


# -- builders --------------------------------------------------------------------------------------------------

_counter = iter(range(1_000_000))


def unique(prefix: str) -> str:
    return f"{prefix}-{next(_counter)}"


def setup_queue(
    batch: Client, max_vcpus: int = 2, *, name: str | None = None, platform: str = "FARGATE"
) -> tuple[str, str]:
    """A CE of `max_vcpus` (FARGATE, or EC2 with `platform="EC2"`) and a queue on it; returns (queue name, CE name).
    Its jobs' definitions must be of the same platform (`register(..., platform=...)`), as on AWS."""
    ce = name or unique("ce")
    queue = f"{ce}-q"
    resources: dict[str, Any] = {
        "type": platform,
        "maxvCpus": max_vcpus,
        "subnets": ["subnet-0a1b2c3d"],
        "securityGroupIds": ["sg-0a1b2c3d"],
    }
    if platform == "EC2":
        resources.update(minvCpus=0, instanceTypes=["optimal"], instanceRole="ecsInstanceRole")
    batch.create_compute_environment(computeEnvironmentName=ce, type="MANAGED", computeResources=resources)
    batch.create_job_queue(
        jobQueueName=queue, priority=1, computeEnvironmentOrder=[{"order": 1, "computeEnvironment": ce}]
    )
    return queue, ce


EXEC_ROLE = "arn:aws:iam::123456789012:role/ecsTaskExecutionRole"


def register(batch: Client, name: str, command: list[str], *, platform: str = "FARGATE", **props: Any) -> str:
    """A container job definition running `command` (1 vCPU); `environment`/`image`/... go to containerProperties,
    the other keywords (parameters, retryStrategy, timeout) to the request. Returns the ARN.

    `platform` "FARGATE" (for the Fargate queues of `setup_queue`) or "EC2": no platformCapabilities, as AWS reads a
    definition without them, for EC2 / SPOT / unmanaged queues (privileged, devices, ulimits, small memory)."""
    container_keys = {"environment", "image", "resourceRequirements"}
    container: dict[str, Any] = {
        "image": IMAGE,
        "command": command,
        "resourceRequirements": [{"type": "VCPU", "value": "1"}, {"type": "MEMORY", "value": "2048"}],
    }
    if platform == "FARGATE":
        container["executionRoleArn"] = EXEC_ROLE  # a FARGATE definition needs one, as on AWS
    container.update({k: v for k, v in props.items() if k in container_keys})
    request = {k: v for k, v in props.items() if k not in container_keys}
    if platform == "FARGATE":
        request = {"platformCapabilities": ["FARGATE"], **request}
    resp = batch.register_job_definition(
        jobDefinitionName=name, type="container", containerProperties=container, **request
    )
    return str(resp["jobDefinitionArn"])


def submit(batch: Client, queue: str, jd: str, name: str = "job", **kwargs: Any) -> str:
    return str(batch.submit_job(jobName=name, jobQueue=queue, jobDefinition=jd, **kwargs)["jobId"])


def sh(script: str) -> list[str]:
    return ["sh", "-c", script]


def describe(batch: Client, ids: Iterable[str]) -> dict[str, dict[str, Any]]:
    ids = list(ids)
    found: dict[str, dict[str, Any]] = {}
    for i in range(0, len(ids), 100):
        for job in batch.describe_jobs(jobs=ids[i : i + 100])["jobs"]:
            found[job["jobId"]] = job
    return found


def describe_one(batch: Client, job_id: str) -> dict[str, Any]:
    return describe(batch, [job_id])[job_id]


def wait_for(
    batch: Client, ids: Iterable[str], done: Callable[[dict[str, Any]], bool], what: str, timeout: float
) -> dict[str, dict[str, Any]]:
    ids = list(ids)
    deadline = time.monotonic() + timeout
    while True:
        jobs = describe(batch, ids)
        if len(jobs) == len(ids) and all(done(j) for j in jobs.values()):
            return jobs
        if time.monotonic() > deadline:
            waiting = {
                i: jobs[i]["status"] if i in jobs else "missing" for i in ids if i not in jobs or not done(jobs[i])
            }
            raise AssertionError(f"jobs not {what} within {timeout}s: {dict(list(waiting.items())[:10])}")
        time.sleep(POLL_S)


def wait_terminal(batch: Client, ids: Iterable[str], timeout: float = 30) -> dict[str, dict[str, Any]]:
    """Polls DescribeJobs until every job is SUCCEEDED or FAILED; returns the details by id."""
    return wait_for(batch, ids, lambda j: j["status"] in TERMINAL, "terminal", timeout)


def wait_status(batch: Client, ids: Iterable[str], status: str, timeout: float = 30) -> dict[str, dict[str, Any]]:
    return wait_for(batch, ids, lambda j: j["status"] == status, status, timeout)


def log_lines(logs: Client, stream: str) -> list[str]:
    """Every message of a job's log stream (log group /aws/batch/job), following nextForwardToken to the end."""
    lines: list[str] = []
    token: str | None = None
    for _ in range(100):
        kwargs: dict[str, Any] = {"logGroupName": LOG_GROUP, "logStreamName": stream, "startFromHead": True}
        if token:
            kwargs["nextToken"] = token
        resp = logs.get_log_events(**kwargs)
        lines += [e["message"] for e in resp["events"]]
        if not resp["events"] or resp.get("nextForwardToken") == token:
            return lines
        token = resp.get("nextForwardToken")
    return lines


def job_log(logs: Client, job: dict[str, Any]) -> list[str]:
    return log_lines(logs, job["container"]["logStreamName"])


def pid_alive(pid: int) -> bool:
    """Is the process running? A zombie (dead, not yet reaped by its new parent) counts as gone."""
    return alive(pid)


def wait_dead(pid: int, timeout: float = 10) -> bool:
    deadline = time.monotonic() + timeout
    while pid_alive(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(POLL_S)
    return True


def wait_attempt_gone(job_id: str, attempt: int = 1, timeout: float = 10) -> bool:
    """Every process of the attempt has ended (found by its AWS_BATCH_* variables: an array child's journaled pid is
    its runner's, which outlives it, compute/local_runs.py)."""
    deadline = time.monotonic() + timeout
    while processes_of(job_id, attempt):
        if time.monotonic() > deadline:
            return False
        time.sleep(POLL_S)
    return True


def work_pids(state: Path) -> dict[str, int]:
    """The pid of each attempt the local launcher started, by "<jobId>#<attempt>" (from its journal)."""
    pids = {}
    for line in (state / "work" / "journal").read_text().splitlines():
        kind, key, value = line.split(" ", 2)  # ("task" lines: JSON)
        if kind == "pid":
            pids[key] = int(value)
    return pids


def work_pid(state: Path, job_id: str, attempt: int = 1) -> int:
    return work_pids(state)[f"{job_id}#{attempt}"]


def kill_quietly(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)


def kill_jobs_under(state: Path) -> None:
    """Teardown safety net: SIGKILL every process still running in a work dir of `state` (Linux /proc only)."""
    work = str((state / "work").resolve())
    proc = Path("/proc")
    for entry in proc.iterdir() if proc.is_dir() else ():
        if not entry.name.isdigit():
            continue
        try:
            cwd = os.readlink(entry / "cwd")
        except OSError:
            continue
        if cwd.startswith(work + os.sep):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(int(entry.name), signal.SIGKILL)


def wait_until(predicate: Callable[[], bool], what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(POLL_S)
