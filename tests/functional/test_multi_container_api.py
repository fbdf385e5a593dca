"""Multi-container job definitions (ecsProperties) and SubmitJob's ecsPropertiesOverride through boto3: what AWS
refuses is refused with a ClientException naming the field, and what it accepts is described back (docs/adr/0028)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.functional.builders import BatchClient, assert_rejected, make_ec2_ce, make_queue


def c(name: str, **props: Any) -> dict[str, Any]:
    return {"name": name, "image": "busybox", "command": ["true"], **props}


def register(batch: BatchClient, *containers: dict[str, Any], name: str = "mc", **request: Any) -> dict[str, Any]:
    return batch.register_job_definition(
        jobDefinitionName=name,
        type="container",
        ecsProperties={"taskProperties": [{"containers": list(containers)}]},
        **request,
    )


@pytest.mark.parametrize(
    ("containers", "fragments"),
    [
        pytest.param([], ["containers", "1-10"], id="no-container"),
        pytest.param([c(f"c{i}") for i in range(11)], ["containers", "1-10"], id="eleven"),
        pytest.param([c("a", essential=False)], ["at least one essential"], id="no-essential"),
        pytest.param([c("a"), c("a")], ["containers[1].name", "'a'"], id="duplicate-names"),
        pytest.param([c("a"), {"image": "busybox"}], ["containers[1].name", "is required"], id="unnamed"),
        pytest.param([c("a b")], ["containers[0].name"], id="bad-name"),
        pytest.param(
            [c("a", dependsOn=[{"containerName": "zz", "condition": "START"}])],
            ["dependsOn[0].containerName", "'zz'"],
            id="unknown-dependency",
        ),
        pytest.param(
            [c("a", dependsOn=[{"containerName": "b", "condition": "HEALTHY"}]), c("b", essential=False)],
            ["dependsOn[0].condition", "HEALTHY"],
            id="healthy",
        ),
        pytest.param(
            [c("a", dependsOn=[{"containerName": "b", "condition": "SUCCESS"}]), c("b")],
            ["dependsOn[0].condition", "essential container (b)"],
            id="success-on-essential",
        ),
        pytest.param(
            [
                c("a", dependsOn=[{"containerName": "b", "condition": "START"}]),
                c("b", dependsOn=[{"containerName": "a", "condition": "START"}]),
            ],
            ["cycle", "a -> b -> a"],
            id="cycle",
        ),
        pytest.param([c("a", environment=[{"name": "AWS_BATCH_X", "value": "1"}])], ["environment"], id="reserved-env"),
        pytest.param([c("a", startTimeout=1)], ["containers[0].startTimeout", "2 to 120"], id="start-timeout"),
        pytest.param([c("a", stopTimeout=121)], ["containers[0].stopTimeout", "2 to 120"], id="stop-timeout"),
        pytest.param(
            [c("a", resourceRequirements=[{"type": "VCPU", "value": "-1"}])],
            ["containers[0].resourceRequirements"],
            id="bad-vcpu",
        ),
    ],
)
def test_invalid_task_properties_are_refused(
    batch: BatchClient, containers: list[dict[str, Any]], fragments: list[str]
) -> None:
    assert_rejected(batch, lambda: register(batch, *containers), *fragments)


def test_two_tasks_are_refused(batch: BatchClient) -> None:
    props = {"taskProperties": [{"containers": [c("a")]}, {"containers": [c("b")]}]}
    assert_rejected(
        batch,
        lambda: batch.register_job_definition(jobDefinitionName="x", type="container", ecsProperties=props),
        "taskProperties",
        "exactly one task",
    )


def test_fargate_task_size_is_the_sum_of_its_containers(batch: BatchClient) -> None:
    quarter = [{"type": "VCPU", "value": "0.25"}, {"type": "MEMORY", "value": "512"}]
    fargate = {"platformCapabilities": ["FARGATE"]}
    assert_rejected(  # 0.75 vCPU is no Fargate size
        batch,
        lambda: register(batch, *(c(n, resourceRequirements=quarter) for n in "abc"), **fargate),
        "VCPU",
    )
    register(batch, *(c(n, resourceRequirements=quarter) for n in "ab"), **fargate)  # 0.5 vCPU, 1 GiB: fine


@pytest.fixture
def queue(batch: BatchClient) -> str:
    return make_queue(batch, "q", [make_ec2_ce(batch, "ce")])


def test_submit_applies_overrides_and_describes_the_task(batch: BatchClient, queue: str) -> None:
    # GIVEN a definition with a sidecar and a main container
    half = [{"type": "VCPU", "value": "0.5"}, {"type": "MEMORY", "value": "256"}]
    register(
        batch,
        c("side", essential=False, resourceRequirements=half),
        c("main", environment=[{"name": "A", "value": "1"}], resourceRequirements=half),
    )
    # WHEN a job overrides main's command, environment and memory
    override = {
        "taskProperties": [
            {
                "containers": [
                    {
                        "name": "main",
                        "command": ["echo", "hi"],
                        "environment": [{"name": "B", "value": "2"}],
                        "resourceRequirements": [{"type": "MEMORY", "value": "1024"}],
                    }
                ]
            }
        ]
    }
    job_id = batch.submit_job(jobName="j", jobQueue=queue, jobDefinition="mc", ecsPropertiesOverride=override)["jobId"]
    # THEN DescribeJobs shows the task with the overrides applied, no single `container`, both containers essential
    # as defined, and the job reserves the sum of its containers
    job = batch.describe_jobs(jobs=[job_id])["jobs"][0]
    assert "container" not in job
    containers = {x["name"]: x for x in job["ecsProperties"]["taskProperties"][0]["containers"]}
    assert containers["main"]["command"] == ["echo", "hi"]
    assert containers["main"]["environment"] == [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}]
    assert {r["type"]: r["value"] for r in containers["main"]["resourceRequirements"]} == {
        "VCPU": "0.5",
        "MEMORY": "1024",
    }
    assert containers["side"]["essential"] is False and containers["main"]["essential"] is True
    summary = batch.list_jobs(jobQueue=queue, filters=[{"name": "JOB_NAME", "values": ["j"]}])["jobSummaryList"]
    assert summary[0]["capacityUsage"] == [{"capacityUnit": "VCPU", "quantity": 1.0}]


def test_submit_refuses_what_does_not_fit_the_definition(batch: BatchClient, queue: str) -> None:
    register(batch, c("a"), c("b", essential=False))
    bad_name = {"taskProperties": [{"containers": [{"name": "zz", "command": ["x"]}]}]}
    assert_rejected(
        batch,
        lambda: batch.submit_job(jobName="j", jobQueue=queue, jobDefinition="mc", ecsPropertiesOverride=bad_name),
        "ecsPropertiesOverride.taskProperties[0].containers[0].name",
        "'zz'",
    )
    assert_rejected(
        batch,
        lambda: batch.submit_job(
            jobName="j", jobQueue=queue, jobDefinition="mc", containerOverrides={"command": ["x"]}
        ),
        "containerOverrides",
        "ecsPropertiesOverride",
    )
    reserved = {
        "taskProperties": [{"containers": [{"name": "a", "environment": [{"name": "AWS_BATCH_J", "value": "1"}]}]}]
    }
    assert_rejected(
        batch,
        lambda: batch.submit_job(jobName="j", jobQueue=queue, jobDefinition="mc", ecsPropertiesOverride=reserved),
        "environment",
    )
    batch.register_job_definition(
        jobDefinitionName="single", type="container", containerProperties={"image": "busybox", "command": ["true"]}
    )
    assert_rejected(
        batch,
        lambda: batch.submit_job(jobName="j", jobQueue=queue, jobDefinition="single", ecsPropertiesOverride=bad_name),
        "ecsPropertiesOverride",
        "ecsProperties job definition",
    )


@pytest.mark.parametrize(
    ("task", "platforms", "fragments"),
    [
        pytest.param({"ipcMode": "shared"}, ["EC2"], ["taskProperties[0].ipcMode", "host, task, none"], id="ipc"),
        pytest.param({"pidMode": "none"}, ["EC2"], ["taskProperties[0].pidMode", "host, task"], id="pid"),
        pytest.param({"ipcMode": "task"}, ["FARGATE"], ["ipcMode", "not supported on Fargate"], id="fargate-ipc"),
        pytest.param({"pidMode": "host"}, ["FARGATE"], ["pidMode", "only task"], id="fargate-pid"),
    ],
)
def test_invalid_task_modes_are_refused(
    batch: BatchClient, task: dict[str, Any], platforms: list[str], fragments: list[str]
) -> None:
    quarter = [{"type": "VCPU", "value": "0.25"}, {"type": "MEMORY", "value": "512"}]
    props = {"taskProperties": [{"containers": [c("a", resourceRequirements=quarter)], **task}]}
    assert_rejected(
        batch,
        lambda: batch.register_job_definition(
            jobDefinitionName="modes", type="container", platformCapabilities=platforms, ecsProperties=props
        ),
        *fragments,
    )
