"""AWS's platform, number, account/region and shape rules through the API door (issue 12, items 4-7, 10, 11).

A stock boto3 client where it can send the request; raw HTTP for what botocore refuses client-side (unknown members,
numbers out of its types' range, non-finite values).
"""

from __future__ import annotations

import copy
import dataclasses
import re
import time
from typing import Any

import pytest
from botocore.exceptions import ClientError

from chalicelib.runtime.local import LocalRuntime
from tests.functional.builders import (
    ACCOUNT,
    BatchClient,
    arn,
    assert_client_error,
    container,
    describe_ce,
    make_ce,
    make_ec2_ce,
    make_fargate_ce,
    make_jd,
    make_queue,
    nothing_written,
    raw_operation,
)


def error_of(call: Any, **kwargs: Any) -> str:
    with pytest.raises(ClientError) as err:
        call(**kwargs)
    assert err.value.response["Error"]["Code"] == "ClientException"
    return str(err.value.response["Error"]["Message"])


@pytest.fixture
def fargate_queue(batch: BatchClient) -> str:
    return make_queue(batch, "fq", [make_fargate_ce(batch, "fce", 16)])


@pytest.fixture
def ec2_queue(batch: BatchClient) -> str:
    return make_queue(batch, "eq", [make_ec2_ce(batch, "ece", 16)])


# -- item 4: platforms -----------------------------------------------------------------------------------------


def test_an_ec2_definition_is_refused_by_a_fargate_queue_with_aws_words(batch: BatchClient, fargate_queue: str) -> None:
    # GIVEN a definition without platformCapabilities: AWS's default, EC2
    make_jd(batch, "ec2-jd", platformCapabilities=None)
    # WHEN it is submitted to a queue whose compute environment is FARGATE
    message = error_of(batch.submit_job, jobName="j", jobQueue=fargate_queue, jobDefinition="ec2-jd")
    # THEN SubmitJob answers what AWS answers
    assert "Job Queue is attached to Compute Environment that can not run Jobs with capability EC2" in message


def test_a_fargate_definition_is_refused_by_an_ec2_queue(batch: BatchClient, ec2_queue: str) -> None:
    make_jd(batch, "fargate-jd")
    message = error_of(batch.submit_job, jobName="j", jobQueue=ec2_queue, jobDefinition="fargate-jd")
    assert "can not run Jobs with capability FARGATE" in message


def test_each_platform_runs_on_its_own_queue(batch: BatchClient, fargate_queue: str, ec2_queue: str) -> None:
    make_jd(batch, "fargate-jd")
    make_jd(batch, "ec2-jd", platformCapabilities=["EC2"])
    batch.submit_job(jobName="f", jobQueue=fargate_queue, jobDefinition="fargate-jd")
    job = batch.submit_job(jobName="e", jobQueue=ec2_queue, jobDefinition="ec2-jd")
    described = batch.describe_jobs(jobs=[job["jobId"]])["jobs"][0]
    assert described["platformCapabilities"] == ["EC2"]


@pytest.mark.parametrize(
    ("props", "fragment"),
    [
        ({"executionRoleArn": None}, "containerProperties.executionRoleArn is required for jobs that run on Fargate"),
        (
            {"resourceRequirements": [{"type": "VCPU", "value": "1"}]},
            "containerProperties.resourceRequirements must specify MEMORY",
        ),
        (
            {"resourceRequirements": [{"type": "MEMORY", "value": "2048"}]},
            "containerProperties.resourceRequirements must specify VCPU",
        ),
        (
            {
                "resourceRequirements": [
                    {"type": "VCPU", "value": "1"},
                    {"type": "MEMORY", "value": "2048"},
                    {"type": "GPU", "value": "1"},
                ]
            },
            "GPU resources aren't supported for jobs that run on Fargate",
        ),
        (
            {"resourceRequirements": [{"type": "VCPU", "value": "1"}, {"type": "MEMORY", "value": "512"}]},
            "MEMORY 512 is not valid with 1 vCPU on Fargate",
        ),
        (
            {"resourceRequirements": [{"type": "VCPU", "value": "3"}, {"type": "MEMORY", "value": "8192"}]},
            "VCPU must be one of 0.25, 0.5, 1, 2, 4, 8, 16, 32 on Fargate",
        ),
        ({"vcpus": 1, "resourceRequirements": None}, "containerProperties.vcpus is not supported on Fargate"),
    ],
)
def test_fargate_definitions_follow_fargates_rules(batch: BatchClient, props: dict[str, Any], fragment: str) -> None:
    props = {k: v for k, v in container(**props).items() if v is not None}
    with nothing_written(batch):
        message = error_of(
            batch.register_job_definition,
            jobDefinitionName="f",
            type="container",
            platformCapabilities=["FARGATE"],
            containerProperties=props,
        )
    assert fragment in message


