"""Multi-node parallel jobs on the AWS runtime's compute path, on moto (docs/adr/0027): one ECS task per node on the
stack's EC2 capacity, the main node first, the others launched with its private address when its RUNNING event
arrives; the job ends with the main node's STOPPED and the other nodes' tasks are stopped. Events are built as
EventBridge delivers them (tests/functional/test_aws_compute.py explains why) for the tasks moto really started."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from moto import mock_aws

from chalicelib.compute import ecs, ecs_events
from chalicelib.compute.ecs import EcsLauncher
from chalicelib.compute.ecs_nodes import EcsNodeLauncher
from chalicelib.domain import lifecycle
from chalicelib.domain.jobs import FAILED, RUNNABLE, RUNNING, STARTING, SUCCEEDED
from chalicelib.domain.nodes import STOPPED_WITH_MAIN, effective
from chalicelib.runtime.task_events import apply_task_event
from chalicelib.store.dynamo import DynamoItemStore
from chalicelib.store.repository import Repository
from tests.functional.moto_env import aws_env  # noqa: F401 - a fixture
from tests.functional.plane import Plane
from tests.functional.test_aws_compute import ACCOUNT, CLUSTER, ESSENTIAL_EXITED, REGION, TABLE, Aws, deliver
from tests.functional.test_aws_wiring import Harness, _transition, changes, harness  # noqa: F401 - a fixture
from tests.unit.builders import a_job

pytestmark = pytest.mark.usefixtures("aws_env")
IMAGE = "public.ecr.aws/docker/library/busybox:latest"


@pytest.fixture
def aws() -> Iterator[Aws]:
    with mock_aws():
        yield Aws()


@pytest.fixture
def plane(aws: Aws) -> Plane:
    store = DynamoItemStore(TABLE, region=REGION)
    repo = Repository(store)
    launcher = EcsNodeLauncher(EcsLauncher(Aws.ecs_client, CLUSTER, repo.get_ce), Aws.ec2_client)
    p = Plane(store, launcher)  # type: ignore[arg-type]
    # as the AWS runtime wires it: a task ECS refused is reported to its job (a node's: to the multi-node job)
    launcher.on_event = lambda job_id, event: apply_task_event(p.svc, p.reactor, job_id, event) and None
    return p


def setup(plane: Plane, aws: Aws, num: int, main: int, **ranges: Any) -> tuple[str, str]:
    aws.spot_capacity("ec2")  # the stack's EC2 capacity: an Auto Scaling group and its capacity provider
    resources = {
        "type": "EC2",
        "minvCpus": 0,
        "maxvCpus": 64,
        "instanceTypes": ["c5"],
        "instanceRole": "ecsInstanceRole",
        "subnets": [aws.subnet],
        "securityGroupIds": [aws.sg],
    }
    ce = plane.call(
        "CreateComputeEnvironment", computeEnvironmentName="ec2", type="MANAGED", computeResources=resources
    )
    queue = plane.queue("q", ce["computeEnvironmentArn"])
    node = {"image": IMAGE, "command": ["sh", "-c", "true"], "resourceRequirements": [{"type": "VCPU", "value": "1"}]}
    extra = [{"targetNodes": t.removeprefix("n"), "container": {**node, **c}} for t, c in ranges.items()]
    props = {
        "numNodes": num,
        "mainNode": main,
        "nodeRangeProperties": [{"targetNodes": "0:", "container": node}, *extra],
    }
    jd = plane.call("RegisterJobDefinition", jobDefinitionName="mnp", type="multinode", nodeProperties=props)
    return queue, str(jd["jobDefinitionArn"])


def node_tasks(aws: Aws, job_id: str, attempt: int = 1) -> dict[int, dict[str, Any]]:
    """The attempt's node tasks moto started, by node index (from their group)."""
    token = ecs.started_by(job_id, attempt)
    arns = [
        a
        for status in ("RUNNING", "STOPPED")
        for a in aws.ecs.list_tasks(cluster=CLUSTER, startedBy=token, desiredStatus=status)["taskArns"]
    ]
    tasks = aws.ecs.describe_tasks(cluster=CLUSTER, tasks=arns)["tasks"] if arns else []
    prefix = f"batchplane:{job_id}#"
    return {int(t["group"][len(prefix) :].split(":")[0]): t for t in tasks if t["group"].startswith(prefix)}


