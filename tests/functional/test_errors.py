"""The error protocol (spec §1.2) and the server's own model checks, which botocore would normally do first.

botocore validates types and required members before it sends, so those checks are exercised with raw HTTP here:
any client can reach the server, and the server must not trust it.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from chalicelib.control.context import Services
from chalicelib.runtime import plane
from chalicelib.runtime.local import LocalRuntime
from chalicelib.store.repository import Repository
from tests.functional.builders import (
    BatchClient,
    assert_client_error,
    describe_ce,
    ec2_resources,
    fargate_resources,
    make_fargate_ce,
    make_jd,
    make_policy,
    make_queue,
    make_unmanaged_ce,
    nothing_written,
    raw_operation,
    raw_request,
    time_limit_action,
)

CE = {"computeEnvironmentName": "new", "type": "MANAGED", "computeResources": fargate_resources()}
JQ = {"jobQueueName": "new", "priority": 1, "computeEnvironmentOrder": [{"order": 1, "computeEnvironment": "ce"}]}
JD = {"jobDefinitionName": "new", "type": "container", "containerProperties": {"image": "busybox"}}
SP = {"name": "new", "fairsharePolicy": {"shareDistribution": [{"shareIdentifier": "a", "weightFactor": 1.0}]}}


def _with(base: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    """A deep copy of `base` with the member at dotted `path` set to `value` (or removed if value is ...)."""
    result: dict[str, Any] = json.loads(json.dumps(base))
    *parents, last = path.split(".")
    node: Any = result
    for part in parents:
        node = node[int(part)] if isinstance(node, list) else node[part]
    if value is ...:
        del node[last]
    elif isinstance(node, list):
        node[int(last)] = value
    else:
        node[last] = value
    return result


MODEL_VIOLATIONS = [
    # required members, top level and nested
    pytest.param("CreateComputeEnvironment", _with(CE, "type", ...), "type is required", id="ce-type-missing"),
    pytest.param(
        "CreateComputeEnvironment",
        _with(CE, "computeEnvironmentName", ...),
        "computeEnvironmentName is required",
        id="ce-name-missing",
    ),
    pytest.param("CreateComputeEnvironment", _with(CE, "type", None), "type is required", id="ce-type-null-is-missing"),
    pytest.param(
        "CreateComputeEnvironment",
        _with(CE, "computeResources.maxvCpus", ...),
        "computeResources.maxvCpus is required",
        id="ce-maxvcpus-missing",
    ),
    pytest.param(
        "CreateComputeEnvironment",
        _with(CE, "computeResources.type", ...),
        "computeResources.type is required",
        id="ce-resource-type-missing",
    ),
    pytest.param("DeleteComputeEnvironment", {}, "computeEnvironment is required", id="delete-ce-empty-body"),
    pytest.param("CreateJobQueue", _with(JQ, "priority", ...), "priority is required", id="jq-priority-missing"),
    pytest.param(
        "CreateJobQueue",
        _with(JQ, "computeEnvironmentOrder.0.computeEnvironment", ...),
        "computeEnvironmentOrder[0].computeEnvironment is required",
        id="jq-order-ce-missing",
    ),
    pytest.param(
        "CreateJobQueue",
        {**JQ, "jobStateTimeLimitActions": [_with(time_limit_action(), "reason", ...)]},
        "jobStateTimeLimitActions[0].reason is required",
        id="jq-time-limit-reason-missing",
    ),
    pytest.param("RegisterJobDefinition", _with(JD, "type", ...), "type is required", id="jd-type-missing"),
    pytest.param("CreateSchedulingPolicy", _with(SP, "name", ...), "name is required", id="sp-name-missing"),
    pytest.param(
        "CreateSchedulingPolicy",
        _with(SP, "fairsharePolicy.shareDistribution.0.shareIdentifier", ...),
        "fairsharePolicy.shareDistribution[0].shareIdentifier is required",
        id="sp-share-identifier-missing",
    ),
    pytest.param("UpdateSchedulingPolicy", {}, "arn is required", id="update-sp-empty-body"),
    pytest.param("DescribeSchedulingPolicies", {}, "arns is required", id="describe-sp-no-arns"),
    # types
    pytest.param(
        "CreateComputeEnvironment",
        _with(CE, "computeEnvironmentName", 5),
        "computeEnvironmentName must be a string",
        id="string-got-int",
    ),
    pytest.param(
        "CreateComputeEnvironment",
        _with(CE, "computeResources.maxvCpus", "4"),
        "computeResources.maxvCpus must be an integer",
        id="int-got-string",
    ),
    pytest.param(
        "CreateComputeEnvironment",
        _with(CE, "computeResources.maxvCpus", True),
        "computeResources.maxvCpus must be an integer",
        id="int-got-bool",
    ),
    pytest.param(
        "CreateComputeEnvironment",
        _with(CE, "computeResources.maxvCpus", 4.5),
        "computeResources.maxvCpus must be an integer",
        id="int-got-float",
    ),
    pytest.param(
        "CreateComputeEnvironment", _with(CE, "computeResources", []), "computeResources must be an object", id="struct"
    ),
    pytest.param(
        "CreateComputeEnvironment",
        _with(CE, "computeResources.subnets", "subnet-1"),
        "computeResources.subnets must be a list",
        id="list-got-string",
    ),
    pytest.param(
        "CreateComputeEnvironment",
        _with(CE, "computeResources.subnets", ["subnet-1", 2]),
        "computeResources.subnets[1] must be a string",
        id="list-element",
    ),
    pytest.param("CreateComputeEnvironment", {**CE, "tags": ["a"]}, "tags must be an object", id="map-got-list"),
    pytest.param("CreateComputeEnvironment", {**CE, "tags": {"k": 1}}, "tags['k'] must be a string", id="map-value"),
    pytest.param("CreateComputeEnvironment", {**CE, "tags": {"k": None}}, "tags['k'] must be a string", id="map-null"),
    pytest.param(
        "CreateJobQueue",
        _with(JQ, "computeEnvironmentOrder.0.order", "1"),
        "computeEnvironmentOrder[0].order must be an integer",
        id="nested-list-struct-int",
    ),
    pytest.param(
        "CreateJobQueue",
        _with(JQ, "computeEnvironmentOrder.0", None),
        "computeEnvironmentOrder[0] must be an object",
        id="list-null-element",
    ),
    pytest.param(
        "RegisterJobDefinition",
        _with(JD, "containerProperties.command", "echo hi"),
        "containerProperties.command must be a list",
        id="command-string",
    ),
    pytest.param(
        "RegisterJobDefinition",
        _with(JD, "containerProperties.privileged", "yes"),
        "containerProperties.privileged must be a boolean",
        id="bool-got-string",
    ),
    pytest.param(
        "RegisterJobDefinition", {**JD, "propagateTags": 1}, "propagateTags must be a boolean", id="bool-got-int"
    ),
    pytest.param(
        "RegisterJobDefinition", {**JD, "parameters": {"p": 1}}, "parameters['p'] must be a string", id="params"
    ),
    pytest.param(
        "CreateSchedulingPolicy",
        _with(SP, "fairsharePolicy.shareDistribution.0.weightFactor", "1"),
        "fairsharePolicy.shareDistribution[0].weightFactor must be a number",
        id="float-got-string",
    ),
    pytest.param(
        "CreateSchedulingPolicy",
        _with(SP, "fairsharePolicy.shareDistribution.0.weightFactor", False),
        "fairsharePolicy.shareDistribution[0].weightFactor must be a number",
        id="float-got-bool",
    ),
    pytest.param(
        "DescribeComputeEnvironments", {"maxResults": "10"}, "maxResults must be an integer", id="max-results-string"
    ),
    pytest.param(
        "DescribeComputeEnvironments", {"computeEnvironments": "ce"}, "computeEnvironments must be a list", id="refs"
    ),
    # enums
    pytest.param(
        "CreateComputeEnvironment", _with(CE, "type", "BOGUS"), "type must be one of MANAGED, UNMANAGED", id="ce-type"
    ),
    pytest.param(
        "CreateComputeEnvironment", _with(CE, "type", "managed"), "type must be one of", id="enums-are-case-sensitive"
    ),
    pytest.param("CreateComputeEnvironment", {**CE, "state": "PAUSED"}, "state must be one of", id="ce-state"),
    pytest.param(
        "CreateComputeEnvironment",
        _with(CE, "computeResources.type", "GPU"),
        "computeResources.type must be one of",
        id="resource-type",
    ),
    pytest.param(
        "CreateComputeEnvironment",
        {**CE, "computeResources": ec2_resources(allocationStrategy="CHEAPEST")},
        "computeResources.allocationStrategy must be one of",
        id="allocation-strategy",
    ),
    pytest.param("CreateJobQueue", {**JQ, "state": "OFF"}, "state must be one of", id="jq-state"),
    pytest.param("CreateJobQueue", {**JQ, "jobQueueType": "K8S"}, "jobQueueType must be one of", id="jq-type"),
    pytest.param(
        "CreateJobQueue",
        {**JQ, "jobStateTimeLimitActions": [time_limit_action(state="STARTING")]},
        "jobStateTimeLimitActions[0].state must be one of RUNNABLE",
        id="time-limit-state",
    ),
    pytest.param(
        "CreateJobQueue",
        {**JQ, "jobStateTimeLimitActions": [time_limit_action(action="PAUSE")]},
        "jobStateTimeLimitActions[0].action must be one of",
        id="time-limit-action",
    ),
    pytest.param("RegisterJobDefinition", _with(JD, "type", "docker"), "type must be one of", id="jd-type"),
    pytest.param(
        "RegisterJobDefinition",
        {**JD, "platformCapabilities": ["LAMBDA"]},
        "platformCapabilities[0] must be one of",
        id="platform",
    ),
    pytest.param(
        "RegisterJobDefinition",
        _with(JD, "containerProperties.resourceRequirements", [{"type": "DISK", "value": "1"}]),
        "containerProperties.resourceRequirements[0].type must be one of",
        id="resource-requirement-type",
    ),
    # model bounds
    pytest.param("CreateComputeEnvironment", {**CE, "tags": {}}, "tags must have at least 1", id="tags-0"),
    pytest.param(
        "CreateComputeEnvironment",
        {**CE, "tags": {f"k{i}": "v" for i in range(51)}},
        "tags must have at most 50",
        id="tags-51",
    ),
    pytest.param("CreateComputeEnvironment", {**CE, "tags": {"k" * 129: "v"}}, "tags key", id="tag-key-129"),
    pytest.param(
        "CreateComputeEnvironment",
        {**CE, "tags": {"k": "v" * 257}},
        "tags['k'] must have at most 256 characters",
        id="tag-value-257",
    ),
    pytest.param(
        "UpdateComputeEnvironment",
        {"computeEnvironment": "ce", "updatePolicy": {"jobExecutionTimeoutMinutes": 0}},
        "updatePolicy.jobExecutionTimeoutMinutes must be at least 1",
        id="long-below-min",
    ),
    pytest.param(
        "UpdateComputeEnvironment",
        {"computeEnvironment": "ce", "updatePolicy": {"jobExecutionTimeoutMinutes": 7201}},
        "updatePolicy.jobExecutionTimeoutMinutes must be at most 7200",
        id="long-above-max",
    ),
    pytest.param(
        "UpdateComputeEnvironment",
        {"computeEnvironment": "ce", "computeResources": {"allocationStrategy": "BEST_FIT"}},
        "computeResources.allocationStrategy must be one of",
        id="update-strategy-enum",
    ),
]


@pytest.mark.parametrize(("operation", "body", "message"), MODEL_VIOLATIONS)
def test_model_violations_are_client_exceptions_naming_the_field(
    batch: BatchClient, endpoint: str, operation: str, body: dict[str, Any], message: str
) -> None:
    # GIVEN resources the requests refer to
    make_fargate_ce(batch, "ce")
    # WHEN a request breaking the wire model is sent as raw JSON
    with nothing_written(batch):
        resp = raw_operation(endpoint, operation, body)
    # THEN it is the ClientException wire form naming the field, and nothing was written
    assert_client_error(resp, message)


def test_a_semantic_error_has_the_same_wire_form(batch: BatchClient, endpoint: str) -> None:
    resp = raw_operation(endpoint, "CreateComputeEnvironment", {"computeEnvironmentName": "a b", "type": "UNMANAGED"})
    assert_client_error(resp, "computeEnvironmentName")


def test_boto3_sees_the_status_code_and_request_id(batch: BatchClient) -> None:
    with pytest.raises(batch.exceptions.ClientException) as info:
        batch.delete_compute_environment(computeEnvironment="missing")
    meta = info.value.response["ResponseMetadata"]
    assert meta["HTTPStatusCode"] == 400
    assert meta["RequestId"] == meta["HTTPHeaders"]["x-amzn-requestid"]
    assert info.value.response["Error"]["Code"] == "ClientException"


def test_every_response_has_a_fresh_request_id(batch: BatchClient) -> None:
    ids = {batch.describe_job_queues()["ResponseMetadata"]["RequestId"] for _ in range(3)}
    assert len(ids) == 3


def test_operations_without_output_return_an_empty_object(batch: BatchClient, endpoint: str) -> None:
    make_unmanaged_ce(batch, "ce")
    batch.update_compute_environment(computeEnvironment="ce", state="DISABLED")
    resp = raw_operation(endpoint, "DeleteComputeEnvironment", {"computeEnvironment": "ce"})
    assert (resp.status, resp.body, resp.header("Content-Type")) == (200, {}, "application/json")
    assert resp.header("x-amzn-RequestId")


# -- bodies and paths ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        pytest.param(b"{not json", "JSON", id="invalid-json"),
        pytest.param(b'{"computeEnvironmentName": "x", ', "JSON", id="truncated"),
        pytest.param(b"\xff\xfe", "JSON", id="not-utf8"),
        pytest.param(b"[1, 2]", "JSON object", id="a-list"),
        pytest.param(b'"text"', "JSON object", id="a-string"),
        pytest.param(b"null", "JSON object", id="null"),
    ],
)
def test_a_body_that_is_not_a_json_object_is_rejected(
    batch: BatchClient, endpoint: str, body: bytes, fragment: str
) -> None:
    with nothing_written(batch):
        resp = raw_operation(endpoint, "CreateComputeEnvironment", body)
    assert_client_error(resp, fragment)


def test_an_empty_body_is_an_empty_request(endpoint: str) -> None:
    resp = raw_operation(endpoint, "DescribeComputeEnvironments", b"")
    assert (resp.status, resp.body["computeEnvironments"], resp.body.get("nextToken")) == (200, [], None)


def test_an_unknown_operation_path_is_a_client_exception(endpoint: str) -> None:
    assert_client_error(raw_request(endpoint, "POST", "/v1/launchrockets", {}), "/v1/launchrockets")


def test_an_operation_batchplane_does_not_implement_is_a_client_exception(batch: BatchClient) -> None:
    with pytest.raises(batch.exceptions.ClientException, match="not supported"):
        batch.create_service_environment(
            serviceEnvironmentName="sagemaker",
            serviceEnvironmentType="SAGEMAKER_TRAINING",
            capacityLimits=[{"maxCapacity": 1, "capacityUnit": "NUM_INSTANCES"}],
        )


def test_unknown_members_are_ignored(batch: BatchClient, endpoint: str) -> None:
    resp = raw_operation(endpoint, "CreateComputeEnvironment", {**CE, "futureMember": {"x": 1}})
    assert resp.status == 200
    assert describe_ce(batch, "new") is not None


def test_null_members_are_treated_as_absent(batch: BatchClient, endpoint: str) -> None:
    # GIVEN an UNMANAGED CE
    make_unmanaged_ce(batch, "ce", unmanagedvCpus=4)
    # WHEN updates carry JSON nulls THEN nothing changes (null is "not given", not a value)
    resp = raw_operation(endpoint, "UpdateComputeEnvironment", {"computeEnvironment": "ce", "unmanagedvCpus": None})
    assert resp.status == 200
    assert (describe_ce(batch, "ce") or {})["unmanagedvCpus"] == 4
    # WHEN a create carries state null THEN the default applies
    created = raw_operation(
        endpoint,
        "CreateComputeEnvironment",
        {**CE, "state": None, "computeResources": {**fargate_resources(), "securityGroupIds": ["sg"]}},
    )
    assert created.status == 200
    assert (describe_ce(batch, "new") or {})["state"] == "ENABLED"


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity"])
def test_non_finite_numbers_are_rejected(batch: BatchClient, endpoint: str, literal: str) -> None:
    share = '{"shareIdentifier": "a", "weightFactor": ' + literal + "}"
    body = ('{"name": "p", "fairsharePolicy": {"shareDistribution": [' + share + "]}}").encode()
    with nothing_written(batch):
        resp = raw_operation(endpoint, "CreateSchedulingPolicy", body)
    assert_client_error(resp, "fairsharePolicy.shareDistribution[0].weightFactor")


def test_other_json_content_types_are_accepted(endpoint: str) -> None:
    resp = raw_request(
        endpoint, "POST", "/v1/describejobqueues", b"{}", headers={"Content-Type": "application/x-amz-json-1.1"}
    )
    assert (resp.status, resp.body["jobQueues"]) == (200, [])


# -- ServerException -------------------------------------------------------------------------------------------


class _BrokenItemStore:
    """An ItemStore whose every method fails as a broken disk or network would."""

    def __getattr__(self, name: str) -> Any:
        def fail(*args: Any, **kwargs: Any) -> Any:
            raise RuntimeError("secret internal detail: disk on fire")

        return fail


@pytest.fixture
def broken_store(runtime: LocalRuntime) -> Iterator[None]:
    plane.serve_local(Services(repo=Repository(_BrokenItemStore()), settings=runtime.services.settings))
    try:
        yield
    finally:
        plane.serve_local(runtime.services)


def test_a_store_failure_is_a_server_exception(endpoint: str, broken_store: None) -> None:
    resp = raw_operation(endpoint, "DescribeComputeEnvironments", {})
    assert resp.status == 500
    assert resp.header("x-amzn-ErrorType") == "ServerException"
    request_id = resp.header("x-amzn-RequestId")
    assert request_id
    assert resp.body["__type"] == "ServerException"
    assert request_id in resp.body["message"]
    assert "disk on fire" not in resp.body["message"]  # internals stay in the log


def test_boto3_raises_server_exception_without_retrying(batch: BatchClient, broken_store: None) -> None:
    with pytest.raises(batch.exceptions.ServerException) as info:
        batch.create_scheduling_policy(name="p")
    assert info.value.response["ResponseMetadata"]["HTTPStatusCode"] == 500
    assert info.value.response["ResponseMetadata"]["RetryAttempts"] == 0


def test_the_service_recovers_when_the_store_does(batch: BatchClient, runtime: LocalRuntime) -> None:
    make_policy(batch, "before")
    plane.serve_local(Services(repo=Repository(_BrokenItemStore()), settings=runtime.services.settings))
    try:
        with pytest.raises(batch.exceptions.ServerException):
            make_policy(batch, "during")
    finally:
        plane.serve_local(runtime.services)
    make_policy(batch, "after")
    assert [p["arn"].rsplit("/", 1)[1] for p in batch.list_scheduling_policies()["schedulingPolicies"]] == [
        "after",
        "before",
    ]


# -- all the resource kinds at once: a failed request in a busy account -----------------------------------------


def test_a_rejected_request_leaves_a_populated_account_untouched(batch: BatchClient) -> None:
    make_fargate_ce(batch, "ce", tags={"k": "v"})
    make_queue(batch, "q", ["ce"], schedulingPolicyArn=make_policy(batch, "p"))
    make_jd(batch, "jd")
    with nothing_written(batch), pytest.raises(batch.exceptions.ClientException):
        batch.create_job_queue(
            jobQueueName="q2", priority=1, computeEnvironmentOrder=[{"order": 1, "computeEnvironment": "nope"}]
        )