# What Fargate does not run (User Guide "Job definitions on Fargate"; botocore's LinuxParameters, Volume, Host and
# LogConfiguration documentation): each refused at registration by name, each accepted on EC2.
NOT_ON_FARGATE = [
    pytest.param({"privileged": True}, "containerProperties.privileged must be false or omitted", id="privileged"),
    pytest.param(
        {"ulimits": [{"name": "nofile", "softLimit": 1, "hardLimit": 2}]},
        "containerProperties.ulimits isn't applicable to jobs that run on Fargate resources",
        id="ulimits",
    ),
    pytest.param(
        {"linuxParameters": {"devices": [{"hostPath": "/dev/fuse"}]}},
        "containerProperties.linuxParameters.devices isn't applicable to jobs that run on Fargate",
        id="devices",
    ),
    pytest.param(
        {"linuxParameters": {"maxSwap": 0}},
        "containerProperties.linuxParameters.maxSwap isn't applicable",
        id="maxSwap-0",
    ),
    pytest.param(
        {"linuxParameters": {"sharedMemorySize": 64}},
        "containerProperties.linuxParameters.sharedMemorySize isn't applicable",
        id="sharedMemorySize",
    ),
    pytest.param(
        {"linuxParameters": {"swappiness": 10}},
        "containerProperties.linuxParameters.swappiness isn't applicable",
        id="swappiness",
    ),
    pytest.param(
        {"linuxParameters": {"tmpfs": [{"containerPath": "/scratch", "size": 16}]}},
        "containerProperties.linuxParameters.tmpfs isn't applicable",
        id="tmpfs",
    ),
    pytest.param(
        {
            "volumes": [{"name": "scratch"}, {"name": "data", "host": {"sourcePath": "/srv/data"}}],
            "mountPoints": [{"sourceVolume": "data", "containerPath": "/data"}],
        },
        "containerProperties.volumes[1].host.sourcePath isn't applicable to jobs that run on Fargate resources: "
        "Fargate mounts only volumes without a host path, and EFS volumes",
        id="host-sourcePath",
    ),
    pytest.param(
        {"logConfiguration": {"logDriver": "json-file"}},
        "containerProperties.logConfiguration.logDriver must be one of awslogs, splunk",
        id="log-driver",
    ),
    pytest.param(
        {
            "fargatePlatformConfiguration": {"platformVersion": "1.3.0"},
            "volumes": [{"name": "efs", "efsVolumeConfiguration": {"fileSystemId": "fs-1"}}],
        },
        "containerProperties.volumes[0].efsVolumeConfiguration needs fargatePlatformConfiguration.platformVersion "
        "1.4.0 or later",
        id="efs-before-1.4.0",
    ),
]


@pytest.mark.parametrize(("props", "fragment"), NOT_ON_FARGATE)
def test_what_fargate_does_not_run_is_refused_by_name_and_accepted_on_ec2(
    batch: BatchClient, props: dict[str, Any], fragment: str
) -> None:
    # WHEN a FARGATE definition asks for it THEN it is refused naming the field and the rule, and nothing is written
    with nothing_written(batch):
        message = error_of(
            batch.register_job_definition,
            jobDefinitionName="f",
            type="container",
            platformCapabilities=["FARGATE"],
            containerProperties=container(**props),
        )
    assert fragment in message
    # AND an EC2 definition may ask for it
    ec2 = {k: v for k, v in container(**props).items() if k not in ("executionRoleArn", "fargatePlatformConfiguration")}
    assert make_jd(batch, "e", platformCapabilities=None, containerProperties=ec2)["revision"] == 1


