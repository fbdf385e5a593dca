"""Multi-node parallel jobs on the serverless runtime, on moto (the harness of test_serverless_e2e.py, bench/
aws_harness.py), through a stock boto3 `batch` client (docs/adr/0027): one ECS task per node on the stack's EC2
capacity (a capacity provider on an Auto Scaling group, instances registered to the cluster), the main node's task
launched first and the others after its RUNNING task state change, with its private address; the job ends when the
main node's task stops, and the other nodes' tasks are stopped. Every ECS call the Lambdas made is in the harness's
call counter; every task state change goes through the deployed EventBridge rule to `on_ecs_task_event`."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from botocore.exceptions import ClientError

from bench.aws_harness import CLUSTER, IMAGE, Deployment, attribute, deployed, set_up
from chalicelib.compute.ecs_events import log_stream_name
from chalicelib.domain.nodes import STOPPED_WITH_MAIN

MAIN_ADDRESS = "AWS_BATCH_JOB_MAIN_NODE_PRIVATE_IPV4_ADDRESS"
PLAIN_JOB_WRITES = 4  # a single-container job: SubmitJob, its claim (STARTING), RUNNING, its end (ADR 0003)


def ec2_queue(deployment: Deployment) -> str:
    """A managed EC2 compute environment "ec2" on the stack's EC2 capacity (one instance), and its queue "mq".
    Returns the instance's private IPv4 address."""
    world, batch = deployment.world, deployment.batch
    (address,) = world.ec2_capacity("ec2")
    batch.create_compute_environment(
        computeEnvironmentName="ec2",
        type="MANAGED",
        computeResources={
            "type": "EC2",
            "minvCpus": 0,
            "maxvCpus": 64,
            "instanceTypes": ["c5"],
            "instanceRole": "ecsInstanceRole",
            "subnets": [world.subnet],
            "securityGroupIds": [world.sg],
        },
    )
    batch.create_job_queue(
        jobQueueName="mq", priority=1, computeEnvironmentOrder=[{"order": 1, "computeEnvironment": "ec2"}]
    )
    return address


def register(deployment: Deployment, num: int = 3, main: int = 1, **ranges: dict[str, Any]) -> None:
    node = {"image": IMAGE, "command": ["echo", "node"], "resourceRequirements": [{"type": "VCPU", "value": "1"}]}
    extra = [{"targetNodes": t.removeprefix("n"), "container": {**node, **c}} for t, c in ranges.items()]
    deployment.batch.register_job_definition(
        jobDefinitionName="mnp",
        type="multinode",
        nodeProperties={
            "numNodes": num,
            "mainNode": main,
            "nodeRangeProperties": [{"targetNodes": "0:", "container": node}, *extra],
        },
    )


def submit(deployment: Deployment, name: str, **kwargs: Any) -> str:
    job_id = str(deployment.batch.submit_job(jobName=name, jobQueue="mq", jobDefinition="mnp", **kwargs)["jobId"])
    deployment.world.names[job_id] = name
    return job_id


def run_tasks(deployment: Deployment, job_id: str) -> list[dict[str, Any]]:
    """The RunTask requests the Lambdas made for the job's nodes, in order."""
    prefix = f"batchplane:{job_id}#"
    return [
        c.params
        for c in deployment.counter.calls
        if c.service == "ecs" and c.operation == "RunTask" and str(c.params.get("group", "")).startswith(prefix)
    ]


def node_of(request: dict[str, Any]) -> int:
    return int(request["group"].rsplit("#", 1)[1].split(":")[0])


def env_of(request: dict[str, Any]) -> dict[str, str]:
    (override,) = request["overrides"]["containerOverrides"]
    return {e["name"]: e["value"] for e in override.get("environment") or []}


def node_tasks(deployment: Deployment, job_id: str) -> dict[int, dict[str, Any]]:
    """The job's node tasks as ECS describes them now, by node index."""
    world = deployment.world
    prefix = f"batchplane:{job_id}#"
    arns = [a for a, p in world.tasks.items() if p.task["group"].startswith(prefix)]
    tasks = world.ecs.describe_tasks(cluster=CLUSTER, tasks=arns)["tasks"] if arns else []
    return {int(t["group"][len(prefix) :].split(":")[0]): t for t in tasks}


