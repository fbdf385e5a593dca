"""The AWS runtime's compute path on moto: the control plane on the DynamoDB store, jobs launched as ECS tasks
(EcsLauncher on moto ECS), task and host events delivered as EventBridge would, capacity on Auto Scaling groups.

Jobs are submitted and described through the real API path (`gateway.handle`). moto cannot emit EventBridge events,
exit codes or stop codes (docs: /work/shared/notes/stack-findings.md), so each test builds the "ECS Task State
Change" and EC2 envelopes itself, shaped like the documented ones, for the tasks moto really started (their ARNs and
groups). The dispatcher, the event handlers (runtime/task_events.py), the sweep and capacity run as the Lambdas will.
"""

from __future__ import annotations

import dataclasses
import json
import random
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws
from moto.ec2 import utils as ec2_utils
from moto.ecs.models import ecs_backends
from moto.ecs.responses import EC2ContainerServiceResponse
from moto.moto_api import state_manager

from chalicelib.compute import ecs
from chalicelib.compute.capacity_aws import AsgCapacity, group_name
from chalicelib.compute.ecs import EcsLauncher
from chalicelib.compute.port import TaskSpec
from chalicelib.control import capacity
from chalicelib.control.react import Reactor
from chalicelib.control.sweep import SweepPolicy, sweep
from chalicelib.domain.jobs import RUNNABLE, RUNNING, STARTING
from chalicelib.domain.reasons import TASK_END_UNKNOWN
from chalicelib.domain.scheduling import NO_VALID_CE
from chalicelib.runtime.task_events import on_ec2_event, on_ecs_task_event
from chalicelib.store.dynamo import DynamoItemStore
from chalicelib.store.repository import Repository
from tests.functional.moto_env import aws_env, network  # noqa: F401 - aws_env is a fixture
from tests.functional.plane import Plane

REGION = "us-east-1"
ACCOUNT = "123456789012"
CLUSTER = "batchplane"
TABLE = "batchplane"
ESSENTIAL_EXITED = "Essential container in task exited"
SPOT_INTERRUPTED = "Your Spot Task was interrupted."
TIMEOUT = "Job attempt duration exceeded timeout"
# The usual Spot rule set, with the Fargate Spot reason next to the EC2 one (runtime/task_events.py).
SPOT_RULES = {
    "attempts": 3,
    "evaluateOnExit": [
        {"onStatusReason": "Host EC2*", "action": "RETRY"},
        {"onStatusReason": "Your Spot Task*", "action": "RETRY"},
        {"onReason": "*", "action": "EXIT"},
    ],
}
MINUTE = 60_000


pytestmark = pytest.mark.usefixtures("aws_env")


class Aws:
    """moto: the DynamoDB table, an ECS cluster in a VPC, and the Auto Scaling pieces of EC2/SPOT CEs."""

    def __init__(self) -> None:
        self.ecs: Any = boto3.client("ecs", region_name=REGION)
        self.ec2: Any = boto3.client("ec2", region_name=REGION)
        self.autoscaling: Any = boto3.client("autoscaling", region_name=REGION)
        self.subnet, self.sg = network(self.ec2)
        self.cluster_arn = self.ecs.create_cluster(clusterName=CLUSTER)["cluster"]["clusterArn"]
        DynamoItemStore(TABLE, region=REGION).create_table()

    @staticmethod
    def ecs_client() -> Any:
        return boto3.client("ecs", region_name=REGION)

    @staticmethod
    def ec2_client() -> Any:
        return boto3.client("ec2", region_name=REGION)

    @staticmethod
    def autoscaling_client() -> Any:
        return boto3.client("autoscaling", region_name=REGION)

    def task_arn(self, job_id: str, attempt: int) -> str:
        """The one task RunTask started for the attempt."""
        token = ecs.started_by(job_id, attempt)
        arns = [
            arn
            for status in ("RUNNING", "STOPPED")
            for arn in self.ecs.list_tasks(cluster=CLUSTER, startedBy=token, desiredStatus=status)["taskArns"]
        ]
        assert len(arns) == 1, (job_id, attempt, arns)
        return str(arns[0])

    def container_instance(self) -> tuple[str, str]:
        """An EC2 instance registered to the cluster: (instance id, container instance ARN)."""
        instance = boto3.resource("ec2", region_name=REGION).create_instances(
            ImageId="ami-12c6146b", MinCount=1, MaxCount=1
        )[0]
        document = json.dumps(ec2_utils.generate_instance_identity_document(instance))
        registered = self.ecs.register_container_instance(cluster=CLUSTER, instanceIdentityDocument=document)
        return instance.id, registered["containerInstance"]["containerInstanceArn"]

    def drain(self, container_instance: str) -> None:
        """What ECS does to an instance with a Spot interruption notice (ECS_ENABLE_SPOT_INSTANCE_DRAINING)."""
        self.ecs.update_container_instances_state(
            cluster=CLUSTER, containerInstances=[container_instance], status="DRAINING"
        )

    def spot_capacity(self, ce: str, *, min_vcpus: int = 0, max_vcpus: int = 64) -> None:
        """What infra/ creates for a managed SPOT CE (ADR 0004): a launch template, an Auto Scaling group whose unit is
        one vCPU (instance weights = vCPUs), and a capacity provider on it with managed scaling off."""
        self.ec2.create_launch_template(
            LaunchTemplateName=f"batchplane-{ce}", LaunchTemplateData={"ImageId": "ami-12c6146b"}
        )
        self.autoscaling.create_auto_scaling_group(
            AutoScalingGroupName=group_name(ce),
            MinSize=min_vcpus,
            MaxSize=max_vcpus,
            DesiredCapacity=min_vcpus,
            VPCZoneIdentifier=self.subnet,
            MixedInstancesPolicy={
                "LaunchTemplate": {
                    "LaunchTemplateSpecification": {"LaunchTemplateName": f"batchplane-{ce}", "Version": "$Latest"},
                    "Overrides": [
                        {"InstanceType": "c5.xlarge", "WeightedCapacity": "4"},
                        {"InstanceType": "m5.xlarge", "WeightedCapacity": "4"},
                    ],
                },
                "InstancesDistribution": {"OnDemandPercentageAboveBaseCapacity": 0},
            },
        )
        group_arn = self.autoscaling.describe_auto_scaling_groups(AutoScalingGroupNames=[group_name(ce)])[
            "AutoScalingGroups"
        ][0]["AutoScalingGroupARN"]
        self.ecs.create_capacity_provider(
            name=ecs.capacity_provider_name(ce),
            autoScalingGroupProvider={
                "autoScalingGroupArn": group_arn,
                "managedScaling": {"status": "DISABLED"},
                "managedTerminationProtection": "DISABLED",
            },
        )
        self.ecs.put_cluster_capacity_providers(
            cluster=CLUSTER,
            capacityProviders=["FARGATE", "FARGATE_SPOT", ecs.capacity_provider_name(ce)],
            defaultCapacityProviderStrategy=[],
        )

    def group_desired(self, ce: str) -> int:
        groups = self.autoscaling.describe_auto_scaling_groups(AutoScalingGroupNames=[group_name(ce)])
        return int(groups["AutoScalingGroups"][0]["DesiredCapacity"])