def test_fargate_accepts_what_it_runs(batch: BatchClient, fargate_queue: str) -> None:
    # GIVEN a FARGATE definition with what Fargate does run: a volume without a host path, EFS on LATEST, awslogs,
    # an init process, privileged false and the empty lists DescribeJobDefinitions echoes
    props = container(
        privileged=False,
        ulimits=[],
        linuxParameters={"initProcessEnabled": True, "devices": [], "tmpfs": []},
        volumes=[{"name": "scratch"}, {"name": "efs", "efsVolumeConfiguration": {"fileSystemId": "fs-1"}}],
        mountPoints=[{"sourceVolume": "scratch", "containerPath": "/scratch"}],
        logConfiguration={"logDriver": "awslogs"},
        fargatePlatformConfiguration={"platformVersion": "LATEST"},
    )
    make_jd(batch, "fargate-ok", containerProperties=props)
    # THEN a job of it is accepted by a Fargate queue
    assert batch.submit_job(jobName="j", jobQueue=fargate_queue, jobDefinition="fargate-ok")["jobId"]


def test_a_fargate_definition_stored_before_the_rules_is_refused_at_submit(
    batch: BatchClient, runtime: LocalRuntime, fargate_queue: str
) -> None:
    # GIVEN a FARGATE definition stored (by an older batchplane) with a host volume and tmpfs
    make_jd(batch, "old")
    repo = runtime.services.repo
    jd = repo.get_jd("old", 1)
    assert jd is not None
    spec = copy.deepcopy(jd.spec)
    spec["containerProperties"]["volumes"] = [{"name": "d", "host": {"sourcePath": "/srv"}}]
    repo.save_jd(dataclasses.replace(jd, spec=spec))
    # WHEN a job of it is submitted THEN it is refused naming the definition's field (whatever the host-path policy)
    message = error_of(batch.submit_job, jobName="j", jobQueue=fargate_queue, jobDefinition="old")
    assert "jobDefinition containerProperties.volumes[0].host.sourcePath isn't applicable" in message
    assert batch.list_jobs(jobQueue=fargate_queue, jobStatus="RUNNABLE")["jobSummaryList"] == []


def test_an_ec2_definition_may_use_a_gpu_and_any_memory(batch: BatchClient) -> None:
    reqs = [{"type": "VCPU", "value": "2"}, {"type": "MEMORY", "value": "1000"}, {"type": "GPU", "value": "1"}]
    make_jd(batch, "gpu", platformCapabilities=None, containerProperties=container(resourceRequirements=reqs))


@pytest.mark.parametrize(
    ("overrides", "fragment"),
    [
        (
            {"resourceRequirements": [{"type": "MEMORY", "value": "512"}]},
            "containerOverrides.resourceRequirements MEMORY 512 is not valid with 1 vCPU on Fargate",
        ),
        ({"resourceRequirements": [{"type": "GPU", "value": "1"}]}, "GPU resources aren't supported"),
        ({"memory": 4096}, "containerOverrides.memory is not supported on Fargate"),
    ],
)
def test_overrides_of_a_fargate_job_keep_fargates_rules(
    batch: BatchClient, fargate_queue: str, overrides: dict[str, Any], fragment: str
) -> None:
    make_jd(batch, "fargate-jd")
    kwargs = {"jobName": "j", "jobQueue": fargate_queue, "jobDefinition": "fargate-jd", "containerOverrides": overrides}
    assert fragment in error_of(batch.submit_job, **kwargs)
    assert batch.list_jobs(jobQueue=fargate_queue, jobStatus="RUNNABLE")["jobSummaryList"] == []


def test_a_valid_fargate_override_is_accepted(batch: BatchClient, fargate_queue: str) -> None:
    make_jd(batch, "fargate-jd")
    reqs = [{"type": "VCPU", "value": "2"}, {"type": "MEMORY", "value": "4096"}]
    job = batch.submit_job(
        jobName="j",
        jobQueue=fargate_queue,
        jobDefinition="fargate-jd",
        containerOverrides={"resourceRequirements": reqs},
    )
    got = batch.describe_jobs(jobs=[job["jobId"]])["jobs"][0]["container"]["resourceRequirements"]
    assert {r["type"]: r["value"] for r in got} == {"VCPU": "2", "MEMORY": "4096"}


