"""EcsLauncher against moto's ECS (5.2.5): task definitions, RunTask parameters, idempotency, stop and recover.

moto cannot emit task events, exit codes or stop codes (tests/unit/test_ecs_events.py covers the translation); it
advances a task one state per DescribeTasks call and ignores RunTask's clientToken.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import boto3
import pytest
from moto import mock_aws
from moto.ec2 import utils as ec2_utils
from moto.moto_api import state_manager

from chalicelib.compute import ecs
from chalicelib.compute.ecs import EcsLauncher, LaunchRejected
from chalicelib.compute.port import Launcher, TaskSpec
from chalicelib.control.context import Services
from chalicelib.control.react import Reactor
from chalicelib.domain.errors import InvalidRequest, NotFound
from chalicelib.domain.lifecycle import TaskStarted, TaskStopped
from chalicelib.domain.model import ComputeEnvironment
from chalicelib.store.repository import Repository
from chalicelib.store.sqlite import SqliteItemStore
from tests.functional.moto_env import aws_env, network  # noqa: F401 - aws_env is a fixture
from tests.unit.builders import a_job, an_attempt

REGION = "us-east-1"
ACCOUNT = "123456789012"
CLUSTER = "batchplane"
IMAGE = "public.ecr.aws/docker/library/busybox:latest"
JOB_ID = "4c7599ae-0a82-49aa-ba5a-4727fcce14a8"
EXEC_ROLE = f"arn:aws:iam::{ACCOUNT}:role/batchplane-execution"


pytestmark = pytest.mark.usefixtures("aws_env")


class Aws:
    """moto's ECS with a cluster, a VPC (subnet + security group) and the RunTask calls the launcher made."""

    def __init__(self) -> None:
        self.ecs: Any = boto3.client("ecs", region_name=REGION)
        self.ec2: Any = boto3.client("ec2", region_name=REGION)
        self.subnet, self.sg = network(self.ec2)
        self.cluster_arn = self.ecs.create_cluster(clusterName=CLUSTER)["cluster"]["clusterArn"]
        self.run_calls: list[dict[str, Any]] = []
        self.calls: list[str] = []
        self.clients_made = 0

    def client(self) -> Any:
        """The launcher's client factory: a fresh client recording the parameters of each call."""
        self.clients_made += 1
        client = boto3.client("ecs", region_name=REGION)
        client.meta.events.register("provide-client-params.ecs.*", self._record)
        return client

    def _record(self, params: dict[str, Any], model: Any, **_: Any) -> None:
        self.calls.append(model.name)
        if model.name == "RunTask":
            self.run_calls.append(json.loads(json.dumps(params)))

    def tasks(self, started_by: str | None = None) -> list[dict[str, Any]]:
        arns: list[str] = []
        for status in ("RUNNING", "STOPPED"):
            kwargs: dict[str, Any] = {"cluster": CLUSTER, "desiredStatus": status}
            if started_by:
                kwargs["startedBy"] = started_by
            arns += self.ecs.list_tasks(**kwargs)["taskArns"]
        if not arns:
            return []
        return list(self.ecs.describe_tasks(cluster=CLUSTER, tasks=arns, include=["TAGS"])["tasks"])

    def families(self) -> list[str]:
        # moto matches familyPrefix as an exact family name, so filter here.
        arns = self.ecs.list_task_definitions()["taskDefinitionArns"]
        return [a for a in arns if a.rsplit("/", 1)[1].startswith("batchplane-")]

    def add_container_instance(self) -> None:
        instance = boto3.resource("ec2", region_name=REGION).create_instances(
            ImageId="ami-12c6146b", MinCount=1, MaxCount=1
        )[0]
        document = json.dumps(ec2_utils.generate_instance_identity_document(instance))
        self.ecs.register_container_instance(cluster=CLUSTER, instanceIdentityDocument=document)


@pytest.fixture
def aws() -> Iterator[Aws]:
    with mock_aws():
        yield Aws()


def a_ce(aws: Aws, name: str = "spot-fargate", rtype: str = "FARGATE_SPOT") -> ComputeEnvironment:
    resources: dict[str, Any] = {"type": rtype, "maxvCpus": 16, "subnets": [aws.subnet], "securityGroupIds": [aws.sg]}
    if rtype in ("EC2", "SPOT"):
        resources.update(minvCpus=0, instanceTypes=["optimal"], instanceRole="ecsInstanceRole")
    return ComputeEnvironment(
        name=name,
        arn=f"arn:aws:batch:{REGION}:{ACCOUNT}:compute-environment/{name}",
        ce_type="MANAGED",
        state="ENABLED",
        status="VALID",
        status_reason="ComputeEnvironment Healthy",
        uuid="0e6d3c1e-0000-4000-8000-000000000000",
        created_at=1_700_000_000_000,
        compute_resources=resources,
    )


