"""What a job runs (spec §3.4, §4.5, §4.9): overrides on the job definition's container, Ref:: parameters, the
AWS_BATCH_* environment, and SubmitJob's validation rules."""

from __future__ import annotations

from typing import Any

import pytest

from chalicelib.domain.errors import InvalidRequest
from chalicelib.domain.job_spec import (
    DEFAULT_MEMORY_MIB,
    DEFAULT_VCPUS,
    batch_environment,
    effective_container,
    render_command,
    validate_share,
    validate_submit,
    vcpus_and_memory,
)
from chalicelib.domain.validation import Limits
from tests.unit.builders import (
    a_child,
    a_container,
    a_job,
    a_parent,
    a_rule,
    a_submit_request,
    env,
    resources,
    retries,
)

LIMITS = Limits()

# -- effective_container ---------------------------------------------------------------------------------------


def test_no_overrides_give_the_job_definitions_container() -> None:
    jd = a_container()

    container = effective_container(jd, {})

    assert container == jd
    assert container is not jd


def test_overrides_never_change_the_job_definition() -> None:
    jd = a_container()
    before = a_container()

    effective_container(jd, {"environment": env(STAGE="prod"), "resourceRequirements": resources(vcpus="4")})

    assert jd == before


def test_a_command_override_replaces_the_whole_command() -> None:
    container = effective_container(a_container(command=["echo", "a", "b"]), {"command": ["true"]})

    assert container["command"] == ["true"]


def test_an_empty_command_override_still_replaces_the_command() -> None:
    assert effective_container(a_container(), {"command": []})["command"] == []


def test_the_environment_merges_by_name_with_the_override_winning() -> None:
    # GIVEN STAGE=dev, COLOR=blue in the job definition
    jd = a_container(environment=env(STAGE="dev", COLOR="blue"))

    # WHEN STAGE is overridden and SIZE added
    container = effective_container(jd, {"environment": env(STAGE="prod", SIZE="xl")})

    # THEN each name appears once, the override's value wins, nothing is lost
    assert container["environment"] == env(STAGE="prod", COLOR="blue", SIZE="xl")


def test_an_environment_override_on_a_container_without_one() -> None:
    jd = a_container()
    del jd["environment"]

    assert effective_container(jd, {"environment": env(A="1")})["environment"] == env(A="1")


def test_resource_requirements_are_overridden_by_type() -> None:
    # GIVEN 1 vCPU and 2048 MiB in the job definition
    jd = a_container(resourceRequirements=resources(vcpus="1", memory="2048"))

    # WHEN only the memory is overridden
    container = effective_container(jd, {"resourceRequirements": resources(memory="8192")})

    # THEN the vCPU stays and the memory is replaced
    assert sorted(container["resourceRequirements"], key=lambda r: r["type"]) == [
        {"type": "MEMORY", "value": "8192"},
        {"type": "VCPU", "value": "1"},
    ]


def test_a_resource_requirement_override_can_add_a_type() -> None:
    jd = a_container(resourceRequirements=resources(vcpus="2"))

    container = effective_container(jd, {"resourceRequirements": [{"type": "GPU", "value": "1"}]})

    assert {r["type"] for r in container["resourceRequirements"]} == {"VCPU", "GPU"}


@pytest.mark.parametrize(("legacy", "value"), [("vcpus", 4), ("memory", 4096)])
def test_legacy_overrides_cannot_override_resource_requirements(legacy: str, value: int) -> None:
    # GIVEN a job definition that sets vCPU and memory through resourceRequirements
    jd = a_container(resourceRequirements=resources(vcpus="1", memory="2048"))

    # WHEN the deprecated field is used to override them  THEN the request is rejected, naming the field
    with pytest.raises(InvalidRequest, match=rf"^containerOverrides\.{legacy} cannot override resourceRequirements"):
        effective_container(jd, {legacy: value})


def test_legacy_overrides_apply_to_a_legacy_job_definition() -> None:
    jd = a_container(vcpus=1, memory=512)
    del jd["resourceRequirements"]

    container = effective_container(jd, {"vcpus": 4, "memory": 4096})

    assert (container["vcpus"], container["memory"]) == (4, 4096)


def test_a_legacy_override_of_the_type_not_set_by_resource_requirements_is_allowed() -> None:
    jd = a_container(resourceRequirements=resources(vcpus="2"))

    assert effective_container(jd, {"memory": 4096})["memory"] == 4096