# -- item 5: numbers -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("value", ["inf", "nan", "1e400", "-1", "0x10", "1_000", " 1", "²", "9" * 5000])
@pytest.mark.parametrize("kind", ["VCPU", "MEMORY"])
def test_a_resource_value_that_is_not_a_plain_number_is_refused_everywhere(
    batch: BatchClient, endpoint: str, fargate_queue: str, kind: str, value: str
) -> None:
    reqs = [{"type": "VCPU", "value": "1"}, {"type": "MEMORY", "value": "2048"}]
    bad = [r if r["type"] != kind else {"type": kind, "value": value} for r in reqs]
    register = {
        "jobDefinitionName": "jd",
        "type": "container",
        "containerProperties": container(resourceRequirements=bad),
    }
    assert_client_error(raw_operation(endpoint, "RegisterJobDefinition", register), "resourceRequirements[")
    make_jd(batch, "ok")
    submit = {
        "jobName": "j",
        "jobQueue": fargate_queue,
        "jobDefinition": "ok",
        "containerOverrides": {"resourceRequirements": [{"type": kind, "value": value}]},
    }
    assert_client_error(raw_operation(endpoint, "SubmitJob", submit), "containerOverrides.resourceRequirements[0]")


@pytest.mark.parametrize(
    ("operation", "body", "fragment"),
    [
        ("CreateJobQueue", {"jobQueueName": "q", "priority": 2**53 + 1}, "priority must be at most 2147483647"),
        (
            "RegisterJobDefinition",
            {"jobDefinitionName": "d", "type": "container", "timeout": {"attemptDurationSeconds": 2**70}},
            "timeout.attemptDurationSeconds must be at most 2147483647",
        ),
        (
            "SubmitJob",
            {"jobName": "j", "jobQueue": "q", "jobDefinition": "d", "arrayProperties": {"size": 2**31}},
            "arrayProperties.size must be at most 2147483647",
        ),
        ("SubmitJob", {"jobName": "j", "jobQueue": "q", "jobDefinition": "d", "timeout": 1.5}, "timeout must be"),
        (
            "CreateSchedulingPolicy",
            {"name": "p", "fairsharePolicy": {"shareDecaySeconds": -(2**31) - 1}},
            "fairsharePolicy.shareDecaySeconds must be at least",
        ),
    ],
)
def test_numbers_beyond_their_model_type_are_refused(
    batch: BatchClient, endpoint: str, operation: str, body: dict[str, Any], fragment: str
) -> None:
    with nothing_written(batch):
        assert_client_error(raw_operation(endpoint, operation, body), fragment)


@pytest.mark.parametrize("literal", [b"Infinity", b"NaN", b"-Infinity", b"1e400"])
def test_non_finite_json_numbers_are_refused(batch: BatchClient, endpoint: str, literal: bytes) -> None:
    body = b'{"name": "p", "fairsharePolicy": {"shareDistribution": [{"shareIdentifier": "a", "weightFactor": %s}]}}'
    with nothing_written(batch):
        assert_client_error(raw_operation(endpoint, "CreateSchedulingPolicy", body % literal), "weightFactor")


def test_documented_ranges_are_named_rules(batch: BatchClient) -> None:
    lp = {"swappiness": 101, "maxSwap": 0}
    message = error_of(
        batch.register_job_definition,
        jobDefinitionName="d",
        type="container",
        containerProperties=container(linuxParameters=lp),
    )
    assert "containerProperties.linuxParameters.swappiness must be between 0 and 100" in message


@pytest.mark.parametrize("revision", ["²", "9" * 5000, "0", "2147483648"])
def test_a_revision_that_is_not_a_32_bit_number_is_refused(batch: BatchClient, endpoint: str, revision: str) -> None:
    body = {"jobDefinitions": [f"x:{revision}"]}
    assert_client_error(raw_operation(endpoint, "DescribeJobDefinitions", body), "revision must be a positive 32-bit")


# -- item 6: accounts and regions ------------------------------------------------------------------------------