def node_event(aws: Aws, task: dict[str, Any], last_status: str, *, version: int, exit_code: int | None = None) -> Any:
    container: dict[str, Any] = {"containerArn": f"{task['taskArn']}/default", "lastStatus": last_status}
    if exit_code is not None:
        container["exitCode"] = exit_code
    detail = {
        "clusterArn": aws.cluster_arn,
        "taskArn": task["taskArn"],
        "group": task["group"],
        "startedBy": task.get("startedBy"),
        "lastStatus": last_status,
        "desiredStatus": "STOPPED" if last_status == "STOPPED" else "RUNNING",
        "launchType": "EC2",
        "capacityProviderName": "batchplane-ec2",
        "containerInstanceArn": task["containerInstanceArn"],
        "containers": [container],
        "version": version,
        "createdAt": "2024-01-23T17:57:34.402Z",
    }
    if last_status == "STOPPED":
        detail.update({"stopCode": "EssentialContainerExited", "stoppedReason": ESSENTIAL_EXITED})
    return {
        "version": "0",
        "id": f"ecs-{task['taskArn']}-{version}",
        "detail-type": "ECS Task State Change",
        "source": "aws.ecs",
        "account": ACCOUNT,
        "time": "2024-01-23T17:57:58Z",
        "region": REGION,
        "resources": [task["taskArn"]],
        "detail": detail,
    }


def env_of(task: dict[str, Any]) -> dict[str, str]:
    (override,) = task["overrides"]["containerOverrides"]
    return {e["name"]: e["value"] for e in override.get("environment") or []}


def test_the_main_node_starts_first_and_the_others_get_its_private_address(aws: Aws, plane: Plane) -> None:
    # GIVEN a 3-node job (main node 1) on EC2 capacity with one instance registered to the cluster
    queue, jd = setup(plane, aws, 3, 1)
    instance_id, _ = aws.container_instance()
    private_ip = aws.ec2.describe_instances(InstanceIds=[instance_id])["Reservations"][0]["Instances"][0][
        "PrivateIpAddress"
    ]
    job_id = plane.submit(queue, jd)

    # WHEN it is dispatched THEN only the main node's task runs, and the job is STARTING
    assert plane.dispatch() == 1
    tasks = node_tasks(aws, job_id)
    assert list(tasks) == [1]
    assert plane.describe_one(job_id)["status"] == STARTING
    main_env = env_of(tasks[1])
    assert main_env["AWS_BATCH_JOB_NODE_INDEX"] == "1" and main_env["AWS_BATCH_JOB_NUM_NODES"] == "3"
    assert "AWS_BATCH_JOB_MAIN_NODE_PRIVATE_IPV4_ADDRESS" not in main_env

    # WHEN the main node's task runs (the event delivered twice) THEN the job runs and the other nodes are launched
    # once each, with the main node's private address
    running = node_event(aws, tasks[1], "RUNNING", version=2)
    deliver(plane, running, running)
    assert plane.describe_one(job_id)["status"] == RUNNING
    tasks = node_tasks(aws, job_id)
    assert sorted(tasks) == [0, 1, 2]
    for i in (0, 2):
        env = env_of(tasks[i])
        assert env["AWS_BATCH_JOB_MAIN_NODE_PRIVATE_IPV4_ADDRESS"] == private_ip
        assert env["AWS_BATCH_JOB_NODE_INDEX"] == str(i) and env["AWS_BATCH_JOB_ID"] == f"{job_id}#{i}"

    # WHEN node 0 exits 2 on its own THEN the job runs on and node 0 shows its end
    deliver(plane, node_event(aws, tasks[0], "STOPPED", version=3, exit_code=2))
    assert plane.describe_one(job_id)["status"] == RUNNING
    assert plane.describe_one(f"{job_id}#0")["status"] == FAILED

    # WHEN the main node exits 0 THEN the job SUCCEEDED and node 2's task was asked to stop
    deliver(plane, node_event(aws, tasks[1], "STOPPED", version=4, exit_code=0))
    job = plane.describe_one(job_id)
    assert job["status"] == SUCCEEDED
    assert job["attempts"][0]["container"]["taskArn"] == tasks[1]["taskArn"]
    (node_two,) = aws.ecs.describe_tasks(cluster=CLUSTER, tasks=[tasks[2]["taskArn"]])["tasks"]
    assert node_two["desiredStatus"] == "STOPPED"
    nodes = plane.describe(*(f"{job_id}#{i}" for i in range(3)))
    assert [nodes[f"{job_id}#{i}"]["status"] for i in range(3)] == [FAILED, SUCCEEDED, SUCCEEDED]
    assert nodes[f"{job_id}#1"]["nodeDetails"] == {"nodeIndex": 1, "isMainNode": True}