def test_instance_type_is_only_for_multi_node_jobs() -> None:
    with pytest.raises(InvalidRequest, match=r"^containerOverrides\.instanceType "):
        effective_container(a_container(), {"instanceType": "m5.large"})


# -- vcpus_and_memory ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("container", "expected"),
    [
        ({"resourceRequirements": resources(vcpus="0.25", memory="512")}, (0.25, 512)),
        ({"resourceRequirements": resources(vcpus="2", memory="4096.0")}, (2.0, 4096)),
        ({"vcpus": 4, "memory": 1024}, (4.0, 1024)),
        ({"vcpus": 4, "memory": 1024, "resourceRequirements": resources(vcpus="1")}, (1.0, 1024)),
        ({"resourceRequirements": resources(memory="1024")}, (DEFAULT_VCPUS, 1024)),
        ({}, (DEFAULT_VCPUS, DEFAULT_MEMORY_MIB)),
    ],
)
def test_vcpus_and_memory(container: dict[str, Any], expected: tuple[float, int]) -> None:
    assert vcpus_and_memory(container) == expected


# -- render_command --------------------------------------------------------------------------------------------


def test_whole_ref_elements_are_replaced_by_their_parameter() -> None:
    command = ["ffmpeg", "-i", "Ref::inputfile", "-c", "Ref::codec", "-o", "Ref::outputfile"]
    params = {"inputfile": "in.mp4", "codec": "mp4", "outputfile": "out.mp4"}

    assert render_command(command, params) == ["ffmpeg", "-i", "in.mp4", "-c", "mp4", "-o", "out.mp4"]


def test_unknown_placeholders_are_left_as_they_are() -> None:
    assert render_command(["echo", "Ref::missing"], {"other": "x"}) == ["echo", "Ref::missing"]


def test_placeholders_inside_an_element_are_not_replaced() -> None:
    assert render_command(["echo", "--in=Ref::a", "ref::a"], {"a": "x"}) == ["echo", "--in=Ref::a", "ref::a"]


def test_a_parameter_may_be_empty() -> None:
    assert render_command(["echo", "Ref::a"], {"a": ""}) == ["echo", ""]


def test_render_command_does_not_change_its_input() -> None:
    command = ["echo", "Ref::a"]

    render_command(command, {"a": "x"})

    assert command == ["echo", "Ref::a"]


# -- batch_environment -----------------------------------------------------------------------------------------


def test_the_reserved_variables_are_added_to_the_jobs_environment() -> None:
    # GIVEN a job in queue "high" with one variable of its own
    job = a_job("job-7", queue="high", container={"environment": env(STAGE="dev")})

    # WHEN its second attempt runs in CE "spot"
    variables = batch_environment(job, 2, "spot")

    # THEN its own variable and the AWS_BATCH_* ones are set, and no array index
    assert variables == {
        "STAGE": "dev",
        "AWS_BATCH_JOB_ID": "job-7",
        "AWS_BATCH_JOB_ATTEMPT": "2",
        "AWS_BATCH_CE_NAME": "spot",
        "AWS_BATCH_JQ_NAME": "high",
    }


def test_an_array_child_gets_its_index_and_its_own_id() -> None:
    variables = batch_environment(a_child("parent", 7), 1, "spot")

    assert variables["AWS_BATCH_JOB_ARRAY_INDEX"] == "7"
    assert variables["AWS_BATCH_JOB_ID"] == "parent:7"


def test_an_array_parent_gets_no_array_index() -> None:
    assert "AWS_BATCH_JOB_ARRAY_INDEX" not in batch_environment(a_parent(3), 1, "spot")


def test_the_users_environment_cannot_override_reserved_names() -> None:
    # GIVEN a container that (somehow) sets reserved names itself
    job = a_job("job-7", container={"environment": env(AWS_BATCH_JOB_ID="fake", AWS_BATCH_JOB_ATTEMPT="9")})

    variables = batch_environment(job, 1, "spot")

    assert variables["AWS_BATCH_JOB_ID"] == "job-7"
    assert variables["AWS_BATCH_JOB_ATTEMPT"] == "1"


def test_environment_values_are_strings() -> None:
    job = a_job(container={"environment": [{"name": "N", "value": 3}, {"name": "EMPTY"}]})

    variables = batch_environment(job, 1, "spot")

    assert (variables["N"], variables["EMPTY"]) == ("3", "")