def a_spec(job_id: str = JOB_ID, attempt: int = 1, revision: int = 1, **overrides: Any) -> TaskSpec:
    fields: dict[str, Any] = {
        "job_id": job_id,
        "attempt": attempt,
        "task_id": "a1b2c3d4",
        "command": ["sh", "-c", "echo hello"],
        "environment": {"GREETING": "hello", "AWS_BATCH_JOB_ID": job_id, "AWS_BATCH_JOB_ATTEMPT": str(attempt)},
        "log_stream": "hello/default/a1b2c3d4",
        "vcpus": 1.0,
        "memory": 2048,
        "compute_environment": "spot-fargate",
        "job_definition_name": "hello",
        "job_definition_arn": f"arn:aws:batch:{REGION}:{ACCOUNT}:job-definition/hello:{revision}",
        "container": a_container(),
        "tags": {"team": "science"},
    }
    fields.update(overrides)
    return TaskSpec(**fields)


def a_container(**container: Any) -> dict[str, Any]:
    """The job's effective containerProperties."""
    props: dict[str, Any] = {
        "image": IMAGE,
        "command": ["echo", "default"],
        "resourceRequirements": [{"type": "VCPU", "value": "1"}, {"type": "MEMORY", "value": "2048"}],
        "executionRoleArn": EXEC_ROLE,
        "jobRoleArn": f"arn:aws:iam::{ACCOUNT}:role/hello-job",
    }
    props.update(container)
    return props


class Launchers:
    def __init__(self, aws: Aws, ces: list[ComputeEnvironment]) -> None:
        self.aws = aws
        self.ces = {ce.name: ce for ce in ces}
        self.events: list[tuple[str, TaskStarted | TaskStopped]] = []

    def new(self, *, sink: bool = True, precheck: bool = True) -> EcsLauncher:
        return EcsLauncher(
            self.aws.client,
            CLUSTER,
            self.ces.get,
            on_event=(lambda job_id, event: self.events.append((job_id, event))) if sink else None,
            precheck=precheck,
        )


@pytest.fixture
def launchers(aws: Aws) -> Launchers:
    return Launchers(aws, [a_ce(aws), a_ce(aws, "fargate", "FARGATE"), a_ce(aws, "ec2", "EC2")])


# -- launch ---------------------------------------------------------------------------------------------------


def test_no_client_is_made_until_first_use(aws: Aws, launchers: Launchers) -> None:
    launcher: Launcher = launchers.new()  # satisfies the port
    assert aws.clients_made == 0
    launcher.launch(a_spec())
    assert aws.clients_made == 1


def test_launch_runs_a_fargate_spot_task(aws: Aws, launchers: Launchers) -> None:
    launchers.new().launch(a_spec())

    (call,) = aws.run_calls
    assert call["capacityProviderStrategy"] == [{"capacityProvider": "FARGATE_SPOT", "weight": 1}]
    assert "launchType" not in call
    assert call["networkConfiguration"] == {
        "awsvpcConfiguration": {"subnets": [aws.subnet], "securityGroups": [aws.sg], "assignPublicIp": "DISABLED"}
    }
    assert call["clientToken"] == f"{JOB_ID}#1"
    assert call["startedBy"] == ecs.started_by(JOB_ID, 1) and len(call["startedBy"]) == 36
    assert call["group"] == f"batchplane:{JOB_ID}:1"
    assert call["platformVersion"] == "LATEST"
    assert call["overrides"] == {
        "containerOverrides": [
            {
                "name": "default",
                "memory": 2048,
                "command": ["sh", "-c", "echo hello"],
                "environment": [
                    {"name": "AWS_BATCH_JOB_ATTEMPT", "value": "1"},
                    {"name": "AWS_BATCH_JOB_ID", "value": JOB_ID},
                    {"name": "GREETING", "value": "hello"},
                ],
            }
        ],
        "cpu": "1024",
        "memory": "2048",
    }

    (task,) = aws.tasks()
    assert task["capacityProviderName"] == "FARGATE_SPOT"
    assert task["group"] == f"batchplane:{JOB_ID}:1"
    assert task["startedBy"] == ecs.started_by(JOB_ID, 1)
    tags = {t["key"]: t["value"] for t in task["tags"]}
    assert tags["batchplane:jobId"] == JOB_ID
    assert tags["batchplane:attempt"] == "1"
    assert tags["batchplane:computeEnvironment"] == "spot-fargate"
    assert tags["team"] == "science"  # propagated job tags
    (eni,) = [a for a in task["attachments"] if a["type"] == "ElasticNetworkInterface"]
    details = {d["name"]: d["value"] for d in eni["details"]}
    assert details["subnetId"] == aws.subnet
    interface = aws.ec2.describe_network_interfaces(NetworkInterfaceIds=[details["networkInterfaceId"]])
    assert [g["GroupId"] for g in interface["NetworkInterfaces"][0]["Groups"]] == [aws.sg]