def test_terminate_stops_every_node_task(aws: Aws, plane: Plane) -> None:
    queue, jd = setup(plane, aws, 2, 0)
    aws.container_instance()
    job_id = plane.submit(queue, jd)
    assert plane.dispatch() == 1
    deliver(plane, node_event(aws, node_tasks(aws, job_id)[0], "RUNNING", version=2))
    tasks = node_tasks(aws, job_id)
    assert sorted(tasks) == [0, 1]
    plane.call("TerminateJob", jobId=job_id, reason="enough")
    for task in aws.ecs.describe_tasks(cluster=CLUSTER, tasks=[t["taskArn"] for t in tasks.values()])["tasks"]:
        assert task["desiredStatus"] == "STOPPED"
    deliver(plane, node_event(aws, tasks[0], "STOPPED", version=3, exit_code=143))
    job = plane.describe_one(job_id)
    assert (job["status"], job["statusReason"]) == (FAILED, "enough")


# -- the stream handler publishes the node jobs' state changes ----------------------------------------------------


def test_the_stream_handler_publishes_each_node_jobs_state_change(harness: Harness) -> None:  # noqa: F811
    c = {"image": "busybox", "command": ["true"]}
    np = effective({"numNodes": 2, "mainNode": 0, "nodeRangeProperties": [{"targetNodes": "0:", "container": c}]}, None)
    runnable = a_job("mnp", status="RUNNABLE", node_properties=np, version=1)
    claimed, _ = _transition(runnable, lifecycle.Claim("ce", "t", "hello/default/t"))

    harness.invoke("on_job_change", changes((runnable, claimed)))

    details = [json.loads(e["Detail"]) for e in harness.fake.published()]
    assert [(d["jobId"], d["status"]) for d in details] == [("mnp", STARTING), ("mnp#0", STARTING), ("mnp#1", STARTING)]
    assert details[2]["nodeDetails"] == {"nodeIndex": 1, "isMainNode": False}


def test_a_node_ecs_refuses_to_start_fails_the_attempt_and_stops_the_main_node(aws: Aws, plane: Plane) -> None:
    # GIVEN a 2-node job whose node 1 has a command too long for RunTask's overrides (ECS would refuse it)
    queue, jd = setup(plane, aws, 2, 0, n1={"command": ["echo", "x" * 9000]})
    aws.container_instance()
    job_id = plane.submit(queue, jd)
    assert plane.dispatch() == 1
    main = node_tasks(aws, job_id)[0]
    # WHEN the main node runs and node 1 is launched THEN the attempt fails and the main node is asked to stop
    deliver(plane, node_event(aws, main, "RUNNING", version=2))
    job = plane.describe_one(job_id)
    assert job["status"] == FAILED
    assert job["statusReason"].startswith("Node 1 failed to start:")
    (task,) = aws.ecs.describe_tasks(cluster=CLUSTER, tasks=[main["taskArn"]])["tasks"]
    assert task["desiredStatus"] == "STOPPED"
    assert sorted(node_tasks(aws, job_id)) == [0]


# -- a crash between the attempt's end and its StopTask ------------------------------------------------------------


class Crash(Exception):
    """The handler's process dying after the end's write, before its StopTask (the Lambda invocation fails)."""


def crashing_stops(monkeypatch: pytest.MonkeyPatch, launcher: EcsLauncher, times: int) -> list[str]:
    """The next `times` stops raise Crash before any StopTask; the later ones run. Returns the reasons asked."""
    asked: list[str] = []
    real = launcher.stop

    def stop(job_id: str, attempt: int, reason: str) -> None:
        asked.append(reason)
        if len(asked) <= times:
            raise Crash()
        real(job_id, attempt, reason)

    monkeypatch.setattr(launcher, "stop", stop)
    return asked


def all_nodes_running(plane: Plane, aws: Aws, num: int) -> tuple[str, dict[int, dict[str, Any]]]:
    """A `num`-node job (main node 0) dispatched, its main node RUNNING and every node launched: its id and tasks."""
    queue, jd = setup(plane, aws, num, 0)
    aws.container_instance()
    job_id = plane.submit(queue, jd)
    assert plane.dispatch() == 1
    deliver(plane, node_event(aws, node_tasks(aws, job_id)[0], "RUNNING", version=2))
    tasks = node_tasks(aws, job_id)
    assert sorted(tasks) == list(range(num))
    return job_id, tasks