def test_resources_of_another_account_or_region_are_not_found(batch: BatchClient, fargate_queue: str) -> None:
    jd = make_jd(batch, "jd")["jobDefinitionArn"]
    ce = arn("compute-environment", "fce")
    for other in (
        jd.replace(ACCOUNT, "999999999999"),
        jd.replace("us-east-1", "eu-west-1"),
        jd.rpartition(":")[0].replace(ACCOUNT, "999999999999"),
    ):
        assert "does not exist" in error_of(batch.submit_job, jobName="j", jobQueue=fargate_queue, jobDefinition=other)
        assert batch.describe_job_definitions(jobDefinitions=[other])["jobDefinitions"] == []
    foreign_queue = fargate_queue.replace(ACCOUNT, "999999999999")
    assert "not found" in error_of(batch.submit_job, jobName="j", jobQueue=foreign_queue, jobDefinition=jd)
    assert batch.describe_job_queues(jobQueues=[foreign_queue])["jobQueues"] == []
    assert (
        batch.describe_compute_environments(computeEnvironments=[ce.replace("us-east-1", "eu-west-1")])[
            "computeEnvironments"
        ]
        == []
    )
    error_of(batch.list_tags_for_resource, resourceArn=ce.replace(ACCOUNT, "999999999999"))
    # and the resources' own ARNs still work
    batch.submit_job(jobName="j", jobQueue=fargate_queue, jobDefinition=jd)
    assert describe_ce(batch, ce) is not None


# -- item 7: unknown members -----------------------------------------------------------------------------------


def test_unknown_members_are_dropped_not_stored_or_echoed(batch: BatchClient, endpoint: str) -> None:
    resources = {
        "type": "FARGATE",
        "maxvCpus": 4,
        "subnets": ["s"],
        "securityGroupIds": ["sg"],
        "bogus": {"nested": "x" * 1000},
    }
    body = {"computeEnvironmentName": "ce", "type": "MANAGED", "computeResources": resources, "extra": 1}
    assert raw_operation(endpoint, "CreateComputeEnvironment", body).status == 200
    update = {"computeEnvironment": "ce", "computeResources": {"maxvCpus": 8, "more": [1, 2]}, "x": "y"}
    assert raw_operation(endpoint, "UpdateComputeEnvironment", update).status == 200
    described = describe_ce(batch, "ce")
    assert described is not None
    assert "extra" not in described and "x" not in described
    assert set(described["computeResources"]) == {"type", "maxvCpus", "subnets", "securityGroupIds"}
    jd = {
        "jobDefinitionName": "jd",
        "type": "container",
        "containerProperties": {**container(), "secretSauce": True},
        "alsoUnknown": 1,
    }
    assert raw_operation(endpoint, "RegisterJobDefinition", jd).status == 200
    got = batch.describe_job_definitions(jobDefinitionName="jd")["jobDefinitions"][0]
    assert "alsoUnknown" not in got and "secretSauce" not in got["containerProperties"]


# -- items 10, 11: ListJobs tokens, ARN messages ---------------------------------------------------------------


def test_a_list_jobs_token_is_refused_with_other_filters(batch: BatchClient, fargate_queue: str) -> None:
    make_jd(batch, "jd")
    for i in range(3):
        batch.submit_job(jobName=f"n{i}", jobQueue=fargate_queue, jobDefinition="jd")
    first = batch.list_jobs(jobQueue=fargate_queue, filters=[{"name": "JOB_NAME", "values": ["n*"]}], maxResults=1)
    token = first["nextToken"]
    message = error_of(
        batch.list_jobs,
        jobQueue=fargate_queue,
        filters=[{"name": "JOB_NAME", "values": ["other*"]}],
        nextToken=token,
    )
    assert "nextToken was issued for a ListJobs request with other parameters" in message
    error_of(batch.list_jobs, jobQueue=fargate_queue, jobStatus="RUNNABLE", nextToken=token)
    again = batch.list_jobs(
        jobQueue=fargate_queue, filters=[{"name": "JOB_NAME", "values": ["n*"]}], maxResults=1, nextToken=token
    )
    assert [s["jobName"] for s in again["jobSummaryList"]] == ["n1"]


def test_an_array_parent_is_listed_with_its_status_summary(batch: BatchClient, fargate_queue: str) -> None:
    make_jd(batch, "jd")
    parent = batch.submit_job(jobName="a", jobQueue=fargate_queue, jobDefinition="jd", arrayProperties={"size": 3})
    listed = batch.list_jobs(jobQueue=fargate_queue, filters=[{"name": "JOB_NAME", "values": ["a"]}])
    summary = next(s for s in listed["jobSummaryList"] if s["jobId"] == parent["jobId"])
    assert summary["arrayProperties"]["size"] == 3
    assert sum(summary["arrayProperties"]["statusSummary"].values()) == 3