@pytest.fixture
def aws() -> Iterator[Aws]:
    with mock_aws():
        yield Aws()


class CrashingEcsLauncher(EcsLauncher):
    """An EcsLauncher whose next `crash` launches die before RunTask (the Lambda was killed after the claim)."""

    crash = 0

    def launch(self, spec: TaskSpec) -> None:
        if self.crash:
            self.crash -= 1
            raise RuntimeError("killed between claim and launch")
        super().launch(spec)


def aws_plane(launcher_class: type[EcsLauncher] = EcsLauncher) -> Plane:
    """The control plane as the AWS runtime wires it: DynamoDB store, ECS launcher reporting into the reactor."""
    store = DynamoItemStore(TABLE, region=REGION)
    repo = Repository(store)
    launcher = launcher_class(Aws.ecs_client, CLUSTER, repo.get_ce)
    plane = Plane(store, launcher)
    launcher.on_event = plane.on_task_event
    return plane


@pytest.fixture
def plane(aws: Aws) -> Plane:
    return aws_plane()


# -- events, shaped as EventBridge delivers them ----------------------------------------------------------------


def task_event(
    aws: Aws,
    job_id: str,
    attempt: int,
    last_status: str,
    *,
    version: int,
    exit_code: int | None = None,
    stop_code: str | None = None,
    stopped_reason: str | None = None,
    desired_status: str | None = None,
    capacity_provider: str = "FARGATE_SPOT",
    container_instance: str | None = None,
) -> dict[str, Any]:
    """An "ECS Task State Change" envelope for the task moto started for the attempt."""
    arn = aws.task_arn(job_id, attempt)
    container: dict[str, Any] = {"containerArn": f"{arn}/default", "lastStatus": last_status, "name": "default"}
    if exit_code is not None:
        container["exitCode"] = exit_code
    detail: dict[str, Any] = {
        "clusterArn": aws.cluster_arn,
        "taskArn": arn,
        "group": f"batchplane:{job_id}:{attempt}",
        "startedBy": ecs.started_by(job_id, attempt),
        "lastStatus": last_status,
        "desiredStatus": desired_status or ("STOPPED" if last_status == "STOPPED" else "RUNNING"),
        "launchType": "FARGATE" if capacity_provider.startswith("FARGATE") else "EC2",
        "capacityProviderName": capacity_provider,
        "containers": [container],
        "version": version,
        "createdAt": "2024-01-23T17:57:34.402Z",
    }
    if container_instance:
        detail["containerInstanceArn"] = container_instance
    if stop_code:
        detail["stopCode"] = stop_code
    if stopped_reason:
        detail["stoppedReason"] = stopped_reason
    return {
        "version": "0",
        "id": f"ecs-{job_id}-{attempt}-{version}",
        "detail-type": "ECS Task State Change",
        "source": "aws.ecs",
        "account": ACCOUNT,
        "time": "2024-01-23T17:57:58Z",
        "region": REGION,
        "resources": [arn],
        "detail": detail,
    }