# -- validate_submit -------------------------------------------------------------------------------------------


def rejects(req: dict[str, Any], field: str, limits: Limits = LIMITS) -> str:
    """Assert validate_submit rejects `req` with a message that starts with `field`; return the message."""
    with pytest.raises(InvalidRequest) as raised:
        validate_submit(req, limits)
    message = str(raised.value)
    assert message.startswith(field + " "), message
    return message


def test_a_minimal_request_is_valid() -> None:
    validate_submit(a_submit_request(), LIMITS)


def test_a_full_valid_request_is_valid() -> None:
    validate_submit(
        a_submit_request(
            arrayProperties={"size": 10},
            dependsOn=[{"jobId": "job-a"}, {"jobId": "job-b", "type": "N_TO_N"}, {"type": "SEQUENTIAL"}],
            containerOverrides={"command": ["echo"], "environment": env(A="1"), "resourceRequirements": resources("2")},
            retryStrategy=retries(3, a_rule("RETRY", onStatusReason="Host EC2*")),
            timeout={"attemptDurationSeconds": 60},
            schedulingPriorityOverride=9999,
            tags={"team": "data"},
        ),
        LIMITS,
    )


@pytest.mark.parametrize("name", ["a", "A1", "job_name-2", "0" * 128])
def test_valid_job_names(name: str) -> None:
    validate_submit(a_submit_request(jobName=name), LIMITS)


@pytest.mark.parametrize("name", ["", "-starts-with-dash", "_underscore", "has space", "dot.ted", "x" * 129])
def test_invalid_job_names(name: str) -> None:
    rejects(a_submit_request(jobName=name), "jobName")


@pytest.mark.parametrize("size", [2, 10_000])
def test_array_size_limits_are_inclusive(size: int) -> None:
    validate_submit(a_submit_request(arrayProperties={"size": size}), LIMITS)


@pytest.mark.parametrize("size", [0, 1, 10_001])
def test_array_size_outside_2_to_10000_is_rejected(size: int) -> None:
    message = rejects(a_submit_request(arrayProperties={"size": size}), "arrayProperties.size")
    assert str(size) in message


def test_array_size_limits_come_from_limits() -> None:
    lifted = Limits(max_array_size=20_000)

    validate_submit(a_submit_request(arrayProperties={"size": 20_000}), lifted)
    rejects(a_submit_request(arrayProperties={"size": 6}), "arrayProperties.size", Limits(max_array_size=5))


def test_array_properties_without_a_size_is_not_an_array() -> None:
    rejects(a_submit_request(arrayProperties={}, dependsOn=[{"type": "SEQUENTIAL"}]), "dependsOn[0].type")


def test_at_most_20_dependencies() -> None:
    twenty = [{"jobId": f"job-{i}"} for i in range(20)]

    validate_submit(a_submit_request(dependsOn=twenty), LIMITS)
    message = rejects(a_submit_request(dependsOn=[*twenty, {"jobId": "one-more"}]), "dependsOn")
    assert "21" in message


def test_the_dependency_limit_comes_from_limits() -> None:
    three = [{"jobId": f"job-{i}"} for i in range(3)]

    rejects(a_submit_request(dependsOn=three), "dependsOn", Limits(max_dependencies=2))


@pytest.mark.parametrize("kind", ["N_TO_N", "SEQUENTIAL"])
def test_array_dependency_types_without_a_job_id_need_an_array_job(kind: str) -> None:
    message = rejects(a_submit_request(dependsOn=[{"jobId": "job-0"}, {"type": kind}]), "dependsOn[1].type")
    assert kind in message


@pytest.mark.parametrize("kind", ["N_TO_N", "SEQUENTIAL"])
def test_a_non_array_job_may_give_a_type_with_a_job_id(kind: str) -> None:
    # GIVEN what public pipeline code submits to AWS: a plain job with {"jobId": X, "type": "SEQUENTIAL"}
    # THEN it is valid (it waits for the whole job X)
    validate_submit(a_submit_request(dependsOn=[{"jobId": "job-0", "type": kind}]), LIMITS)


def test_sequential_is_given_without_a_job_id() -> None:
    req = a_submit_request(arrayProperties={"size": 3}, dependsOn=[{"type": "SEQUENTIAL", "jobId": "job-a"}])

    rejects(req, "dependsOn[0].jobId")


