"""chalicelib/api/wire.py (requests against the Batch model) and chalicelib/api/pagination.py (tokens, maxResults)."""

from __future__ import annotations

import base64
import copy
import json
import re
from typing import Any

import pytest

from chalicelib.api import pagination, wire
from chalicelib.domain.errors import InvalidRequest

FARGATE = {"type": "FARGATE", "maxvCpus": 4, "subnets": ["s"], "securityGroupIds": ["sg"]}
CE: dict[str, Any] = {"computeEnvironmentName": "ce", "type": "MANAGED", "computeResources": FARGATE}


def ce(**changes: Any) -> dict[str, Any]:
    body = copy.deepcopy(CE)
    body.update(changes)
    return body


def resources(**changes: Any) -> dict[str, Any]:
    return ce(computeResources={**FARGATE, **changes})


def eks_capabilities(add: list[Any]) -> dict[str, Any]:
    container = {"image": "busybox", "securityContext": {"capabilities": {"add": add}}}
    return {
        "jobDefinitionName": "jd",
        "type": "container",
        "eksProperties": {"podProperties": {"containers": [container]}},
    }


def rejects(operation: str, body: Any, message: str) -> None:
    with pytest.raises(InvalidRequest) as info:
        wire.validate_request(operation, body)
    assert str(info.value) == message


# -- the model and routing -------------------------------------------------------------------------------------


def test_every_operation_has_a_route_and_the_tag_operations_use_the_tags_path() -> None:
    routes = wire.operations_by_path()
    assert routes[("POST", "/v1/createcomputeenvironment")] == "CreateComputeEnvironment"
    assert routes[("POST", "/v1/describejobdefinitions")] == "DescribeJobDefinitions"
    assert routes[("GET", "/v1/tags/{resourceArn}")] == "ListTagsForResource"
    assert len(set(routes.values())) == len(wire.model()["operations"])


def test_input_shape_names() -> None:
    assert wire.input_shape("CreateJobQueue") == "CreateJobQueueRequest"
    assert wire.input_shape("TagResource") == "TagResourceRequest"


# -- what passes -----------------------------------------------------------------------------------------------


def test_a_valid_request_is_returned_as_given() -> None:
    body = ce(tags={"k": "v"}, state="ENABLED")
    assert wire.validate_request("CreateComputeEnvironment", copy.deepcopy(body)) == body


def test_a_missing_body_is_an_empty_request() -> None:
    assert wire.validate_request("DescribeJobQueues", None) == {}


def test_unknown_members_are_dropped_at_every_level() -> None:
    # AWS ignores members its shapes do not define; batchplane drops them so nothing stores or echoes them.
    assert wire.validate_request("DescribeJobQueues", {"future": [1, {"x": None}]}) == {}
    body = ce(computeResources={**FARGATE, "gpuCount": 4, "x": {"y": 1}}, extra="z")
    assert wire.validate_request("CreateComputeEnvironment", body) == CE


@pytest.mark.parametrize(
    ("operation", "body", "message"),
    [
        ("CreateJobQueue", {"jobQueueName": "q", "priority": 2**31}, "priority must be at most 2147483647"),
        ("CreateJobQueue", {"jobQueueName": "q", "priority": 2**53 + 1}, "priority must be at most 2147483647"),
        ("CreateJobQueue", {"jobQueueName": "q", "priority": -(2**31) - 1}, "priority must be at least -2147483648"),
        (
            "RegisterJobDefinition",
            {"jobDefinitionName": "d", "type": "container", "timeout": {"attemptDurationSeconds": 2**70}},
            "timeout.attemptDurationSeconds must be at most 2147483647",
        ),
        (
            "UpdateComputeEnvironment",
            {"computeEnvironment": "c", "updatePolicy": {"jobExecutionTimeoutMinutes": 2**63}},
            "updatePolicy.jobExecutionTimeoutMinutes must be at most 7200",
        ),
        (
            "CreateSchedulingPolicy",
            {"name": "p", "fairsharePolicy": {"shareDistribution": [{"shareIdentifier": "a", "weightFactor": 1e400}]}},
            "fairsharePolicy.shareDistribution[0].weightFactor must be a number",
        ),
    ],
)
def test_every_number_is_bounded_by_its_model_type(operation: str, body: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidRequest) as err:
        wire.validate_request(operation, body)
    assert str(err.value) == message


