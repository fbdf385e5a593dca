"""Builders and probes for the functional suite: small functions over a stock boto3 `batch` client.

Each builder creates one resource with sensible defaults and returns its ARN (or the full response for job
definitions); keyword overrides are passed straight through, so a test states only what it is about.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import pytest

BatchClient = Any  # botocore builds the client class at runtime; there is no importable type for it

ACCOUNT = "123456789012"
REGION = "us-east-1"
IMAGE = "public.ecr.aws/docker/library/busybox:latest"
EXEC_ROLE = f"arn:aws:iam::{ACCOUNT}:role/ecsTaskExecutionRole"


def arn(kind: str, name: str, region: str = REGION) -> str:
    return f"arn:aws:batch:{region}:{ACCOUNT}:{kind}/{name}"


# -- compute environments --------------------------------------------------------------------------------------


def fargate_resources(max_vcpus: int = 4, *, spot: bool = False, **overrides: Any) -> dict[str, Any]:
    res: dict[str, Any] = {
        "type": "FARGATE_SPOT" if spot else "FARGATE",
        "maxvCpus": max_vcpus,
        "subnets": ["subnet-0a1b2c3d"],
        "securityGroupIds": ["sg-0a1b2c3d"],
    }
    res.update(overrides)
    return res


def ec2_resources(max_vcpus: int = 16, *, spot: bool = False, **overrides: Any) -> dict[str, Any]:
    res: dict[str, Any] = {
        "type": "SPOT" if spot else "EC2",
        "maxvCpus": max_vcpus,
        "subnets": ["subnet-0a1b2c3d"],
        "securityGroupIds": ["sg-0a1b2c3d"],
        "instanceTypes": ["optimal"],
        "instanceRole": "ecsInstanceRole",
    }
    if spot:
        res["allocationStrategy"] = "SPOT_CAPACITY_OPTIMIZED"
    res.update(overrides)
    return res


def make_ce(batch: BatchClient, name: str, compute_resources: Mapping[str, Any], **kwargs: Any) -> str:
    resp = batch.create_compute_environment(
        computeEnvironmentName=name, type="MANAGED", computeResources=dict(compute_resources), **kwargs
    )
    return str(resp["computeEnvironmentArn"])


def make_fargate_ce(batch: BatchClient, name: str, max_vcpus: int = 4, *, spot: bool = False, **kwargs: Any) -> str:
    return make_ce(batch, name, fargate_resources(max_vcpus, spot=spot), **kwargs)


def make_ec2_ce(
    batch: BatchClient, name: str, max_vcpus: int = 16, *, spot: bool = False, resources: Any = None, **kwargs: Any
) -> str:
    return make_ce(batch, name, ec2_resources(max_vcpus, spot=spot, **(resources or {})), **kwargs)


def make_unmanaged_ce(batch: BatchClient, name: str, **kwargs: Any) -> str:
    resp = batch.create_compute_environment(computeEnvironmentName=name, type="UNMANAGED", **kwargs)
    return str(resp["computeEnvironmentArn"])


def describe_ce(batch: BatchClient, ref: str) -> dict[str, Any] | None:
    found = batch.describe_compute_environments(computeEnvironments=[ref])["computeEnvironments"]
    assert len(found) <= 1
    return dict(found[0]) if found else None


def disable_ce(batch: BatchClient, ref: str) -> None:
    batch.update_compute_environment(computeEnvironment=ref, state="DISABLED")


# -- job queues ------------------------------------------------------------------------------------------------


def ce_order(ces: Sequence[str]) -> list[dict[str, Any]]:
    """computeEnvironmentOrder for `ces` (names or ARNs), tried in the order given."""
    return [{"order": i, "computeEnvironment": ce} for i, ce in enumerate(ces, start=1)]


def make_queue(batch: BatchClient, name: str, ces: Sequence[str], priority: int = 1, **kwargs: Any) -> str:
    resp = batch.create_job_queue(jobQueueName=name, priority=priority, computeEnvironmentOrder=ce_order(ces), **kwargs)
    return str(resp["jobQueueArn"])


def describe_queue(batch: BatchClient, ref: str) -> dict[str, Any] | None:
    found = batch.describe_job_queues(jobQueues=[ref])["jobQueues"]
    assert len(found) <= 1
    return dict(found[0]) if found else None


def disable_queue(batch: BatchClient, ref: str) -> None:
    batch.update_job_queue(jobQueue=ref, state="DISABLED")


def time_limit_action(max_time_seconds: int = 600, **overrides: Any) -> dict[str, Any]:
    action: dict[str, Any] = {
        "reason": "CAPACITY:INSUFFICIENT_INSTANCE_CAPACITY",
        "state": "RUNNABLE",
        "maxTimeSeconds": max_time_seconds,
        "action": "CANCEL",
    }
    action.update(overrides)
    return action


# -- job definitions -------------------------------------------------------------------------------------------


def container(**overrides: Any) -> dict[str, Any]:
    props: dict[str, Any] = {
        "image": IMAGE,
        "command": ["echo", "hello"],
        "resourceRequirements": [{"type": "VCPU", "value": "1"}, {"type": "MEMORY", "value": "2048"}],
        "executionRoleArn": EXEC_ROLE,
    }
    props.update(overrides)
    return props


def make_jd(batch: BatchClient, name: str, **overrides: Any) -> dict[str, Any]:
    """Register a container job definition; returns {jobDefinitionName, jobDefinitionArn, revision}.

    FARGATE by default, as the builders' compute environments are (AWS runs a definition without
    platformCapabilities on EC2 only). An override of None removes that member (e.g. containerProperties=None for a
    multinode definition, platformCapabilities=None for AWS's EC2 default).
    """
    request: dict[str, Any] = {
        "jobDefinitionName": name,
        "type": "container",
        "containerProperties": container(),
        "platformCapabilities": ["FARGATE"],
    }
    request.update(overrides)
    resp = batch.register_job_definition(**{k: v for k, v in request.items() if v is not None})
    return {k: resp[k] for k in ("jobDefinitionName", "jobDefinitionArn", "revision")}


def describe_jds(batch: BatchClient, **kwargs: Any) -> list[dict[str, Any]]:
    return [dict(jd) for jd in batch.describe_job_definitions(**kwargs)["jobDefinitions"]]


# -- scheduling policies ---------------------------------------------------------------------------------------


def fairshare(*shares: tuple[str, float], decay: int = 0, reservation: int = 0) -> dict[str, Any]:
    return {
        "shareDecaySeconds": decay,
        "computeReservation": reservation,
        "shareDistribution": [{"shareIdentifier": s, "weightFactor": w} for s, w in shares],
    }


def make_policy(batch: BatchClient, name: str, *shares: tuple[str, float], **kwargs: Any) -> str:
    policy = fairshare(*(shares or (("teamA", 1.0),)))
    resp = batch.create_scheduling_policy(name=name, fairsharePolicy=policy, **kwargs)
    return str(resp["arn"])


def describe_policy(batch: BatchClient, ref: str) -> dict[str, Any] | None:
    found = batch.describe_scheduling_policies(arns=[ref])["schedulingPolicies"]
    assert len(found) <= 1
    return dict(found[0]) if found else None


# -- the standard: a rejected request writes nothing -----------------------------------------------------------


def snapshot(batch: BatchClient) -> dict[str, Any]:
    """Everything the API can show: every resource as described, and every resource's tags."""
    ces = batch.describe_compute_environments()["computeEnvironments"]
    jqs = batch.describe_job_queues()["jobQueues"]
    jds = batch.describe_job_definitions()["jobDefinitions"]
    sp_arns = [p["arn"] for p in batch.list_scheduling_policies()["schedulingPolicies"]]
    sps = batch.describe_scheduling_policies(arns=sp_arns)["schedulingPolicies"] if sp_arns else []
    arns = (
        [c["computeEnvironmentArn"] for c in ces]
        + [q["jobQueueArn"] for q in jqs]
        + [d["jobDefinitionArn"] for d in jds]
        + sp_arns
    )
    tags = {a: batch.list_tags_for_resource(resourceArn=a)["tags"] for a in arns}
    return {"ces": ces, "jqs": jqs, "jds": jds, "sps": sps, "tags": tags}


@contextmanager
def nothing_written(batch: BatchClient) -> Iterator[None]:
    """Asserts that the block (a rejected request) left every resource exactly as it was."""
    before = snapshot(batch)
    yield
    assert snapshot(batch) == before


# -- raw HTTP, for what botocore would refuse to send ----------------------------------------------------------


@dataclass(frozen=True)
class RawResponse:
    status: int
    headers: dict[str, str]
    body: Any

    def header(self, name: str) -> str | None:
        return next((v for k, v in self.headers.items() if k.lower() == name.lower()), None)


def raw_request(
    endpoint: str,
    method: str,
    path: str,
    body: bytes | Mapping[str, Any] | None = None,
    headers: Mapping[str, str] | None = None,
) -> RawResponse:
    data = body if isinstance(body, bytes) or body is None else json.dumps(body).encode()
    req = urllib.request.Request(
        f"{endpoint}{path}",
        data=data,
        method=method,
        # X-Amz-Date: as every SDK sends; the local server refuses an unsigned change without it (origin_guard)
        headers={"Content-Type": "application/json", "X-Amz-Date": "20260101T000000Z", **(headers or {})},
    )
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            status, got_headers, payload = resp.status, dict(resp.headers.items()), resp.read()
    except urllib.error.HTTPError as err:
        status, got_headers, payload = err.code, dict(err.headers.items()), err.read()
    return RawResponse(status, got_headers, json.loads(payload) if payload else None)


def raw_operation(endpoint: str, operation: str, body: bytes | Mapping[str, Any]) -> RawResponse:
    """POST /v1/<operation> with `body` as JSON (or as the given bytes)."""
    return raw_request(endpoint, "POST", f"/v1/{operation.lower()}", body)


def assert_client_error(resp: RawResponse, *fragments: str) -> str:
    """The wire form of a ClientException (spec §1.2); returns the message, which must contain `fragments`."""
    assert resp.status == 400, resp
    assert resp.header("x-amzn-ErrorType") == "ClientException"
    assert resp.header("x-amzn-RequestId")
    assert resp.header("Content-Type") == "application/json"
    assert set(resp.body) == {"__type", "message"}
    assert resp.body["__type"] == "ClientException"
    message = str(resp.body["message"])
    for fragment in fragments:
        assert fragment in message, (fragment, message)
    return message


def without(d: Mapping[str, Any], *keys: str) -> dict[str, Any]:
    return {k: v for k, v in d.items() if k not in keys}


def assert_rejected(batch: BatchClient, call: Callable[[], Any], *fragments: str) -> str:
    """`call` raises ClientException whose message contains every fragment, and nothing was written."""
    with nothing_written(batch), pytest.raises(batch.exceptions.ClientException) as info:
        call()
    message = str(info.value.response["Error"]["Message"])
    for fragment in fragments:
        assert fragment in message, (fragment, message)
    return message


def wait_for(check: Callable[[], Any], what: str, timeout: float = 30.0, poll: float = 0.02) -> Any:
    """The first truthy result of `check`, polled every `poll` seconds; AssertionError after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if result := check():
            return result
        time.sleep(poll)
    raise AssertionError(f"timed out waiting for {what}")
