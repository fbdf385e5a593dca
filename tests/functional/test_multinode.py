"""Multi-node parallel jobs through a stock boto3 `batch` client, on the local runtime's process executor (every
node a process on 127.0.0.1): registration rules, the node jobs `<jobId>#<index>` in DescribeJobs and ListJobs, the
nodes' environment, the job ending with its main node, failures and retries, and the node jobs' own events."""

from __future__ import annotations

import json
import socket
import sys
import time
from typing import Any

import pytest
from botocore.exceptions import ClientError

from chalicelib.runtime.local import LocalRuntime
from tests.functional.builders import (
    BatchClient,
    container,
    make_ec2_ce,
    make_fargate_ce,
    make_jd,
    make_queue,
    wait_for,
)

PY = sys.executable


def node(command: list[str], vcpus: str = "1", memory: str = "512", **extra: Any) -> dict[str, Any]:
    c = container(
        command=command, resourceRequirements=[{"type": "VCPU", "value": vcpus}, {"type": "MEMORY", "value": memory}]
    )
    c.pop("executionRoleArn")
    c.update(extra)
    return c


def node_props(num: int, main: int, *ranges: tuple[str, dict[str, Any]]) -> dict[str, Any]:
    return {
        "numNodes": num,
        "mainNode": main,
        "nodeRangeProperties": [{"targetNodes": t, "container": c} for t, c in ranges],
    }


def register(batch: BatchClient, name: str, props: dict[str, Any], **extra: Any) -> str:
    jd = make_jd(batch, name, type="multinode", containerProperties=None, platformCapabilities=None,
                 nodeProperties=props, **extra)  # fmt: skip
    return str(jd["jobDefinitionArn"])


def ec2_queue(batch: BatchClient, max_vcpus: int = 16) -> str:
    return make_queue(batch, "q", [make_ec2_ce(batch, "ce", max_vcpus)])


def describe(batch: BatchClient, *ids: str) -> list[dict[str, Any]]:
    return [dict(j) for j in batch.describe_jobs(jobs=list(ids))["jobs"]]


def finished(batch: BatchClient, job_id: str) -> dict[str, Any] | None:
    found = describe(batch, job_id)
    return found[0] if found and found[0]["status"] in ("SUCCEEDED", "FAILED") else None


def log_of(runtime: LocalRuntime, stream: str) -> list[str]:
    events, _, _ = runtime.services.logs.read(
        stream, start_time=None, end_time=None, offset=0, limit=1000, from_head=True
    )
    return [e.message for e in events]


PRINT_ENV = [
    PY,
    "-c",
    "import json, os; print(json.dumps({k: v for k, v in os.environ.items() if k.startswith('AWS_BATCH')}))",
]


# -- registration ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("props", "fragments"),
    [
        pytest.param(node_props(2, 2, ("0:", node(["true"]))), ("mainNode", "below numNodes"), id="main-outside"),
        pytest.param(node_props(3, 0, ("0:1", node(["true"]))), ("cover every node", "node 2"), id="uncovered"),
        pytest.param(node_props(2, 0), ("nodeRangeProperties", "at least one"), id="no-ranges"),
        pytest.param(node_props(2, 0, ("0:5", node(["true"]))), ("targetNodes", "below numNodes"), id="range-out"),
        pytest.param(node_props(2, 0, ("1:0", node(["true"]))), ("targetNodes", "end before"), id="range-backwards"),
        pytest.param(node_props(2, 0, ("a:b", node(["true"]))), ("targetNodes", "node range"), id="range-garbage"),
        pytest.param(node_props(0, 0, ("0:", node(["true"]))), ("numNodes",), id="zero-nodes"),
        pytest.param(
            {"numNodes": 2, "mainNode": 0, "nodeRangeProperties": [{"targetNodes": "0:"}]},
            ("container", "required"),
            id="range-without-container",
        ),
        pytest.param(
            node_props(2, 0, ("0:", {"command": ["true"]})), ("container.image", "required"), id="container-no-image"
        ),
    ],
)
def test_register_refuses_node_properties_aws_would(
    batch: BatchClient, props: dict[str, Any], fragments: tuple[str, ...]
) -> None:
    with pytest.raises(ClientError) as e:
        register(batch, "bad", props)
    assert e.value.response["Error"]["Code"] == "ClientException"
    for fragment in fragments:
        assert fragment in e.value.response["Error"]["Message"]
    assert batch.describe_job_definitions(jobDefinitionName="bad")["jobDefinitions"] == []


