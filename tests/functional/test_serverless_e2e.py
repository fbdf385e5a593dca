"""The serverless runtime end to end on moto: SubmitJob to SUCCEEDED through the Chalice handlers and AWS adapters only.

A stock boto3 `batch` client talks HTTP to the Chalice app (the API Lambda's code, served by Chalice's local
gateway) running on the AWS runtime: DynamoDB (PynamoDB on moto), EventBridge and SQS (moto), ECS (moto's RunTask).
The harness plays AWS's part, as Lambda's event sources and EventBridge would:

- the table's stream: records are read from moto's dynamodbstreams and delivered to `on_job_change` in batches,
  honouring its partial-batch response;
- the dispatch queue: SQS FIFO messages are received and delivered to `dispatch`, then deleted;
- ECS: for every task moto's RunTask started, "ECS Task State Change" envelopes (RUNNING, then STOPPED with the exit
  code or Spot interruption the scenario scripts for that attempt) are delivered to `on_ecs_task_event`.

Every AWS call the runtime makes is counted (a `provide-client-params` hook on every botocore client, like moto's own
stubber) and attributed to jobs by the keys it names. The test asserts the cost targets of a plain job (ADR 0003:
at most 4 DynamoDB writes, 1 RunTask), prints the counts per job (pytest -s) and writes them to
build/serverless-e2e-calls.json for the bench.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import re
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import botocore.handlers
import pytest
from botocore.config import Config
from chalice.local import LambdaContext
from moto import mock_aws

from app import app
from chalicelib.compute import ecs, ecs_events
from chalicelib.runtime import aws
from chalicelib.runtime.aws import AwsConfig, AwsRuntime
from chalicelib.runtime.server import ApiServer
from chalicelib.store.dynamo import DynamoItemStore

REGION = "us-east-1"
ACCOUNT = "123456789012"
TABLE = "batchplane-e2e"
CLUSTER = "batchplane"
IMAGE = "public.ecr.aws/docker/library/busybox:latest"
EXEC_ROLE = f"arn:aws:iam::{ACCOUNT}:role/batchplane-execution"
SPOT_INTERRUPTED = "Your Spot Task was interrupted."
REPORT = Path(__file__).resolve().parents[2] / "build" / "serverless-e2e-calls.json"
TIMEOUTS_S = {"on_job_change": 300, "dispatch": 120, "on_ecs_task_event": 30}
WRITES = {"PutItem", "DeleteItem", "UpdateItem", "TransactWriteItems", "BatchWriteItem"}
MAX_ROUNDS = 200


# -- counting AWS calls -----------------------------------------------------------------------------------------------


@dataclass
class Call:
    service: str
    operation: str
    params: dict[str, Any]


@dataclass
class CallCounter:
    """Records every API call of botocore clients created while installed (sessions copy BUILTIN_HANDLERS)."""

    calls: list[Call] = field(default_factory=list)

    def __call__(self, params: dict[str, Any], model: Any, **_: Any) -> None:
        service = model.service_model.service_name
        self.calls.append(Call(service, model.name, json.loads(json.dumps(params, default=str))))

    @contextlib.contextmanager
    def installed(self) -> Iterator[CallCounter]:
        entry = ("provide-client-params", self)
        botocore.handlers.BUILTIN_HANDLERS.append(entry)
        try:
            yield self
        finally:
            botocore.handlers.BUILTIN_HANDLERS.remove(entry)

    def by_operation(self) -> Counter[str]:
        return Counter(f"{c.service}:{c.operation}" for c in self.calls)


_JOB_KEY = re.compile(r"^(JOB|DEP)#(.+)$")


def _pk_values(call: Call) -> list[str]:
    """The partition keys a DynamoDB call names (items written, read, or queried)."""
    p = call.params
    if call.operation in ("PutItem",):
        return [p["Item"]["pk"]["S"]]
    if call.operation in ("GetItem", "DeleteItem", "UpdateItem"):
        return [p["Key"]["pk"]["S"]]
    if call.operation == "TransactWriteItems":
        keys = []
        for op in p["TransactItems"]:
            body = next(iter(op.values()))  # {"Put": {...}} / {"Delete": {...}} / {"ConditionCheck": {...}}
            keys.append((body.get("Item") or body.get("Key"))["pk"]["S"])
        return keys
    if call.operation == "BatchGetItem":
        return [k["pk"]["S"] for t in p["RequestItems"].values() for k in t["Keys"]]
    if call.operation == "Query":
        return [v["S"] for v in (p.get("ExpressionAttributeValues") or {}).values() if "S" in v]
    return []


def attribute(counter: CallCounter, jobs: dict[str, str]) -> dict[str, Counter[str]]:
    """Per job (by name): how many calls of each kind named it. Writes count the job's own item only (a dependency
    edge written with a dependent's submit is that dependent's submit); reads count its item and its edges."""
    names = {job_id: name for name, job_id in jobs.items()}
    started_by = {ecs.started_by(job_id, n): job_id for job_id in names for n in range(1, 5)}
    per: dict[str, Counter[str]] = defaultdict(Counter)
    for call in counter.calls:
        hit: set[str] = set()
        if call.service == "dynamodb":
            write = call.operation in WRITES
            for pk in _pk_values(call):
                m = _JOB_KEY.match(pk)
                if m and m.group(2) in names and (not write or m.group(1) == "JOB"):
                    hit.add(m.group(2))
            kind = "dynamodb_writes" if write else "dynamodb_reads"
        elif call.service == "ecs":
            group = call.params.get("group") or ""
            job = started_by.get(call.params.get("startedBy", "")) or (group.split(":")[1] if group else None)
            hit = {job} if job in names else set()
            kind = f"ecs_{call.operation}"
        elif call.service == "events":  # one PutEvents call carries up to 10 events: count the job's events
            for e in call.params["Entries"]:
                for arn in e["Resources"]:
                    if arn.rsplit("/", 1)[-1] in names:
                        per[names[arn.rsplit("/", 1)[-1]]]["eventbridge_events"] += 1
            continue
        else:
            continue
        for job_id in hit:
            per[names[job_id]][kind] += 1
    return per


# -- the AWS side of the world --------------------------------------------------------------------------------------


@dataclass
class Plan:
    """What each attempt's task does, by job name: "ok" (exit 0), "fail" (exit 1), "spot" (Fargate Spot reclaimed)."""

    outcomes: dict[str, list[str]] = field(default_factory=dict)

    def outcome(self, name: str, attempt: int) -> str:
        steps = self.outcomes.get(name, [])
        return steps[attempt - 1] if attempt <= len(steps) else "ok"


