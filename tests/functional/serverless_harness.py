"""The serverless runtime on moto, played as AWS would: shared by `test_serverless_e2e.py`, `test_aws_cost.py` and
the bench's `aws-cost` workload (`python -m bench --workload aws-cost`).

- `World`: moto's AWS (DynamoDB table with its stream, SQS FIFO dispatch queue, ECS cluster, a VPC) plus the harness
  that delivers what Lambda's event sources and EventBridge would: stream records to `on_job_change` in batches
  (honouring its partial-batch response), wake messages to `dispatch`, and "ECS Task State Change" envelopes (RUNNING,
  then STOPPED with the outcome `Plan` scripts) for every task moto's RunTask started to `on_ecs_task_event`.
- `CallCounter`: every AWS API call the runtime makes (a `provide-client-params` hook on every botocore client created
  while it is installed); `attribute` maps calls to jobs by the keys they name.
- `deployed()`: a whole deployment (moto, the AWS runtime, the API Lambda's code behind Chalice's local gateway, a
  stock boto3 `batch` client).
- `measure_aws_cost()`: the AWS cost per job of a plain job, a job with 3 dependencies and an array child, with the
  list-price cost model `PRICES` (docs/performance.md, "AWS cost per job").
"""

from __future__ import annotations

import contextlib
import datetime
import json
import os
import re
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import boto3
import botocore.handlers
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


# -- a deployment -----------------------------------------------------------------------------------------------------

# In-process moto: fake credentials, a region, no account-based endpoints, no endpoint override.
AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": REGION,
    "AWS_ACCOUNT_ID_ENDPOINT_MODE": "disabled",  # in-process moto knows no account-based endpoints
}
AWS_ENV_UNSET = ("AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_DYNAMODB")


@contextlib.contextmanager
def moto_environment() -> Iterator[None]:
    """AWS_ENV set and AWS_ENV_UNSET unset for the duration (outside pytest's monkeypatch: the bench)."""
    saved = {name: os.environ.get(name) for name in (*AWS_ENV, *AWS_ENV_UNSET)}
    os.environ.update(AWS_ENV)
    for name in AWS_ENV_UNSET:
        os.environ.pop(name, None)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@dataclass
class Deployment:
    world: World
    counter: CallCounter
    batch: Any


@contextlib.contextmanager
def deployed() -> Iterator[Deployment]:
    """moto's AWS, the AWS runtime and the API behind Chalice's local gateway. Needs AWS_ENV in the environment."""
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


