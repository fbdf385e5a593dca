"""The Docker executor end to end: a LocalRuntime with `executor="docker"` driven through stock boto3 clients, real
containers on the machine's engine (no mock of it). Needs the `docker_engine` fixture (tests/docker_support.py):
skipped without an engine, failed without one when CI is set."""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from chalicelib.domain.lifecycle import TaskStopped
from chalicelib.runtime.local import LocalRuntime
from tests.docker_support import TEST_IMAGE, remove_containers
from tests.e2e.conftest import (
    Client,
    ClientFactory,
    Runtimes,
    describe_one,
    job_log,
    log_lines,
    register,
    setup_queue,
    sh,
    submit,
    unique,
    wait_status,
    wait_terminal,
    wait_until,
)

pytestmark = pytest.mark.e2e

SMALL = [{"type": "VCPU", "value": "0.25"}, {"type": "MEMORY", "value": "512"}]  # a Fargate task size


@pytest.fixture
def entry_image(docker_engine: Any) -> Iterator[str]:
    """busybox with ENTRYPOINT ["echo", "entry:"] and CMD ["default"], built locally (no registry)."""
    tag = f"batchplane-test-entry:{uuid.uuid4().hex[:8]}"
    dockerfile = f'FROM {TEST_IMAGE}\nENTRYPOINT ["echo", "entry:"]\nCMD ["default"]\n'
    for _ in docker_engine.build(fileobj=io.BytesIO(dockerfile.encode()), tag=tag, rm=True, decode=True):
        pass
    yield tag
    docker_engine.remove_image(tag, force=True)


EC2_SIZE = [{"type": "VCPU", "value": "1"}, {"type": "MEMORY", "value": "512"}]  # start_job's default on EC2


def ec2_queue(batch: Client, max_vcpus: int = 4) -> str:
    """A queue on an EC2 compute environment: for what Fargate refuses (ulimits, host volumes, small memory)."""
    queue, _ = setup_queue(batch, max_vcpus, name=unique("ec2"), platform="EC2")
    return queue


def queue_platform(batch: Client, queue: str) -> str:
    """FARGATE or EC2: what the queue's (first) compute environment runs, so its jobs' definitions match it."""
    order = batch.describe_job_queues(jobQueues=[queue])["jobQueues"][0]["computeEnvironmentOrder"]
    ce = batch.describe_compute_environments(computeEnvironments=[order[0]["computeEnvironment"]])
    kind = ce["computeEnvironments"][0]["computeResources"]["type"]
    return "FARGATE" if kind.startswith("FARGATE") else "EC2"


def start_job(batch: Client, queue: str, command: list[str] | None, **props: Any) -> str:
    props.setdefault("image", TEST_IMAGE)
    platform = queue_platform(batch, queue)
    props.setdefault("resourceRequirements", EC2_SIZE if platform == "EC2" else SMALL)
    container_extra = {
        k: props.pop(k)
        for k in list(props)
        if k in ("user", "readonlyRootFilesystem", "ulimits", "linuxParameters", "volumes", "mountPoints")
    }
    jd = register(batch, unique("jd"), command or [], platform=platform, **props)
    if container_extra or command is None:
        # register() knows a few containerProperties; the others are given here, on a new revision
        props_now = batch.describe_job_definitions(jobDefinitions=[jd])["jobDefinitions"][0]
        container = {**props_now["containerProperties"], **container_extra}
        if command is None:
            container.pop("command", None)
        kept = {
            k: props_now[k]
            for k in ("retryStrategy", "timeout", "parameters", "platformCapabilities")
            if props_now.get(k)
        }
        jd = batch.register_job_definition(
            jobDefinitionName=props_now["jobDefinitionName"], type="container", containerProperties=container, **kept
        )["jobDefinitionArn"]
    return submit(batch, queue, jd)


def run(batch: Client, queue: str, command: list[str] | None, **props: Any) -> dict[str, Any]:
    job_id = start_job(batch, queue, command, **props)
    return wait_terminal(batch, [job_id], timeout=60)[job_id]