def test_n_to_n_needs_a_job_id() -> None:
    req = a_submit_request(arrayProperties={"size": 3}, dependsOn=[{"type": "N_TO_N"}])

    message = rejects(req, "dependsOn[0].jobId")
    assert "N_TO_N" in message


def test_a_plain_dependency_needs_a_job_id() -> None:
    rejects(a_submit_request(dependsOn=[{"jobId": "job-a"}, {}]), "dependsOn[1].jobId")


def test_at_most_one_sequential_dependency() -> None:
    req = a_submit_request(arrayProperties={"size": 3}, dependsOn=[{"type": "SEQUENTIAL"}, {"type": "SEQUENTIAL"}])

    rejects(req, "dependsOn")


def test_the_command_override_cannot_hold_empty_strings() -> None:
    rejects(a_submit_request(containerOverrides={"command": ["echo", ""]}), "containerOverrides.command")


def test_the_environment_override_cannot_use_the_reserved_prefix() -> None:
    req = a_submit_request(containerOverrides={"environment": env(OK="1", AWS_BATCH_JOB_ID="x")})

    rejects(req, "containerOverrides.environment[1].name")


def test_resource_requirement_overrides_must_be_positive_numbers() -> None:
    req = a_submit_request(containerOverrides={"resourceRequirements": resources(vcpus="lots")})
    rejects(req, "containerOverrides.resourceRequirements[0].value")

    req = a_submit_request(containerOverrides={"resourceRequirements": resources(vcpus="1", memory="0")})
    rejects(req, "containerOverrides.resourceRequirements[1].value")


@pytest.mark.parametrize(
    ("strategy", "field"),
    [
        ({"attempts": 0}, "retryStrategy.attempts"),
        ({"attempts": 11}, "retryStrategy.attempts"),
        ({"evaluateOnExit": [a_rule("RETRY", onExitCode="1")]}, "retryStrategy.attempts"),
        (retries(2, *[a_rule("RETRY", onExitCode=str(i)) for i in range(6)]), "retryStrategy.evaluateOnExit"),
        (retries(2, a_rule("MAYBE", onExitCode="1")), "retryStrategy.evaluateOnExit[0].action"),
        (retries(2, a_rule("EXIT", onReason="*Host")), "retryStrategy.evaluateOnExit[0].onReason"),
        (retries(2, a_rule("EXIT", onExitCode="1x")), "retryStrategy.evaluateOnExit[0].onExitCode"),
    ],
)
def test_retry_strategy_rules(strategy: dict[str, Any], field: str) -> None:
    rejects(a_submit_request(retryStrategy=strategy), field)


def test_timeout_is_at_least_60_seconds() -> None:
    validate_submit(a_submit_request(timeout={"attemptDurationSeconds": 60}), LIMITS)
    rejects(a_submit_request(timeout={"attemptDurationSeconds": 59}), "timeout.attemptDurationSeconds")


@pytest.mark.parametrize("priority", [-1, 10_000])
def test_scheduling_priority_override_is_0_to_9999(priority: int) -> None:
    rejects(a_submit_request(schedulingPriorityOverride=priority), "schedulingPriorityOverride")


def test_tags_are_1_to_50() -> None:
    rejects(a_submit_request(tags={}), "tags")
    rejects(a_submit_request(tags={f"k{i}": "v" for i in range(51)}), "tags")


def test_the_request_is_at_most_30_kib() -> None:
    rejects(a_submit_request(parameters={"blob": "x" * 31 * 1024}), "request")


# -- validate_share --------------------------------------------------------------------------------------------


def test_a_fair_share_queue_needs_a_share_identifier() -> None:
    with pytest.raises(InvalidRequest, match=r"^shareIdentifier is required"):
        validate_share(None, True, "high")


def test_a_plain_queue_takes_no_share_identifier() -> None:
    with pytest.raises(InvalidRequest, match=r"^shareIdentifier must not be given"):
        validate_share("teamA", False, "high")


@pytest.mark.parametrize("share", ["teamA", "team*", "a" * 255])
def test_valid_share_identifiers(share: str) -> None:
    validate_share(share, True, "high")


@pytest.mark.parametrize("share", ["team-a", "*team", "a" * 256])
def test_invalid_share_identifiers(share: str) -> None:
    with pytest.raises(InvalidRequest, match=r"^shareIdentifier "):
        validate_share(share, True, "high")