def ec2_event(detail_type: str, instance_id: str, **detail: str) -> dict[str, Any]:
    return {
        "version": "0",
        "id": f"ec2-{instance_id}-{detail_type[:8]}",
        "detail-type": detail_type,
        "source": "aws.ec2",
        "account": ACCOUNT,
        "time": "2024-01-23T17:58:00Z",
        "region": REGION,
        "resources": [f"arn:aws:ec2:{REGION}a:instance/{instance_id}"],
        "detail": {"instance-id": instance_id, **detail},
    }


def spot_warning(instance_id: str) -> dict[str, Any]:
    return ec2_event("EC2 Spot Instance Interruption Warning", instance_id, **{"instance-action": "terminate"})


def instance_terminated(instance_id: str) -> dict[str, Any]:
    return ec2_event("EC2 Instance State-change Notification", instance_id, state="terminated")


def run_ok(aws: Aws, job_id: str, attempt: int, **kw: Any) -> list[dict[str, Any]]:
    """PENDING, RUNNING, STOPPED with exit code 0."""
    return [
        task_event(aws, job_id, attempt, "PENDING", version=1, **kw),
        task_event(aws, job_id, attempt, "RUNNING", version=2, **kw),
        task_event(
            aws, job_id, attempt, "STOPPED", version=3, exit_code=0, stop_code="EssentialContainerExited",
            stopped_reason=ESSENTIAL_EXITED, **kw,
        ),
    ]  # fmt: skip


def fargate_spot_interrupted(aws: Aws, job_id: str, attempt: int) -> list[dict[str, Any]]:
    """RUNNING, the two-minute notice (still RUNNING, desired STOPPED), then STOPPED after SIGTERM (exit 143)."""
    return [
        task_event(aws, job_id, attempt, "RUNNING", version=2),
        task_event(aws, job_id, attempt, "RUNNING", version=3, desired_status="STOPPED", stop_code="TerminationNotice",
                   stopped_reason=SPOT_INTERRUPTED),
        task_event(aws, job_id, attempt, "STOPPED", version=4, exit_code=143, stop_code="TerminationNotice",
                   stopped_reason=SPOT_INTERRUPTED),
    ]  # fmt: skip


def deliver(plane: Plane, *events: dict[str, Any]) -> None:
    for event in events:
        if event["source"] == "aws.ecs":
            on_ecs_task_event(plane.svc, plane.reactor, event)
        else:
            on_ec2_event(plane.svc, plane.reactor, event)


def outcome(plane: Plane, job_id: str) -> tuple[Any, ...]:
    """What DescribeJobs says about a finished job, without the times (each delivery order has its own)."""
    job = plane.describe_one(job_id)
    attempts = [
        (
            a["container"].get("taskArn"),
            a["container"].get("logStreamName"),
            a["container"].get("exitCode"),
            a["container"].get("reason"),
            a.get("statusReason"),
        )
        for a in job["attempts"]
    ]
    return job["status"], job.get("statusReason"), job["container"].get("exitCode"), attempts


def fargate_setup(plane: Plane, aws: Aws) -> tuple[str, str]:
    ce = plane.fargate_ce("spot-fargate", aws.subnet, aws.sg, spot=True)
    return plane.queue("fargate", ce), plane.job_definition("hello")


# -- (a) a Fargate Spot job from RunTask to SUCCEEDED -------------------------------------------------------------


def test_a_fargate_spot_job_runs_through_run_task_and_task_events_to_succeeded(aws: Aws, plane: Plane) -> None:
    queue, jd = fargate_setup(plane, aws)
    job_id = plane.submit(queue, jd)
    assert plane.describe_one(job_id)["status"] == RUNNABLE

    # WHEN the dispatcher places it  THEN it is STARTING and its task was started on FARGATE_SPOT
    assert plane.dispatch() == 1
    assert plane.describe_one(job_id)["status"] == STARTING
    arn = aws.task_arn(job_id, 1)
    (task,) = aws.ecs.describe_tasks(cluster=CLUSTER, tasks=[arn])["tasks"]
    assert task["capacityProviderName"] == "FARGATE_SPOT"
    assert task["group"] == f"batchplane:{job_id}:1"

    pending, running, stopped = run_ok(aws, job_id, 1)
    deliver(plane, pending)
    assert plane.describe_one(job_id)["status"] == STARTING
    deliver(plane, running)
    assert plane.describe_one(job_id)["status"] == RUNNING
    deliver(plane, stopped)

    job = plane.describe_one(job_id)
    assert job["status"] == "SUCCEEDED"
    assert job["statusReason"] == ESSENTIAL_EXITED
    task_id = arn.rsplit("/", 1)[1]
    assert job["container"]["taskArn"] == arn
    assert job["container"]["logStreamName"] == f"hello/default/{task_id}"  # AWS Batch's form on ECS
    assert outcome(plane, job_id)[3] == [(arn, f"hello/default/{task_id}", 0, None, ESSENTIAL_EXITED)]
    assert job["createdAt"] <= job["startedAt"] <= job["stoppedAt"]