def test_an_arn_without_a_name_gets_a_message_that_says_so(batch: BatchClient) -> None:
    message = error_of(
        batch.submit_job, jobName="j", jobQueue=f"arn:aws:batch:us-east-1:{ACCOUNT}:job-queue/", jobDefinition="d"
    )
    assert "must name a job-queue after 'job-queue/'" in message
    assert "unsupported" not in message


def test_fargate_types_of_compute_environment_give_their_queue_type(batch: BatchClient) -> None:
    make_queue(batch, "f", [make_fargate_ce(batch, "f")])
    make_queue(batch, "e", [make_ce(batch, "e", {"type": "SPOT", **_spot()})])
    types = {q["jobQueueName"]: q.get("jobQueueType") for q in batch.describe_job_queues()["jobQueues"]}
    assert types == {"f": "ECS_FARGATE", "e": "ECS"}


def _spot() -> dict[str, Any]:
    return {
        "maxvCpus": 4,
        "subnets": ["s"],
        "securityGroupIds": ["sg"],
        "instanceTypes": ["optimal"],
        "instanceRole": "ecsInstanceRole",
        "allocationStrategy": "SPOT_CAPACITY_OPTIMIZED",
    }


# -- items 8, 19: the ECS ARNs of an attempt --------------------------------------------------------------------


def finished(batch: BatchClient, job_id: str, timeout_s: float = 30.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        job = batch.describe_jobs(jobs=[job_id])["jobs"][0]
        if job["status"] in ("SUCCEEDED", "FAILED"):
            return dict(job)
        time.sleep(0.05)
    raise AssertionError(f"job {job_id} did not finish")


TASK_ARN = re.compile(r"arn:aws:ecs:us-east-1:123456789012:task/batchplane-local/[0-9a-f]{32}")
INSTANCE_ARN = re.compile(r"arn:aws:ecs:us-east-1:123456789012:container-instance/batchplane-local/[0-9a-f]{32}")


def test_a_fargate_attempt_shows_its_ecs_task_arn_and_no_container_instance(
    batch: BatchClient, fargate_queue: str
) -> None:
    make_jd(batch, "jd", containerProperties=container(command=["true"]))
    job = finished(batch, batch.submit_job(jobName="j", jobQueue=fargate_queue, jobDefinition="jd")["jobId"])
    assert job["status"] == "SUCCEEDED"
    attempt = job["attempts"][0]["container"]
    assert TASK_ARN.fullmatch(job["container"]["taskArn"]) and attempt["taskArn"] == job["container"]["taskArn"]
    assert job["container"]["logStreamName"] == f"jd/default/{attempt['taskArn'].rsplit('/', 1)[1]}"
    assert attempt["networkInterfaces"] == []
    assert "containerInstanceArn" not in attempt and "containerInstanceArn" not in job["container"]


def test_an_ec2_attempt_names_its_container_instance(batch: BatchClient, ec2_queue: str) -> None:
    make_jd(batch, "jd", platformCapabilities=None, containerProperties=container(command=["true"]))
    job = finished(batch, batch.submit_job(jobName="j", jobQueue=ec2_queue, jobDefinition="jd")["jobId"])
    attempt = job["attempts"][0]["container"]
    assert TASK_ARN.fullmatch(attempt["taskArn"])
    assert INSTANCE_ARN.fullmatch(attempt["containerInstanceArn"])
    assert job["container"]["containerInstanceArn"] == attempt["containerInstanceArn"]


@pytest.mark.parametrize(("member", "value", "rule"), [("memory", 3, "at least 4"), ("vcpus", 0, "at least 1")])
def test_legacy_overrides_keep_their_documented_minimum(
    batch: BatchClient, ec2_queue: str, member: str, value: int, rule: str
) -> None:
    make_jd(batch, "jd", platformCapabilities=None, containerProperties=container(resourceRequirements=[]))
    overrides = {member: value}
    message = error_of(
        batch.submit_job, jobName="j", jobQueue=ec2_queue, jobDefinition="jd", containerOverrides=overrides
    )
    assert f"containerOverrides.{member} must be {rule}" in message