def test_fargate_task_definition(aws: Aws, launchers: Launchers) -> None:
    launchers.new().launch(a_spec())

    (arn,) = aws.families()
    definition = aws.ecs.describe_task_definition(taskDefinition=arn)["taskDefinition"]
    assert definition["family"] == "batchplane-hello-1"
    assert definition["requiresCompatibilities"] == ["FARGATE"]
    assert definition["networkMode"] == "awsvpc"
    assert (definition["cpu"], definition["memory"]) == ("1024", "2048")
    assert definition["executionRoleArn"] == EXEC_ROLE
    assert definition["taskRoleArn"] == f"arn:aws:iam::{ACCOUNT}:role/hello-job"
    (container,) = definition["containerDefinitions"]
    assert container["name"] == "default" and container["image"] == IMAGE and container["memory"] == 2048
    assert not container.get("command") and not container.get("environment")  # per job, in the overrides
    assert container["logConfiguration"] == {
        "logDriver": "awslogs",
        "options": {"awslogs-group": "/aws/batch/job", "awslogs-region": REGION, "awslogs-stream-prefix": "hello"},
    }


def test_fargate_on_demand_uses_the_fargate_provider(aws: Aws, launchers: Launchers) -> None:
    launchers.new().launch(a_spec(compute_environment="fargate", vcpus=0.5, memory=1024))
    (call,) = aws.run_calls
    assert call["capacityProviderStrategy"] == [{"capacityProvider": "FARGATE", "weight": 1}]
    assert (call["overrides"]["cpu"], call["overrides"]["memory"]) == ("512", "1024")
    (task,) = aws.tasks()
    assert task["capacityProviderName"] == "FARGATE"


def test_ec2_ce_uses_its_capacity_provider_and_host_networking(aws: Aws, launchers: Launchers) -> None:
    aws.ecs.create_capacity_provider(
        name="batchplane-ec2",
        autoScalingGroupProvider={
            "autoScalingGroupArn": f"arn:aws:autoscaling:{REGION}:{ACCOUNT}:autoScalingGroup:1:autoScalingGroupName/a",
            "managedScaling": {"status": "ENABLED", "targetCapacity": 100},
            "managedTerminationProtection": "DISABLED",
        },
    )
    aws.ecs.put_cluster_capacity_providers(
        cluster=CLUSTER, capacityProviders=["batchplane-ec2"], defaultCapacityProviderStrategy=[]
    )
    aws.add_container_instance()
    gpu = a_container(resourceRequirements=[{"type": "GPU", "value": "1"}])

    launchers.new().launch(a_spec(compute_environment="ec2", vcpus=2, memory=4096, container=gpu))

    (call,) = aws.run_calls
    assert call["capacityProviderStrategy"] == [{"capacityProvider": "batchplane-ec2", "weight": 1}]
    assert "networkConfiguration" not in call and "platformVersion" not in call
    override = call["overrides"]["containerOverrides"][0]
    assert (override["cpu"], override["memory"]) == (2048, 4096)
    assert override["resourceRequirements"] == [{"type": "GPU", "value": "1"}]
    assert "cpu" not in call["overrides"]
    (task,) = aws.tasks()
    assert task["capacityProviderName"] == "batchplane-ec2"
    (arn,) = aws.families()
    definition = aws.ecs.describe_task_definition(taskDefinition=arn)["taskDefinition"]
    assert definition["family"] == "batchplane-hello-1-ec2"
    assert definition["requiresCompatibilities"] == ["EC2"]
    assert definition["networkMode"] == "host"


# -- idempotency ----------------------------------------------------------------------------------------------