# -- (b) Spot interruptions lead to a second attempt ---------------------------------------------------------------


def test_a_fargate_spot_interruption_is_retried_and_the_job_succeeds(aws: Aws, plane: Plane) -> None:
    queue, jd = fargate_setup(plane, aws)
    job_id = plane.submit(queue, jd, retryStrategy=SPOT_RULES)
    plane.dispatch()

    # WHEN the task is interrupted (notice, then STOPPED with TerminationNotice)
    running, notice, stopped = fargate_spot_interrupted(aws, job_id, 1)
    deliver(plane, running, notice)
    assert plane.describe_one(job_id)["status"] == RUNNING  # the notice changes nothing
    deliver(plane, stopped)

    # THEN the job is RUNNABLE again, then placed as attempt 2 on a new task, which succeeds
    assert plane.describe_one(job_id)["status"] == RUNNABLE
    assert plane.dispatch() == 1
    first, second = aws.task_arn(job_id, 1), aws.task_arn(job_id, 2)
    assert first != second
    deliver(plane, *run_ok(aws, job_id, 2))

    status, _, exit_code, attempts = outcome(plane, job_id)
    assert (status, exit_code) == ("SUCCEEDED", 0)
    assert [(a[0], a[2], a[4]) for a in attempts] == [(first, 143, SPOT_INTERRUPTED), (second, 0, ESSENTIAL_EXITED)]


def test_a_fargate_spot_interruption_exits_under_a_rule_set_that_only_retries_ec2_hosts(aws: Aws, plane: Plane) -> None:
    """The documented text matters: "Host EC2*" alone does not match Fargate Spot's "Your Spot Task was
    interrupted.", and the catch-all EXIT rule then ends the job."""
    queue, jd = fargate_setup(plane, aws)
    rules = {"attempts": 3, "evaluateOnExit": [SPOT_RULES["evaluateOnExit"][0], {"onReason": "*", "action": "EXIT"}]}
    job_id = plane.submit(queue, jd, retryStrategy=rules)
    plane.dispatch()
    deliver(plane, *fargate_spot_interrupted(aws, job_id, 1))
    assert outcome(plane, job_id)[:2] == ("FAILED", SPOT_INTERRUPTED)


def spot_setup(plane: Plane, aws: Aws, *, min_vcpus: int = 0, **extra: Any) -> tuple[str, str]:
    aws.spot_capacity("spot", min_vcpus=min_vcpus)
    ce = plane.spot_ce("spot", aws.subnet, aws.sg, min_vcpus=min_vcpus, **extra)
    return plane.queue("ec2", ce), plane.job_definition("crunch", fargate=False)


def test_an_ec2_spot_interruption_warning_fails_the_attempt_and_the_retry_succeeds(aws: Aws, plane: Plane) -> None:
    # GIVEN a job running on an instance of a SPOT CE (its capacity provider), a second instance registered
    queue, jd = spot_setup(plane, aws)
    doomed, doomed_ci = aws.container_instance()
    _, spare_ci = aws.container_instance()
    job_id = plane.submit(queue, jd, retryStrategy=SPOT_RULES)
    assert plane.dispatch() == 1
    first = aws.task_arn(job_id, 1)
    (task,) = aws.ecs.describe_tasks(cluster=CLUSTER, tasks=[first])["tasks"]
    assert task["capacityProviderName"] == "batchplane-spot"
    assert task["containerInstanceArn"] == doomed_ci
    on_doomed = {"capacity_provider": "batchplane-spot", "container_instance": doomed_ci}
    deliver(plane, task_event(aws, job_id, 1, "RUNNING", version=2, **on_doomed))

    # WHEN EC2 warns that the instance is reclaimed (twice: delivery is at least once)
    deliver(plane, spot_warning(doomed), spot_warning(doomed))

    # THEN the attempt failed as a lost host, its task is asked to stop, and the job waits for its retry
    host_gone = f"Host EC2 (instance {doomed}) terminated."
    job = plane.describe_one(job_id)
    assert (job["status"], job["statusReason"]) == (RUNNABLE, host_gone)
    (task,) = aws.ecs.describe_tasks(cluster=CLUSTER, tasks=[first])["tasks"]
    assert (task["desiredStatus"], task["stoppedReason"]) == ("STOPPED", host_gone)

    # WHEN ECS drains the instance, the retry is placed (on the other instance), and ECS's own late events for the
    # first task arrive, then the instance's termination
    aws.drain(doomed_ci)
    assert plane.dispatch() == 1
    second = aws.task_arn(job_id, 2)
    (task,) = aws.ecs.describe_tasks(cluster=CLUSTER, tasks=[second])["tasks"]
    assert task["containerInstanceArn"] == spare_ci
    late = task_event(aws, job_id, 1, "STOPPED", version=3, exit_code=143, stop_code="SpotInterruption",
                      stopped_reason=host_gone, **on_doomed)  # fmt: skip
    deliver(plane, late, instance_terminated(doomed))
    deliver(plane, *run_ok(aws, job_id, 2, capacity_provider="batchplane-spot", container_instance=spare_ci))

    # THEN it succeeded on its second attempt, both attempts recorded
    status, _, _, attempts = outcome(plane, job_id)
    assert status == "SUCCEEDED"
    assert [(a[0], a[2], a[4]) for a in attempts] == [(first, None, host_gone), (second, 0, ESSENTIAL_EXITED)]