def lines_so_far(logs: Client, stream: str) -> list[str]:
    """The stream's lines; [] before its first line (the stream is created with it)."""
    try:
        return log_lines(logs, stream)
    except logs.exceptions.ResourceNotFoundException:
        return []


def container_of(client: Any, job_id: str) -> dict[str, Any]:
    found = client.containers(all=True, filters={"label": f"batchplane.job-id={job_id}"})
    assert len(found) == 1, found
    return dict(client.inspect_container(found[0]["Id"]))


# -- what a job sees --------------------------------------------------------------------------------------------


def test_a_job_runs_in_its_image_and_its_output_is_its_log(
    drt: LocalRuntime, dbatch: Client, dlogs: Client, docker_engine: Any
) -> None:
    # GIVEN the Docker executor and a Fargate queue
    assert drt.executor == "docker"
    queue, _ = setup_queue(dbatch)
    # WHEN a busybox job echoes on stdout and stderr
    job = run(dbatch, queue, sh("echo hello from busybox; echo oops >&2"))
    # THEN it succeeded, both lines are its log, and its container is gone once its end was recorded
    assert job["status"] == "SUCCEEDED", job
    assert job["container"]["exitCode"] == 0
    # (stdout and stderr are separate pipes: the engine timestamps each line as it reads it, so across the two
    # the order is not guaranteed, as with awslogs on ECS)
    assert sorted(job_log(dlogs, job)) == ["hello from busybox", "oops"]
    wait_until(
        lambda: not docker_engine.containers(all=True, filters={"label": f"batchplane.job-id={job['jobId']}"}),
        "the container to be removed",
    )


def test_the_image_entrypoint_is_kept_and_the_command_replaces_cmd(
    dbatch: Client, dlogs: Client, entry_image: str
) -> None:
    queue, _ = setup_queue(dbatch)
    with_command = run(dbatch, queue, ["a", "Ref::word"], image=entry_image, parameters={"word": "b"})
    without = run(dbatch, queue, None, image=entry_image)
    assert job_log(dlogs, with_command) == ["entry: a b"]
    assert job_log(dlogs, without) == ["entry: default"]


def test_the_environment_is_the_jobs_plus_what_ecs_and_batch_set(dbatch: Client, dlogs: Client) -> None:
    fargate, _ = setup_queue(dbatch)
    ec2 = ec2_queue(dbatch)
    script = sh("echo $AWS_EXECUTION_ENV $AWS_REGION $AWS_DEFAULT_REGION $AWS_BATCH_JOB_ATTEMPT $GREETING")
    env = [{"name": "GREETING", "value": "hi"}]
    on_fargate = run(dbatch, fargate, script, environment=env)
    on_ec2 = run(dbatch, ec2, script, environment=env)
    assert job_log(dlogs, on_fargate) == ["AWS_ECS_FARGATE us-east-1 us-east-1 1 hi"]
    assert job_log(dlogs, on_ec2) == ["AWS_ECS_EC2 us-east-1 us-east-1 1 hi"]


def test_the_host_is_reachable_as_host_docker_internal(dbatch: Client, dlogs: Client) -> None:
    queue, _ = setup_queue(dbatch)
    job = run(dbatch, queue, sh("grep -c host.docker.internal /etc/hosts"))
    assert job_log(dlogs, job) == ["1"]


# -- resources --------------------------------------------------------------------------------------------------


def test_memory_is_a_hard_limit_and_an_oom_kill_is_reported_as_aws_does(dbatch: Client, dlogs: Client) -> None:
    queue = ec2_queue(dbatch)
    resources = [{"type": "VCPU", "value": "1"}, {"type": "MEMORY", "value": "64"}]
    job = run(dbatch, queue, sh("dd if=/dev/zero bs=1M count=200 | tail"), resourceRequirements=resources)
    assert job["status"] == "FAILED"
    assert job["container"]["exitCode"] == 137
    assert job["container"]["reason"] == "OutOfMemoryError: Container killed due to memory usage"


