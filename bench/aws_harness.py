"""The serverless runtime on moto, played as AWS would: shared by the bench's `aws-cost` workload (`python -m bench
--workload aws-cost`) and the tests (`tests/functional/test_serverless_e2e.py`, `test_aws_cost.py`, ...). It lives in
bench/ so that the bench imports nothing from tests/ (`make lint` checks the layering, issue 15).

- `World`: moto's AWS (DynamoDB table with its stream, SQS FIFO dispatch queue, ECS cluster, a VPC) plus the harness
  that delivers what Lambda's event sources and EventBridge would, through the filters `make package` deploys
  (`Template`: the app's event sources merged with infra/resources.json): the stream records its FilterCriteria
  match to `on_job_change` in batches (honouring its partial-batch response), wake messages to `dispatch`, and for
  every task moto's RunTask started, ECS's whole sequence of "ECS Task State Change" events (PROVISIONING to STOPPED,
  the outcome `Plan` scripts), one state change per round, of which the ECS rule's pattern passes some to
  `on_ecs_task_event`.
- `CallCounter`: every AWS API call the runtime makes (a `provide-client-params` hook on every botocore client created
  while it is installed), with the DynamoDB request units each consumed (`TableModel`: DynamoDB's size rules applied
  to the items written and read, including the writes to the table's global secondary indexes); `attribute` maps
  calls to jobs by the keys they name.
- `deployed()`: a whole deployment (moto, the AWS runtime, the API Lambda's code behind Chalice's local gateway, a
  stock boto3 `batch` client).
- `measure_aws_cost()`: the AWS cost per job of a plain job, a job with 3 dependencies and an array child, with the
  list-price cost model `PRICES` (docs/performance.md, "AWS cost per job").
"""

from __future__ import annotations

import base64
import contextlib
import copy
import datetime
import json
import os
import re
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import botocore.handlers
from botocore.config import Config
from chalice.local import LambdaContext
from moto import mock_aws
from moto.ec2 import utils as ec2_utils
from moto.events.models import EventPattern

from app import app
from chalicelib.compute import ecs, ecs_events
from chalicelib.domain.validation import limits_from_text
from chalicelib.events.eventbridge import entry_size
from chalicelib.runtime import plane
from chalicelib.runtime.aws import AwsConfig
from chalicelib.runtime.server import ApiServer
from chalicelib.store.dynamo import DynamoItemStore

REGION = "us-east-1"
ACCOUNT = "123456789012"
TABLE = "batchplane-e2e"
CLUSTER = "batchplane"
IMAGE = "public.ecr.aws/docker/library/busybox:latest"
EXEC_ROLE = f"arn:aws:iam::{ACCOUNT}:role/batchplane-execution"
SPOT_INTERRUPTED = "Your Spot Task was interrupted."
ESSENTIAL_EXITED = "Essential container in task exited"
TIMEOUTS_S = {"on_job_change": 300, "dispatch": 120, "on_ecs_task_event": 30, "sweep": 55}  # .chalice/config.json
WRITES = {"PutItem", "DeleteItem", "UpdateItem", "TransactWriteItems", "BatchWriteItem"}
MAX_ROUNDS = 200


# -- counting AWS calls -----------------------------------------------------------------------------------------------


@dataclass
class Call:
    service: str
    operation: str
    params: dict[str, Any]
    # DynamoDB request units this call consumed, by DynamoDB's size rules (`TableModel.charge`)
    rru: float = 0.0
    wru: int = 0  # the table's own write units
    index_wru: int = 0  # the global secondary indexes' write units


@dataclass
class CallCounter:
    """Records every API call of botocore clients created while installed (sessions copy BUILTIN_HANDLERS), and
    with `table` set, the DynamoDB request units each call consumed (from its parameters and response)."""

    calls: list[Call] = field(default_factory=list)
    table: TableModel | None = None

    def __call__(self, params: dict[str, Any], model: Any, context: Any = None, **_: Any) -> None:
        service = model.service_model.service_name
        call = Call(service, model.name, json.loads(json.dumps(params, default=str)))
        self.calls.append(call)
        if service == "dynamodb" and isinstance(context, dict):
            context[_PENDING] = (call, copy.deepcopy(params))  # bytes intact, for the item sizes

    def after(self, parsed: dict[str, Any], context: Any = None, **_: Any) -> None:
        pending = context.pop(_PENDING, None) if isinstance(context, dict) else None
        if pending is not None and self.table is not None:
            call, params = pending
            self.table.charge(call, params, parsed)

    @contextlib.contextmanager
    def installed(self) -> Iterator[CallCounter]:
        entries = [("provide-client-params", self), ("after-call", self.after)]
        botocore.handlers.BUILTIN_HANDLERS.extend(entries)
        try:
            yield self
        finally:
            for entry in entries:
                botocore.handlers.BUILTIN_HANDLERS.remove(entry)

    def by_operation(self) -> Counter[str]:
        return Counter(f"{c.service}:{c.operation}" for c in self.calls)