def test_null_members_are_dropped_at_every_level_of_structures() -> None:
    body = ce(state=None, computeResources={**FARGATE, "minvCpus": None, "scalingPolicy": None})
    assert wire.validate_request("CreateComputeEnvironment", body) == CE


def test_numbers_accept_integers_and_floats_accept_both() -> None:
    body = {"name": "p", "fairsharePolicy": {"shareDistribution": [{"shareIdentifier": "a", "weightFactor": 2}]}}
    wire.validate_request("CreateSchedulingPolicy", body)
    body["fairsharePolicy"]["shareDistribution"][0]["weightFactor"] = 0.5
    wire.validate_request("CreateSchedulingPolicy", body)


def test_uri_and_query_members_are_left_to_the_gateway() -> None:
    # resourceArn comes from the path and tagKeys from the query string; the gateway fills them in.
    assert wire.validate_request("UntagResource", {"resourceArn": "arn", "tagKeys": []})["tagKeys"] == []


# -- required members ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("operation", "body", "message"),
    [
        ("CreateComputeEnvironment", {"type": "MANAGED"}, "computeEnvironmentName is required"),
        ("CreateComputeEnvironment", ce(type=None), "type is required"),
        ("CreateComputeEnvironment", ce(computeResources={"type": "FARGATE"}), "computeResources.maxvCpus is required"),
        (
            "CreateJobQueue",
            {"jobQueueName": "q", "priority": 1, "computeEnvironmentOrder": [{"order": 1}]},
            "computeEnvironmentOrder[0].computeEnvironment is required",
        ),
        ("DescribeSchedulingPolicies", {}, "arns is required"),
        ("TagResource", {"resourceArn": "arn"}, "tags is required"),
    ],
)
def test_required_members_are_named_with_their_path(operation: str, body: dict[str, Any], message: str) -> None:
    rejects(operation, body, message)


# -- types -----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("operation", "body", "message"),
    [
        ("CreateComputeEnvironment", [CE], "The request body must be a JSON object"),
        ("CreateComputeEnvironment", ce(computeEnvironmentName=1), "computeEnvironmentName must be a string"),
        ("CreateComputeEnvironment", ce(computeEnvironmentName=True), "computeEnvironmentName must be a string"),
        ("CreateComputeEnvironment", resources(maxvCpus="4"), "computeResources.maxvCpus must be an integer"),
        ("CreateComputeEnvironment", resources(maxvCpus=True), "computeResources.maxvCpus must be an integer"),
        ("CreateComputeEnvironment", resources(maxvCpus=False), "computeResources.maxvCpus must be an integer"),
        ("CreateComputeEnvironment", resources(maxvCpus=4.0), "computeResources.maxvCpus must be an integer"),
        ("CreateComputeEnvironment", ce(computeResources="FARGATE"), "computeResources must be an object"),
        ("CreateComputeEnvironment", resources(subnets="s"), "computeResources.subnets must be a list"),
        ("CreateComputeEnvironment", resources(subnets=["s", None]), "computeResources.subnets[1] must be a string"),
        ("CreateComputeEnvironment", ce(tags=[]), "tags must be an object"),
        ("CreateComputeEnvironment", ce(tags={"k": 1}), "tags['k'] must be a string"),
        ("CreateJobQueue", {"jobQueueName": "q", "priority": True}, "priority must be an integer"),
        (
            "CreateJobQueue",
            {
                "jobQueueName": "q",
                "priority": 1,
                "computeEnvironmentOrder": [{"order": "1", "computeEnvironment": "c"}],
            },
            "computeEnvironmentOrder[0].order must be an integer",
        ),
        (
            "RegisterJobDefinition",
            {"jobDefinitionName": "jd", "type": "container", "propagateTags": 1},
            "propagateTags must be a boolean",
        ),
        (
            "CreateSchedulingPolicy",
            {"name": "p", "fairsharePolicy": {"shareDistribution": [{"shareIdentifier": "a", "weightFactor": True}]}},
            "fairsharePolicy.shareDistribution[0].weightFactor must be a number",
        ),
        (
            "CreateSchedulingPolicy",
            {"name": "p", "fairsharePolicy": {"shareDistribution": [{"shareIdentifier": "a", "weightFactor": "1"}]}},
            "fairsharePolicy.shareDistribution[0].weightFactor must be a number",
        ),
        (
            "RegisterJobDefinition",
            eks_capabilities(["NET_ADMIN", 7]),
            "eksProperties.podProperties.containers[0].securityContext.capabilities.add[1] must be a string",
        ),
    ],
)
def test_wrong_types_are_named_with_their_path(operation: str, body: Any, message: str) -> None:
    rejects(operation, body, message)