class World:
    """moto's AWS plus the harness that delivers stream records, wake messages and task events to the handlers."""

    def __init__(self, counter: CallCounter) -> None:
        # The harness's own clients come from a session made before the counter is installed: not counted.
        self.session = boto3.session.Session(region_name=REGION)
        self.ddb = self.session.client("dynamodb")
        self.streams = self.session.client("dynamodbstreams")
        self.ecs = self.session.client("ecs")
        self.sqs = self.session.client("sqs")
        ec2 = self.session.client("ec2")
        vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
        ec2.modify_vpc_attribute(VpcId=vpc, EnableDnsHostnames={"Value": True})
        self.subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.0.1.0/24")["Subnet"]["SubnetId"]
        self.sg = ec2.create_security_group(GroupName="batch", Description="batch", VpcId=vpc)["GroupId"]
        self.ecs.create_cluster(clusterName=CLUSTER)
        self.queue_url = self.sqs.create_queue(
            QueueName="batchplane-dispatch.fifo", Attributes={"FifoQueue": "true", "VisibilityTimeout": "180"}
        )["QueueUrl"]
        DynamoItemStore(TABLE, region=REGION).create_table(wait=False)
        stream_arn = self.ddb.describe_table(TableName=TABLE)["Table"]["LatestStreamArn"]
        self.stream_arn = stream_arn
        self.iterators: dict[str, str | None] = {}
        self.counter = counter
        self.tasks_seen: set[str] = set()
        self.plan = Plan()
        self.names: dict[str, str] = {}  # job id -> name
        self.invocations: Counter[str] = Counter()

    def config(self) -> AwsConfig:
        return AwsConfig(
            table=TABLE,
            region=REGION,
            account=ACCOUNT,
            cluster=CLUSTER,
            dispatch_queue_url=self.queue_url,
            execution_role_arn=EXEC_ROLE,
        )

    # -- delivering -------------------------------------------------------------------------------------------

    def invoke(self, name: str, event: Any) -> Any:
        self.invocations[name] += 1
        context = LambdaContext(name, memory_size=512, max_runtime_ms=TIMEOUTS_S[name] * 1000)
        return app.handler_map[name](event, context)

    def _stream_records(self) -> list[dict[str, Any]]:
        description = self.streams.describe_stream(StreamArn=self.stream_arn)["StreamDescription"]
        records: list[dict[str, Any]] = []
        for shard in description["Shards"]:
            shard_id = shard["ShardId"]
            if shard_id not in self.iterators:
                self.iterators[shard_id] = self.streams.get_shard_iterator(
                    StreamArn=self.stream_arn, ShardId=shard_id, ShardIteratorType="TRIM_HORIZON"
                )["ShardIterator"]
            iterator = self.iterators[shard_id]
            if iterator is None:
                continue
            page = self.streams.get_records(ShardIterator=iterator, Limit=1000)
            self.iterators[shard_id] = page.get("NextShardIterator")
            records += page["Records"]
        return records

    def deliver_stream(self, batch_size: int = 100) -> bool:
        """Deliver new stream records in batches, as Lambda's event source mapping does (with its filter)."""
        records = [r for r in self._stream_records() if r["dynamodb"]["Keys"]["pk"]["S"].startswith("JOB#")]
        i = 0
        while i < len(records):
            batch = records[i : i + batch_size]
            result = self.invoke("on_job_change", {"Records": [_lambda_record(r, self.stream_arn) for r in batch]})
            failures = result.get("batchItemFailures") or []
            assert not failures, f"the stream handler reported failures: {failures}"
            i += len(batch)
        return bool(records)

    def deliver_wakes(self) -> bool:
        messages = self.sqs.receive_message(QueueUrl=self.queue_url, MaxNumberOfMessages=10).get("Messages", [])
        if not messages:
            return False
        event = {
            "Records": [
                {
                    "messageId": m["MessageId"],
                    "receiptHandle": m["ReceiptHandle"],
                    "body": m["Body"],
                    "attributes": {},
                    "messageAttributes": {},
                    "eventSource": "aws:sqs",
                    "eventSourceARN": f"arn:aws:sqs:{REGION}:{ACCOUNT}:batchplane-dispatch.fifo",
                    "awsRegion": REGION,
                }
                for m in messages
            ]
        }
        self.invoke("dispatch", event)
        for m in messages:
            self.sqs.delete_message(QueueUrl=self.queue_url, ReceiptHandle=m["ReceiptHandle"])
        return True

    def deliver_task_events(self) -> bool:
        """For each task moto started since the last call: its RUNNING event, then its STOPPED event."""
        arns = self.ecs.list_tasks(cluster=CLUSTER)["taskArns"]
        arns += self.ecs.list_tasks(cluster=CLUSTER, desiredStatus="STOPPED")["taskArns"]
        new = [a for a in dict.fromkeys(arns) if a not in self.tasks_seen]
        if not new:
            return False
        for task in self.ecs.describe_tasks(cluster=CLUSTER, tasks=new)["tasks"]:
            self.tasks_seen.add(task["taskArn"])
            identity = ecs_events.parse_group(task["group"])
            assert identity is not None, task["group"]
            job_id, attempt = identity
            outcome = self.plan.outcome(self.names.get(job_id, ""), attempt)
            self.invoke("on_ecs_task_event", task_envelope(task, "RUNNING"))
            self.invoke("on_ecs_task_event", task_envelope(task, "STOPPED", outcome))
        return True

    def settle(self) -> int:
        """Deliver until nothing moves: the control plane is quiescent. Returns the rounds it took."""
        for rounds in range(1, MAX_ROUNDS):
            moved = self.deliver_stream()
            moved = self.deliver_wakes() or moved
            moved = self.deliver_task_events() or moved
            if not moved:
                return rounds
        raise AssertionError("the control plane did not settle")


