"""Jobs with a jobRoleArn get AWS credentials the ECS way, through the local runtime and the stock boto3 client:
the job itself resolves them with botocore's default credential chain, as an SDK on ECS would (docs/adr/0017)."""

from __future__ import annotations

import sys
import urllib.error
import urllib.request
from typing import Any

import pytest

from tests.e2e.conftest import (
    EXEC_ROLE,
    IMAGE,
    Client,
    ClientFactory,
    Runtimes,
    job_log,
    setup_queue,
    submit,
    unique,
    wait_terminal,
)
from tests.multi_container_support import fargate_task, member

pytestmark = pytest.mark.e2e

KEY_ID, SECRET, TOKEN = "AKIDSERVERFORJOBS", "the-servers-secret", "the-servers-session-token"
ROLE = "arn:aws:iam::123456789012:role/job-role"
# What the job runs: botocore's default chain, then the variable it used (printed so the test can try it after).
PROBE = (
    "import os, botocore.session\n"
    "creds = botocore.session.get_session().get_credentials()\n"
    "print('method', creds.method if creds else None)\n"
    "print('key', creds.get_frozen_credentials().access_key if creds else None)\n"
    "print('uri', os.environ.get('AWS_CONTAINER_CREDENTIALS_FULL_URI'))\n"
    "print('secret-in-env', any(v in ('" + SECRET + "', '" + TOKEN + "') for v in os.environ.values()))\n"
)
# Nothing else in the job's chain may find credentials: no shared files, no instance metadata service.
NO_OTHER_SOURCE = [
    {"name": "AWS_SHARED_CREDENTIALS_FILE", "value": "/nonexistent/credentials"},
    {"name": "AWS_CONFIG_FILE", "value": "/nonexistent/config"},
    {"name": "AWS_EC2_METADATA_DISABLED", "value": "true"},
]


@pytest.fixture
def server_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    """The server's own AWS session has (fake) static credentials, from its environment."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", KEY_ID)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
    monkeypatch.setenv("AWS_SESSION_TOKEN", TOKEN)
    monkeypatch.delenv("AWS_PROFILE", raising=False)


def register_with_role(batch: Client, name: str, container: dict[str, Any], role: str | None) -> str:
    """A Fargate job definition (setup_queue's queue is Fargate) of `container`, with `role` as its jobRoleArn."""
    container = {**container, "executionRoleArn": EXEC_ROLE}  # a FARGATE definition needs one
    if role:
        container["jobRoleArn"] = role
    resp = batch.register_job_definition(
        jobDefinitionName=unique(name),
        type="container",
        containerProperties=container,
        platformCapabilities=["FARGATE"],
    )
    return str(resp["jobDefinitionArn"])


def register_probe(batch: Client, role: str | None) -> str:
    container: dict[str, Any] = {
        "image": IMAGE,
        "command": [sys.executable, "-c", PROBE],
        "environment": NO_OTHER_SOURCE,
        "resourceRequirements": [{"type": "VCPU", "value": "1"}, {"type": "MEMORY", "value": "2048"}],
    }
    return register_with_role(batch, "probe", container, role)


def started(runtimes: Runtimes, clients: ClientFactory) -> tuple[Client, Client, str]:
    """A started runtime's batch and logs clients, and a queue (setup_queue's)."""
    runtime = runtimes.start()
    batch, logs = clients("batch", runtime.endpoint), clients("logs", runtime.endpoint)
    queue, _ = setup_queue(batch)
    return batch, logs, queue


def probe_output(logs: Client, job: dict[str, Any]) -> dict[str, str]:
    lines = job_log(logs, job)
    return dict(line.split(" ", 1) for line in lines if " " in line)


def refused(url: str) -> bool:
    try:
        urllib.request.urlopen(url, timeout=5).close()
    except urllib.error.HTTPError as e:
        return e.code == 400
    return False


def test_a_job_with_a_role_reads_the_servers_credentials_and_a_job_without_gets_none(
    server_credentials: None, make_runtime: Runtimes, clients: ClientFactory
) -> None:
    # GIVEN a server with AWS credentials, and two job definitions: one with a jobRoleArn, one without
    batch, logs, queue = started(make_runtime, clients)
    with_role = submit(batch, queue, register_probe(batch, ROLE), "with-role")
    without_role = submit(batch, queue, register_probe(batch, None), "without-role")

    # WHEN both run
    jobs = wait_terminal(batch, [with_role, without_role], timeout=60)
    assert [jobs[j]["status"] for j in (with_role, without_role)] == ["SUCCEEDED", "SUCCEEDED"]

    # THEN the job with the role got the server's credentials through the container credentials provider, with no
    # secret in its environment
    seen = probe_output(logs, jobs[with_role])
    assert seen["method"] == "container-role"
    assert seen["key"] == KEY_ID
    assert seen["uri"].startswith("http://127.0.0.1:")
    assert seen["secret-in-env"] == "False"
    # ... and its URI answers no more once the job ended
    assert refused(seen["uri"])

    # AND the job without a role found no credentials at all
    assert probe_output(logs, jobs[without_role]) == {
        "method": "None",
        "key": "None",
        "uri": "None",
        "secret-in-env": "False",
    }


def test_a_server_without_credentials_fails_the_start_of_a_job_with_a_role_and_its_retry_strategy_decides(
    monkeypatch: pytest.MonkeyPatch, make_runtime: Runtimes, clients: ClientFactory, tmp_path: Any
) -> None:
    # GIVEN a server whose AWS session finds no credentials anywhere
    for var in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    batch, _, queue = started(make_runtime, clients)

    # WHEN a job with a role (two attempts, retried on any failure), a multi-container one with a task role, and one
    # without a role run
    with_role = submit(batch, queue, register_probe(batch, ROLE), "with-role", retryStrategy={"attempts": 2})
    members = [member(name, [sys.executable, "-c", "print(1)"], image=IMAGE, memory="512") for name in ("a", "b")]
    task = fargate_task(unique("mc"), *members, execution_role=EXEC_ROLE, task={"taskRoleArn": ROLE})
    multi = submit(batch, queue, str(batch.register_job_definition(**task)["jobDefinitionArn"]), "multi")
    without_role = submit(batch, queue, register_probe(batch, None), "without-role")
    jobs = wait_terminal(batch, [with_role, multi, without_role], timeout=60)

    # THEN each attempt of the first failed to start, saying why (docs/adr/0037), rather than run without credentials
    job = jobs[with_role]
    assert (job["status"], job["statusReason"]) == ("FAILED", "Task failed to start")
    assert [a["statusReason"] for a in job["attempts"]] == ["Task failed to start"] * 2
    assert [a["container"].get("reason") for a in job["attempts"]] == 2 * [
        f"ResourceInitializationError: no AWS credentials can be served for jobRoleArn {ROLE}: the server's AWS "
        "session has no credentials (set AWS_PROFILE, AWS_ACCESS_KEY_ID… and restart it)"
    ]
    # AND the multi-container job's task failed to start, its first container saying why
    assert (jobs[multi]["status"], jobs[multi]["statusReason"]) == ("FAILED", "Task failed to start")
    reasons = [c.get("reason") for c in jobs[multi]["ecsProperties"]["taskProperties"][0]["containers"]]
    assert reasons[0] is not None and reasons[0].startswith(
        f"ResourceInitializationError: no AWS credentials can be served for jobRoleArn {ROLE}: "
    ), reasons
    # AND the job without a role ran as usual
    assert jobs[without_role]["status"] == "SUCCEEDED"