def test_the_termination_of_an_instance_without_a_warning_fails_its_attempts(aws: Aws, plane: Plane) -> None:
    queue, jd = spot_setup(plane, aws)
    instance, _ = aws.container_instance()
    jobs = [plane.submit(queue, jd, f"job-{i}", retryStrategy={"attempts": 1}) for i in range(2)]
    plane.dispatch()

    deliver(plane, instance_terminated(instance))

    described = plane.describe(*jobs)
    assert {described[j]["status"] for j in jobs} == {"FAILED"}
    assert {described[j]["statusReason"] for j in jobs} == {f"Host EC2 (instance {instance}) terminated."}


def test_events_for_other_instances_and_other_states_change_nothing(aws: Aws, plane: Plane) -> None:
    queue, jd = spot_setup(plane, aws)
    instance, _ = aws.container_instance()
    job_id = plane.submit(queue, jd)
    plane.dispatch()
    other, _ = aws.container_instance()

    deliver(plane, spot_warning(other), ec2_event("EC2 Instance State-change Notification", instance, state="stopping"))

    assert plane.describe_one(job_id)["status"] == STARTING


# -- (c) every event twice, in shuffled order -----------------------------------------------------------------------

ORDERS = 8


def shuffled_twice(events: list[dict[str, Any]], seed: int) -> list[dict[str, Any]]:
    twice = [*events, *(json.loads(json.dumps(e)) for e in events)]
    random.Random(seed).shuffle(twice)
    return twice


def test_duplicated_and_shuffled_events_end_in_the_same_job(aws: Aws, plane: Plane) -> None:
    queue, jd = fargate_setup(plane, aws)

    def interrupted_then_ok(seed: int | None) -> tuple[Any, ...]:
        """An interrupted first attempt and a successful second one; with a seed, each attempt's events arrive twice
        in a shuffled order, and the first attempt's come again among the second's."""
        job_id = plane.submit(queue, jd, f"job-{seed}", retryStrategy=SPOT_RULES)
        assert plane.dispatch() == 1
        first = fargate_spot_interrupted(aws, job_id, 1)
        deliver(plane, *(first if seed is None else shuffled_twice(first, seed)))
        assert plane.dispatch() == 1
        second = run_ok(aws, job_id, 2)
        deliver(plane, *(second if seed is None else shuffled_twice(second + first, seed + 100)))
        return outcome(plane, job_id)

    def strip(result: tuple[Any, ...]) -> tuple[Any, ...]:
        """The same fields without the task identities, which differ per job."""
        status, reason, exit_code, attempts = result
        return status, reason, exit_code, [(a[2], a[3], a[4]) for a in attempts]

    reference = interrupted_then_ok(None)
    assert strip(reference) == (
        "SUCCEEDED",
        ESSENTIAL_EXITED,
        0,
        [(143, None, SPOT_INTERRUPTED), (0, None, ESSENTIAL_EXITED)],
    )
    for seed in range(ORDERS):
        result = interrupted_then_ok(seed)
        assert strip(result) == strip(reference), seed
        # each attempt names its own task, and its log stream is that task's
        for arn, stream, *_ in result[3]:
            assert stream == f"hello/default/{arn.rsplit('/', 1)[1]}"


def test_running_after_stopped_changes_nothing(aws: Aws, plane: Plane) -> None:
    queue, jd = fargate_setup(plane, aws)
    for n, order in enumerate([(2, 1, 0), (2, 0, 1), (1, 2, 0), (0, 2, 1), (2, 2, 1, 1, 0, 0)]):
        job_id = plane.submit(queue, jd, f"job-{n}")
        plane.dispatch()
        events = run_ok(aws, job_id, 1)
        deliver(plane, *(events[i] for i in order))
        status, _, exit_code, attempts = outcome(plane, job_id)
        assert (status, exit_code, len(attempts)) == ("SUCCEEDED", 0, 1), order
        assert attempts[0][0] == aws.task_arn(job_id, 1)


# -- the sweep on ECS ---------------------------------------------------------------------------------------------