def test_a_multi_node_job_runs_one_ecs_task_per_node_main_node_first(deployment: Deployment) -> None:
    world, batch = deployment.world, deployment.batch
    # GIVEN an EC2 queue with one instance and a 3-node definition whose main node is node 1
    address = ec2_queue(deployment)
    register(deployment, 3, 1, n2={"command": ["echo", "Ref::word"]})
    job_id = submit(deployment, "mnp", parameters={"word": "two"})

    # WHEN the control plane settles (every task goes through ECS's states and reports them)
    world.settle()

    # THEN the main node's task was started first, alone, without the main node's address ...
    requests = run_tasks(deployment, job_id)
    assert node_of(requests[0]) == 1
    assert sorted(node_of(r) for r in requests) == [0, 1, 2]  # one RunTask per node: none launched twice
    main_env = env_of(requests[0])
    assert MAIN_ADDRESS not in main_env
    assert (main_env["AWS_BATCH_JOB_NODE_INDEX"], main_env["AWS_BATCH_JOB_NUM_NODES"]) == ("1", "3")
    assert main_env["AWS_BATCH_JOB_MAIN_NODE_INDEX"] == "1"
    assert all(r["capacityProviderStrategy"][0]["capacityProvider"] == "batchplane-ec2" for r in requests)
    # ... the others after its RUNNING state change, with its private address (its EC2 instance's: host networking)
    for request in requests[1:]:
        env = env_of(request)
        i = node_of(request)
        assert env[MAIN_ADDRESS] == address
        assert env["AWS_BATCH_JOB_ID"] == f"{job_id}#{i}" and env["AWS_BATCH_JOB_NODE_INDEX"] == str(i)
    (node2,) = [r for r in requests if node_of(r) == 2]
    assert node2["overrides"]["containerOverrides"][0]["command"] == ["echo", "two"]

    # ... the job ended with its main node (exit 0), and the other nodes' tasks were stopped
    job = batch.describe_jobs(jobs=[job_id])["jobs"][0]
    assert job["status"] == "SUCCEEDED", job.get("statusReason")
    tasks = node_tasks(deployment, job_id)
    assert job["attempts"][0]["container"]["taskArn"] == tasks[1]["taskArn"]
    for i in (0, 2):
        assert (tasks[i]["desiredStatus"], tasks[i]["stoppedReason"]) == ("STOPPED", STOPPED_WITH_MAIN)
    assert tasks[1]["stoppedReason"] == "Essential container in task exited"  # it ended on its own, not stopped

    # ... and DescribeJobs / ListJobs(multiNodeJobId) show the node jobs
    node_ids = [f"{job_id}#{i}" for i in range(3)]
    described = {j["jobId"]: j for j in batch.describe_jobs(jobs=node_ids)["jobs"]}
    assert [described[n]["status"] for n in node_ids] == ["SUCCEEDED"] * 3
    assert described[f"{job_id}#1"]["nodeDetails"] == {"nodeIndex": 1, "isMainNode": True}
    assert described[f"{job_id}#0"]["nodeDetails"] == {"nodeIndex": 0, "isMainNode": False}
    assert described[f"{job_id}#0"]["attempts"][0]["statusReason"] == STOPPED_WITH_MAIN
    assert job["nodeProperties"]["numNodes"] == 3 and job["nodeProperties"]["mainNode"] == 1
    listed = batch.list_jobs(multiNodeJobId=job_id, jobStatus="SUCCEEDED")
    summaries = {s["jobId"]: s for s in listed["jobSummaryList"]}
    assert sorted(summaries) == sorted(node_ids)
    assert summaries[f"{job_id}#1"]["nodeProperties"] == {"isMainNode": True, "numNodes": 3, "nodeIndex": 1}


def test_the_main_node_failing_fails_the_job(deployment: Deployment) -> None:
    world, batch = deployment.world, deployment.batch
    ec2_queue(deployment)
    register(deployment, 2, 0)
    # GIVEN the main node's task exits 1 (a node that is not the main one would exit 0)
    world.plan.outcomes = {"bad#0": ["fail"]}
    job_id = submit(deployment, "bad")
    world.settle()
    job = batch.describe_jobs(jobs=[job_id])["jobs"][0]
    assert job["status"] == "FAILED"
    assert job["attempts"][0]["container"]["exitCode"] == 1
    assert node_tasks(deployment, job_id)[1]["stoppedReason"] == STOPPED_WITH_MAIN
    nodes = {j["jobId"]: j["status"] for j in batch.describe_jobs(jobs=[f"{job_id}#0", f"{job_id}#1"])["jobs"]}
    assert nodes == {f"{job_id}#0": "FAILED", f"{job_id}#1": "FAILED"}  # the others take the job's status


def test_a_node_ecs_refuses_to_start_fails_the_attempt_and_retries_the_whole_job(deployment: Deployment) -> None:
    world, batch = deployment.world, deployment.batch
    ec2_queue(deployment)
    # GIVEN node 1's command is too long for RunTask's overrides (ECS refuses them: 8192 characters at most)
    register(deployment, 3, 0, n1={"command": ["echo", "x" * 9000]})
    job_id = submit(deployment, "refused", retryStrategy={"attempts": 2})
    world.settle()
    # THEN each attempt failed with node 1's refusal, its main node's task was stopped, and the retry ran every node
    # again (the main node first)
    job = batch.describe_jobs(jobs=[job_id])["jobs"][0]
    assert job["status"] == "FAILED"
    assert job["statusReason"].startswith("Node 1 failed to start:")
    assert [a["statusReason"].startswith("Node 1 failed to start:") for a in job["attempts"]] == [True, True]
    mains = [t for a, t in world.tasks.items() if t.task["group"].startswith(f"batchplane:{job_id}#0:")]
    assert len(mains) == 2
    assert all(t.stopped is not None and t.stopped.startswith("Node 1 failed to start:") for t in mains)
    assert [node_of(r) for r in run_tasks(deployment, job_id)] == [0, 0]  # nor node 1, nor node 2 after it


