"""RegisterJobDefinition / DescribeJobDefinitions / DeregisterJobDefinition through boto3 (spec §3.3)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.functional.builders import (
    BatchClient,
    arn,
    assert_rejected,
    container,
    describe_jds,
    make_jd,
    without,
)


def _names_revisions(jds: list[dict[str, Any]]) -> list[tuple[str, int, str]]:
    return [(jd["jobDefinitionName"], jd["revision"], jd["status"]) for jd in jds]


# -- register --------------------------------------------------------------------------------------------------


def test_registering_a_name_again_creates_revisions_1_2_3(batch: BatchClient) -> None:
    # GIVEN / WHEN the same name is registered three times
    responses = [make_jd(batch, "jd", parameters={"n": str(i)}) for i in range(3)]
    # THEN the revisions are 1, 2, 3 with name:revision ARNs, and each keeps its own content
    assert responses == [
        {"jobDefinitionName": "jd", "jobDefinitionArn": arn("job-definition", f"jd:{rev}"), "revision": rev}
        for rev in (1, 2, 3)
    ]
    jds = describe_jds(batch, jobDefinitionName="jd")
    assert [(jd["revision"], jd["parameters"]) for jd in jds] == [(1, {"n": "0"}), (2, {"n": "1"}), (3, {"n": "2"})]


def test_a_registered_definition_is_described_exactly(batch: BatchClient) -> None:
    # GIVEN a container job definition with every commonly used member
    request: dict[str, Any] = {
        "jobDefinitionName": "full",
        "type": "container",
        "parameters": {"greeting": "hello"},
        "schedulingPriority": 9999,
        "containerProperties": container(
            command=["echo", "Ref::greeting"],
            environment=[{"name": "MODE", "value": "test"}],
            executionRoleArn="arn:aws:iam::123456789012:role/exec",
            resourceRequirements=[{"type": "VCPU", "value": "0.25"}, {"type": "MEMORY", "value": "512"}],
            networkConfiguration={"assignPublicIp": "ENABLED"},
            ephemeralStorage={"sizeInGiB": 21},
        ),
        "retryStrategy": {"attempts": 3, "evaluateOnExit": [{"onExitCode": "1*", "action": "RETRY"}]},
        "propagateTags": True,
        "timeout": {"attemptDurationSeconds": 60},
        "platformCapabilities": ["FARGATE"],
        "tags": {"team": "a"},
    }
    # WHEN it is registered
    batch.register_job_definition(**request)
    # THEN describe returns it as registered, ACTIVE, revision 1, with AWS's defaults filled in (issue 12 items 16,
    # 17): empty lists for what the container left out, the LATEST Fargate platform, the action lowercase
    (jd,) = describe_jds(batch, jobDefinitions=["full:1"])
    defaults = {"mountPoints": [], "ulimits": [], "volumes": [], "secrets": []}
    fargate = {"fargatePlatformConfiguration": {"platformVersion": "LATEST"}}
    assert jd == {
        **without(request, "jobDefinitionName"),
        "containerProperties": {**request["containerProperties"], **defaults, **fargate},
        "retryStrategy": {"attempts": 3, "evaluateOnExit": [{"onExitCode": "1*", "action": "retry"}]},
        "jobDefinitionName": "full",
        "jobDefinitionArn": arn("job-definition", "full:1"),
        "revision": 1,
        "status": "ACTIVE",
        "containerOrchestrationType": "ECS",
    }


def test_multinode_and_ecs_properties_definitions_are_accepted(batch: BatchClient) -> None:
    node_properties = {
        "numNodes": 2,
        "mainNode": 0,
        "nodeRangeProperties": [{"targetNodes": "0:1", "container": container()}],
    }
    ecs_properties = {"taskProperties": [{"containers": [{"image": "busybox", "name": "main", "essential": True}]}]}
    mnp, ecs = {"containerProperties": None, "platformCapabilities": None}, {"containerProperties": None}
    make_jd(batch, "mnp", type="multinode", nodeProperties=node_properties, **mnp)
    make_jd(batch, "ecs", ecsProperties=ecs_properties, **ecs)
    by_name = {jd["jobDefinitionName"]: jd for jd in describe_jds(batch)}
    assert by_name["mnp"]["type"] == "multinode"
    assert by_name["mnp"]["nodeProperties"] == node_properties
    assert by_name["ecs"]["ecsProperties"] == ecs_properties
    assert "containerProperties" not in by_name["ecs"]


def test_lowercase_retry_actions_are_accepted(batch: BatchClient) -> None:
    # The model documents EvaluateOnExit.action values as not case sensitive.
    strategy = {"attempts": 2, "evaluateOnExit": [{"onReason": "Host EC2*", "action": "retry"}, {"action": "exit"}]}
    make_jd(batch, "jd", retryStrategy=strategy)
    assert describe_jds(batch, jobDefinitionName="jd")[0]["retryStrategy"] == strategy


# -- describe --------------------------------------------------------------------------------------------------


@pytest.fixture
def three_names(batch: BatchClient) -> None:
    """b:1 b:2 a:1 c:1 c:2 c:3, with b:1 and c:2 deregistered."""
    for name, count in (("b", 2), ("a", 1), ("c", 3)):
        for _ in range(count):
            make_jd(batch, name)
    batch.deregister_job_definition(jobDefinition="b:1")
    batch.deregister_job_definition(jobDefinition=arn("job-definition", "c:2"))


def test_describe_everything_orders_by_name_then_revision(batch: BatchClient, three_names: None) -> None:
    assert _names_revisions(describe_jds(batch)) == [
        ("a", 1, "ACTIVE"),
        ("b", 1, "INACTIVE"),
        ("b", 2, "ACTIVE"),
        ("c", 1, "ACTIVE"),
        ("c", 2, "INACTIVE"),
        ("c", 3, "ACTIVE"),
    ]


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        ("ACTIVE", [("a", 1, "ACTIVE"), ("b", 2, "ACTIVE"), ("c", 1, "ACTIVE"), ("c", 3, "ACTIVE")]),
        ("INACTIVE", [("b", 1, "INACTIVE"), ("c", 2, "INACTIVE")]),
    ],
)
def test_describe_by_status(
    batch: BatchClient, three_names: None, status: str, expected: list[tuple[str, int, str]]
) -> None:
    assert _names_revisions(describe_jds(batch, status=status)) == expected


def test_describe_by_name_and_by_name_and_status(batch: BatchClient, three_names: None) -> None:
    assert _names_revisions(describe_jds(batch, jobDefinitionName="c")) == [
        ("c", 1, "ACTIVE"),
        ("c", 2, "INACTIVE"),
        ("c", 3, "ACTIVE"),
    ]
    assert _names_revisions(describe_jds(batch, jobDefinitionName="c", status="ACTIVE")) == [
        ("c", 1, "ACTIVE"),
        ("c", 3, "ACTIVE"),
    ]
    assert describe_jds(batch, jobDefinitionName="missing") == []


def test_describe_by_list_of_name_revision_and_arns(batch: BatchClient, three_names: None) -> None:
    # GIVEN references as name:revision and as ARN, one of them unknown
    refs = ["c:3", arn("job-definition", "b:1"), "a:1", "a:9"]
    # THEN the known ones come back, in the order asked, whatever their status
    assert _names_revisions(describe_jds(batch, jobDefinitions=refs)) == [
        ("c", 3, "ACTIVE"),
        ("b", 1, "INACTIVE"),
        ("a", 1, "ACTIVE"),
    ]


@pytest.mark.parametrize(
    ("request_", "field"),
    [
        pytest.param({"jobDefinitions": ["a:1"], "status": "ACTIVE"}, "jobDefinitions", id="list-and-status"),
        pytest.param({"jobDefinitions": ["a:1"], "jobDefinitionName": "a"}, "jobDefinitions", id="list-and-name"),
        pytest.param({"jobDefinitions": [f"a:{i}" for i in range(1, 102)]}, "jobDefinitions", id="101-refs"),
        pytest.param({"jobDefinitions": ["a:x"]}, "jobDefinitions", id="bad-revision"),
        pytest.param({"jobDefinitions": ["a:0"]}, "jobDefinitions", id="revision-0"),
        pytest.param({"jobDefinitions": [arn("job-queue", "q")]}, "jobDefinitions", id="arn-of-a-queue"),
    ],
)
def test_invalid_describe_is_rejected(
    batch: BatchClient, three_names: None, request_: dict[str, Any], field: str
) -> None:
    assert_rejected(batch, lambda: batch.describe_job_definitions(**request_), field)


# -- deregister ------------------------------------------------------------------------------------------------


def test_deregister_marks_only_that_revision_inactive(batch: BatchClient) -> None:
    # GIVEN revisions 1 and 2
    make_jd(batch, "jd")
    second = make_jd(batch, "jd")
    # WHEN revision 2 is deregistered by ARN
    assert (
        batch.deregister_job_definition(jobDefinition=second["jobDefinitionArn"])["ResponseMetadata"]["HTTPStatusCode"]
        == 200
    )
    # THEN it is INACTIVE and still described; revision 1 stays ACTIVE
    assert _names_revisions(describe_jds(batch, jobDefinitionName="jd")) == [("jd", 1, "ACTIVE"), ("jd", 2, "INACTIVE")]


def test_deregistering_twice_is_harmless(batch: BatchClient) -> None:
    make_jd(batch, "jd")
    batch.deregister_job_definition(jobDefinition="jd:1")
    batch.deregister_job_definition(jobDefinition="jd:1")
    assert _names_revisions(describe_jds(batch)) == [("jd", 1, "INACTIVE")]


def test_revisions_keep_counting_after_the_latest_is_deregistered(batch: BatchClient) -> None:
    make_jd(batch, "jd")
    make_jd(batch, "jd")
    batch.deregister_job_definition(jobDefinition="jd:2")
    assert make_jd(batch, "jd")["revision"] == 3


@pytest.mark.parametrize(
    ("ref", "fragment"),
    [
        pytest.param("jd", "jobDefinition", id="bare-name"),
        pytest.param("jd:7", "jd:7", id="unknown-revision"),
        pytest.param("other:1", "other:1", id="unknown-name"),
        pytest.param("jd:first", "jobDefinition", id="non-numeric-revision"),
        pytest.param(arn("compute-environment", "jd"), "jobDefinition", id="arn-of-a-ce"),
    ],
)
def test_invalid_deregister_is_rejected(batch: BatchClient, ref: str, fragment: str) -> None:
    make_jd(batch, "jd")
    assert_rejected(batch, lambda: batch.deregister_job_definition(jobDefinition=ref), fragment)


# -- register: every validation rule ---------------------------------------------------------------------------


def _fargate(**container_overrides: Any) -> dict[str, Any]:
    return {"platformCapabilities": ["FARGATE"], "containerProperties": container(**container_overrides)}


def _retry(**strategy: Any) -> dict[str, Any]:
    return {"retryStrategy": strategy}


def _rules(n: int) -> list[dict[str, str]]:
    return [{"onExitCode": str(i), "action": "RETRY"} for i in range(n)]


INVALID_REGISTRATIONS = [
    pytest.param({"jobDefinitionName": "bad name"}, "jobDefinitionName", id="name-chars"),
    pytest.param({"jobDefinitionName": "j" * 129}, "jobDefinitionName", id="name-129"),
    pytest.param({"parameters": {"big": "x" * 25_000}}, "24576 bytes", id="over-24KiB"),
    pytest.param({"containerProperties": None}, "containerProperties", id="container-without-properties"),
    pytest.param(
        {"ecsProperties": {"taskProperties": [{"containers": [{"image": "busybox"}]}]}},
        "containerProperties",
        id="container-two-property-kinds",
    ),
    pytest.param(
        {"nodeProperties": {"numNodes": 1, "mainNode": 0, "nodeRangeProperties": []}},
        "nodeProperties",
        id="container-with-node-properties",
    ),
    pytest.param({"type": "multinode", "containerProperties": None}, "nodeProperties", id="multinode-without-nodes"),
    pytest.param(
        {"type": "multinode", "nodeProperties": {"numNodes": 1, "mainNode": 0, "nodeRangeProperties": []}},
        "containerProperties",
        id="multinode-with-container",
    ),
    pytest.param(
        {
            "type": "multinode",
            "containerProperties": None,
            "platformCapabilities": ["FARGATE"],
            "nodeProperties": {"numNodes": 1, "mainNode": 0, "nodeRangeProperties": []},
        },
        "platformCapabilities",
        id="multinode-on-fargate",
    ),
    pytest.param({"containerProperties": without(container(), "image")}, "containerProperties.image", id="no-image"),
    pytest.param({"containerProperties": container(image="i" * 256)}, "containerProperties.image", id="image-256"),
    pytest.param(
        {"containerProperties": container(command=["echo", ""])}, "containerProperties.command", id="empty-command"
    ),
    pytest.param(
        {"containerProperties": container(environment=[{"name": "OK", "value": "1"}, {"name": "AWS_BATCH_X"}])},
        "containerProperties.environment[1].name",
        id="reserved-env",
    ),
    pytest.param(
        {"containerProperties": container(resourceRequirements=[{"type": "VCPU", "value": "two"}])},
        "containerProperties.resourceRequirements[0].value",
        id="non-numeric-requirement",
    ),
    pytest.param(
        {"containerProperties": container(resourceRequirements=[{"type": "MEMORY", "value": "0"}])},
        "containerProperties.resourceRequirements[0].value",
        id="zero-requirement",
    ),
    pytest.param(
        _fargate(resourceRequirements=[{"type": "VCPU", "value": "3"}, {"type": "MEMORY", "value": "8192"}]),
        "containerProperties.resourceRequirements VCPU",
        id="fargate-vcpu",
    ),
    pytest.param(
        _fargate(resourceRequirements=[{"type": "VCPU", "value": "1"}, {"type": "MEMORY", "value": "1024"}]),
        "containerProperties.resourceRequirements MEMORY",
        id="fargate-memory",
    ),
    pytest.param(_fargate(privileged=True), "containerProperties.privileged", id="fargate-privileged"),
    pytest.param(
        _fargate(ulimits=[{"name": "nofile", "softLimit": 1, "hardLimit": 2}]),
        "containerProperties.ulimits",
        id="fargate-ulimits",
    ),
    pytest.param(_fargate(instanceType="c5.large"), "containerProperties.instanceType", id="fargate-instance-type"),
    pytest.param(_retry(attempts=0), "retryStrategy.attempts", id="attempts-0"),
    pytest.param(_retry(attempts=11), "retryStrategy.attempts", id="attempts-11"),
    pytest.param(_retry(evaluateOnExit=_rules(1)), "retryStrategy.attempts", id="rules-without-attempts"),
    pytest.param(_retry(attempts=2, evaluateOnExit=_rules(6)), "retryStrategy.evaluateOnExit", id="6-rules"),
    pytest.param(
        _retry(attempts=2, evaluateOnExit=[{"onStatusReason": "*Host", "action": "RETRY"}]),
        "retryStrategy.evaluateOnExit[0].onStatusReason",
        id="leading-star",
    ),
    pytest.param(
        _retry(attempts=2, evaluateOnExit=[{"onReason": "a;b", "action": "EXIT"}]),
        "retryStrategy.evaluateOnExit[0].onReason",
        id="restricted-characters",
    ),
    pytest.param(
        _retry(attempts=2, evaluateOnExit=[{"onReason": "a" * 513, "action": "EXIT"}]),
        "retryStrategy.evaluateOnExit[0].onReason",
        id="pattern-513",
    ),
    pytest.param(
        _retry(attempts=2, evaluateOnExit=[{"onExitCode": "1a", "action": "EXIT"}]),
        "retryStrategy.evaluateOnExit[0].onExitCode",
        id="exit-code-letters",
    ),
    pytest.param(
        _retry(attempts=2, evaluateOnExit=[{"onExitCode": "1", "action": "MAYBE"}]),
        "retryStrategy.evaluateOnExit[0].action",
        id="action",
    ),
    pytest.param({"timeout": {"attemptDurationSeconds": 59}}, "timeout.attemptDurationSeconds", id="timeout-59"),
    pytest.param({"schedulingPriority": -1}, "schedulingPriority", id="priority-negative"),
    pytest.param({"schedulingPriority": 10_000}, "schedulingPriority", id="priority-10000"),
]


@pytest.mark.parametrize(("overrides", "field"), INVALID_REGISTRATIONS)
def test_invalid_registration_is_rejected_naming_the_field_and_writes_nothing(
    batch: BatchClient, overrides: dict[str, Any], field: str
) -> None:
    # GIVEN an existing revision of the same name
    make_jd(batch, "jd")
    request = {"jobDefinitionName": "jd", "type": "container", "containerProperties": container(), **overrides}
    request = {k: v for k, v in request.items() if v is not None}
    # WHEN the invalid registration is sent THEN it is refused naming the field, and no revision 2 appears
    assert_rejected(batch, lambda: batch.register_job_definition(**request), field)
    assert make_jd(batch, "jd")["revision"] == 2


@pytest.mark.parametrize(
    ("vcpu", "memory"),
    [("0.25", "512"), ("0.5", "4096"), ("1", "8192"), ("4", "30720"), ("16", "122880"), ("32", "249856")],
)
def test_valid_fargate_sizes_are_accepted(batch: BatchClient, vcpu: str, memory: str) -> None:
    requirements = [{"type": "VCPU", "value": vcpu}, {"type": "MEMORY", "value": memory}]
    make_jd(batch, "jd", **_fargate(resourceRequirements=requirements))
    assert describe_jds(batch)[0]["containerProperties"]["resourceRequirements"] == requirements


def test_limits_at_their_bounds_are_accepted(batch: BatchClient) -> None:
    make_jd(
        batch,
        "jd",
        retryStrategy={"attempts": 10, "evaluateOnExit": _rules(5)},
        timeout={"attemptDurationSeconds": 60},
        schedulingPriority=0,
        containerProperties=container(image="i" * 255),
    )
    jd = describe_jds(batch)[0]
    assert (jd["retryStrategy"]["attempts"], len(jd["retryStrategy"]["evaluateOnExit"])) == (10, 5)