def test_the_sweep_launches_a_claim_whose_launch_was_lost_and_picks_up_its_state(aws: Aws) -> None:
    plane = aws_plane(CrashingEcsLauncher)
    assert isinstance(plane.launcher, CrashingEcsLauncher)
    queue, jd = fargate_setup(plane, aws)
    job_id = plane.submit(queue, jd)
    plane.launcher.crash = 1
    with pytest.raises(RuntimeError):
        plane.dispatcher.cycle()
    assert plane.describe_one(job_id)["status"] == STARTING
    assert aws.ecs.list_tasks(cluster=CLUSTER)["taskArns"] == []

    # WHEN the scheduled sweep runs after the grace period  THEN RunTask is made, under the attempt's key
    plane.clock.advance(SweepPolicy().starting_grace_ms)
    report = sweep(plane.svc, plane.reactor, plane.clock.now_ms())
    assert report.relaunched == [f"{job_id}#1"]
    arn = aws.task_arn(job_id, 1)

    # WHEN the task's RUNNING event was lost too  THEN the next sweep asks ECS and applies what it says
    plane.clock.advance(SweepPolicy().starting_grace_ms)
    # (moto advances a task one state per DescribeTasks; keep it RUNNING for the sweep's look)
    state_manager.set_transition(model_name="ecs::task", transition={"progression": "manual", "times": 1000})
    try:
        report = sweep(plane.svc, plane.reactor, plane.clock.now_ms())
    finally:
        state_manager.unset_transition(model_name="ecs::task")
    assert report.relaunched == [] and report.errors == []
    job = plane.describe_one(job_id)
    assert (job["status"], job["container"]["taskArn"]) == (RUNNING, arn)
    assert len(aws.ecs.list_tasks(cluster=CLUSTER)["taskArns"]) == 1


def test_the_sweep_reads_the_task_of_a_running_job_whose_stopped_event_was_lost(aws: Aws, plane: Plane) -> None:
    # GIVEN two RUNNING jobs; the task of one ends (its container exits 0) and ECS's STOPPED event is lost (it went
    # to the rule's dead-letter queue): nothing would ever end the job
    queue, jd = fargate_setup(plane, aws)
    ended, runs_on = plane.submit(queue, jd, "ended"), plane.submit(queue, jd, "runs-on")
    assert plane.dispatch() == 2
    deliver(plane, task_event(aws, ended, 1, "RUNNING", version=2), task_event(aws, runs_on, 1, "RUNNING", version=2))
    aws.ecs.stop_task(cluster=CLUSTER, task=aws.task_arn(ended, 1), reason=ESSENTIAL_EXITED)

    # WHEN a sweep runs while they were written less than running_check_ms ago  THEN no task is read
    policy = SweepPolicy()
    plane.clock.advance(policy.running_check_ms - 1)
    assert sweep(plane.svc, plane.reactor, plane.clock.now_ms()).running_checked == 0
    assert plane.describe_one(ended)["status"] == RUNNING

    # WHEN the next sweep finds them not heard from for running_check_ms  THEN both tasks are read at once, and the
    # stopped one ends its job as its STOPPED event would have; the other runs on
    plane.clock.advance(1)
    report = sweep(plane.svc, plane.reactor, plane.clock.now_ms())
    assert (report.running_checked, report.running_stopped, report.errors) == (2, 1, [])
    status, reason, exit_code, attempts = outcome(plane, ended)
    assert (status, reason, exit_code) == ("SUCCEEDED", ESSENTIAL_EXITED, 0)
    assert attempts[0][0] == aws.task_arn(ended, 1)
    assert plane.describe_one(runs_on)["status"] == RUNNING

    # AND the lost event arriving late changes nothing
    deliver(plane, *run_ok(aws, ended, 1))
    assert outcome(plane, ended)[:3] == ("SUCCEEDED", ESSENTIAL_EXITED, 0)


@pytest.fixture
def describe_answers_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    """ECS's DescribeTasks lists each task it does not know (any more) in `failures`, reason MISSING; moto omits it."""
    real = EC2ContainerServiceResponse.describe_tasks

    def describe_tasks(self: EC2ContainerServiceResponse) -> Any:
        result = real(self)
        asked = self._get_param("tasks", [])
        found = {t.task_arn for t in result.result["tasks"]}
        result.result["failures"] = [{"arn": a, "reason": "MISSING"} for a in asked if a not in found]
        return result

    monkeypatch.setattr(EC2ContainerServiceResponse, "describe_tasks", describe_tasks)


def test_a_running_job_whose_task_ecs_no_longer_knows_ends_its_attempt_and_is_retried(
    aws: Aws, plane: Plane, describe_answers_missing: None
) -> None:
    # GIVEN a RUNNING job whose task stopped while its STOPPED event was lost, long enough ago that ECS forgot it
    queue, jd = fargate_setup(plane, aws)
    job_id = plane.submit(queue, jd, retryStrategy={"attempts": 2})
    assert plane.dispatch() == 1
    deliver(plane, task_event(aws, job_id, 1, "RUNNING", version=2))
    arn = aws.task_arn(job_id, 1)
    ecs_backends[ACCOUNT][REGION].tasks[CLUSTER].pop(arn)

    # WHEN the sweep reads it  THEN the attempt ends with the reason that says so, and its retry strategy decides
    plane.clock.advance(SweepPolicy().running_check_ms)
    report = sweep(plane.svc, plane.reactor, plane.clock.now_ms())
    assert (report.running_checked, report.running_stopped, report.errors) == (1, 1, [])
    job = plane.describe_one(job_id)
    assert job["status"] == RUNNABLE
    assert [(a["container"]["taskArn"], a["statusReason"]) for a in job["attempts"]] == [(arn, TASK_END_UNKNOWN)]