def test_second_launch_of_the_same_key_starts_no_second_task(aws: Aws, launchers: Launchers) -> None:
    launcher = launchers.new()
    launcher.launch(a_spec())
    launcher.launch(a_spec())
    launchers.new().launch(a_spec())  # another process (cold cache): ListTasks finds the task
    assert len(aws.ecs.list_tasks(cluster=CLUSTER)["taskArns"]) == 1
    assert len(aws.run_calls) == 1


def test_retried_run_task_repeats_the_same_request(aws: Aws, launchers: Launchers) -> None:
    # Without the ListTasks check the retry reaches RunTask again: with the same clientToken and the same
    # parameters, which real ECS answers with the first task (moto ignores the token, hence no count here).
    launchers.new(precheck=False).launch(a_spec())
    launchers.new(precheck=False).launch(a_spec())
    first, second = aws.run_calls
    assert first == second
    assert first["clientToken"] == f"{JOB_ID}#1"


def test_another_attempt_is_another_task(aws: Aws, launchers: Launchers) -> None:
    launcher = launchers.new()
    launcher.launch(a_spec(attempt=1))
    launcher.launch(a_spec(attempt=2))
    assert len(aws.ecs.list_tasks(cluster=CLUSTER)["taskArns"]) == 2
    assert {c["group"] for c in aws.run_calls} == {f"batchplane:{JOB_ID}:1", f"batchplane:{JOB_ID}:2"}


def test_long_keys_get_a_hashed_client_token(aws: Aws, launchers: Launchers) -> None:
    long_id = f"{JOB_ID}:{JOB_ID}"  # 73 characters: over the 64 RunTask accepts
    launchers.new().launch(a_spec(job_id=long_id))
    (call,) = aws.run_calls
    assert len(call["clientToken"]) <= 64 and call["clientToken"] == ecs.client_token(f"{long_id}#1")
    assert call["group"] == f"batchplane:{long_id}:1"


def test_task_definition_is_reused_for_the_same_revision(aws: Aws, launchers: Launchers) -> None:
    launchers.new().launch(a_spec("job-a"))
    launchers.new().launch(a_spec("job-b"))  # cold cache: DescribeTaskDefinition finds the family
    launcher = launchers.new()
    launcher.launch(a_spec("job-c"))
    launcher.launch(a_spec("job-d"))  # warm cache: no DescribeTaskDefinition
    assert len(aws.families()) == 1
    assert aws.calls.count("RegisterTaskDefinition") == 1
    assert aws.calls.count("DescribeTaskDefinition") == 3
    assert len({c["taskDefinition"] for c in aws.run_calls}) == 1

    launcher.launch(a_spec("job-e", revision=2))
    assert sorted(arn.rsplit("/", 1)[1] for arn in aws.families()) == ["batchplane-hello-1:1", "batchplane-hello-2:1"]


# -- stop / recover -------------------------------------------------------------------------------------------


def test_stop_stops_the_attempts_task(aws: Aws, launchers: Launchers) -> None:
    launchers.new().launch(a_spec())
    launchers.new().stop(JOB_ID, 1, "Terminated by the user")
    (task,) = aws.tasks()
    assert task["desiredStatus"] == "STOPPED"
    assert task["stoppedReason"] == "Terminated by the user"


def test_stop_of_an_attempt_without_task_does_nothing(aws: Aws, launchers: Launchers) -> None:
    launchers.new().launch(a_spec(attempt=1))
    launchers.new().stop(JOB_ID, 2, "Terminated")
    (task,) = aws.tasks()
    assert task["desiredStatus"] == "RUNNING"
    assert "StopTask" not in aws.calls


def test_stop_truncates_long_reasons(aws: Aws, launchers: Launchers) -> None:
    launchers.new().launch(a_spec())
    launchers.new().stop(JOB_ID, 1, "x" * 1000)
    (task,) = aws.tasks()
    assert task["stoppedReason"] == "x" * 255


def test_recover(aws: Aws, launchers: Launchers) -> None:
    launchers.new().launch(a_spec())
    assert launchers.new(sink=False).recover(JOB_ID, 1) is True
    assert launchers.new(sink=False).recover(JOB_ID, 2) is False
    assert launchers.new(sink=False).recover("another-job", 1) is False
    assert aws.ecs.list_tasks(cluster=CLUSTER)["taskArns"]  # recover stops nothing: ECS tasks are observed