def _lambda_record(record: dict[str, Any], stream_arn: str) -> dict[str, Any]:
    """A dynamodbstreams GetRecords record as Lambda delivers it (epoch seconds, eventSourceARN)."""
    ddb = dict(record["dynamodb"])
    created = ddb["ApproximateCreationDateTime"]
    if isinstance(created, datetime.datetime):
        ddb["ApproximateCreationDateTime"] = created.timestamp()
    return {**record, "dynamodb": ddb, "eventSourceARN": stream_arn}


def task_envelope(task: dict[str, Any], last_status: str, outcome: str = "ok") -> dict[str, Any]:
    """An EventBridge "ECS Task State Change" envelope for one of moto's tasks (spec §6.2)."""
    detail = json.loads(json.dumps(task, default=str))
    detail["lastStatus"] = last_status
    container = {**(detail.get("containers") or [{}])[0], "name": "default", "lastStatus": last_status}
    if last_status == "STOPPED":
        detail["desiredStatus"] = "STOPPED"
        if outcome == "spot":
            detail.update(stopCode="TerminationNotice", stoppedReason=SPOT_INTERRUPTED)
            container["exitCode"] = 143
        else:
            detail.update(stopCode="EssentialContainerExited", stoppedReason="Essential container in task exited")
            container["exitCode"] = 0 if outcome == "ok" else 1
    detail["containers"] = [container]
    return {
        "version": "0",
        "id": "00000000-0000-0000-0000-000000000000",
        "detail-type": "ECS Task State Change",
        "source": "aws.ecs",
        "account": ACCOUNT,
        "time": "2026-01-01T00:00:00Z",
        "region": REGION,
        "resources": [task["taskArn"]],
        "detail": detail,
    }


