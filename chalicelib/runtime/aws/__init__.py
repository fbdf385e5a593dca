"""The AWS runtime, by concern: `http` (HTTP API 1.0 and function URL 2.0 events as Chalice's REST events, and back),
`config` (AwsConfig: every setting, read once), `clients` (boto3 clients made on first use), `adapters` (the SQS wake
queue, the ECS launcher's CE cache), `lambdas` (what app.py's decorators carry), `runtime` (AwsRuntime: every Lambda
entry point, driving the plane it is handed). The composition root (runtime/plane.py `build_aws`) builds that plane,
one per Lambda container; the invocation cache sits next to the store (store/invocation_cache.py). The names app.py,
bench and the tests use are re-exported here."""

from __future__ import annotations

from chalicelib.runtime.aws.adapters import DISPATCH_GROUP
from chalicelib.runtime.aws.clients import Clients
from chalicelib.runtime.aws.config import ENV_RUNTIME, AwsConfig
from chalicelib.runtime.aws.http import (
    api_authorizer,
    api_response,
    function_url_event,
    rest_api_event,
    typed_error,
    unknown_route_response,
    unrouted,
)
from chalicelib.runtime.aws.lambdas import (
    DISPATCH_QUEUE_ARN,
    EC2_PATTERN,
    ECS_TASK_PATTERN,
    S3_OBJECT_CREATED_PATTERN,
    STREAM_ARN,
    SWEEP_RATE,
)
from chalicelib.runtime.aws.runtime import MAX_CYCLES, RESERVE_MS, AwsRuntime, Controls, StreamBatch
from chalicelib.store.invocation_cache import InvocationCache

__all__ = [
    "DISPATCH_GROUP",
    "DISPATCH_QUEUE_ARN",
    "EC2_PATTERN",
    "ECS_TASK_PATTERN",
    "ENV_RUNTIME",
    "MAX_CYCLES",
    "RESERVE_MS",
    "S3_OBJECT_CREATED_PATTERN",
    "STREAM_ARN",
    "SWEEP_RATE",
    "AwsConfig",
    "AwsRuntime",
    "Clients",
    "Controls",
    "InvocationCache",
    "StreamBatch",
    "api_authorizer",
    "api_response",
    "function_url_event",
    "rest_api_event",
    "typed_error",
    "unknown_route_response",
    "unrouted",
]