def test_recover_reports_the_state_of_a_stopped_task(aws: Aws, launchers: Launchers) -> None:
    launchers.new().launch(a_spec())
    launchers.new().stop(JOB_ID, 1, "Job attempt duration exceeded timeout")
    assert launchers.new().recover(JOB_ID, 1) is True
    # moto reports exit code 0 for every container.
    (task,) = aws.tasks()
    assert launchers.events == [
        (
            JOB_ID,
            TaskStopped(1, 0, None, "Job attempt duration exceeded timeout", timed_out=True, task_arn=task["taskArn"]),
        )
    ]


def test_recover_reports_a_running_task(aws: Aws, launchers: Launchers) -> None:
    launchers.new().launch(a_spec())
    # moto starts tasks RUNNING and advances them one state per DescribeTasks; make it report RUNNING once more.
    state_manager.set_transition(model_name="ecs::task", transition={"progression": "manual", "times": 1000})
    try:
        assert launchers.new().recover(JOB_ID, 1) is True
    finally:
        state_manager.unset_transition(model_name="ecs::task")
    (arn,) = aws.ecs.list_tasks(cluster=CLUSTER)["taskArns"]
    assert launchers.events == [(JOB_ID, TaskStarted(1, task_arn=arn))]


# -- rejected launches and errors -----------------------------------------------------------------------------


def test_a_launch_ecs_cannot_run_is_reported_as_failed_to_start(aws: Aws, launchers: Launchers) -> None:
    launchers.new().launch(a_spec(vcpus=3))  # not a Fargate size
    assert aws.run_calls == []
    ((job_id, event),) = launchers.events
    assert job_id == JOB_ID and isinstance(event, TaskStopped)
    assert (event.attempt, event.exit_code, event.status_reason) == (1, None, "Task failed to start")
    assert event.reason is not None and "Fargate" in event.reason


def test_without_a_sink_a_rejected_launch_raises(aws: Aws, launchers: Launchers) -> None:
    with pytest.raises(LaunchRejected) as info:
        launchers.new(sink=False).launch(a_spec(environment={"BIG": "x" * 9000}))
    assert isinstance(info.value, InvalidRequest)
    assert "8192" in str(info.value)


def test_ecs_client_errors_become_rejections(aws: Aws, launchers: Launchers) -> None:
    # RegisterTaskDefinition: ClientException (no image)
    launchers.new().launch(a_spec(container=a_container(image=None)))
    ((_, event),) = launchers.events
    assert isinstance(event, TaskStopped) and event.reason is not None
    assert event.reason.startswith("ClientException")


def test_missing_cluster_is_not_found(aws: Aws, launchers: Launchers) -> None:
    launcher = EcsLauncher(aws.client, "no-such-cluster", launchers.ces.get)
    with pytest.raises(NotFound) as info:
        launcher.launch(a_spec())
    assert info.value.__cause__ is not None
    assert "ClusterNotFoundException" in str(info.value)


def test_an_unknown_compute_environment_is_a_rejected_launch(aws: Aws, launchers: Launchers) -> None:
    launchers.new().launch(a_spec(compute_environment="gone"))
    ((_, event),) = launchers.events
    assert isinstance(event, TaskStopped) and event.status_reason == "Task failed to start"
    assert event.reason == "compute environment gone does not exist"
    assert aws.run_calls == []


def test_the_reactor_gives_the_launcher_the_job_definition_container_and_propagated_tags() -> None:
    job = a_job(
        job_definition_arn=f"arn:aws:batch:{REGION}:{ACCOUNT}:job-definition/hello:7",
        job_definition_name="hello",
        container={"image": IMAGE, "command": ["echo", "Ref::who"]},
        parameters={"who": "world"},
        tags={"team": "science"},
        propagate_tags=True,
        status="STARTING",
        current=an_attempt(1, compute_environment="spot-fargate"),
    )
    store = SqliteItemStore(":memory:")
    try:
        reactor = Reactor(Services(repo=Repository(store)), launcher=EcsLauncher(lambda: None, CLUSTER, {}.get))
        spec = reactor.task_spec(job, 1)
        assert (spec.job_definition_name, spec.revision) == ("hello", 7)
        assert spec.container == {"image": IMAGE, "command": ["echo", "Ref::who"]}
        assert spec.command == ["echo", "world"]
        assert spec.tags == {"team": "science"}
        assert reactor.task_spec(replace(job, propagate_tags=False), 1).tags == {}
    finally:
        store.close()