def test_vcpus_are_cpu_shares_on_ec2_a_hard_quota_on_fargate_and_linux_parameters_apply(
    dbatch: Client, docker_engine: Any
) -> None:
    fargate, _ = setup_queue(dbatch)
    ec2 = ec2_queue(dbatch)
    on_ec2 = start_job(
        dbatch,
        ec2,
        ["sleep", "30"],
        resourceRequirements=[{"type": "VCPU", "value": "2"}, {"type": "MEMORY", "value": "256"}],
        linuxParameters={"initProcessEnabled": True, "maxSwap": 0, "swappiness": 10},
    )
    on_fargate = start_job(
        dbatch,
        fargate,
        ["sleep", "30"],
        resourceRequirements=[{"type": "VCPU", "value": "0.5"}, {"type": "MEMORY", "value": "1024"}],
    )
    wait_status(dbatch, [on_ec2, on_fargate], "RUNNING")
    ec2_host = container_of(docker_engine, on_ec2)["HostConfig"]
    fargate_host = container_of(docker_engine, on_fargate)["HostConfig"]
    assert (ec2_host["CpuShares"], ec2_host["NanoCpus"], ec2_host["Memory"]) == (2048, 0, 256 * 2**20)
    assert (fargate_host["CpuShares"], fargate_host["NanoCpus"], fargate_host["Memory"]) == (0, 500_000_000, 2**30)
    # linuxParameters: --init, and maxSwap 0 = no swap beyond the memory limit, with its swappiness
    assert (ec2_host["Init"], ec2_host["MemorySwap"], ec2_host["MemorySwappiness"]) == (True, 256 * 2**20, 10)
    for job_id in (on_ec2, on_fargate):
        dbatch.terminate_job(jobId=job_id, reason="done looking")
    wait_terminal(dbatch, [on_ec2, on_fargate])


def test_user_read_only_root_ulimits_tmpfs_and_shared_memory(dbatch: Client, dlogs: Client) -> None:
    queue = ec2_queue(dbatch)  # ulimits, tmpfs and sharedMemorySize are EC2-only on AWS
    script = sh(
        "id -u; touch /root-file 2>/dev/null && echo root writable || echo root read-only; ulimit -n; "
        "echo x > /scratch/f && echo tmpfs writable; df -m /dev/shm | tail -1 | awk '{print $2}'"
    )
    job = run(
        dbatch,
        queue,
        script,
        user="1234",
        readonlyRootFilesystem=True,
        ulimits=[{"name": "nofile", "softLimit": 321, "hardLimit": 654}],
        linuxParameters={
            "tmpfs": [{"containerPath": "/scratch", "size": 16, "mountOptions": ["mode=1777"]}],
            "sharedMemorySize": 32,
        },
    )
    assert job["status"] == "SUCCEEDED", job_log(dlogs, job)
    assert job_log(dlogs, job) == ["1234", "root read-only", "321", "tmpfs writable", "32"]


def test_volumes_bind_host_paths_and_honour_read_only(dbatch: Client, dlogs: Client, tmp_path: Path) -> None:
    queue = ec2_queue(dbatch)  # Fargate has no host volumes
    host_dir = tmp_path / "shared"
    host_dir.mkdir()
    (host_dir / "in.txt").write_text("from the host\n")
    host_dir.chmod(0o777)
    job = run(
        dbatch,
        queue,
        sh(
            "cat /in/in.txt; echo out > /out/out.txt; touch /in/no 2>/dev/null || echo in is read-only; "
            "echo kept > /scratch/f; cat /scratch2/f"
        ),
        volumes=[
            {"name": "host", "host": {"sourcePath": str(host_dir)}},
            {"name": "scratch"},
        ],
        mountPoints=[
            {"sourceVolume": "host", "containerPath": "/in", "readOnly": True},
            {"sourceVolume": "host", "containerPath": "/out", "readOnly": False},
            {"sourceVolume": "scratch", "containerPath": "/scratch"},
            {"sourceVolume": "scratch", "containerPath": "/scratch2", "readOnly": True},
        ],
    )
    assert job_log(dlogs, job) == ["from the host", "in is read-only", "kept"]
    assert (host_dir / "out.txt").read_text() == "out\n"