_PENDING = "batchplane_harness_call"


# -- DynamoDB request units -------------------------------------------------------------------------------------------
# On-demand billing (https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/read-write-operations.html,
# .../GSI.html#GSI.ThroughputConsiderations.Writes, .../CapacityUnitCalculations.html):
# - an item's size is the UTF-8 length of its attribute names plus its values' sizes (a number: 1 byte per two
#   significant digits + 1; binary: its bytes; a list or map: 3 bytes + 1 per element + the elements);
# - a write costs 1 unit per started KB of the larger of the item before and after it (a delete: the item deleted;
#   a condition that fails: the existing item, at least 1); in TransactWriteItems every item costs twice that;
# - every global secondary index pays for what changes in it, 1 unit per started KB of the index entry (its
#   projection): an entry put (the item enters the index), deleted (it leaves), updated (same key, other projected
#   values), or deleted and put (the index key changed: two writes);
# - a read costs 1 unit per started 4 KB, half that when eventually consistent (GSI queries always are): GetItem and
#   BatchGetItem per item (at least 1 unit, found or not), Query for the sum of the items it read (at least 1).
# Assumptions where the documentation is silent: an index entry's delete is sized by the entry deleted, an updated
# entry by the larger of its two versions; a cancelled transaction costs its items' transactional units and writes
# no index; a ConditionCheck in a transaction costs like a transactional write of the item checked.

KB = 1024
READ_UNIT_BYTES = 4 * KB


def _number_size(text: str) -> int:
    digits = text.lstrip("+-").replace(".", "").split("e")[0].split("E")[0].strip("0") or "0"
    return (len(digits) + 1) // 2 + 1


def value_size(value: dict[str, Any]) -> int:
    """The size of one attribute value in DynamoDB's JSON ({"S": ...}, {"N": ...}, {"B": bytes}, ...)."""
    ((kind, v),) = value.items()
    if kind == "S":
        return len(v.encode())
    if kind == "N":
        return _number_size(v)
    if kind == "B":
        return len(v)
    if kind in ("BOOL", "NULL"):
        return 1
    if kind == "SS":
        return sum(len(x.encode()) for x in v)
    if kind == "NS":
        return sum(_number_size(x) for x in v)
    if kind == "BS":
        return sum(len(x) for x in v)
    if kind == "L":
        return 3 + sum(1 + value_size(x) for x in v)
    if kind == "M":
        return 3 + sum(1 + len(k.encode()) + value_size(x) for k, x in v.items())
    raise ValueError(f"unknown attribute type {kind}")


def item_size(item: dict[str, Any] | None) -> int:
    return sum(len(name.encode()) + value_size(v) for name, v in (item or {}).items())