def desired(aws: Aws, task: dict[str, Any]) -> str:
    (now,) = aws.ecs.describe_tasks(cluster=CLUSTER, tasks=[task["taskArn"]])["tasks"]
    return str(now["desiredStatus"])


def test_a_redelivered_main_node_stop_stops_the_nodes_a_crash_left_running(
    aws: Aws, plane: Plane, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN a 3-node job whose nodes all run
    job_id, tasks = all_nodes_running(plane, aws, 3)
    asked = crashing_stops(monkeypatch, plane.reactor.launcher.ecs, 1)  # type: ignore[attr-defined]

    # WHEN the main node's STOPPED is written and the handler dies before its StopTask
    stopped = node_event(aws, tasks[0], "STOPPED", version=3, exit_code=0)
    with pytest.raises(Crash):
        deliver(plane, stopped)
    job = plane.describe_one(job_id)
    assert job["status"] == SUCCEEDED
    assert [desired(aws, tasks[i]) for i in (1, 2)] == ["RUNNING", "RUNNING"]
    writes = plane.describe_one(job_id)

    # THEN EventBridge's redelivery of the STOPPED stops them, and writes nothing
    deliver(plane, stopped)
    assert [desired(aws, tasks[i]) for i in (1, 2)] == ["STOPPED", "STOPPED"]
    assert plane.describe_one(job_id) == writes
    assert asked == [STOPPED_WITH_MAIN, STOPPED_WITH_MAIN]

    # AND the other nodes' own STOPPED events after the end ask nothing more
    deliver(plane, *(node_event(aws, tasks[i], "STOPPED", version=4, exit_code=143) for i in (1, 2)))
    assert len(asked) == 2 and plane.describe_one(job_id) == writes


def test_a_node_task_still_running_after_its_attempt_ended_is_stopped(
    aws: Aws, plane: Plane, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN a 2-node job whose attempt ended while node 1's task was not yet listed by the stop (ListTasks is
    # eventually consistent: here the stop asked nothing of it)
    job_id, tasks = all_nodes_running(plane, aws, 2)
    ecs_launcher: EcsLauncher = plane.reactor.launcher.ecs  # type: ignore[attr-defined]
    monkeypatch.setattr(ecs_launcher, "stop", lambda job_id, attempt, reason: None)
    deliver(plane, node_event(aws, tasks[0], "STOPPED", version=3, exit_code=0))
    assert plane.describe_one(job_id)["status"] == SUCCEEDED
    assert desired(aws, tasks[1]) == "RUNNING"
    monkeypatch.undo()

    # WHEN node 1's RUNNING event arrives THEN its task is stopped
    deliver(plane, node_event(aws, tasks[1], "RUNNING", version=2))
    assert desired(aws, tasks[1]) == "STOPPED"
    assert plane.describe_one(job_id)["status"] == SUCCEEDED


# -- each node job shows its own ECS task and log stream ------------------------------------------------------------


class Events:
    """The "Batch Job State Change" events the control plane published, in order."""

    def __init__(self) -> None:
        self.details: list[dict[str, Any]] = []

    def publish(self, detail_type: str, resources: list[str], detail: dict[str, Any]) -> None:
        self.details.append(detail)

    def of(self, job_id: str) -> list[dict[str, Any]]:
        return [d for d in self.details if d["jobId"] == job_id]


def recorded(plane: Plane) -> Events:
    events = Events()
    object.__setattr__(plane.svc, "events", events)  # Services is frozen: the test's sink replaces the null one
    return events


def running_nodes(plane: Plane, aws: Aws, num: int, main: int) -> tuple[str, dict[int, dict[str, Any]]]:
    """A `num`-node job whose main node runs and whose other nodes' tasks were launched (none reported yet)."""
    queue, jd = setup(plane, aws, num, main)
    aws.container_instance()
    job_id = plane.submit(queue, jd)
    assert plane.dispatch() == 1
    deliver(plane, node_event(aws, node_tasks(aws, job_id)[main], "RUNNING", version=2))
    tasks = node_tasks(aws, job_id)
    assert sorted(tasks) == list(range(num))
    return job_id, tasks


def container_of(plane: Plane, node_job_id: str) -> tuple[str, str]:
    detail = plane.describe_one(node_job_id)
    return detail["container"]["taskArn"], detail["container"]["logStreamName"]


def test_a_node_job_shows_its_own_task_and_log_stream_once_its_task_runs(aws: Aws, plane: Plane) -> None:
    # GIVEN a 3-node job (main node 0) whose other nodes' tasks were launched
    events = recorded(plane)
    job_id, tasks = running_nodes(plane, aws, 3, 0)
    # (the job's RUNNING is published with its main node's only: the others' tasks have not run yet)
    assert [d["status"] for d in events.of(f"{job_id}#0")] == [RUNNABLE, STARTING, RUNNING]
    assert [d["status"] for d in events.of(f"{job_id}#1")] == [RUNNABLE, STARTING]
    version = plane.job(job_id).version

    # WHEN node 1's task reports RUNNING, twice (EventBridge delivers at least once)
    running = node_event(aws, tasks[1], "RUNNING", version=2)
    deliver(plane, running, running)

    # THEN DescribeJobs of node 1 shows its ECS task and the CloudWatch stream its logs go to, written once
    arn = tasks[1]["taskArn"]
    assert container_of(plane, f"{job_id}#1") == (arn, ecs_events.log_stream_name("mnp", arn))
    assert plane.job(job_id).version == version + 1
    # ... its RUNNING state change is published now, once, carrying that task
    (published,) = [d for d in events.of(f"{job_id}#1") if d["status"] == RUNNING]
    assert published["container"]["taskArn"] == arn
    assert published["container"]["logStreamName"] == ecs_events.log_stream_name("mnp", arn)
    # ... and the main node's is still the attempt's task
    assert container_of(plane, f"{job_id}#0")[0] == tasks[0]["taskArn"]

    # WHEN node 1 exits on its own, and its RUNNING is delivered again after its STOPPED
    deliver(plane, node_event(aws, tasks[1], "STOPPED", version=3, exit_code=0), running)
    # THEN it keeps its task and its end; the late RUNNING wrote nothing
    assert plane.job(job_id).version == version + 2
    node = plane.describe_one(f"{job_id}#1")
    assert (node["status"], node["container"]["taskArn"]) == (SUCCEEDED, arn)

    # WHEN the main node ends THEN every finished attempt's node shows its own task, node 2 (never reported)
    # too once its STOPPED came first
    deliver(plane, node_event(aws, tasks[2], "STOPPED", version=3, exit_code=143))
    deliver(plane, node_event(aws, tasks[0], "STOPPED", version=4, exit_code=0))
    assert plane.describe_one(job_id)["status"] == SUCCEEDED
    for i in range(3):
        (attempt,) = plane.describe_one(f"{job_id}#{i}")["attempts"]
        arn = tasks[i]["taskArn"]
        assert attempt["container"]["taskArn"] == arn
        assert attempt["container"]["logStreamName"] == ecs_events.log_stream_name("mnp", arn)


def test_a_node_whose_stopped_arrives_first_records_its_task_with_its_end(aws: Aws, plane: Plane) -> None:
    # GIVEN a 3-node job whose node 1's events arrive out of order: its STOPPED first
    job_id, tasks = running_nodes(plane, aws, 3, 0)
    stopped = node_event(aws, tasks[1], "STOPPED", version=3, exit_code=4)
    deliver(plane, stopped)
    arn = tasks[1]["taskArn"]
    node = plane.describe_one(f"{job_id}#1")
    assert (node["status"], node["container"]["exitCode"]) == (FAILED, 4)
    assert (node["container"]["taskArn"], node["container"]["logStreamName"]) == (
        arn,
        ecs_events.log_stream_name("mnp", arn),
    )
    version = plane.job(job_id).version

    # WHEN its RUNNING arrives after it, and the STOPPED again  THEN nothing is written
    deliver(plane, node_event(aws, tasks[1], "RUNNING", version=2), stopped)
    assert plane.job(job_id).version == version
    assert plane.describe_one(f"{job_id}#1") == node

    # WHEN the job ends (its main node exits) before node 2's task reported anything, and node 2's RUNNING arrives
    deliver(plane, node_event(aws, tasks[0], "STOPPED", version=4, exit_code=0))
    done = plane.job(job_id)
    deliver(plane, node_event(aws, tasks[2], "RUNNING", version=2))
    # THEN nothing is written for the attempt that is over (node 2's task is asked to stop again: a repair)
    assert plane.job(job_id) == done
    assert desired(aws, tasks[2]) == "STOPPED"
    assert plane.describe_one(f"{job_id}#1")["attempts"][0]["container"]["taskArn"] == arn