@pytest.mark.parametrize("number", [float("nan"), float("inf"), float("-inf")])
def test_non_finite_numbers_are_rejected(number: float) -> None:
    body = {"name": "p", "fairsharePolicy": {"shareDistribution": [{"shareIdentifier": "a", "weightFactor": number}]}}
    rejects("CreateSchedulingPolicy", body, "fairsharePolicy.shareDistribution[0].weightFactor must be a number")


# -- enums -----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("operation", "body", "message"),
    [
        ("CreateComputeEnvironment", ce(type="X"), "type must be one of MANAGED, UNMANAGED; got 'X'"),
        ("CreateComputeEnvironment", ce(type="managed"), "type must be one of MANAGED, UNMANAGED; got 'managed'"),
        ("CreateComputeEnvironment", ce(state="ON"), "state must be one of ENABLED, DISABLED; got 'ON'"),
        (
            "CreateComputeEnvironment",
            resources(type="LAMBDA"),
            "computeResources.type must be one of EC2, SPOT, FARGATE, FARGATE_SPOT, ECS_MANAGED_INSTANCES; "
            "got 'LAMBDA'",
        ),
        (
            "CreateJobQueue",
            {
                "jobQueueName": "q",
                "priority": 1,
                "jobStateTimeLimitActions": [
                    {"reason": "r", "state": "STARTING", "maxTimeSeconds": 600, "action": "CANCEL"}
                ],
            },
            "jobStateTimeLimitActions[0].state must be one of RUNNABLE; got 'STARTING'",
        ),
        (
            "RegisterJobDefinition",
            {"jobDefinitionName": "jd", "type": "container", "platformCapabilities": ["EC2", "LAMBDA"]},
            "platformCapabilities[1] must be one of EC2, FARGATE, MANAGED_INSTANCES; got 'LAMBDA'",
        ),
        (
            "RegisterJobDefinition",
            {
                "jobDefinitionName": "jd",
                "type": "container",
                "retryStrategy": {"evaluateOnExit": [{"action": "AGAIN"}]},
            },
            "retryStrategy.evaluateOnExit[0].action must be one of RETRY, EXIT; got 'AGAIN'",
        ),
    ],
)
def test_enum_values_are_checked(operation: str, body: dict[str, Any], message: str) -> None:
    rejects(operation, body, message)


@pytest.mark.parametrize("action", ["retry", "Exit", "RETRY"])
def test_retry_actions_are_not_case_sensitive(action: str) -> None:
    # The model documents EvaluateOnExit.action: "The values aren't case sensitive."
    body = {"jobDefinitionName": "jd", "type": "container", "retryStrategy": {"evaluateOnExit": [{"action": action}]}}
    assert wire.validate_request("RegisterJobDefinition", body) == body


# -- bounds from the model -------------------------------------------------------------------------------------


@pytest.mark.parametrize("count", [1, 50])
def test_tag_maps_of_1_to_50_entries_pass(count: int) -> None:
    wire.validate_request("TagResource", {"resourceArn": "a", "tags": {f"k{i}": "v" for i in range(count)}})


@pytest.mark.parametrize(
    ("tags", "message"),
    [
        ({}, "tags must have at least 1 entries"),
        ({f"k{i}": "v" for i in range(51)}, "tags must have at most 50 entries"),
        ({"": "v"}, "tags key '' must have at least 1 characters"),
        ({"k" * 129: "v"}, f"tags key {'k' * 129!r} must have at most 128 characters"),
        ({"k": "v" * 257}, "tags['k'] must have at most 256 characters"),
    ],
)
def test_tag_map_bounds(tags: dict[str, str], message: str) -> None:
    rejects("TagResource", {"resourceArn": "a", "tags": tags}, message)


def test_tag_key_and_value_at_their_maximum_pass() -> None:
    wire.validate_request("TagResource", {"resourceArn": "a", "tags": {"k" * 128: "v" * 256, "e": ""}})