def set_up(deployment: Deployment) -> None:
    """A Fargate Spot compute environment "spot", a job queue "q" and a job definition "step", through the API."""
    world, batch = deployment.world, deployment.batch
    batch.create_compute_environment(
        computeEnvironmentName="spot",
        type="MANAGED",
        computeResources={
            "type": "FARGATE_SPOT",
            "maxvCpus": 256,
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


# -- AWS cost per job -------------------------------------------------------------------------------------------------

# us-east-1 on-demand list prices in USD, as of 2026-11 (https://aws.amazon.com/{dynamodb,lambda,eventbridge,sqs,
# api-gateway,fargate}/pricing/). DynamoDB on-demand after the November 2024 price cut.
PRICES = {
    "dynamodb_write_request_unit": 0.625e-6,
    "dynamodb_read_request_unit": 0.125e-6,
    "lambda_request": 0.20e-6,
    "lambda_gb_second": 0.0000166667,
    "eventbridge_custom_event": 1.00e-6,  # PutEvents entry (per 64 KB chunk); AWS service events (ECS) are free
    "sqs_fifo_request": 0.50e-6,  # per 64 KB chunk
    "api_gateway_rest_request": 3.50e-6,  # REST API, first 333 million a month
    "api_gateway_http_request": 1.00e-6,  # HTTP API, first 300 million a month (for comparison only)
    "ecs_run_task": 0.0,  # the task's Fargate compute is the job's cost, not the control plane's
}
LAMBDA_MEMORY_MB = 512  # .chalice/config.json, stages.dev.lambda_memory_size
LAMBDA_ASSUMED_MS = 50  # assumed billed duration per invocation (in-process moto timings say nothing about AWS)

DDB_READS = {"GetItem", "Query", "Scan", "BatchGetItem", "TransactGetItems"}
DDB_SINGLE_WRITES = {"PutItem", "UpdateItem", "DeleteItem"}


def window_counts(counter: CallCounter, invocations: Counter[str], api_requests: int) -> Counter[str]:
    """The AWS usage of everything the counter saw: request counts and (estimated) request units."""
    c: Counter[str] = Counter()
    for call in counter.calls:
        op, p = call.operation, call.params
        if call.service == "dynamodb":
            if op in DDB_READS:
                c["dynamodb_reads"] += 1
                c["dynamodb_rru"] += 2 * len(p["TransactItems"]) if op == "TransactGetItems" else 1
            elif op in DDB_SINGLE_WRITES:
                c["dynamodb_writes"] += 1
                c["dynamodb_wru"] += 1
            elif op == "TransactWriteItems":  # each item is a write, at twice the units
                c["dynamodb_writes"] += len(p["TransactItems"])
                c["dynamodb_wru"] += 2 * len(p["TransactItems"])
            elif op == "BatchWriteItem":
                n = sum(len(reqs) for reqs in p["RequestItems"].values())
                c["dynamodb_writes"] += n
                c["dynamodb_wru"] += n
        elif call.service == "events" and op == "PutEvents":
            c["eventbridge_putevents_entries"] += len(p["Entries"])
        elif call.service == "sqs" and op == "SendMessage":
            c["sqs_messages"] += 1
            c["sqs_requests"] += 1
        elif call.service == "sqs" and op == "SendMessageBatch":
            c["sqs_messages"] += len(p["Entries"])
            c["sqs_requests"] += 1
        elif call.service == "ecs":
            c[f"ecs_{op}"] += 1
    # Lambda's SQS poller: one ReceiveMessage and one DeleteMessageBatch per dispatch invocation (billed to the account)
    c["sqs_requests"] += 2 * invocations["dispatch"]
    for fn, n in invocations.items():
        c[f"lambda_{fn}"] += n
    c["lambda_api_handler"] += api_requests  # API Gateway -> the API Lambda, one per request
    c["handler_invocations"] = sum(n for k, n in c.items() if k.startswith("lambda_"))
    c["api_gateway_requests"] = api_requests
    return c


def usd_per_million(per_job: dict[str, float]) -> dict[str, float]:
    """List-price cost of one million such jobs, by service; "control_plane" is everything, "without_api_gateway"
    everything but the REST API's request charge."""
    gb_s = LAMBDA_MEMORY_MB / 1024 * LAMBDA_ASSUMED_MS / 1000
    cost = {
        "dynamodb": per_job["dynamodb_wru"] * PRICES["dynamodb_write_request_unit"]
        + per_job["dynamodb_rru"] * PRICES["dynamodb_read_request_unit"],
        "lambda": per_job["handler_invocations"] * (PRICES["lambda_request"] + gb_s * PRICES["lambda_gb_second"]),
        "eventbridge": per_job["eventbridge_putevents_entries"] * PRICES["eventbridge_custom_event"],
        "sqs": per_job["sqs_requests"] * PRICES["sqs_fifo_request"],
        "api_gateway": per_job["api_gateway_requests"] * PRICES["api_gateway_rest_request"],
        "ecs": per_job.get("ecs_RunTask", 0) * PRICES["ecs_run_task"],
    }
    out = {k: round(v * 1e6, 3) for k, v in cost.items()}
    out["control_plane"] = round(sum(cost.values()) * 1e6, 3)
    out["without_api_gateway"] = round((sum(cost.values()) - cost["api_gateway"]) * 1e6, 3)
    out["with_http_api"] = round(
        out["without_api_gateway"] + per_job["api_gateway_requests"] * PRICES["api_gateway_http_request"] * 1e6, 3
    )
    return out


def _measure(deployment: Deployment, jobs: int, submit: Callable[[Callable[..., str]], object]) -> dict[str, float]:
    """Settle, then count everything from `submit`'s SubmitJobs until the control plane is quiescent again, per job
    (`jobs` of them). Every job in the window succeeds on its first attempt."""
    world, batch = deployment.world, deployment.batch
    world.settle()
    deployment.counter.calls.clear()
    world.invocations.clear()
    submitted: list[str] = []

    def submit_job(name: str, **kwargs: Any) -> str:
        job_id = str(batch.submit_job(jobName=name, jobQueue="q", jobDefinition="step", **kwargs)["jobId"])
        world.names[job_id] = name
        submitted.append(job_id)
        return job_id

    submit(submit_job)
    world.settle()
    done = batch.describe_jobs(jobs=submitted)["jobs"]
    assert [j["status"] for j in done] == ["SUCCEEDED"] * len(submitted), [j.get("statusReason") for j in done]
    counts = window_counts(deployment.counter, world.invocations, len(submitted))
    return {k: round(v / jobs, 3) for k, v in sorted(counts.items())}


def _difference(a: dict[str, float], b: dict[str, float]) -> dict[str, float]:
    return {k: round(a.get(k, 0) - b.get(k, 0), 3) for k in sorted(set(a) | set(b))}


def measure_aws_cost(array_size: int = 10, loaded: int = 20) -> dict[str, dict[str, Any]]:
    """AWS usage and list-price cost per job, each measured in its own window of one deployment on moto:

    - "plain": one job with no dependency, alone (no stream or queue batching to share: the worst case), after a
      warm-up job that registered the job definition's ECS task definition;
    - "plain_loaded": `loaded` plain jobs submitted together, per job (stream and dispatch batches shared);
    - "deps3": a job depending on 3 plain jobs, as its marginal cost: (3 jobs + the dependent) minus (3 jobs alone);
    - "array_child": an array job of `array_size` children, everything (the parent too) divided by `array_size`.

    Handler invocations are the harness's Lambda invocations in the window (a stream or SQS batch is one invocation,
    whoever's records it carries) plus one API Lambda invocation per SubmitJob. DynamoDB reads and writes are
    calls (a TransactWriteItems counts its items); `dynamodb_rru`/`dynamodb_wru` estimate request units as one per
    read or write (two per transactional item), ignoring item size over 1 KB (writes) / 4 KB (reads) and the writes
    to the table's two global secondary indexes."""
    with moto_environment(), deployed() as deployment:
        set_up(deployment)
        _measure(
            deployment, 1, lambda submit: submit("warm-up")
        )  # registers the ECS task definition: once, not per job
        per_kind: dict[str, dict[str, float]] = {}
        per_kind["plain"] = _measure(deployment, 1, lambda submit: submit("plain"))
        per_kind["plain_loaded"] = _measure(deployment, loaded, lambda submit: [submit(f"l{i}") for i in range(loaded)])

        def three(submit: Callable[..., str]) -> list[str]:
            return [submit(f"dep-{i}") for i in range(3)]

        alone = _measure(deployment, 1, three)
        with_dependent = _measure(
            deployment, 1, lambda submit: submit("dependent", dependsOn=[{"jobId": j} for j in three(submit)])
        )
        per_kind["deps3"] = _difference(with_dependent, alone)
        per_kind["array_child"] = _measure(
            deployment, array_size, lambda submit: submit("array", arrayProperties={"size": array_size})
        )
    return {kind: {"per_job": counts, "usd_per_million": usd_per_million(counts)} for kind, counts in per_kind.items()}