def test_the_running_tasks_a_sweep_reads_are_bounded_and_taken_in_turns(aws: Aws, plane: Plane) -> None:
    queue, jd = fargate_setup(plane, aws)
    jobs = [plane.submit(queue, jd, f"job-{i}") for i in range(5)]
    assert plane.dispatch() == 5
    deliver(plane, *(task_event(aws, j, 1, "RUNNING", version=2) for j in jobs))
    read: list[list[str]] = []
    checker = plane.reactor.launcher
    assert isinstance(checker, EcsLauncher)
    real = checker.check_running
    checker.check_running = lambda attempts: read.append([a[2] for a in attempts]) or real(attempts)  # type: ignore[method-assign]
    policy = dataclasses.replace(SweepPolicy(), max_running_checks=2)
    plane.clock.advance(policy.running_check_ms)
    for _ in range(3):  # a sweep a minute
        sweep(plane.svc, plane.reactor, plane.clock.now_ms(), policy)
        plane.clock.advance(60_000)
    assert [len(r) for r in read] == [2, 2, 2]
    assert {arn for r in read for arn in r} == {aws.task_arn(j, 1) for j in jobs}  # every one read in turn


def test_the_sweep_times_out_a_running_attempt_and_its_stop_fails_the_job_without_retry(aws: Aws, plane: Plane) -> None:
    queue, jd = fargate_setup(plane, aws)
    job_id = plane.submit(queue, jd, timeout={"attemptDurationSeconds": 60}, retryStrategy={"attempts": 3})
    plane.dispatch()
    deliver(plane, task_event(aws, job_id, 1, "RUNNING", version=2))

    plane.clock.advance(59_999)
    assert sweep(plane.svc, plane.reactor, plane.clock.now_ms()).timed_out == []
    plane.clock.advance(1)
    assert sweep(plane.svc, plane.reactor, plane.clock.now_ms()).timed_out == [f"{job_id}#1"]

    # THEN the task was asked to stop with the timeout reason; its STOPPED event fails the job, no retry
    arn = aws.task_arn(job_id, 1)
    (task,) = aws.ecs.describe_tasks(cluster=CLUSTER, tasks=[arn])["tasks"]
    assert (task["desiredStatus"], task["stoppedReason"]) == ("STOPPED", TIMEOUT)
    deliver(plane, task_event(aws, job_id, 1, "STOPPED", version=3, exit_code=137, stop_code="UserInitiated",
                              stopped_reason=TIMEOUT))  # fmt: skip
    assert outcome(plane, job_id)[:3] == ("FAILED", TIMEOUT, 137)


# -- (d) capacity of an EC2 Spot CE -------------------------------------------------------------------------------


def test_an_ec2_spot_ce_scales_up_for_queued_demand_and_back_to_min_when_idle(aws: Aws, plane: Plane) -> None:
    # GIVEN a SPOT CE (minvCpus 4, maxvCpus 64, scale-down delay 20 minutes) and a Fargate CE beside it
    queue, _ = spot_setup(plane, aws, min_vcpus=4, scalingPolicy={"minScaleDownDelayMinutes": 20})
    plane.fargate_ce("spot-fargate", aws.subnet, aws.sg)
    assert (aws.group_desired("spot"), desired_vcpus(plane, "spot")) == (4, 4)

    def reconcile() -> dict[str, capacity.CapacityChange]:
        return {c.compute_environment: c for c in capacity.reconcile(plane.svc, AsgCapacity(Aws.autoscaling_client))}

    # WHEN five 2-vCPU jobs queue up
    two_vcpus = plane.job_definition("crunch2", fargate=False, vcpus="2")
    jobs = [plane.submit(queue, two_vcpus, f"job-{i}") for i in range(5)]
    changes = reconcile()

    # THEN the group and the CE ask for 10 vCPUs; the Fargate CE gets no capacity action
    assert set(changes) == {"spot"}
    assert (changes["spot"].action, changes["spot"].desired_vcpus, changes["spot"].group_desired) == (
        "scale-out",
        10,
        10,
    )
    assert (aws.group_desired("spot"), desired_vcpus(plane, "spot")) == (10, 10)

    # WHEN they run (instances registered) and a reconcile comes in between  THEN it holds
    for _ in range(3):  # moto's instances have 4 vCPUs each
        aws.container_instance()
    assert plane.dispatch() == 5
    assert reconcile()["spot"].action == "hold"
    for job_id in jobs:
        deliver(plane, *run_ok(aws, job_id, 1, capacity_provider="batchplane-spot"))
    assert {plane.describe_one(j)["status"] for j in jobs} == {"SUCCEEDED"}

    # WHEN the CE is idle  THEN it keeps its capacity for minScaleDownDelayMinutes, then scales in to minvCpus
    assert reconcile()["spot"].action == "hold"
    plane.clock.advance(19 * MINUTE)
    assert reconcile()["spot"].action == "hold"
    assert (aws.group_desired("spot"), desired_vcpus(plane, "spot")) == (10, 10)
    plane.clock.advance(MINUTE)
    assert reconcile()["spot"].action == "scale-in"
    assert (aws.group_desired("spot"), desired_vcpus(plane, "spot")) == (4, 4)
    assert reconcile()["spot"].action == "hold"  # settled: nothing more to do