# -- failures ---------------------------------------------------------------------------------------------------


def test_an_image_that_cannot_be_pulled_fails_the_attempt_and_retries(dbatch: Client) -> None:
    queue, _ = setup_queue(dbatch)
    job = run(
        dbatch,
        queue,
        ["true"],
        image="nonexistent.invalid/x:1",
        retryStrategy={"attempts": 2, "evaluateOnExit": [{"onReason": "CannotPullContainerError*", "action": "RETRY"}]},
    )
    assert job["status"] == "FAILED"
    assert len(job["attempts"]) == 2
    for attempt in job["attempts"]:
        assert attempt["container"]["reason"].startswith("CannotPullContainerError: "), attempt
        assert "nonexistent.invalid" in attempt["container"]["reason"]
        assert attempt["statusReason"] == "Task failed to start"


def test_a_container_that_cannot_start_fails_with_cannot_start_container_error(dbatch: Client) -> None:
    queue, _ = setup_queue(dbatch)
    job = run(dbatch, queue, ["/no/such/binary"])
    assert job["status"] == "FAILED"
    assert job["container"]["reason"].startswith("CannotStartContainerError: "), job["container"]
    assert "/no/such/binary" in job["container"]["reason"]
    assert "exitCode" not in job["container"]


def test_efs_volumes_are_refused_with_a_clear_reason(dbatch: Client) -> None:
    queue, _ = setup_queue(dbatch)
    job = run(
        dbatch,
        queue,
        ["true"],
        volumes=[{"name": "efs", "efsVolumeConfiguration": {"fileSystemId": "fs-12345678"}}],
        mountPoints=[{"sourceVolume": "efs", "containerPath": "/mnt/efs"}],
    )
    assert job["status"] == "FAILED"
    assert "EFS" in job["container"]["reason"], job["container"]


# -- stop, timeout, logs ----------------------------------------------------------------------------------------


def test_terminate_sends_sigterm_then_kills_after_the_grace_period(dbatch: Client, dlogs: Client) -> None:
    queue, _ = setup_queue(dbatch, max_vcpus=4)
    polite = start_job(dbatch, queue, sh("trap 'echo got TERM; exit 3' TERM; echo ready; while :; do sleep 0.1; done"))
    stubborn = start_job(dbatch, queue, sh("trap '' TERM; echo ready; while :; do sleep 0.1; done"))
    for job_id in (polite, stubborn):
        wait_status(dbatch, [job_id], "RUNNING")
        wait_until(
            lambda j=job_id: lines_so_far(dlogs, describe_one(dbatch, j)["container"]["logStreamName"]) != [],
            "the job to be ready",
        )
        dbatch.terminate_job(jobId=job_id, reason="enough")
    jobs = wait_terminal(dbatch, [polite, stubborn])
    assert jobs[polite]["container"]["exitCode"] == 3
    assert job_log(dlogs, jobs[polite]) == ["ready", "got TERM"]
    assert jobs[stubborn]["container"]["exitCode"] == 137  # SIGKILL after the grace period (1 s in these tests)
    assert jobs[polite]["statusReason"] == jobs[stubborn]["statusReason"] == "enough"


def test_an_attempt_past_its_timeout_is_stopped(dbatch: Client) -> None:
    queue, _ = setup_queue(dbatch)
    job = run(dbatch, queue, ["sleep", "60"], timeout={"attemptDurationSeconds": 1})
    assert job["status"] == "FAILED"
    assert job["statusReason"] == "Job attempt duration exceeded timeout"