def test_a_multinode_job_on_a_fargate_queue_is_refused(batch: BatchClient) -> None:
    queue = make_queue(batch, "fq", [make_fargate_ce(batch, "fce")])
    jd = register(batch, "mnp", node_props(2, 0, ("0:", node(["true"]))))
    with pytest.raises(ClientError) as e:
        batch.submit_job(jobName="j", jobQueue=queue, jobDefinition=jd)
    assert "do not support multi-node parallel jobs" in e.value.response["Error"]["Message"]


# -- running ---------------------------------------------------------------------------------------------------


# A node prints its AWS_BATCH_* variables; the main node then waits for every other node to connect to it (at
# AWS_BATCH_JOB_MAIN_NODE_PRIVATE_IPV4_ADDRESS) and say its index, so the job cannot end before they all ran.
GANG = """
import json, os, socket, time
env = {k: v for k, v in os.environ.items() if k.startswith("AWS_BATCH")}
print(json.dumps(env), flush=True)
port = int(os.environ["PORT"])
if env["AWS_BATCH_JOB_NODE_INDEX"] == env["AWS_BATCH_JOB_MAIN_NODE_INDEX"]:
    server = socket.create_server(("0.0.0.0", port))
    got = []
    for _ in range(int(env["AWS_BATCH_JOB_NUM_NODES"]) - 1):
        conn, _ = server.accept()
        got.append(conn.recv(16).decode())
    print("got " + " ".join(sorted(got)), flush=True)
else:
    for _ in range(600):
        try:
            socket.create_connection((env["AWS_BATCH_JOB_MAIN_NODE_PRIVATE_IPV4_ADDRESS"], port)).sendall(
                env["AWS_BATCH_JOB_NODE_INDEX"].encode())
            break
        except OSError:
            time.sleep(0.05)
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_every_node_runs_with_its_environment_and_reaches_the_main_node(
    batch: BatchClient, runtime: LocalRuntime
) -> None:
    queue = ec2_queue(batch)
    port = [{"name": "PORT", "value": str(free_port())}]
    gang = node([PY, "-c", GANG], environment=port)
    props = node_props(3, 1, ("0:", gang), ("2", node([PY, "-c", GANG + "\nprint('two')"], environment=port)))
    jd = register(batch, "mnp", props)
    job_id = batch.submit_job(jobName="j", jobQueue=queue, jobDefinition=jd)["jobId"]
    parent = wait_for(lambda: finished(batch, job_id), "the job to finish")

    assert parent["status"] == "SUCCEEDED", parent.get("statusReason")
    assert parent["nodeProperties"]["numNodes"] == 3 and parent["nodeProperties"]["mainNode"] == 1
    assert "container" not in parent and "nodeDetails" not in parent
    nodes = describe(batch, *(f"{job_id}#{i}" for i in range(3)))
    assert [n["jobId"] for n in nodes] == [f"{job_id}#{i}" for i in range(3)]
    assert [n["nodeDetails"] for n in nodes] == [
        {"nodeIndex": 0, "isMainNode": False},
        {"nodeIndex": 1, "isMainNode": True},
        {"nodeIndex": 2, "isMainNode": False},
    ]
    main_log = log_of(runtime, nodes[1]["container"]["logStreamName"])
    main_env = json.loads(main_log[0])
    assert main_env["AWS_BATCH_JOB_ID"] == f"{job_id}#1"
    assert main_env["AWS_BATCH_JOB_NODE_INDEX"] == "1"
    assert main_env["AWS_BATCH_JOB_NUM_NODES"] == "3"
    assert main_env["AWS_BATCH_JOB_MAIN_NODE_INDEX"] == "1"
    assert "AWS_BATCH_JOB_MAIN_NODE_PRIVATE_IPV4_ADDRESS" not in main_env
    assert main_log[1] == "got 0 2"  # both other nodes reached the main node at the address they were given
    for i in (0, 2):
        env = json.loads(log_of(runtime, nodes[i]["container"]["logStreamName"])[0])
        assert env["AWS_BATCH_JOB_NODE_INDEX"] == str(i)
        assert env["AWS_BATCH_JOB_MAIN_NODE_PRIVATE_IPV4_ADDRESS"] == "127.0.0.1"
    assert nodes[2]["container"]["command"][2].endswith("print('two')")  # node 2's own range
    assert len({n["container"]["logStreamName"] for n in nodes}) == 3


def test_the_job_ends_when_its_main_node_ends_and_the_other_nodes_are_stopped(
    batch: BatchClient, runtime: LocalRuntime
) -> None:
    queue = ec2_queue(batch)
    props = node_props(2, 0, ("0", node(["sh", "-c", "sleep 0.5; exit 0"])), ("1", node(["sleep", "600"])))
    job_id = batch.submit_job(jobName="j", jobQueue=queue, jobDefinition=register(batch, "mnp", props))["jobId"]
    parent = wait_for(lambda: finished(batch, job_id), "the job to finish")
    assert parent["status"] == "SUCCEEDED"
    main, other = describe(batch, f"{job_id}#0", f"{job_id}#1")
    assert main["status"] == "SUCCEEDED" and main["container"]["exitCode"] == 0
    assert other["status"] == "SUCCEEDED"  # stopped with the main node: it takes the job's status
    assert other["attempts"][0]["statusReason"].startswith("Main node exited")


def test_a_failed_main_node_fails_the_job_and_retries_the_whole_job(batch: BatchClient) -> None:
    queue = ec2_queue(batch)
    props = node_props(2, 0, ("0", node(["sh", "-c", "exit 3"])), ("1", node(["sleep", "600"])))
    jd = register(batch, "mnp", props, retryStrategy={"attempts": 2})
    job_id = batch.submit_job(jobName="j", jobQueue=queue, jobDefinition=jd)["jobId"]
    parent = wait_for(lambda: finished(batch, job_id), "the job to finish")
    assert parent["status"] == "FAILED"
    assert [a["container"]["exitCode"] for a in parent["attempts"]] == [3, 3]
    main = describe(batch, f"{job_id}#0")[0]
    assert main["status"] == "FAILED" and len(main["attempts"]) == 2


def test_a_non_main_node_that_fails_does_not_end_the_job(batch: BatchClient) -> None:
    queue = ec2_queue(batch)
    props = node_props(2, 0, ("0", node(["sleep", "1"])), ("1", node(["sh", "-c", "exit 5"])))
    job_id = batch.submit_job(jobName="j", jobQueue=queue, jobDefinition=register(batch, "mnp", props))["jobId"]
    failed_node = wait_for(
        lambda: [n for n in describe(batch, f"{job_id}#1") if n["status"] == "FAILED"], "node 1 to fail"
    )[0]
    assert failed_node["container"]["exitCode"] == 5
    parent = wait_for(lambda: finished(batch, job_id), "the job to finish")
    assert parent["status"] == "SUCCEEDED"  # the main node decides
    assert describe(batch, f"{job_id}#1")[0]["status"] == "FAILED"


def test_a_node_that_cannot_start_fails_the_attempt(batch: BatchClient) -> None:
    queue = ec2_queue(batch)
    props = node_props(2, 0, ("0", node(["sleep", "600"])), ("1", node(["/no/such/program"])))
    job_id = batch.submit_job(jobName="j", jobQueue=queue, jobDefinition=register(batch, "mnp", props))["jobId"]
    parent = wait_for(lambda: finished(batch, job_id), "the job to finish")
    assert parent["status"] == "FAILED"
    assert parent["statusReason"].startswith("Node 1 failed to start: CannotStartContainerError")


def test_terminate_stops_every_node(batch: BatchClient) -> None:
    queue = ec2_queue(batch)
    props = node_props(3, 0, ("0:", node(["sleep", "600"])))
    job_id = batch.submit_job(jobName="j", jobQueue=queue, jobDefinition=register(batch, "mnp", props))["jobId"]
    wait_for(
        lambda: len(batch.list_jobs(multiNodeJobId=job_id, jobStatus="RUNNING")["jobSummaryList"]) == 3,
        "every node to run",
    )
    batch.terminate_job(jobId=job_id, reason="enough")
    parent = wait_for(lambda: finished(batch, job_id), "the job to finish")
    assert parent["status"] == "FAILED" and parent["statusReason"] == "enough"
    assert {n["status"] for n in describe(batch, *(f"{job_id}#{i}" for i in range(3)))} == {"FAILED"}


def test_list_jobs_by_multi_node_job_and_its_summaries(batch: BatchClient) -> None:
    queue = ec2_queue(batch)
    props = node_props(3, 2, ("0:", node(["true"])))
    job_id = batch.submit_job(jobName="j", jobQueue=queue, jobDefinition=register(batch, "mnp", props))["jobId"]
    wait_for(lambda: finished(batch, job_id), "the job to finish")
    page = batch.list_jobs(multiNodeJobId=job_id, jobStatus="SUCCEEDED", maxResults=2)
    assert [s["jobId"] for s in page["jobSummaryList"]] == [f"{job_id}#0", f"{job_id}#1"]
    rest = batch.list_jobs(multiNodeJobId=job_id, jobStatus="SUCCEEDED", maxResults=2, nextToken=page["nextToken"])
    assert [s["nodeProperties"] for s in rest["jobSummaryList"]] == [
        {"numNodes": 3, "nodeIndex": 2, "isMainNode": True}
    ]
    assert "nextToken" not in rest
    summary = batch.list_jobs(jobQueue=queue, jobStatus="SUCCEEDED")["jobSummaryList"]
    assert [s["nodeProperties"] for s in summary] == [{"numNodes": 3}]
    with pytest.raises(ClientError) as e:
        batch.list_jobs(multiNodeJobId="nope")
    assert e.value.response["Error"]["Code"] == "ClientException"


def test_node_overrides_change_the_nodes_and_their_command(batch: BatchClient, runtime: LocalRuntime) -> None:
    queue = ec2_queue(batch)
    jd = register(batch, "mnp", node_props(2, 0, ("0:", node(["echo", "jd"]))))
    overrides = {
        "numNodes": 3,
        "nodePropertyOverrides": [{"targetNodes": "2:", "containerOverrides": {"command": ["echo", "two"]}}],
    }
    job_id = batch.submit_job(jobName="j", jobQueue=queue, jobDefinition=jd, nodeOverrides=overrides)["jobId"]
    parent = wait_for(lambda: finished(batch, job_id), "the job to finish")
    assert parent["nodeProperties"]["numNodes"] == 3
    assert [r["targetNodes"] for r in parent["nodeProperties"]["nodeRangeProperties"]] == ["0:1", "2:2"]
    two = describe(batch, f"{job_id}#2")[0]
    assert two["container"]["command"] == ["echo", "two"]
    with pytest.raises(ClientError) as e:
        batch.submit_job(jobName="j", jobQueue=queue, jobDefinition=jd, nodeOverrides={"numNodes": 0})
    assert "nodeOverrides.numNodes" in e.value.response["Error"]["Message"]
    single = make_jd(batch, "single", platformCapabilities=None)["jobDefinitionArn"]
    with pytest.raises(ClientError) as e:
        batch.submit_job(jobName="j", jobQueue=queue, jobDefinition=single, nodeOverrides={"numNodes": 2})
    assert "not a multi-node job definition" in e.value.response["Error"]["Message"]


def test_node_jobs_emit_their_own_state_changes(batch: BatchClient, runtime: LocalRuntime) -> None:
    queue = ec2_queue(batch)
    props = node_props(2, 0, ("0:", node(["true"])))
    job_id = batch.submit_job(jobName="j", jobQueue=queue, jobDefinition=register(batch, "mnp", props))["jobId"]
    wait_for(lambda: finished(batch, job_id), "the job to finish")

    def statuses(jid: str) -> list[str]:
        path = runtime.config.state_dir / "events.jsonl"
        events = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
        return [e["detail"]["status"] for e in events if e["detail"].get("jobId") == jid]

    for jid in (f"{job_id}#0", f"{job_id}#1"):
        seen = wait_for(lambda jid=jid: "SUCCEEDED" in statuses(jid) and statuses(jid), f"{jid}'s events")
        assert "RUNNING" in seen and seen[-1] == "SUCCEEDED"


def test_a_job_needing_more_than_the_environment_has_waits_runnable(batch: BatchClient) -> None:
    queue = ec2_queue(batch, max_vcpus=2)
    props = node_props(3, 0, ("0:", node(["true"])))  # 3 vCPUs at once: never placed on a 2-vCPU environment
    job_id = batch.submit_job(jobName="j", jobQueue=queue, jobDefinition=register(batch, "mnp", props))["jobId"]
    time.sleep(0.5)
    assert describe(batch, job_id)[0]["status"] == "RUNNABLE"


def test_a_multinode_job_waits_on_a_spot_environment_with_a_reason(batch: BatchClient) -> None:
    # "Multi-node parallel jobs aren't supported on compute environments that use Spot Instances"
    queue = make_queue(batch, "sq", [make_ec2_ce(batch, "spot", spot=True)])
    job_id = batch.submit_job(jobName="j", jobQueue=queue, jobDefinition=register(batch, "mnp", node_props(
        2, 0, ("0:", node(["true"])))))["jobId"]  # fmt: skip
    job = wait_for(lambda: [j for j in describe(batch, job_id) if j.get("statusReason")], "a reason")[0]
    assert job["status"] == "RUNNABLE"
    assert "not supported on SPOT or UNMANAGED" in job["statusReason"]