def test_task_events_delivered_twice_and_out_of_order_change_nothing(deployment: Deployment) -> None:
    world, batch = deployment.world, deployment.batch
    ec2_queue(deployment)
    register(deployment, 3, 0)
    # GIVEN EventBridge delivers every task state change twice (at-least-once)
    seen: list[Any] = []
    invoke = world.invoke

    def twice(name: str, event: Any) -> Any:
        if name == "on_ecs_task_event":
            seen.append(event)
            invoke(name, event)
        return invoke(name, event)

    world.invoke = twice  # type: ignore[method-assign]
    job_id = submit(deployment, "dup")
    world.settle()
    job = batch.describe_jobs(jobs=[job_id])["jobs"][0]
    assert job["status"] == "SUCCEEDED", job.get("statusReason")
    assert sorted(node_of(r) for r in run_tasks(deployment, job_id)) == [0, 1, 2]  # RunTask once per node

    # WHEN every state change is delivered again, newest first (a RUNNING after the STOPPED)
    before = deployment.counter.by_operation()
    for event in reversed(seen):
        invoke("on_ecs_task_event", event)
    world.settle()

    # THEN nothing changed: no task started or stopped, the job and its nodes as they were
    after = deployment.counter.by_operation()
    assert after["ecs:RunTask"] == before["ecs:RunTask"]
    assert after["dynamodb:PutItem"] + after["dynamodb:TransactWriteItems"] == (
        before["dynamodb:PutItem"] + before["dynamodb:TransactWriteItems"]
    )
    again = batch.describe_jobs(jobs=[job_id])["jobs"][0]
    assert (again["status"], again["attempts"]) == (job["status"], job["attempts"])
    assert len(node_tasks(deployment, job_id)) == 3


def test_a_fargate_queue_refuses_a_multi_node_job(deployment: Deployment) -> None:
    set_up(deployment)  # the Fargate Spot queue "q"
    register(deployment, 2, 0)
    with pytest.raises(ClientError) as refused:
        deployment.batch.submit_job(jobName="f", jobQueue="q", jobDefinition="mnp")
    assert refused.value.response["Error"]["Code"] == "ClientException"
    assert "Fargate" in refused.value.response["Error"]["Message"]


@pytest.fixture
def publishing(serverless_env: None) -> Iterator[Deployment]:
    """The stack deployed with every state change published, as AWS Batch does."""
    with deployed({"StateChangeEvents": "ALL"}) as d:
        yield d


def test_each_node_job_shows_its_own_task_and_log_stream_for_one_write_per_node(publishing: Deployment) -> None:
    deployment = publishing
    world, batch = deployment.world, deployment.batch
    # GIVEN a 3-node job (main node 0) that ran to its end, every task state change through EventBridge
    ec2_queue(deployment)
    register(deployment, 3, 0)
    job_id = submit(deployment, "own")
    world.settle()
    assert batch.describe_jobs(jobs=[job_id])["jobs"][0]["status"] == "SUCCEEDED"

    # THEN each node job's container names its own ECS task, and the CloudWatch stream that task's logs go to
    tasks = node_tasks(deployment, job_id)
    described = {j["jobId"]: j for j in batch.describe_jobs(jobs=[f"{job_id}#{i}" for i in range(3)])["jobs"]}
    for i in range(3):
        arn = tasks[i]["taskArn"]
        (attempt,) = described[f"{job_id}#{i}"]["attempts"]
        assert (attempt["container"]["taskArn"], attempt["container"]["logStreamName"]) == (
            arn,
            log_stream_name("mnp", arn),
        ), i
    # ... each node job's RUNNING state change carried its task, and was published once
    details = [
        json.loads(e["Detail"])
        for c in deployment.counter.calls
        if (c.service, c.operation) == ("events", "PutEvents")
        for e in c.params["Entries"]
    ]
    for i in range(3):
        (running,) = [d for d in details if d["jobId"] == f"{job_id}#{i}" and d["status"] == "RUNNING"]
        assert running["container"]["taskArn"] == tasks[i]["taskArn"], i
    # ... at the cost of one DynamoDB write per node that is not the main node
    writes = attribute(deployment.counter, {"own": job_id})["own"]["dynamodb_writes"]
    print(f"multi-node job of 3 nodes: {writes} DynamoDB writes")
    assert writes == PLAIN_JOB_WRITES + 2