def test_logs_arrive_line_by_line_while_the_container_runs(dbatch: Client, dlogs: Client) -> None:
    queue, _ = setup_queue(dbatch)
    job_id = start_job(dbatch, queue, sh("echo first; sleep 30"))
    wait_status(dbatch, [job_id], "RUNNING")
    stream = describe_one(dbatch, job_id)["container"]["logStreamName"]
    wait_until(lambda: lines_so_far(dlogs, stream) == ["first"], "the first line while the job runs")
    assert describe_one(dbatch, job_id)["status"] == "RUNNING"
    dbatch.terminate_job(jobId=job_id, reason="seen")
    wait_terminal(dbatch, [job_id])


def test_the_last_line_is_logged_before_the_job_ends_even_without_a_newline(dbatch: Client, dlogs: Client) -> None:
    # GIVEN jobs whose output ends without a newline: the engine's logger flushes that partial line only when the
    # container's output closes, which may be after the log follow has ended
    queue, _ = setup_queue(dbatch)
    few = [start_job(dbatch, queue, sh('printf "first\\nlast-%s" "$AWS_BATCH_JOB_ID"')) for _ in range(6)]
    burst = start_job(dbatch, queue, sh("seq 1 20000; printf last-of-the-burst"))
    # WHEN each has SUCCEEDED
    jobs = wait_terminal(dbatch, [*few, burst], timeout=120)
    # THEN its log already holds every line, the last one included, each once
    for job_id in few:
        assert jobs[job_id]["status"] == "SUCCEEDED", jobs[job_id]
        assert job_log(dlogs, jobs[job_id]) == ["first", f"last-{job_id}"]
    lines = job_log(dlogs, jobs[burst])
    assert lines[-1] == "last-of-the-burst"
    assert lines == [*map(str, range(1, 20001)), "last-of-the-burst"]


# -- crash safety: containers outlive the server ----------------------------------------------------------------

WAIT_FOR_GO = "echo one; while [ ! -f /tmp/go ]; do sleep 0.1; done; echo two; "


def waiting_job(batch: Client, queue: str, then: str, **props: Any) -> str:
    """A job that logs "one", waits for the file /tmp/go in its container (`go`), logs "two" and runs `then`."""
    return start_job(batch, queue, sh(WAIT_FOR_GO + then), **props)


def go(client: Any, job_id: str) -> None:
    """Lets a waiting job go on (inside its container: no host path, no server needed)."""
    exec_id = client.exec_create(container_of(client, job_id)["Id"], ["touch", "/tmp/go"])
    client.exec_start(exec_id)


def running_with_output(batch: Client, logs: Client, job_id: str) -> str:
    wait_status(batch, [job_id], "RUNNING")
    stream = describe_one(batch, job_id)["container"]["logStreamName"]
    wait_until(lambda: lines_so_far(logs, stream) == ["one"], "the job's first line")
    return stream


def restart(docker_runtimes: Runtimes, rt: LocalRuntime, clients: ClientFactory) -> tuple[LocalRuntime, Client, Client]:
    docker_runtimes.stop(rt)
    again = docker_runtimes.start()
    return again, clients("batch", again.endpoint), clients("logs", again.endpoint)


def test_a_container_still_running_at_restart_is_reattached_and_its_real_end_reported(
    docker_runtimes: Runtimes,
    drt: LocalRuntime,
    dbatch: Client,
    dlogs: Client,
    clients: ClientFactory,
    tmp_path: Path,
    docker_engine: Any,
) -> None:
    # GIVEN a job running in its container
    queue, _ = setup_queue(dbatch)
    job_id = waiting_job(dbatch, queue, "exit 7")
    stream = running_with_output(dbatch, dlogs, job_id)
    # WHEN the server stops (its container keeps running) and starts again, and then the job goes on
    docker_runtimes.stop(drt)
    assert container_of(docker_engine, job_id)["State"]["Running"]
    rt = docker_runtimes.start()
    batch, logs = clients("batch", rt.endpoint), clients("logs", rt.endpoint)
    go(docker_engine, job_id)
    # THEN its real exit is reported, on its first attempt, and its log has each line once
    job = wait_terminal(batch, [job_id])[job_id]
    assert job["status"] == "FAILED"
    assert [a["container"]["exitCode"] for a in job["attempts"]] == [7]
    assert log_lines(logs, stream) == ["one", "two"]