@pytest.mark.parametrize(
    ("minutes", "message"),
    [
        (0, "updatePolicy.jobExecutionTimeoutMinutes must be at least 1"),
        (7201, "updatePolicy.jobExecutionTimeoutMinutes must be at most 7200"),
        (1, None),
        (7200, None),
    ],
)
def test_long_bounds(minutes: int, message: str | None) -> None:
    body = {"computeEnvironment": "ce", "updatePolicy": {"jobExecutionTimeoutMinutes": minutes}}
    if message is None:
        wire.validate_request("UpdateComputeEnvironment", body)
    else:
        rejects("UpdateComputeEnvironment", body, message)


def test_list_bounds() -> None:
    path = "eksProperties.podProperties.containers[0].securityContext.capabilities.add"
    wire.validate_request("RegisterJobDefinition", eks_capabilities(["C"] * 64))
    rejects("RegisterJobDefinition", eks_capabilities(["C"] * 65), f"{path} must have at most 64 entries")
    rejects("RegisterJobDefinition", eks_capabilities([""]), f"{path}[0] must have at least 1 characters")


# -- pagination ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("cursor", ["a", "name#000000003", "ünïcode/with spaces", "x" * 300])
def test_tokens_round_trip_and_are_opaque_and_url_safe(cursor: str) -> None:
    token = pagination.encode(cursor)
    assert pagination.decode(token) == cursor
    assert re.fullmatch(r"[A-Za-z0-9_=-]+", token)
    assert cursor not in token


@pytest.mark.parametrize("token", [None, ""])
def test_no_token_means_from_the_start(token: str | None) -> None:
    assert pagination.decode(token) is None


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode()


@pytest.mark.parametrize(
    "token",
    [
        "garbage!",
        "a",
        _b64(b"\xff\xfe"),
        _b64(b"not json"),
        _b64(b"[1]"),
        _b64(b'"c"'),
        _b64(json.dumps({"d": "x"}).encode()),
        _b64(json.dumps({"c": None}).encode()),
        _b64(json.dumps({"c": 5}).encode()),
        _b64(json.dumps({"c": ["a"]}).encode()),
        _b64(json.dumps({"c": {"k": "v"}}).encode()),
    ],
)
def test_tokens_this_service_did_not_issue_are_rejected(token: str) -> None:
    with pytest.raises(InvalidRequest, match="nextToken is not a token this service issued"):
        pagination.decode(token)


def test_a_cursor_of_another_kind_can_be_asked_for() -> None:
    token = pagination.encode({"queue": "q", "after": "k"})
    assert pagination.decode(token, dict) == {"queue": "q", "after": "k"}
    with pytest.raises(InvalidRequest):
        pagination.decode(token)


@pytest.mark.parametrize(("req", "size"), [({}, 100), ({"maxResults": None}, 100), ({"maxResults": 1}, 1)])
def test_page_size_defaults_to_100(req: dict[str, Any], size: int) -> None:
    assert pagination.page_size(req) == size


@pytest.mark.parametrize("value", [0, -1, 101])
def test_page_size_outside_1_to_100_is_rejected(value: int) -> None:
    with pytest.raises(InvalidRequest) as info:
        pagination.page_size({"maxResults": value})
    assert str(info.value) == f"maxResults must be between 1 and 100; got {value}"


def test_page_size_with_another_default_and_maximum() -> None:
    assert pagination.page_size({}, default=1000, maximum=1000) == 1000
    assert pagination.page_size({"maxResults": 1000}, maximum=1000) == 1000
    with pytest.raises(InvalidRequest, match="between 1 and 1000"):
        pagination.page_size({"maxResults": 1001}, maximum=1000)


@pytest.mark.parametrize("token", [5, ["x"], {"c": "x"}, True])
def test_a_token_that_is_not_a_string_is_a_client_error(token: object) -> None:
    with pytest.raises(InvalidRequest, match="nextToken must be a string"):
        pagination.decode(token)  # type: ignore[arg-type]


@pytest.mark.parametrize("value", ["2", 2.0, True, [2]])
def test_max_results_that_is_not_an_integer_is_a_client_error(value: object) -> None:
    with pytest.raises(InvalidRequest, match="maxResults must be an integer"):
        pagination.page_size({"maxResults": value})
