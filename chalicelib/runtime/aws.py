"""The AWS runtime: the Services, reactor and entry points behind every Lambda of app.py (docs/adr/0006).

app.py only parses what Lambda hands it and calls one method here; this module ties the entry points to the same
control/ code the local runtime runs, with the AWS adapters: DynamoDB (store), EventBridge (events), ECS (compute).

| Lambda (app.py) | trigger | runs |
|---|---|---|
| api_handler | API Gateway (REST or HTTP API) or the function URL (IAM auth) | the Batch API; Launch/StopTask inline |
| on_job_change | the table's stream (job records in a state that needs a reaction: `stream.filter_patterns`) |
  `on_stream`: publish (`BATCHPLANE_STATE_CHANGE_EVENTS`), dependents, parent, array children, wake if work waits |
| dispatch | SQS FIFO "wake" queue, one message group | `on_dispatch`: scheduling cycles, one at a time |
| on_ecs_task_event | EventBridge: ECS Task State Change, RUNNING and STOPPED | runtime.task_events.on_ecs_task_event |
| on_ec2_event | EventBridge: EC2 Spot warning, instance terminated | runtime.task_events.on_ec2_event |
| sweep | schedule, every minute | control.sweep.sweep, then a wake (repairs lost wakes) |
| reconcile_capacity | schedule, every minute | control.capacity.reconcile |
| on_object_created | EventBridge: S3 Object Created | control.triggers.on_object_created |
| on_schedule | EventBridge Scheduler (direct invoke) | control.triggers.on_schedule |

Settings are read once (`AwsConfig.from_environment`); boto3 clients are made on first use (`Clients`); every entry
point reads each resource record at most once (`InvocationCache`). What invokes a Lambda, and why no more than that:
docs/adr/0009.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import logging
import os
import threading
import time
import uuid
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Concatenate, ParamSpec, TypeVar
from urllib.parse import parse_qs

from botocore.exceptions import BotoCoreError, ClientError

from chalicelib.compute import ecs_events
from chalicelib.compute.capacity_aws import AsgCapacity
from chalicelib.compute.capacity_port import CapacityGroups
from chalicelib.compute.ecs import DEFAULT_LOG_GROUP, EcsLauncher
from chalicelib.compute.ecs_nodes import EcsNodeLauncher
from chalicelib.control.context import Clock, IdFactory, Services, Settings, SystemClock, UuidFactory
from chalicelib.control.dispatch import Dispatcher
from chalicelib.control.react import STATE_CHANGE, Reactor
from chalicelib.domain import lifecycle, nodes
from chalicelib.domain.errors import StoreUnavailable
from chalicelib.domain.job_detail import job_detail
from chalicelib.domain.jobs import RUNNABLE, Job
from chalicelib.domain.model import ComputeEnvironment
from chalicelib.events.eventbridge import Event, EventBridgeSink, EventsUnavailable
from chalicelib.events.port import LocalSchedules, SchedulePort
from chalicelib.events.schedules import EventBridgeSchedules
from chalicelib.runtime import stream
from chalicelib.store.port import Index, Item, ItemStore, Op, Put
from chalicelib.store.repository import CE_PK, JQ_PK, SP_PK, Repository

log = logging.getLogger("batchplane.aws")

ENV_RUNTIME = "BATCHPLANE_RUNTIME"  # "aws" in every Lambda (.chalice/config.json)
DISPATCH_GROUP = "dispatch"  # the one message group of the FIFO wake queue: one dispatcher at a time
MAX_CYCLES = 50  # per dispatch invocation; a busy queue hands over to the next invocation with a fresh wake
RESERVE_MS = 20_000  # stop cycling when less than this is left of the invocation
CE_CACHE_SECONDS = 60.0

# -- what app.py's decorators carry ---------------------------------------------------------------------------------
# The table's stream and the wake queue are created by infra/resources.json, which `chalice package
# --merge-template` merges over Chalice's template: it replaces these placeholders with the real ARNs (GetAtt), and
# adds the cluster to the ECS pattern. tests/infra checks that no placeholder survives packaging.
STREAM_ARN = "arn:aws:dynamodb:us-east-1:000000000000:table/batchplane/stream/set-by-infra-resources-json"
DISPATCH_QUEUE_ARN = "arn:aws:sqs:us-east-1:000000000000:set-by-infra-resources-json.fifo"
SWEEP_RATE = "rate(1 minute)"
ECS_TASK_PATTERN: dict[str, Any] = ecs_events.task_pattern()  # RUNNING and STOPPED only: 2 of a task's 9 events
EC2_PATTERN: dict[str, Any] = {
    "source": ["aws.ec2"],
    "$or": [
        {"detail-type": [ecs_events.SPOT_INTERRUPTION_WARNING]},
        {"detail-type": [ecs_events.INSTANCE_STATE_CHANGE], "detail": {"state": ["terminated"]}},
    ],
}
S3_OBJECT_CREATED_PATTERN: dict[str, Any] = {"source": ["aws.s3"], "detail-type": ["Object Created"]}


def api_authorizer(env: Mapping[str, str] | None = None) -> Any:
    """The authorizer of every API route: IAM (SigV4 for execute-api) wherever API Gateway is configured from the
    app, i.e. when the Chalice CLI packages or deploys it (AWS_CHALICE_CLI_MODE) and in Lambda; None for the local
    server, which has no API Gateway, authenticates nothing and binds 127.0.0.1 (docs/adr/0007).
    tests/infra/test_package.py checks that every method of the packaged API requires SigV4."""
    e = os.environ if env is None else env
    if e.get("AWS_CHALICE_CLI_MODE") or e.get("AWS_LAMBDA_FUNCTION_NAME"):
        from chalice.app import IAMAuthorizer

        return IAMAuthorizer()
    return None


def rest_api_event(event: Mapping[str, Any], routes: Collection[str]) -> Mapping[str, Any]:
    """An API Gateway HTTP API event (payload format 1.0) or a Lambda function URL event (payload format 2.0) in the
    shape Chalice's handler reads, that of a REST API proxy event; any other event unchanged (docs/adr/0012, 0014).

    The 1.0 and REST shapes share their fields (headers, multiValueQueryStringParameters, pathParameters, body,
    isBase64Encoded, requestContext.httpMethod); what differs is the route: Chalice looks `requestContext.resourcePath`
    up among its routes. The event's `resource` is used when it is one of them; otherwise (the HTTP API routes tags
    as `/v1/tags/{proxy+}`, so that an ARN whose `/` arrives decoded still matches) the route is found from the path:
    the most specific route whose literal segments match, its last parameter taking the rest of the path. A 2.0 event
    names no route at all (a function URL has one, `$default`): `function_url_event` finds it from `rawPath`."""
    if _is_payload_v2(event):
        return function_url_event(event, routes)
    if event.get("version") != "1.0" or not isinstance(event.get("requestContext"), Mapping):
        return event
    context: Mapping[str, Any] = event["requestContext"]
    path = str(event.get("path") or context.get("path") or "/")
    declared = str(event.get("resource") or context.get("resourcePath") or "")
    if declared in routes:
        segments = [s for s in path.split("/") if s]
        route, parameters = declared, event.get("pathParameters") or _match(declared, segments) or {}
    else:
        route, parameters = _route(path, routes)
    method = event.get("httpMethod") or context.get("httpMethod")
    return {
        **event,
        "resource": route,
        "pathParameters": parameters or None,
        "multiValueQueryStringParameters": event.get("multiValueQueryStringParameters"),
        "stageVariables": event.get("stageVariables"),
        "requestContext": {**context, "resourcePath": route, "httpMethod": method},
    }


def _is_payload_v2(event: Any) -> bool:
    """A Lambda function URL (or HTTP API 2.0) request: `version` 2.0 and the method in `requestContext.http`."""
    if not isinstance(event, Mapping) or event.get("version") != "2.0":
        return False
    context = event.get("requestContext")
    return isinstance(context, Mapping) and isinstance(context.get("http"), Mapping)


def function_url_event(event: Mapping[str, Any], routes: Collection[str]) -> dict[str, Any]:
    """A payload format 2.0 request as the REST proxy event Chalice reads (docs/adr/0014).

    2.0 carries the path undecoded in `rawPath` (routed like a 1.0 path: a tag ARN's `%2F` stays in its one segment,
    a decoded `/` is taken by the route's last parameter, and the Batch gateway unquotes the ARN either way), the
    method in `requestContext.http.method`, the query in `rawQueryString`, single-valued headers (duplicates
    comma-joined, as HTTP allows) and the request's cookies apart, in `cookies`."""
    context: Mapping[str, Any] = event["requestContext"]
    http: Mapping[str, Any] = context["http"]
    path = str(event.get("rawPath") or http.get("path") or "/")
    route, parameters = _route(path, routes)
    method = str(http.get("method") or "").upper()
    headers = {str(k).lower(): str(v) for k, v in (event.get("headers") or {}).items()}
    cookies = event.get("cookies") or []
    if cookies:
        headers["cookie"] = "; ".join(str(c) for c in cookies)
    query = parse_qs(str(event.get("rawQueryString") or ""), keep_blank_values=True)
    return {
        "resource": route,
        "path": path,
        "httpMethod": method,
        "headers": headers,
        "multiValueHeaders": {k: [v] for k, v in headers.items()},
        "queryStringParameters": {k: v[-1] for k, v in query.items()} or None,
        "multiValueQueryStringParameters": query or None,
        "pathParameters": parameters or None,
        "stageVariables": None,
        "requestContext": {**context, "resourcePath": route, "httpMethod": method, "path": path},
        "body": event.get("body"),
        "isBase64Encoded": bool(event.get("isBase64Encoded", False)),
    }


def unrouted(event: Any, routes: Mapping[str, Mapping[str, Any]]) -> bool:
    """Is this a REST proxy event whose route (`requestContext.resourcePath`) and method no route of the app takes?
    False for any other event. Reads `routes` without adding to it."""
    context = event.get("requestContext") if isinstance(event, Mapping) else None
    if not isinstance(context, Mapping) or not isinstance(context.get("resourcePath"), str):
        return False
    methods = routes.get(context["resourcePath"])
    return not methods or context.get("httpMethod") not in methods


def unknown_route_response(event: Mapping[str, Any]) -> dict[str, Any]:
    """The REST proxy response to a request no route of the app takes (path, or method on it): 404, as API Gateway
    answers a request it has no route for, with an error type botocore reads."""
    context: Mapping[str, Any] = event.get("requestContext") or {}
    path = event.get("path") or context.get("path") or context.get("resourcePath")
    message = f"no such operation: {context.get('httpMethod') or event.get('httpMethod')} {path}"
    code = "UnknownOperationException"
    request_id = str(context.get("requestId") or uuid.uuid4())
    return {
        "statusCode": 404,
        "headers": {"Content-Type": "application/json", "x-amzn-ErrorType": code, "x-amzn-RequestId": request_id},
        "multiValueHeaders": {},
        "body": json.dumps({"__type": code, "message": message}),
    }


def typed_error(event: Mapping[str, Any], response: Mapping[str, Any]) -> Mapping[str, Any]:
    """An error answer Chalice made itself (415 for a content type no route takes, its 500 for an exception outside
    the gateway), in the AWS form every other answer has: `{"__type", "message"}`, x-amzn-ErrorType and
    x-amzn-RequestId, typed for the protocol the path speaks (docs/adr/0018-http-edge.md). Other answers unchanged."""
    headers = {str(k).lower() for k in (response.get("headers") or {})}
    if int(response.get("statusCode") or 200) < 400 or "x-amzn-errortype" in headers:
        return response
    from chalicelib.api.errors import edge_error_type

    context: Mapping[str, Any] = event.get("requestContext") or {}
    status = int(response["statusCode"])
    code = edge_error_type(status, (event.get("path") or context.get("path") or context.get("resourcePath")) == "/")
    try:
        parsed = json.loads(response.get("body") or "{}")
    except ValueError:
        parsed = {}
    message = parsed.get("Message") or parsed.get("message") if isinstance(parsed, dict) else None
    return {
        **response,
        "headers": {
            "Content-Type": "application/json",
            "x-amzn-ErrorType": code,
            "x-amzn-RequestId": str(context.get("requestId") or uuid.uuid4()),
        },
        "multiValueHeaders": {},
        "body": json.dumps({"__type": code, "message": str(message or "The request was refused")}),
        "isBase64Encoded": False,
    }


def api_response(event: Mapping[str, Any], response: Mapping[str, Any]) -> dict[str, Any]:
    """Chalice's REST proxy response in the shape the request's front end reads: unchanged for API Gateway's REST
    and 1.0 events; for a 2.0 event, `statusCode`, single-valued `headers` (a multi-valued header comma-joined, as
    HTTP allows), `body`, `isBase64Encoded` and `cookies` (Set-Cookie values, which a comma cannot join)."""
    if not _is_payload_v2(event):
        return dict(response)
    headers: dict[str, str] = {}
    cookies: list[str] = []
    single = [(str(k), [v]) for k, v in (response.get("headers") or {}).items()]
    multi = [(str(k), list(v)) for k, v in (response.get("multiValueHeaders") or {}).items()]
    for name, values in single + multi:
        if name.lower() == "set-cookie":
            cookies.extend(str(v) for v in values)
            continue
        joined = ",".join(str(v) for v in values)
        headers[name] = f"{headers[name]},{joined}" if name in headers else joined
    out: dict[str, Any] = {
        "statusCode": response["statusCode"],
        "headers": headers,
        "body": response.get("body"),
        "isBase64Encoded": bool(response.get("isBase64Encoded", False)),
    }
    if cookies:
        out["cookies"] = cookies
    return out


def _route(path: str, routes: Collection[str]) -> tuple[str, dict[str, str]]:
    segments = [s for s in path.split("/") if s]
    best: tuple[int, str, dict[str, str]] | None = None
    for route in routes:
        if isinstance(routes, Mapping) and not routes[route]:
            continue  # an empty entry of Chalice's route table (a defaultdict): not a route of the app
        parameters = _match(route, segments)
        literal = sum(1 for part in route.split("/") if part and not part.startswith("{"))
        if parameters is not None and (best is None or literal > best[0]):
            best = (literal, route, parameters)
    if best is None:
        return path, {}  # no route: Chalice answers it as an unknown request
    return best[1], best[2]


def _match(route: str, segments: list[str]) -> dict[str, str] | None:
    """The route's parameters in a path (its last parameter takes the rest of the path), None if it does not match."""
    template = [s for s in route.split("/") if s]
    greedy = bool(template) and template[-1].startswith("{")
    if len(segments) < len(template) or (len(segments) > len(template) and not greedy):
        return None
    parameters: dict[str, str] = {}
    for i, part in enumerate(template):
        value = "/".join(segments[i:]) if i == len(template) - 1 else segments[i]
        if part.startswith("{") and part.endswith("}"):
            parameters[part[1:-1]] = value
        elif part != value:
            return None
    return parameters


def _flag(value: str | None, default: bool) -> bool:
    return default if value is None else value.strip().lower() in ("1", "true", "yes", "on")


@dataclass(frozen=True)
class AwsConfig:
    table: str
    region: str
    account: str
    cluster: str
    dispatch_queue_url: str
    event_bus: str = "default"
    event_source: str = "batchplane"
    log_group: str | None = DEFAULT_LOG_GROUP
    execution_role_arn: str | None = None
    dynamodb_endpoint: str | None = None  # tests, DynamoDB Local
    # EventBridge Scheduler, for schedule triggers: the on_schedule Lambda, the role Scheduler invokes it with, and
    # the stack's schedule group. Without a target, schedule triggers cannot tick on AWS.
    schedule_target_arn: str | None = None
    scheduler_role_arn: str | None = None
    schedule_group: str = "batchplane"
    # RunTask's clientToken makes a launch idempotent for 24 h; the ListTasks precheck (2 calls per launch) also
    # covers emulators that ignore the token. Off on AWS.
    ecs_precheck: bool = False
    # Which "Batch Job State Change" events go to EventBridge: ALL, TERMINAL (SUCCEEDED/FAILED) or NONE (ADR 0010)
    state_change_events: str = stream.DEFAULT_STATE_CHANGE_EVENTS
    # A deleted queue / compute environment is removed this long after its DELETING marker (docs/adr/0021): more
    # than the API Lambda's timeout (30 s) plus the job index's lag, so no SubmitJob still in flight can land after.
    deletion_grace_seconds: float = Settings.deletion_grace_ms / 1000

    def __post_init__(self) -> None:
        if self.state_change_events not in stream.STATE_CHANGE_EVENTS:
            raise ValueError(
                f"BATCHPLANE_STATE_CHANGE_EVENTS must be one of {', '.join(stream.STATE_CHANGE_EVENTS)}, "
                f"not {self.state_change_events!r}"
            )

    @classmethod
    def from_environment(cls, env: Mapping[str, str] | None = None) -> AwsConfig:
        e = os.environ if env is None else env
        return cls(
            table=e["BATCHPLANE_TABLE"],
            region=e.get("AWS_REGION") or e.get("AWS_DEFAULT_REGION") or "us-east-1",
            account=e.get("BATCHPLANE_ACCOUNT_ID", "123456789012"),
            cluster=e.get("BATCHPLANE_CLUSTER", "batchplane"),
            dispatch_queue_url=e.get("BATCHPLANE_DISPATCH_QUEUE_URL", ""),
            event_bus=e.get("BATCHPLANE_EVENT_BUS") or "default",
            event_source=e.get("BATCHPLANE_EVENT_SOURCE") or "batchplane",
            log_group=e.get("BATCHPLANE_LOG_GROUP") or DEFAULT_LOG_GROUP,
            execution_role_arn=e.get("BATCHPLANE_EXECUTION_ROLE_ARN") or None,
            dynamodb_endpoint=e.get("BATCHPLANE_DYNAMODB_ENDPOINT") or None,
            schedule_target_arn=e.get("BATCHPLANE_SCHEDULE_TARGET_ARN") or None,
            scheduler_role_arn=e.get("BATCHPLANE_SCHEDULER_ROLE_ARN") or None,
            schedule_group=e.get("BATCHPLANE_SCHEDULE_GROUP") or "batchplane",
            ecs_precheck=_flag(e.get("BATCHPLANE_ECS_PRECHECK"), False),
            state_change_events=(e.get("BATCHPLANE_STATE_CHANGE_EVENTS") or stream.DEFAULT_STATE_CHANGE_EVENTS)
            .strip()
            .upper(),
            deletion_grace_seconds=float(
                e.get("BATCHPLANE_DELETION_GRACE_SECONDS") or Settings.deletion_grace_ms / 1000
            ),
        )


class Clients:
    """boto3 clients of one session, each made on first use and kept for the life of the Lambda container."""

    def __init__(self, region: str, session_factory: Callable[[], Any] | None = None) -> None:
        self.region = region
        self._session_factory = session_factory
        self._session: Any = None
        self._clients: dict[str, Any] = {}
        self._lock = threading.Lock()

    def client(self, service: str) -> Any:
        with self._lock:
            if service not in self._clients:
                if self._session is None:
                    self._session = self._session_factory() if self._session_factory else _default_session()
                from botocore.config import Config

                config = Config(retries={"mode": "standard", "max_attempts": 5}, connect_timeout=5, read_timeout=30)
                self._clients[service] = self._session.client(service, region_name=self.region, config=config)
            return self._clients[service]

    def factory(self, service: str) -> Callable[[], Any]:
        return lambda: self.client(service)

    def lazy(self, service: str) -> Any:
        """A stand-in that makes the client on its first call, for adapters that take a client, not a factory."""
        return _LazyClient(self.factory(service))


class _LazyClient:
    def __init__(self, factory: Callable[[], Any]) -> None:
        self._factory = factory

    def __getattr__(self, name: str) -> Any:
        return getattr(self._factory(), name)


def _default_session() -> Any:
    import boto3

    return boto3.session.Session()


# -- one read of each resource per invocation ---------------------------------------------------------------------


class InvocationCache:
    """The runtime's item store, with the resource records (compute environments, job queues, scheduling policies)
    read at most once per Lambda invocation: every entry point runs in a `scope`, and within it a `get` or main-index
    `query` of those partitions is answered from what the invocation already read. A dispatch invocation runs several
    cycles, and each lists the queues and compute environments; a stream batch checks the queues once per batch.

    An invocation sees the resources as they were when it first read them, as if any later update had happened just
    after it: resource updates wake the dispatcher, so the next invocation sees them. A write through this store to a
    cached partition drops what was cached of it. Outside a scope (and in other threads) nothing is cached."""

    PARTITIONS = frozenset({CE_PK, JQ_PK, SP_PK})

    def __init__(self, store: ItemStore) -> None:
        self.store = store
        self._local = threading.local()

    @contextlib.contextmanager
    def scope(self) -> Iterator[None]:
        outer: dict[tuple[Any, ...], Any] | None = getattr(self._local, "memo", None)
        if outer is None:
            self._local.memo = {}
        try:
            yield
        finally:
            if outer is None:
                self._local.memo = None

    def _memo(self, pk: str) -> dict[tuple[Any, ...], Any] | None:
        memo: dict[tuple[Any, ...], Any] | None = getattr(self._local, "memo", None)
        return memo if memo is not None and pk in self.PARTITIONS else None

    def _forget(self, pks: Sequence[str]) -> None:
        memo: dict[tuple[Any, ...], Any] | None = getattr(self._local, "memo", None)
        if memo is not None and self.PARTITIONS.intersection(pks):
            for key in [k for k in memo if k[1] in pks]:
                del memo[key]

    def get(self, pk: str, sk: str) -> Item | None:
        memo = self._memo(pk)
        if memo is None:
            return self.store.get(pk, sk)
        key = ("get", pk, sk)
        if key not in memo:
            memo[key] = self.store.get(pk, sk)
        found: Item | None = memo[key]
        return found

    def batch_get(self, keys: Sequence[tuple[str, str]]) -> list[Item]:
        return self.store.batch_get(keys)

    def put(self, item: Item, expect: int | None) -> Item:
        self._forget([item.pk])
        return self.store.put(item, expect)

    def delete(self, pk: str, sk: str, expect: int) -> None:
        self._forget([pk])
        self.store.delete(pk, sk, expect)

    def transact(self, ops: Sequence[Op]) -> None:
        self._forget([op.item.pk if isinstance(op, Put) else op.pk for op in ops])
        self.store.transact(ops)

    def query(
        self,
        index: Index,
        partition: str,
        *,
        after: str | None = None,
        limit: int = 100,
        descending: bool = False,
        prefix: str | None = None,
    ) -> list[Item]:
        memo = self._memo(partition) if index == "main" else None
        if memo is None:
            return self.store.query(index, partition, after=after, limit=limit, descending=descending, prefix=prefix)
        key = ("query", partition, after, limit, descending, prefix)
        if key not in memo:
            memo[key] = self.store.query(
                index, partition, after=after, limit=limit, descending=descending, prefix=prefix
            )
        return list(memo[key])

    def count(self, index: Index, partition: str) -> int:
        return self.store.count(index, partition)

    def close(self) -> None:
        self.store.close()


# -- the control functions the entry points call ------------------------------------------------------------------

EnvelopeHandler = Callable[[Services, Reactor, Mapping[str, Any]], object]


def _late(module: str, name: str) -> Callable[..., Any]:
    """A control function imported when first called (cold starts load only what their Lambda uses)."""

    def call(*args: Any) -> Any:
        return getattr(importlib.import_module(module), name)(*args)

    call.__name__ = name
    return call


@dataclass(frozen=True)
class Controls:
    """What each entry point calls in control/. Injected, so tests can replace any of them."""

    on_ecs_task_event: EnvelopeHandler = field(
        default_factory=lambda: _late("chalicelib.runtime.task_events", "on_ecs_task_event")
    )
    on_ec2_event: EnvelopeHandler = field(
        default_factory=lambda: _late("chalicelib.runtime.task_events", "on_ec2_event")
    )
    sweep: Callable[[Services, Reactor, int, Any], object] = field(  # the last: a control.sweep.SweepPolicy
        default_factory=lambda: _late("chalicelib.control.sweep", "sweep")
    )
    reconcile: Callable[[Services, CapacityGroups], object] = field(
        default_factory=lambda: _late("chalicelib.control.capacity", "reconcile")
    )
    on_object_created: Callable[[Services, Reactor, str, str, str], list[str]] = field(
        default_factory=lambda: _late("chalicelib.control.triggers", "on_object_created")
    )
    on_schedule: Callable[[Services, Reactor, str], str | None] = field(
        default_factory=lambda: _late("chalicelib.control.triggers", "on_schedule")
    )


# -- the runtime ----------------------------------------------------------------------------------------------------

_P = ParamSpec("_P")
_R = TypeVar("_R")


def _invocation(entry: Callable[Concatenate[AwsRuntime, _P], _R]) -> Callable[Concatenate[AwsRuntime, _P], _R]:
    """An entry point: it runs in a scope of the invocation cache (`InvocationCache`)."""

    def run(self: AwsRuntime, /, *args: _P.args, **kwargs: _P.kwargs) -> _R:
        with self.items.scope():
            return entry(self, *args, **kwargs)

    run.__name__, run.__doc__ = entry.__name__, entry.__doc__
    return run


class AwsRuntime:
    def __init__(
        self,
        config: AwsConfig,
        clients: Clients | None = None,
        *,
        store: ItemStore | None = None,
        controls: Controls | None = None,
        clock: Clock | None = None,
        ids: IdFactory | None = None,
    ) -> None:
        self.config = config
        self.clients = clients or Clients(config.region)
        self.controls = controls or Controls()
        if store is None:
            from chalicelib.store.dynamo import DynamoItemStore

            store = DynamoItemStore(config.table, region=config.region, host=config.dynamodb_endpoint)
        self.store = store
        self.items = InvocationCache(store)
        self.sink = EventBridgeSink(self.clients.factory("events"), bus=config.event_bus, source=config.event_source)
        self._ces: dict[str, tuple[float, ComputeEnvironment | None]] = {}
        ecs_launcher = EcsLauncher(
            self.clients.factory("ecs"),
            config.cluster,
            self._compute_environment,
            on_event=self._task_event,  # a task ECS refused to start: its attempt's TaskStopped
            precheck=config.ecs_precheck,
            log_group=config.log_group,
            execution_role_arn=config.execution_role_arn,
        )
        # multi-node jobs: one task per node (compute/ecs_nodes.py, docs/adr/0027)
        self.launcher = EcsNodeLauncher(ecs_launcher, self.clients.factory("ec2"))
        self.services = Services(
            repo=Repository(self.items),
            settings=Settings(
                account=config.account,
                default_region=config.region,
                ecs_cluster=config.cluster,
                deletion_grace_ms=int(config.deletion_grace_seconds * 1000),
            ),
            clock=clock or SystemClock(),
            ids=ids or UuidFactory(),
            wake=self.wake_dispatcher,
            events=self.sink,
            launcher=self.launcher,
            stream_effects=stream.STREAM_EFFECTS,
            schedules=self._schedules(),
            release_capacity=self._release_capacity,
        )
        self.reactor = Reactor(self.services, self.launcher, self.services.defer)
        self.capacity = AsgCapacity(self.clients.factory("autoscaling"))  # the CapacityGroups of reconcile_capacity

    def _schedules(self) -> SchedulePort:
        c = self.config
        if not c.schedule_target_arn or not c.scheduler_role_arn:
            return LocalSchedules()  # nothing can invoke on_schedule: schedule triggers are stored, never fired
        return EventBridgeSchedules(
            c.schedule_target_arn,
            c.scheduler_role_arn,
            group=c.schedule_group,
            region=c.region,
            client=self.clients.lazy("scheduler"),
        )

    def _release_capacity(self, ce: ComputeEnvironment) -> None:
        from chalicelib.compute.capacity_aws import AsgCapacity  # built lazily, as in control/capacity.py

        AsgCapacity(self.clients.factory("autoscaling")).release(ce)

    def reindex_legacy(self) -> int:
        """Move the STARTING and RUNNING jobs an earlier version indexed per status into the shared ACTIVE partition
        (docs/adr/0013). Run once per Lambda container before it serves anything (`runtime()`): every reader of the
        active jobs (dispatch, capacity reconcile, array summaries) would otherwise not see them until the next
        sweep, and the reconcile could scale an EC2 group in under them. The sweep still moves them every minute,
        for jobs a container of the previous version wrote during a deployment. Returns the jobs moved."""
        return sum(self.services.jobs.move_legacy_active(q.name) for q in self.services.repo.list_jqs())

    def _task_event(self, job_id: str, event: lifecycle.TaskStarted | lifecycle.TaskStopped) -> None:
        # (a multi-node job's node task: to its job, runtime/task_events.py)
        _late("chalicelib.runtime.task_events", "apply_task_event")(self.services, self.reactor, job_id, event)

    def dispatcher(self) -> Dispatcher:
        return Dispatcher(self.services, self.reactor, lambda: uuid.uuid4().hex)

    def _compute_environment(self, name: str) -> ComputeEnvironment | None:
        """The launcher's CE lookup, cached briefly: a dispatch cycle launches many jobs on the same few CEs."""
        now = time.monotonic()
        hit = self._ces.get(name)
        if hit is not None and now - hit[0] < CE_CACHE_SECONDS:
            return hit[1]
        ce = self.services.repo.get_ce(name)
        self._ces[name] = (now, ce)
        return ce

    # -- waking the dispatcher --------------------------------------------------------------------------------

    def send_wake(self, dedup: str | None = None) -> None:
        """Ask for a dispatch cycle. Raises StoreUnavailable when SQS does not take the message."""
        try:
            self.clients.client("sqs").send_message(
                QueueUrl=self.config.dispatch_queue_url,
                MessageBody=json.dumps({"wake": True}),
                MessageGroupId=DISPATCH_GROUP,
                MessageDeduplicationId=dedup or uuid.uuid4().hex,
            )
        except (ClientError, BotoCoreError) as e:
            raise StoreUnavailable(f"SQS SendMessage (dispatch wake) failed: {e}") from e

    def wake_dispatcher(self) -> None:
        """Services.wake: best effort (the write that asked for it is committed; the sweep wakes every minute)."""
        try:
            self.send_wake()
        except StoreUnavailable:
            log.exception("waking the dispatcher failed; the sweep will")

    # -- entry points -------------------------------------------------------------------------------------------

    @_invocation
    def on_stream(self, event: Mapping[str, Any]) -> dict[str, list[dict[str, str]]]:
        """One batch of the table's stream. Returns Lambda's partial-batch response: the first record whose effects
        did not all happen (it and every later record of the shard are delivered again)."""
        records = list(event.get("Records") or [])
        changes = [stream.decode(r) for r in records]
        published: list[tuple[int, Event]] = []
        wakes: list[tuple[int, bool]] = []  # (record, whether it made a job RUNNABLE)
        failed: int | None = None
        for i, change in enumerate(changes):
            if change is None or change.new is None:
                continue
            derived = stream.effects(change.old, change.new)
            try:
                for effect in derived:
                    if not isinstance(effect, lifecycle.Publish | lifecycle.WakeDispatcher):
                        self._carry_out(change.new, effect)
            except Exception:
                log.exception("effects of %s (record %s) failed", change.new.job_id, change.sequence)
                failed = i
                break
            if any(isinstance(e, lifecycle.Publish) for e in derived) and stream.publishes(
                self.config.state_change_events, change.new
            ):
                published.append((i, Event(STATE_CHANGE, [change.new.arn], job_detail(change.new))))
                published += [(i, Event(STATE_CHANGE, [n.arn], job_detail(n))) for n in nodes.node_views(change.new)]
            if any(isinstance(e, lifecycle.WakeDispatcher) for e in derived):
                wakes.append((i, change.new.status == RUNNABLE))
        try:
            self.sink.publish_all([e for _, e in published])
        except EventsUnavailable as e:
            log.exception("publishing job state changes failed")
            failed = min(failed, published[e.index][0]) if failed is not None else published[e.index][0]
        wakes = [w for w in wakes if failed is None or w[0] < failed]
        # A job that became RUNNABLE needs a dispatch cycle. One that left RUNNABLE/STARTING/RUNNING freed capacity
        # or a queue's head, which only matters to jobs waiting for it: none waiting, no wake (docs/adr/0009).
        if wakes and (any(new_work for _, new_work in wakes) or self._work_waiting()):
            wake_from = wakes[0][0]
            try:
                last = next(c for c in reversed(changes[: failed if failed is not None else len(changes)]) if c)
                self.send_wake(dedup=last.sequence or None)
            except StoreUnavailable:
                log.exception("waking the dispatcher failed")
                failed = wake_from if failed is None else min(failed, wake_from)
        if failed is None:
            return {"batchItemFailures": []}
        sequence = str((records[failed].get("dynamodb") or {}).get("SequenceNumber", ""))
        return {"batchItemFailures": [{"itemIdentifier": sequence}]}

    def _work_waiting(self) -> bool:
        """Is a job RUNNABLE in a queue not being deleted (top-level or array child; a DISABLED queue still runs the
        jobs it holds)? Asked after a job freed capacity, once per stream batch: a job that becomes RUNNABLE later
        wakes the dispatcher itself. Any doubt (an error) says yes: a wake too many costs a cycle, a wake too few
        costs up to the sweep's minute."""
        try:
            for queue in self.services.repo.list_jqs():
                if queue.deleting:
                    continue
                for children in (False, True):
                    if self.services.jobs.in_queue(queue.name, RUNNABLE, children=children, limit=1):
                        return True
        except Exception:
            log.exception("checking for RUNNABLE jobs failed; waking the dispatcher")
            return True
        return False

    def _carry_out(self, job: Job, effect: lifecycle.Effect) -> None:
        match effect:
            case lifecycle.NotifyDependents(succeeded=ok):
                self.reactor.notify_dependents(job.job_id, ok)
            case lifecycle.NotifyParent(succeeded=ok):
                assert job.array is not None and job.array.parent_id is not None and job.array.index is not None
                self.reactor.apply(job.array.parent_id, lifecycle.ChildFinished(job.array.index, ok))
            case lifecycle.CreateChildren():
                self.reactor.create_children(job.job_id)
            case lifecycle.CancelChildren(reason=why, terminate=term):
                self.reactor.cancel_children(job.job_id, why, term)
            case _:  # pragma: no cover - Launch/StopTask never come from the stream
                raise AssertionError(f"{type(effect).__name__} is not a stream effect")

    @_invocation
    def on_dispatch(self, remaining_ms: Callable[[], int] | None = None) -> int:
        """Scheduling cycles until one places nothing or leaves nothing placeable (`Dispatcher.cycles`: a cycle
        whose reads were not full saw all the work there was, so no second cycle just to find that out). One
        invocation at a time (FIFO, one message group), so the capacity one cycle sees is not being spent by
        another. Returns the number of jobs placed."""
        ran, stopped = 0, False

        def stop() -> bool:  # asked after each cycle that placed jobs and may have left more to place
            nonlocal ran, stopped
            ran += 1
            stopped = ran >= MAX_CYCLES or (remaining_ms is not None and remaining_ms() < RESERVE_MS)
            return stopped

        try:
            placed = self.dispatcher().cycles(stop)
        except Exception:  # failing would stall the FIFO group for a visibility timeout; the sweep wakes again
            log.exception("dispatch cycle failed")
            return 0
        if stopped:
            self.wake_dispatcher()  # more may be placeable: hand over to the next invocation
        return placed

    @_invocation
    def on_ecs_task_event(self, envelope: Mapping[str, Any]) -> None:
        self.controls.on_ecs_task_event(self.services, self.reactor, envelope)

    @_invocation
    def on_ec2_event(self, envelope: Mapping[str, Any]) -> None:
        self.controls.on_ec2_event(self.services, self.reactor, envelope)

    @_invocation
    def on_sweep(self, remaining_ms: Callable[[], int] | None = None) -> None:
        from chalicelib.control.sweep import SweepPolicy

        try:
            policy = SweepPolicy(remaining_ms=remaining_ms)  # its work stops short of the Lambda's timeout
            self.controls.sweep(self.services, self.reactor, self.services.clock.now_ms(), policy)
        finally:
            self.wake_dispatcher()  # repairs a wake lost anywhere in the last minute

    @_invocation
    def on_capacity(self) -> None:
        self.controls.reconcile(self.services, self.capacity)

    @_invocation
    def on_object_created(self, envelope: Mapping[str, Any]) -> list[str]:
        """S3 "Object Created" via EventBridge: detail.bucket.name and detail.object.key (not URL-encoded). The
        object's sequencer (new for every write of a key; the event id when absent) makes a redelivery submit
        nothing."""
        detail = envelope.get("detail") or {}
        bucket = str((detail.get("bucket") or {}).get("name") or "")
        obj = detail.get("object") or {}
        key = str(obj.get("key") or "")
        if not bucket or not key:
            log.warning("an S3 event without bucket or key: %s", envelope.get("id"))
            return []
        version = str(obj.get("sequencer") or envelope.get("id") or "")
        return self.controls.on_object_created(self.services, self.reactor, bucket, key, version)

    @_invocation
    def on_schedule(self, event: Mapping[str, Any]) -> str | None:
        """EventBridge Scheduler's target input: {"trigger": "<trigger name>"}."""
        name = event.get("trigger")
        if not isinstance(name, str) or not name:
            log.warning("a scheduler invocation without a trigger name: %s", sorted(event))
            return None
        return self.controls.on_schedule(self.services, self.reactor, name)


# -- the process-wide runtime (one per Lambda container) ------------------------------------------------------------

_lock = threading.Lock()
_runtime: AwsRuntime | None = None
_enabled: bool | None = None


def configure(rt: AwsRuntime | None) -> None:
    """Install the runtime the handlers use (tests); None forgets it."""
    global _runtime, _enabled
    with _lock:
        _runtime, _enabled = rt, None


def active() -> bool:
    """Whether this process is the AWS runtime: a runtime was configured, or BATCHPLANE_RUNTIME=aws (read once)."""
    global _enabled
    if _runtime is not None:
        return True
    if _enabled is None:
        _enabled = os.environ.get(ENV_RUNTIME, "").strip().lower() == "aws"
    return _enabled


def runtime() -> AwsRuntime:
    global _runtime
    if _runtime is None:
        with _lock:
            if _runtime is None:
                rt = AwsRuntime(AwsConfig.from_environment())
                try:
                    rt.reindex_legacy()
                except Exception:  # the sweep moves them within a minute; serving must not wait for it
                    log.exception("re-indexing active jobs of an earlier version failed")
                _runtime = rt
    return _runtime