def test_a_container_that_ended_while_the_server_was_down_is_settled_with_its_real_exit(
    docker_runtimes: Runtimes,
    drt: LocalRuntime,
    dbatch: Client,
    dlogs: Client,
    clients: ClientFactory,
    tmp_path: Path,
    docker_engine: Any,
) -> None:
    # GIVEN two running jobs: one will exit 5, one will be OOM-killed
    queue = ec2_queue(dbatch)
    small = [{"type": "VCPU", "value": "1"}, {"type": "MEMORY", "value": "64"}]
    exits = waiting_job(dbatch, queue, "exit 5")
    ooms = waiting_job(dbatch, queue, "dd if=/dev/zero bs=1M count=200 | tail", resourceRequirements=small)
    running_with_output(dbatch, dlogs, exits)
    running_with_output(dbatch, dlogs, ooms)
    # WHEN the server is down while both end
    docker_runtimes.stop(drt)
    for job_id in (exits, ooms):
        go(docker_engine, job_id)
        docker_engine.wait(container_of(docker_engine, job_id)["Id"])
    rt = docker_runtimes.start()
    batch, logs = clients("batch", rt.endpoint), clients("logs", rt.endpoint)
    # THEN the restart settles them with their real exit code and OOM flag, their last lines logged
    jobs = wait_terminal(batch, [exits, ooms])
    assert [a["container"]["exitCode"] for a in jobs[exits]["attempts"]] == [5]
    assert jobs[ooms]["container"]["exitCode"] == 137
    assert jobs[ooms]["container"]["reason"] == "OutOfMemoryError: Container killed due to memory usage"
    assert job_log(logs, jobs[exits]) == ["one", "two"]


def test_a_container_the_engine_lost_fails_its_attempt_as_a_lost_host(
    docker_runtimes: Runtimes,
    drt: LocalRuntime,
    dbatch: Client,
    dlogs: Client,
    clients: ClientFactory,
    tmp_path: Path,
    docker_engine: Any,
) -> None:
    # GIVEN a running job that retries on a lost host
    queue, _ = setup_queue(dbatch)
    retry = {"attempts": 2, "evaluateOnExit": [{"onStatusReason": "Host EC2*", "action": "RETRY"}]}
    job_id = start_job(
        dbatch, queue, sh('[ "$AWS_BATCH_JOB_ATTEMPT" = 2 ] && exit 0; ' + WAIT_FOR_GO), retryStrategy=retry
    )
    running_with_output(dbatch, dlogs, job_id)
    # WHEN its container disappears while the server is down
    docker_runtimes.stop(drt)
    docker_engine.remove_container(container_of(docker_engine, job_id)["Id"], force=True)
    rt = docker_runtimes.start()
    batch = clients("batch", rt.endpoint)
    # THEN its attempt failed as a lost host, and the retry ran
    job = wait_terminal(batch, [job_id])[job_id]
    assert job["attempts"][0]["statusReason"] == "Host EC2 (instance local) terminated."
    assert job["status"] == "SUCCEEDED", job["attempts"]
    assert len(job["attempts"]) == 2


def test_an_end_whose_write_fails_once_is_applied_again_and_its_container_removed(
    drt: LocalRuntime, dbatch: Client, docker_engine: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN a store whose write of the job's end fails once (as SQLite's "database is locked" would)
    real, failed = drt.engine.reactor.apply_all, []

    def fails_once(job_id: str, events: list[Any], read: Any = None) -> Any:
        if any(isinstance(e, TaskStopped) for e in events) and not failed:
            failed.append(job_id)
            raise RuntimeError("database is locked (simulated)")
        return real(job_id, events, read=read)

    monkeypatch.setattr(drt.engine.reactor, "apply_all", fails_once)
    queue, _ = setup_queue(dbatch)
    # WHEN its container ends
    job = run(dbatch, queue, ["true"])
    # THEN the end is applied again: the job succeeds (no sweep repairs it with this executor), its container goes
    assert failed == [job["jobId"]]
    assert job["status"] == "SUCCEEDED" and job["container"]["exitCode"] == 0
    label = f"batchplane.job-id={job['jobId']}"
    wait_until(lambda: not docker_engine.containers(all=True, filters={"label": label}), "the container removed")


