"""The stock boto3 "batch" client pointed at the local server, the standard set-up, and bounded waits."""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import boto3
from botocore.config import Config

TERMINAL = frozenset({"SUCCEEDED", "FAILED"})
STARTED = frozenset({"RUNNING", "SUCCEEDED", "FAILED"})
WAIT_S = 300.0  # every wait is bounded by this
POLL_S = 0.01  # sleep between polls (the brief allows 5-20 ms)
DESCRIBE_MAX = 100


class BenchTimeout(RuntimeError):
    pass


def make_client(endpoint: str) -> Any:
    """Its own session, so clients can be built for and used from separate threads."""
    session = boto3.session.Session()
    return session.client(
        "batch",
        region_name="us-east-1",
        endpoint_url=endpoint,
        aws_access_key_id="bench",
        aws_secret_access_key="bench",
        config=Config(max_pool_connections=16, retries={"max_attempts": 1}),
    )


@dataclass(frozen=True)
class Setup:
    ce_arn: str
    queue: str
    job_definition: str


def set_up(client: Any) -> Setup:
    """One MANAGED FARGATE CE (maxvCpus 2), one queue, one job definition running `true` (1 vCPU, 2048 MiB)."""
    ce = client.create_compute_environment(
        computeEnvironmentName="bench-ce",
        type="MANAGED",
        state="ENABLED",
        computeResources={
            "type": "FARGATE",
            "maxvCpus": 2,
            "subnets": ["subnet-local"],
            "securityGroupIds": ["sg-local"],
        },
    )
    wait_for(lambda: _ce_status(client, ce["computeEnvironmentArn"]) == "VALID", "compute environment VALID", 30)
    q = client.create_job_queue(
        jobQueueName="bench-q",
        state="ENABLED",
        priority=1,
        computeEnvironmentOrder=[{"order": 1, "computeEnvironment": ce["computeEnvironmentArn"]}],
    )
    wait_for(lambda: _jq_status(client, q["jobQueueArn"]) == "VALID", "job queue VALID", 30)
    jd = client.register_job_definition(
        jobDefinitionName="bench-true",
        type="container",
        platformCapabilities=["FARGATE"],
        containerProperties={
            "image": "public.ecr.aws/docker/library/busybox:latest",
            "command": ["true"],
            "resourceRequirements": [{"type": "VCPU", "value": "1"}, {"type": "MEMORY", "value": "2048"}],
            "executionRoleArn": "arn:aws:iam::123456789012:role/ecsTaskExecutionRole",  # required on FARGATE
        },
    )
    return Setup(ce["computeEnvironmentArn"], q["jobQueueArn"], jd["jobDefinitionArn"])


def _ce_status(client: Any, arn: str) -> str | None:
    ces = client.describe_compute_environments(computeEnvironments=[arn])["computeEnvironments"]
    return ces[0].get("status") if ces else None


def _jq_status(client: Any, arn: str) -> str | None:
    qs = client.describe_job_queues(jobQueues=[arn])["jobQueues"]
    return qs[0].get("status") if qs else None


def set_ce_state(client: Any, setup: Setup, state: str) -> None:
    client.update_compute_environment(computeEnvironment=setup.ce_arn, state=state)

    def applied() -> bool:
        ces = client.describe_compute_environments(computeEnvironments=[setup.ce_arn])["computeEnvironments"]
        return bool(ces) and ces[0].get("state") == state and ces[0].get("status") == "VALID"

    wait_for(applied, f"compute environment {state}", 30)


def wait_for(predicate: Any, what: str, timeout: float = WAIT_S, poll: float = 0.05) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise BenchTimeout(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(poll)


def chunks(items: Sequence[str], n: int = DESCRIBE_MAX) -> Iterable[Sequence[str]]:
    for i in range(0, len(items), n):
        yield items[i : i + n]


def wait_jobs(
    client: Any,
    job_ids: Sequence[str],
    done: frozenset[str] = TERMINAL,
    timeout: float = WAIT_S,
    poll: float = POLL_S,
) -> tuple[float, dict[str, dict[str, Any]]]:
    """Poll DescribeJobs (<= 100 ids a call, only the jobs not yet done) until every job's status is in `done`.
    Returns (perf_counter when the last one was seen done, {jobId: its description})."""
    remaining = list(dict.fromkeys(job_ids))
    seen: dict[str, dict[str, Any]] = {}
    deadline = time.monotonic() + timeout
    while True:
        for chunk in chunks(remaining):
            for job in client.describe_jobs(jobs=list(chunk))["jobs"]:
                if job["status"] in done:
                    seen[job["jobId"]] = job
        remaining = [j for j in remaining if j not in seen]
        if not remaining:
            return time.perf_counter(), seen
        if time.monotonic() > deadline:
            raise BenchTimeout(f"{len(remaining)} of {len(job_ids)} jobs not done after {timeout:.0f}s")
        time.sleep(poll)


def span_s(jobs: Iterable[dict[str, Any]]) -> float | None:
    """Server-side span: createdAt(min) to stoppedAt(max), in seconds."""
    jobs = list(jobs)
    created = [j["createdAt"] for j in jobs if j.get("createdAt") is not None]
    stopped = [j["stoppedAt"] for j in jobs if j.get("stoppedAt") is not None]
    if not created or not stopped:
        return None
    return round(float(max(stopped) - min(created)) / 1000.0, 3)


def percentile(values: Sequence[float], p: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(values)
    if not ordered:
        return math.nan
    k = max(0, math.ceil(p / 100.0 * len(ordered)) - 1)
    return ordered[k]


def failed_count(jobs: Iterable[dict[str, Any]]) -> int:
    return sum(1 for j in jobs if j["status"] == "FAILED")