# -- the test ---------------------------------------------------------------------------------------------------------


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": REGION,
        "AWS_ACCOUNT_ID_ENDPOINT_MODE": "disabled",  # in-process moto knows no account-based endpoints
    }.items():
        monkeypatch.setenv(name, value)
    for name in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_DYNAMODB"):
        monkeypatch.delenv(name, raising=False)


@dataclass
class Deployment:
    world: World
    counter: CallCounter
    batch: Any


@pytest.fixture
def deployment(aws_env: None) -> Iterator[Deployment]:
    with mock_aws():
        counter = CallCounter()
        world = World(counter)
        with counter.installed():
            rt = AwsRuntime(world.config())
            aws.configure(rt)
            server = ApiServer(app, "127.0.0.1", 0)
            server.start()
            batch = boto3.session.Session(region_name=REGION).client(
                "batch", endpoint_url=server.endpoint, config=Config(retries={"total_max_attempts": 1})
            )
            try:
                yield Deployment(world, counter, batch)
            finally:
                server.stop()
                aws.configure(None)


def test_a_job_dag_runs_to_success_on_the_serverless_runtime(deployment: Deployment) -> None:
    world, batch, counter = deployment.world, deployment.batch, deployment.counter

    # GIVEN a Fargate Spot compute environment, a queue and a job definition, created through the API
    batch.create_compute_environment(
        computeEnvironmentName="spot",
        type="MANAGED",
        computeResources={
            "type": "FARGATE_SPOT",
            "maxvCpus": 4,
            "subnets": [world.subnet],
            "securityGroupIds": [world.sg],
        },
    )
    batch.create_job_queue(
        jobQueueName="q", priority=1, computeEnvironmentOrder=[{"order": 1, "computeEnvironment": "spot"}]
    )
    batch.register_job_definition(
        jobDefinitionName="step",
        type="container",
        platformCapabilities=["FARGATE"],
        containerProperties={
            "image": IMAGE,
            "command": ["echo", "hello"],
            "executionRoleArn": EXEC_ROLE,
            "resourceRequirements": [{"type": "VCPU", "value": "0.25"}, {"type": "MEMORY", "value": "512"}],
            "networkConfiguration": {"assignPublicIp": "ENABLED"},
        },
    )
    world.settle()
    counter.calls.clear()

    # WHEN a DAG is submitted: prepare -> array of 3 -> (retried step, Spot-interrupted step) -> report
    def submit(name: str, **kwargs: Any) -> str:
        job_id = str(batch.submit_job(jobName=name, jobQueue="q", jobDefinition="step", **kwargs)["jobId"])
        world.names[job_id] = name
        return job_id

    prepare = submit("prepare")
    fan = submit("fan-out", arrayProperties={"size": 3}, dependsOn=[{"jobId": prepare}])
    world.plan.outcomes = {"flaky": ["fail", "ok"], "on-spot": ["spot", "ok"]}
    flaky = submit("flaky", dependsOn=[{"jobId": fan}], retryStrategy={"attempts": 2})
    on_spot = submit(
        "on-spot",
        dependsOn=[{"jobId": prepare}],
        retryStrategy={"attempts": 2, "evaluateOnExit": [{"onStatusReason": "Your Spot Task*", "action": "RETRY"}]},
    )
    report = submit("report", dependsOn=[{"jobId": flaky}, {"jobId": on_spot}])
    rounds = world.settle()

    # THEN every job SUCCEEDED, with the attempts the scenario asked for
    jobs = {j["jobName"]: j for j in batch.describe_jobs(jobs=[prepare, fan, flaky, on_spot, report])["jobs"]}
    assert {name: j["status"] for name, j in jobs.items()} == dict.fromkeys(
        ["prepare", "fan-out", "flaky", "on-spot", "report"], "SUCCEEDED"
    ), {name: j.get("statusReason") for name, j in jobs.items()}
    assert [a["container"]["exitCode"] for a in jobs["flaky"]["attempts"]] == [1, 0]
    assert [a["statusReason"] for a in jobs["on-spot"]["attempts"]] == [
        SPOT_INTERRUPTED,
        "Essential container in task exited",
    ]
    assert len(jobs["prepare"]["attempts"]) == 1 and len(jobs["report"]["attempts"]) == 1
    children = batch.list_jobs(arrayJobId=fan, jobStatus="SUCCEEDED")["jobSummaryList"]
    assert len(children) == 3
    assert jobs["fan-out"]["arrayProperties"]["statusSummary"]["SUCCEEDED"] == 3

    # ... every state change was published to EventBridge (SUBMITTED is never persisted, so never published)
    published = [
        json.loads(e["Detail"])
        for c in counter.calls
        if (c.service, c.operation) == ("events", "PutEvents")
        for e in c.params["Entries"]
    ]
    statuses_of_report = [d["status"] for d in published if d["jobId"] == report]
    assert statuses_of_report == ["PENDING", "RUNNABLE", "STARTING", "RUNNING", "SUCCEEDED"]
    assert {e["Source"] for c in counter.calls if c.operation == "PutEvents" for e in c.params["Entries"]} == {
        "batchplane"
    }

    # ... and a plain single-attempt job cost at most 4 DynamoDB writes and 1 RunTask (ADR 0003)
    for child in children:
        world.names[child["jobId"]] = f"fan-out:{child['jobId'].rsplit(':', 1)[1]}"
    per_job = attribute(counter, {name: job_id for job_id, name in world.names.items()})
    totals = counter.by_operation()
    _report(per_job, totals, world.invocations, rounds)
    for name in ("prepare", "fan-out:0", "fan-out:1", "fan-out:2"):  # no dependency, one attempt
        assert per_job[name]["dynamodb_writes"] <= 4, (name, per_job[name])
        assert per_job[name]["ecs_RunTask"] == 1, (name, per_job[name])
    # One more write per dependency (each completion is a compare-and-set on the dependent); one more claim,
    # RUNNING and stop per extra attempt.
    assert per_job["report"]["dynamodb_writes"] <= 4 + 2 and per_job["report"]["ecs_RunTask"] == 1, per_job["report"]
    for name, attempts in (("flaky", 2), ("on-spot", 2)):
        assert per_job[name]["ecs_RunTask"] == attempts, (name, per_job[name])
        assert per_job[name]["dynamodb_writes"] <= 4 + 1 + 3 * (attempts - 1), (name, per_job[name])