# -- choosing the executor --------------------------------------------------------------------------------------


def up_output(state: Path, *args: str, env: dict[str, str] | None = None) -> tuple[int | None, list[str]]:
    """Start `batchplane up` with `args`; returns (its exit code if it exited, else None, the lines it printed up
    to the line that says it is up)."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "app", "up", "--port", "0", "--state-dir", str(state), *args],
        cwd=Path(__file__).resolve().parents[2],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})},
    )
    assert proc.stdout is not None
    lines: list[str] = []
    try:
        for line in proc.stdout:
            lines.append(line.rstrip("\n"))
            if "batchplane is up" in line:
                proc.send_signal(signal.SIGTERM)
                proc.wait(timeout=30)
                return None, lines
        return proc.wait(timeout=30), lines
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()


def test_up_says_it_runs_the_docker_executor(tmp_path: Path, docker_engine: Any) -> None:
    code, lines = up_output(tmp_path / "s", "--executor", "auto")
    assert code is None, lines
    assert any(line.startswith("executor: docker — jobs run in their container images") for line in lines), lines


def test_up_without_an_engine_says_jobs_run_unisolated_and_how_to_get_docker(tmp_path: Path) -> None:
    code, lines = up_output(tmp_path / "s", env={"DOCKER_HOST": f"unix://{tmp_path}/no-engine.sock"})
    assert code is None, lines
    [line] = [line for line in lines if line.startswith("executor:")]
    assert "executor: process — jobs run as unisolated processes on this host" in line
    assert "scripts/docker-up.sh" in line


def test_up_with_executor_docker_and_no_engine_refuses_to_start(tmp_path: Path) -> None:
    code, lines = up_output(
        tmp_path / "s", "--executor", "docker", env={"DOCKER_HOST": f"unix://{tmp_path}/no-engine.sock"}
    )
    assert code == 2
    assert any("--executor docker: no Docker engine answers" in line for line in lines), lines


# -- switching executors across a restart -----------------------------------------------------------------------


def test_attempts_started_by_the_other_executor_are_lost_hosts_never_run_again(
    state_dir: Path, docker_engine: Any, clients: ClientFactory
) -> None:
    # GIVEN a job running as a process, then a restart with the Docker executor
    processes, containers = Runtimes(state_dir, executor="process"), Runtimes(state_dir, executor="docker")
    try:
        rt = processes.start()
        batch = clients("batch", rt.endpoint)
        queue, _ = setup_queue(batch)
        as_process = start_job(batch, queue, ["sleep", "30"])
        wait_status(batch, [as_process], "RUNNING")
        processes.stop(rt)
        rt = containers.start()
        batch = clients("batch", rt.endpoint)
        # THEN the process's attempt failed as a lost host, not run again in a container
        job = wait_terminal(batch, [as_process])[as_process]
        assert [a["statusReason"] for a in job["attempts"]] == ["Host EC2 (instance local) terminated."]
        # AND the other way round: a container's attempt is not run again as a process
        in_container = start_job(batch, queue, ["sleep", "30"])
        wait_status(batch, [in_container], "RUNNING")
        containers.stop(rt)
        rt = processes.start()
        batch = clients("batch", rt.endpoint)
        job = wait_terminal(batch, [in_container])[in_container]
        assert [a["statusReason"] for a in job["attempts"]] == ["Host EC2 (instance local) terminated."]
    finally:
        processes.stop_all()
        containers.stop_all()
        remove_containers(docker_engine, state_dir)