def test_a_ce_without_its_auto_scaling_group_reports_an_error_and_others_still_scale(aws: Aws, plane: Plane) -> None:
    queue, jd = spot_setup(plane, aws)
    orphan = plane.spot_ce("orphan", aws.subnet, aws.sg)
    plane.queue("orphans", orphan)
    plane.submit(queue, jd)
    plane.submit("orphans", jd)

    changes = {c.compute_environment: c for c in capacity.reconcile(plane.svc, AsgCapacity(Aws.autoscaling_client))}

    assert changes["spot"].error is None and aws.group_desired("spot") == 1
    assert changes["orphan"].error is not None and "no Auto Scaling group" in changes["orphan"].error
    # AND the orphan CE says so (INVALID, with the group it lacks), so its queue's job waits with a reason
    assert describe_ce(plane, "orphan")[:2] == ("INVALID", capacity.no_group_reason("orphan", group_name("orphan")))
    assert "batchplane-orphan" in capacity.no_group_reason("orphan", group_name("orphan"))
    assert describe_ce(plane, "spot")[:2] == ("VALID", "ComputeEnvironment Healthy")
    aws.container_instance()
    assert plane.dispatch() == 1  # the job of the VALID CE's queue
    (waiting,) = [j for j in plane.call("ListJobs", jobQueue="orphans", jobStatus="RUNNABLE")["jobSummaryList"]]
    assert waiting.get("statusReason") == NO_VALID_CE, waiting.get("statusReason")

    # WHEN the group is created THEN the next reconcile makes the CE VALID again, and the one after sizes the group
    aws.spot_capacity("orphan")
    changes = {c.compute_environment: c for c in capacity.reconcile(plane.svc, AsgCapacity(Aws.autoscaling_client))}
    assert changes["orphan"].error is None
    assert describe_ce(plane, "orphan")[:2] == ("VALID", "ComputeEnvironment Healthy")
    capacity.reconcile(plane.svc, AsgCapacity(Aws.autoscaling_client))
    assert aws.group_desired("orphan") == 1


def describe_ce(plane: Plane, ce: str) -> tuple[str, str]:
    (described,) = plane.call("DescribeComputeEnvironments", computeEnvironments=[ce])["computeEnvironments"]
    return described["status"], described["statusReason"]


def desired_vcpus(plane: Plane, ce: str) -> int:
    (described,) = plane.call("DescribeComputeEnvironments", computeEnvironments=[ce])["computeEnvironments"]
    return int(described["computeResources"]["desiredvCpus"])


def test_a_deleted_ec2_ce_has_its_instances_released_and_the_reconcile_leaves_it_alone(aws: Aws, plane: Plane) -> None:
    # GIVEN a SPOT CE keeping 4 vCPUs of instances (minvCpus 4), its queue deleted, the CE disabled, and the AWS
    # runtime's release of a deleted CE's capacity (Services.release_capacity)
    spot_setup(plane, aws, min_vcpus=4)
    plane.svc = dataclasses.replace(
        plane.svc, release_capacity=AsgCapacity(Aws.autoscaling_client).release
    )  # the sweep below reads it from the services it is given
    plane.call("UpdateJobQueue", jobQueue="ec2", state="DISABLED")
    plane.call("DeleteJobQueue", jobQueue="ec2")
    plane.call("UpdateComputeEnvironment", computeEnvironment="spot", state="DISABLED")

    # WHEN the CE is deleted and a capacity reconcile runs
    plane.call("DeleteComputeEnvironment", computeEnvironment="spot")
    assert capacity.reconcile(plane.svc, Aws.autoscaling_client) == []

    # THEN the reconcile left it DELETING (not made VALID again) and did not touch its group
    assert describe_ce(plane, "spot")[0] == "DELETING"
    assert aws.group_desired("spot") == 4
    # WHEN the sweep runs past the deletion grace THEN the group is at zero (bounds too) and the CE is gone
    plane.clock.advance(plane.svc.settings.deletion_grace_ms)
    report = sweep(plane.svc, Reactor(plane.svc, plane.launcher), plane.clock.now_ms())
    assert sorted(report.deleted) == ["ec2", "spot"]
    (group,) = aws.autoscaling.describe_auto_scaling_groups(AutoScalingGroupNames=[group_name("spot")])[
        "AutoScalingGroups"
    ]
    assert (group["MinSize"], group["MaxSize"], group["DesiredCapacity"]) == (0, 0, 0)
    assert plane.call("DescribeComputeEnvironments", computeEnvironments=["spot"])["computeEnvironments"] == []