def _report(per_job: dict[str, Counter[str]], totals: Counter[str], invocations: Counter[str], rounds: int) -> None:
    always = {"dynamodb_reads", "dynamodb_writes", "ecs_RunTask", "ecs_ListTasks"}  # ListTasks: 0 with clientToken
    kinds = sorted({k for counts in per_job.values() for k in counts} | always)
    width = max(len(n) for n in per_job) + 2
    lines = ["", "AWS calls per job (serverless e2e on moto):", " " * width + "  ".join(f"{k:>20}" for k in kinds)]
    for name in sorted(per_job):
        lines.append(f"{name:<{width}}" + "  ".join(f"{per_job[name][k]:>20}" for k in kinds))
    lines.append("totals: " + ", ".join(f"{op}={n}" for op, n in sorted(totals.items())))
    lines.append("Lambda invocations: " + ", ".join(f"{fn}={n}" for fn, n in sorted(invocations.items())))
    print("\n".join(lines))
    REPORT.parent.mkdir(parents=True, exist_ok=True)
    REPORT.write_text(
        json.dumps(
            {
                "per_job": {name: {k: counts[k] for k in kinds} for name, counts in sorted(per_job.items())},
                "totals": dict(sorted(totals.items())),
                "lambda_invocations": dict(sorted(invocations.items())),
                "harness_rounds": rounds,
            },
            indent=2,
        )
        + "\n"
    )