def write_units(size: int) -> int:
    return max(1, -(-size // KB))


def read_units(size: int, consistent: bool) -> float:
    units = max(1, -(-size // READ_UNIT_BYTES))
    return float(units) if consistent else units / 2


@dataclass(frozen=True)
class Gsi:
    name: str
    keys: tuple[str, ...]  # hash, then range
    projection: str  # ALL | KEYS_ONLY | INCLUDE
    include: tuple[str, ...] = ()


@dataclass
class TableModel:
    """A table's keys and global secondary indexes (as DescribeTable reports the table the runtime created), and a
    shadow of its items, kept from the writes seen, to size what a write replaces or removes."""

    keys: tuple[str, ...]
    indexes: tuple[Gsi, ...]
    items: dict[str, dict[str, Any]] = field(default_factory=dict)

    @classmethod
    def of(cls, description: dict[str, Any]) -> TableModel:
        def key_names(schema: list[dict[str, str]]) -> tuple[str, ...]:
            return tuple(k["AttributeName"] for k in sorted(schema, key=lambda k: k["KeyType"] != "HASH"))

        indexes = tuple(
            Gsi(
                g["IndexName"],
                key_names(g["KeySchema"]),
                g["Projection"]["ProjectionType"],
                tuple(g["Projection"].get("NonKeyAttributes") or ()),
            )
            for g in description.get("GlobalSecondaryIndexes") or ()
        )
        return cls(key_names(description["KeySchema"]), indexes)

    def _key(self, item_or_key: dict[str, Any]) -> str:
        return json.dumps([item_or_key[k] for k in self.keys], default=str)

    def entry(self, item: dict[str, Any] | None, gsi: Gsi) -> dict[str, Any] | None:
        """The item's entry in a sparse index, as projected; None when it lacks one of the index's keys."""
        if item is None or any(k not in item for k in gsi.keys):
            return None
        if gsi.projection == "ALL":
            return item
        kept = {*self.keys, *gsi.keys, *(gsi.include if gsi.projection == "INCLUDE" else ())}
        return {k: v for k, v in item.items() if k in kept}

    def index_units(self, old: dict[str, Any] | None, new: dict[str, Any] | None) -> int:
        units = 0
        for gsi in self.indexes:
            before, after = self.entry(old, gsi), self.entry(new, gsi)
            if (before is None and after is None) or before == after:
                continue
            if before is None or after is None:
                units += write_units(item_size(before or after))
            elif [before[k] for k in gsi.keys] != [after[k] for k in gsi.keys]:
                units += write_units(item_size(before)) + write_units(item_size(after))
            else:
                units += write_units(max(item_size(before), item_size(after)))
        return units

    def charge(self, call: Call, params: dict[str, Any], parsed: dict[str, Any]) -> None:
        """Set the call's request units and apply its writes to the shadow."""
        failed = "Error" in parsed
        op = call.operation
        if op in ("PutItem", "DeleteItem"):
            new = params["Item"] if op == "PutItem" else None
            key = self._key(new if new is not None else params["Key"])
            old = self.items.get(key)
            if failed:
                call.wru = write_units(item_size(old)) if _conditional_failure(parsed) else 0
                return
            call.wru = write_units(max(item_size(old), item_size(new)))
            call.index_wru = self.index_units(old, new)
            self._store(key, new)
        elif op == "TransactWriteItems":
            for entry in params["TransactItems"]:
                ((kind, body),) = entry.items()
                if kind == "Update":
                    raise NotImplementedError("UpdateItem is not modelled: the store writes whole items")
                new = body["Item"] if kind == "Put" else None
                key = self._key(new if new is not None else body["Key"])
                old = self.items.get(key)
                call.wru += 2 * write_units(max(item_size(old), item_size(new)))
                if not failed and kind != "ConditionCheck":
                    call.index_wru += self.index_units(old, new)
                    self._store(key, new)
        elif op == "GetItem":
            found = parsed.get("Item")
            call.rru = 0.0 if failed else read_units(item_size(found), bool(params.get("ConsistentRead")))
        elif op == "BatchGetItem":
            for table, request in params["RequestItems"].items():
                consistent = bool(request.get("ConsistentRead"))
                found = (parsed.get("Responses") or {}).get(table) or []
                unprocessed = len(((parsed.get("UnprocessedKeys") or {}).get(table) or {}).get("Keys") or [])
                missing = len(request["Keys"]) - unprocessed - len(found)
                call.rru += sum(read_units(item_size(i), consistent) for i in found)
                call.rru += missing * read_units(0, consistent)
        elif op == "Query":
            if failed:
                return
            if params.get("Select") == "COUNT":
                size = sum(item_size(i) for i in self._partition(params))
            else:
                size = sum(item_size(i) for i in parsed.get("Items") or [])
            call.rru = read_units(size, bool(params.get("ConsistentRead")))
        elif op in ("UpdateItem", "BatchWriteItem", "Scan", "TransactGetItems"):
            raise NotImplementedError(f"{op} is not modelled: the store does not send it")

    def _store(self, key: str, item: dict[str, Any] | None) -> None:
        if item is None:
            self.items.pop(key, None)
        else:
            self.items[key] = item

    def _partition(self, params: dict[str, Any]) -> list[dict[str, Any]]:
        """The items a COUNT query over one partition reads (a key condition `#n = :v`, nothing on the sort key)."""
        m = re.fullmatch(r"\s*(#\w+)\s*=\s*(:\w+)\s*", params["KeyConditionExpression"])
        if m is None:
            raise NotImplementedError(f"COUNT with {params['KeyConditionExpression']!r} is not modelled")
        name, value = params["ExpressionAttributeNames"][m.group(1)], params["ExpressionAttributeValues"][m.group(2)]
        index = next((g for g in self.indexes if g.name == params.get("IndexName")), None)
        entries = [self.entry(i, index) if index else i for i in self.items.values()]
        return [e for e in entries if e is not None and e.get(name) == value]


def _conditional_failure(parsed: dict[str, Any]) -> bool:
    return (parsed.get("Error") or {}).get("Code") == "ConditionalCheckFailedException"


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
    """What each attempt's task does, by job name: "ok" (exit 0), "fail" (exit 1), "spot" (Fargate Spot reclaimed);
    a node of a multi-node job by `<name>#<index>` (`World.name_of`). A task someone stops (StopTask) goes down
    with that stop instead, whatever its plan."""

    outcomes: dict[str, list[str]] = field(default_factory=dict)

    def outcome(self, name: str, attempt: int) -> str:
        steps = self.outcomes.get(name, [])
        return steps[attempt - 1] if attempt <= len(steps) else "ok"


class World:
    """moto's AWS plus the harness that delivers stream records, wake messages and task events to the handlers."""

    def __init__(self, counter: CallCounter, parameters: dict[str, str] | None = None) -> None:
        # The harness's own clients come from a session made before the counter is installed: not counted.
        self.session = boto3.session.Session(region_name=REGION)
        self.ddb = self.session.client("dynamodb")
        self.streams = self.session.client("dynamodbstreams")
        self.ecs = self.session.client("ecs")
        self.sqs = self.session.client("sqs")
        self.ec2 = ec2 = self.session.client("ec2")
        self.autoscaling = self.session.client("autoscaling")
        vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
        ec2.modify_vpc_attribute(VpcId=vpc, EnableDnsHostnames={"Value": True})
        self.subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.0.1.0/24")["Subnet"]["SubnetId"]
        self.sg = ec2.create_security_group(GroupName="batch", Description="batch", VpcId=vpc)["GroupId"]
        self.ecs.create_cluster(clusterName=CLUSTER)
        self.queue_url = self.sqs.create_queue(
            QueueName="batchplane-dispatch.fifo", Attributes={"FifoQueue": "true", "VisibilityTimeout": "180"}
        )["QueueUrl"]
        DynamoItemStore(TABLE, region=REGION).create_table(wait=False)
        table = self.ddb.describe_table(TableName=TABLE)["Table"]
        counter.table = TableModel.of(table)  # the keys and indexes of the table dynamo.py created
        self.stream_arn = table["LatestStreamArn"]
        self.iterators: dict[str, str | None] = {}
        self.counter = counter
        self.tasks: dict[str, TaskProgress] = {}  # every task moto's RunTask started, by ARN
        cluster_arn = self.ecs.describe_clusters(clusters=[CLUSTER])["clusters"][0]["clusterArn"]
        self.deployment = Template(refs={("Cluster", "Arn"): cluster_arn}, parameters=dict(parameters or {}))
        self.task_rule = EventPattern.load(json.dumps(self.deployment.rule_pattern("on_ecs_task_event")))
        self.stream_filters = [EventPattern.load(json.dumps(f)) for f in self.deployment.stream_filters()]
        self.emitted: Counter[str] = Counter()  # emitted, delivered or filtered out: ecs_task_events, stream_records
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
            state_change_events=self.deployment.parameters["StateChangeEvents"],  # as the stack's Globals set it
            # as the Lambdas read it (AwsConfig.from_environment); a test may shorten the grace
            deletion_grace_seconds=float(os.environ.get("BATCHPLANE_DELETION_GRACE_SECONDS") or 60),
            limits=limits_from_text(self.deployment.parameters["Limits"]),  # BATCHPLANE_LIMITS: the stack parameter
            array_window=int(os.environ.get("BATCHPLANE_ARRAY_WINDOW") or AwsConfig.array_window),
        )

    def ec2_capacity(self, ce: str, *, instances: int = 1, max_vcpus: int = 64) -> list[str]:
        """What infra/ creates for a managed EC2 compute environment `ce` (ADR 0004: a launch template, an Auto
        Scaling group whose unit is one vCPU, an ECS capacity provider `batchplane-<ce>` on it with managed scaling
        off, added to the cluster), and `instances` EC2 instances registered to the cluster as container instances
        (what the group's instances do when they boot the ECS agent; moto's Auto Scaling starts instances but does not
        register them). moto's RunTask places an EC2 task on a registered container instance with room for it.
        Returns the instances' private IPv4 addresses, in registration order."""
        name = ecs.capacity_provider_name(ce)
        self.ec2.create_launch_template(LaunchTemplateName=name, LaunchTemplateData={"ImageId": "ami-12c6146b"})
        self.autoscaling.create_auto_scaling_group(
            AutoScalingGroupName=name,
            MinSize=0,
            MaxSize=max_vcpus,
            DesiredCapacity=0,
            VPCZoneIdentifier=self.subnet,
            MixedInstancesPolicy={
                "LaunchTemplate": {
                    "LaunchTemplateSpecification": {"LaunchTemplateName": name, "Version": "$Latest"},
                    "Overrides": [{"InstanceType": "c5.xlarge", "WeightedCapacity": "4"}],
                },
                "InstancesDistribution": {"OnDemandPercentageAboveBaseCapacity": 100},
            },
        )
        group = self.autoscaling.describe_auto_scaling_groups(AutoScalingGroupNames=[name])["AutoScalingGroups"][0]
        self.ecs.create_capacity_provider(
            name=name,
            autoScalingGroupProvider={
                "autoScalingGroupArn": group["AutoScalingGroupARN"],
                "managedScaling": {"status": "DISABLED"},
                "managedTerminationProtection": "DISABLED",
            },
        )
        providers = self.ecs.describe_clusters(clusters=[CLUSTER])["clusters"][0].get("capacityProviders") or []
        self.ecs.put_cluster_capacity_providers(
            cluster=CLUSTER,
            capacityProviders=sorted({"FARGATE", "FARGATE_SPOT", *providers, name}),
            defaultCapacityProviderStrategy=[],
        )
        addresses = []
        resource = self.session.resource("ec2")
        for instance in resource.create_instances(
            ImageId="ami-12c6146b", MinCount=instances, MaxCount=instances, SubnetId=self.subnet
        ):
            document = json.dumps(ec2_utils.generate_instance_identity_document(instance))
            self.ecs.register_container_instance(cluster=CLUSTER, instanceIdentityDocument=document)
            addresses.append(str(instance.private_ip_address))
        return addresses

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
        """Deliver new stream records in batches, as Lambda's event source mapping does: only the records one of
        its filters (the packaged FilterCriteria) matches invoke the handler."""
        records = [_lambda_record(r, self.stream_arn) for r in self._stream_records()]
        self.emitted["stream_records"] += len(records)
        wanted = [r for r in records if any(f.matches_event(r) for f in self.stream_filters)]
        for i in range(0, len(wanted), batch_size):
            result = self.invoke("on_job_change", {"Records": wanted[i : i + batch_size]})
            failures = result.get("batchItemFailures") or []
            assert not failures, f"the stream handler reported failures: {failures}"
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
        """Every task moto's RunTask started goes through ECS's task states, one state change per call (so that the
        writes they cause reach the stream in separate batches, as they would seconds apart on AWS). ECS emits an
        "ECS Task State Change" for each; EventBridge invokes `on_ecs_task_event` with the ones the deployed rule's
        pattern matches, and drops the rest."""
        arns = self.ecs.list_tasks(cluster=CLUSTER)["taskArns"]
        arns += self.ecs.list_tasks(cluster=CLUSTER, desiredStatus="STOPPED")["taskArns"]
        new = [a for a in dict.fromkeys(arns) if a not in self.tasks]
        if new:
            for task in self.ecs.describe_tasks(cluster=CLUSTER, tasks=new)["tasks"]:
                identity = ecs_events.parse_group(task["group"])
                assert identity is not None, task["group"]
                job_id, attempt = identity
                definition = self.ecs.describe_task_definition(taskDefinition=task["taskDefinitionArn"])
                names = [c["name"] for c in definition["taskDefinition"]["containerDefinitions"]]
                if len(names) > 1:  # moto's task lists the first container only; ECS lists every one
                    task["containers"] = [{**task["containers"][0], "name": n} for n in names]
                self.tasks[task["taskArn"]] = TaskProgress(task, self.plan.outcome(self.name_of(job_id), attempt))
        self._note_stops()
        moved = False
        for progress in self.tasks.values():
            if progress.step == len(ECS_TASK_STATES):
                continue
            if progress.stopped is not None and progress.step < STOPPING_STEP:
                # StopTask: the task goes down from where it is (a task that never ran goes down without RUNNING)
                progress.ran = progress.step > RUNNING_STEP
                progress.step = STOPPING_STEP if progress.ran else STOPPING_STEP + 1
            last, desired = ECS_TASK_STATES[progress.step]
            if desired == "STOPPED" and progress.stopped is None and not progress.exiting:
                # it ends on its own: moto's task too (its instance's resources freed, no longer listed RUNNING),
                # unless it was stopped earlier in this round
                (now,) = self.ecs.describe_tasks(cluster=CLUSTER, tasks=[progress.task["taskArn"]])["tasks"]
                if now.get("desiredStatus") == "STOPPED":
                    progress.stopped = str(now.get("stoppedReason") or "Task stopped by user")
            progress.step += 1
            moved = True
            if desired == "STOPPED" and progress.stopped is None and not progress.exiting:
                progress.exiting = True
                reason = SPOT_INTERRUPTED if progress.outcome == "spot" else ESSENTIAL_EXITED
                self.ecs.stop_task(cluster=CLUSTER, task=progress.task["taskArn"], reason=reason)
            stop_exit = "143" if progress.ran else ""  # SIGTERM, if its container ran
            outcome = progress.outcome if progress.stopped is None else f"stopped:{stop_exit}:{progress.stopped}"
            envelope = task_envelope(progress.task, last, outcome, desired=desired, version=progress.step)
            self.emitted["ecs_task_events"] += 1
            if self.task_rule.matches_event(envelope):
                self.invoke("on_ecs_task_event", envelope)
        return moved

    def name_of(self, job_id: str) -> str:
        """A job's name as the test named it (`names`); a node job `<jobId>#<i>`: `<name>#<i>`, so that a Plan can
        script a node's task on its own (unscripted, it is "ok")."""
        if job_id in self.names:
            return self.names[job_id]
        parent, sep, index = job_id.rpartition("#")
        return f"{self.names[parent]}#{index}" if sep and parent in self.names else ""

    def _note_stops(self) -> None:
        """Tasks someone stopped (StopTask: moto marks them STOPPED at once with the reason) go down as ECS takes them
        down: stopCode UserInitiated, the StopTask reason, the container killed by SIGTERM (143) if it ran."""
        live = [arn for arn, p in self.tasks.items() if p.stopped is None and not p.exiting]
        for i in range(0, len(live), 100):
            for task in self.ecs.describe_tasks(cluster=CLUSTER, tasks=live[i : i + 100])["tasks"]:
                if task.get("desiredStatus") == "STOPPED":
                    self.tasks[task["taskArn"]].stopped = str(task.get("stoppedReason") or "Task stopped by user")

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
    """A dynamodbstreams GetRecords record as Lambda delivers it (JSON: epoch seconds, binary values in base64;
    eventSourceARN)."""

    def as_json(value: Any) -> Any:
        if isinstance(value, datetime.datetime):
            return value.timestamp()
        if isinstance(value, bytes):
            return base64.b64encode(value).decode()
        raise TypeError(type(value).__name__)

    ddb = json.loads(json.dumps(record["dynamodb"], default=as_json))
    return {**record, "dynamodb": ddb, "eventSourceARN": stream_arn}


# The "ECS Task State Change" events of a task, (lastStatus, desiredStatus): ECS emits one whenever either changes. A
# task whose essential container exits gets desiredStatus STOPPED while still RUNNING, then goes down.
ECS_TASK_STATES = (
    ("PROVISIONING", "RUNNING"),
    ("PENDING", "RUNNING"),
    ("ACTIVATING", "RUNNING"),
    ("RUNNING", "RUNNING"),
    ("RUNNING", "STOPPED"),
    ("DEACTIVATING", "STOPPED"),
    ("STOPPING", "STOPPED"),
    ("DEPROVISIONING", "STOPPED"),
    ("STOPPED", "STOPPED"),
)


RUNNING_STEP = ECS_TASK_STATES.index(("RUNNING", "RUNNING"))
STOPPING_STEP = ECS_TASK_STATES.index(("RUNNING", "STOPPED"))


@dataclass
class TaskProgress:
    task: dict[str, Any]  # as DescribeTasks returned it when the harness first saw it
    outcome: str  # Plan.outcome of its attempt
    step: int = 0  # the next ECS_TASK_STATES entry to emit
    stopped: str | None = None  # the StopTask reason, once someone stopped it
    ran: bool = True  # whether it had reached RUNNING when it was stopped
    exiting: bool = False  # it ends on its own (its plan's outcome), moto's task marked stopped


def task_envelope(
    task: dict[str, Any], last_status: str, outcome: str = "ok", *, desired: str | None = None, version: int = 1
) -> dict[str, Any]:
    """An EventBridge "ECS Task State Change" envelope for one of moto's tasks (spec §6.2). `outcome` shapes what
    ECS reports once the task is being stopped: "ok" (exit 0), "fail" (exit 1), "spot" (Fargate Spot reclaimed:
    the termination notice, then exit 143)."""
    desired = desired or ("STOPPED" if last_status == "STOPPED" else "RUNNING")
    detail = json.loads(json.dumps(task, default=str))
    detail.update(lastStatus=last_status, desiredStatus=desired, version=version)
    container = {**(detail.get("containers") or [{}])[0], "name": "default"}
    container["lastStatus"] = "STOPPED" if last_status == "STOPPED" else "RUNNING"
    container.pop("exitCode", None)
    if desired == "STOPPED":
        exited = last_status != "RUNNING"  # a Spot task keeps running for two minutes after the notice
        if outcome.startswith("stopped:"):  # "stopped:<exit code or nothing>:<reason>": StopTask (stopCode
            _, code, reason = outcome.split(":", 2)  # UserInitiated, the reason given; SIGTERM if it ran)
            detail.update(stopCode="UserInitiated", stoppedReason=reason)
            if exited and code:
                container["exitCode"] = int(code)
        elif outcome == "spot":
            detail.update(stopCode="TerminationNotice", stoppedReason=SPOT_INTERRUPTED)
            if exited:
                container["exitCode"] = 143
        else:
            detail.update(stopCode="EssentialContainerExited", stoppedReason=ESSENTIAL_EXITED)
            container["exitCode"] = 0 if outcome == "ok" else 1
    detail["containers"] = [container]
    if len(task.get("containers") or []) > 1:  # a multi-container task: outcome "exit:<name>=<code>,..." (else 0)
        codes = dict(p.split("=") for p in outcome[5:].split(",") if "=" in p) if outcome.startswith("exit:") else {}
        exited = desired == "STOPPED" and last_status != "RUNNING"
        detail["containers"] = []
        for c in json.loads(json.dumps(task["containers"], default=str)):
            c.pop("exitCode", None)
            c["lastStatus"] = container["lastStatus"]
            if exited:
                c["exitCode"] = int(codes.get(c["name"], 0))
            detail["containers"].append(c)
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


# -- the deployed event sources -----------------------------------------------------------------------------------

INFRA = Path(__file__).resolve().parents[1] / "infra" / "resources.json"
FUNCTION_RESOURCES = {"on_job_change": "OnJobChange", "on_ecs_task_event": "OnEcsTaskEvent"}


def _merge(file_template: Any, chalice_template: Any) -> Any:
    """`chalice package --merge-template`'s deep merge (chalice.package.TemplateDeepMerger): dicts merge, the
    merged file's other values win."""
    if isinstance(file_template, dict) and isinstance(chalice_template, dict):
        merged = dict(chalice_template)
        for key, value in file_template.items():
            merged[key] = _merge(value, chalice_template.get(key))
        return merged
    return file_template


@dataclass
class Template:
    """What `make package` deploys of the event sources the harness plays: the app's own (Chalice) merged with
    infra/resources.json, with the few intrinsics they use resolved: Fn::GetAtt from `refs`, Ref of a parameter
    and Fn::If on a condition over parameters (the template's defaults unless `parameters` says otherwise)."""

    refs: dict[tuple[str, str], Any] = field(default_factory=dict)
    parameters: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.infra: dict[str, Any] = json.loads(INFRA.read_text())
        defaults = {k: str(v.get("Default", "")) for k, v in self.infra.get("Parameters", {}).items()}
        self.parameters = {**defaults, **self.parameters}

    def resolve(self, node: Any) -> Any:
        if isinstance(node, list):
            return [self.resolve(n) for n in node]
        if not isinstance(node, dict):
            return node
        if set(node) == {"Fn::GetAtt"}:
            return self.refs[tuple(node["Fn::GetAtt"])]
        if set(node) == {"Ref"}:
            return self.parameters[node["Ref"]]
        if set(node) == {"Fn::If"}:
            condition, yes, no = node["Fn::If"]
            return self.resolve(yes if self.condition(condition) else no)
        return {k: self.resolve(v) for k, v in node.items()}

    def condition(self, name: str) -> bool:
        return bool(self._evaluate(self.infra["Conditions"][name]))

    def _evaluate(self, node: Any) -> Any:
        if isinstance(node, dict) and set(node) == {"Fn::Equals"}:
            a, b = (self._evaluate(x) for x in node["Fn::Equals"])
            return a == b
        if isinstance(node, dict) and set(node) == {"Fn::Not"}:
            return not self._evaluate(node["Fn::Not"][0])
        if isinstance(node, dict) and set(node) == {"Condition"}:
            return self.condition(node["Condition"])
        return self.resolve(node)

    def _event(self, function: str) -> dict[str, Any]:
        events = self.infra["Resources"][FUNCTION_RESOURCES[function]]["Properties"]["Events"]
        ((_, event),) = events.items()
        return dict(event["Properties"])

    def rule_pattern(self, function: str) -> dict[str, Any]:
        """An EventBridge rule's pattern: the app's `on_cw_event` pattern, merged with infra's."""
        (source,) = [e for e in app.event_sources if e.name == function]
        return dict(_merge(self.resolve(self._event(function)["Pattern"]), source.event_pattern))

    def stream_filters(self) -> list[dict[str, Any]]:
        """The patterns of the stream's event source mapping (FilterCriteria): a record invokes the handler when one
        of them matches it."""
        criteria = self.resolve(self._event("on_job_change")["FilterCriteria"])
        return [json.loads(f["Pattern"]) for f in criteria["Filters"]]


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
def deployed(parameters: dict[str, str] | None = None) -> Iterator[Deployment]:
    """moto's AWS, the AWS runtime and the API behind Chalice's local gateway, deployed with the stack `parameters`
    (infra/resources.json's defaults for the others). Needs AWS_ENV in the environment."""
    with mock_aws():
        counter = CallCounter()
        world = World(counter, parameters)
        with counter.installed():
            rt = plane.build_aws(world.config())
            plane.configure_aws(rt)
            server = ApiServer(app, "127.0.0.1", 0)
            server.start()
            batch = boto3.session.Session(region_name=REGION).client(
                "batch", endpoint_url=server.endpoint, config=Config(retries={"total_max_attempts": 1})
            )
            try:
                yield Deployment(world, counter, batch)
            finally:
                server.stop()
                plane.configure_aws(None)


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
LAMBDA_ARCHITECTURE = "arm64"  # .chalice/config.json, stages.dev.lambda_architecture (tests/infra checks the template)
LAMBDA_GB_SECOND = {"x86_64": 0.0000166667, "arm64": 0.0000133334}  # duration, first 6 billion GB-s a month
PRICES = {
    "dynamodb_write_request_unit": 0.625e-6,
    "dynamodb_read_request_unit": 0.125e-6,
    "lambda_request": 0.20e-6,  # either architecture
    "lambda_gb_second": LAMBDA_GB_SECOND[LAMBDA_ARCHITECTURE],
    "eventbridge_custom_event": 1.00e-6,  # PutEvents entry (per 64 KB chunk); AWS service events (ECS) are free
    "sqs_fifo_request": 0.50e-6,  # per 64 KB chunk
    "lambda_function_url_request": 0.0,  # the stack's FunctionUrl (ADR 0014): the Lambda invocation is the only charge
    "api_gateway_http_request": 1.00e-6,  # HTTP API, first 300 million a month: the stack's HttpApiURL (ADR 0012)
    "api_gateway_rest_request": 3.50e-6,  # REST API, first 333 million a month: the stack's EndpointURL
    "ecs_run_task": 0.0,  # the task's Fargate compute is the job's cost, not the control plane's
}
LAMBDA_MEMORY_MB = 512  # .chalice/config.json, stages.dev.lambda_memory_size
LAMBDA_ASSUMED_MS = 50  # assumed billed duration per invocation (in-process moto timings say nothing about AWS)

DDB_READS = {"GetItem", "Query", "Scan", "BatchGetItem", "TransactGetItems"}
DDB_SINGLE_WRITES = {"PutItem", "UpdateItem", "DeleteItem"}
EVENT_CHUNK = 64 * KB


def window_counts(counter: CallCounter, invocations: Counter[str], api_requests: int) -> Counter[str]:
    """The AWS usage of everything the counter saw: request counts and request units."""
    c: Counter[str] = Counter()
    for call in counter.calls:
        op, p = call.operation, call.params
        if call.service == "dynamodb":
            if op in DDB_READS:
                c["dynamodb_reads"] += 1
            elif op in DDB_SINGLE_WRITES:
                c["dynamodb_writes"] += 1
            elif op == "TransactWriteItems":
                c["dynamodb_writes"] += len(p["TransactItems"])
            elif op == "BatchWriteItem":
                c["dynamodb_writes"] += sum(len(reqs) for reqs in p["RequestItems"].values())
            c["dynamodb_rru"] += call.rru
            c["dynamodb_wru"] += call.wru + call.index_wru
            c["dynamodb_wru_index"] += call.index_wru
        elif call.service == "events" and op == "PutEvents":
            c["eventbridge_putevents_entries"] += len(p["Entries"])
            # billed per 64 KB chunk of each entry
            c["eventbridge_events_billed"] += sum(-(-entry_size(e) // EVENT_CHUNK) for e in p["Entries"])
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
    """List-price cost of one million such jobs, by service; "control_plane" is everything, with API requests through
    the stack's function URL (the endpoint README tells clients to use; no request charge, the API Lambda's
    invocations are counted under "lambda" whatever the endpoint); "with_http_api" and "with_rest_api" the same
    through its HTTP API and its REST API; "without_api_gateway" everything but an API Gateway request charge.
    ("api_gateway_requests" counts the API requests, whichever endpoint they go to.)"""
    gb_s = LAMBDA_MEMORY_MB / 1024 * LAMBDA_ASSUMED_MS / 1000
    requests = per_job["api_gateway_requests"]
    cost = {
        "dynamodb": per_job["dynamodb_wru"] * PRICES["dynamodb_write_request_unit"]
        + per_job["dynamodb_rru"] * PRICES["dynamodb_read_request_unit"],
        "lambda": per_job["handler_invocations"] * (PRICES["lambda_request"] + gb_s * PRICES["lambda_gb_second"]),
        "eventbridge": per_job.get("eventbridge_events_billed", 0) * PRICES["eventbridge_custom_event"],
        "sqs": per_job["sqs_requests"] * PRICES["sqs_fifo_request"],
        "api_gateway": requests * PRICES["lambda_function_url_request"],
        "ecs": per_job.get("ecs_RunTask", 0) * PRICES["ecs_run_task"],
    }
    out = {k: round(v * 1e6, 3) for k, v in cost.items()}
    out["control_plane"] = round(sum(cost.values()) * 1e6, 3)
    without = sum(cost.values()) - cost["api_gateway"]
    out["without_api_gateway"] = round(without * 1e6, 3)
    out["with_http_api"] = round((without + requests * PRICES["api_gateway_http_request"]) * 1e6, 3)
    out["with_rest_api"] = round((without + requests * PRICES["api_gateway_rest_request"]) * 1e6, 3)
    return out


def _measure(deployment: Deployment, jobs: int, submit: Callable[[Callable[..., str]], object]) -> dict[str, float]:
    """Settle, then count everything from `submit`'s SubmitJobs until the control plane is quiescent again, per job
    (`jobs` of them). Every job in the window succeeds on its first attempt."""
    world, batch = deployment.world, deployment.batch
    world.settle()
    deployment.counter.calls.clear()
    world.invocations.clear()
    world.emitted.clear()
    submitted: list[str] = []

    def submit_job(name: str, **kwargs: Any) -> str:
        job_id = str(batch.submit_job(jobName=name, jobQueue="q", jobDefinition="step", **kwargs)["jobId"])
        world.names[job_id] = name
        submitted.append(job_id)
        return job_id

    submit(submit_job)
    world.settle()
    counts = window_counts(deployment.counter, world.invocations, len(submitted))  # not the check's DescribeJobs
    counts.update(world.emitted)  # free: what ECS and the stream emitted, delivered to a Lambda or filtered out
    done = batch.describe_jobs(jobs=submitted)["jobs"]
    assert [j["status"] for j in done] == ["SUCCEEDED"] * len(submitted), [j.get("statusReason") for j in done]
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
    calls (a TransactWriteItems counts its items); `dynamodb_rru`/`dynamodb_wru` are the request units they
    consumed by DynamoDB's size rules (`TableModel`), `dynamodb_wru_index` the part of the writes' units that the
    global secondary indexes cost. `ecs_task_events` and `stream_records` are what ECS and the stream emitted,
    whether a filter passed them on or not (free). The check that every job succeeded is not counted."""
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
