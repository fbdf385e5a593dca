"""The Chalice app: routes and event handlers only. Parse what arrives, hand it to chalicelib, render the answer.

The same `app` serves AWS (API Gateway and event sources -> Lambda, wired in chalicelib/runtime/aws/) and
`batchplane up` (chalicelib/runtime/server.py, HTTP routes only); which plane it serves is decided and built by the
composition root, chalicelib/runtime/plane.py. On AWS every route requires IAM (SigV4 for
`execute-api` through the REST API or the HTTP API, for `lambda` through the function URL; chalicelib/auth_plugin.py
lets stock Batch clients sign that way). Locally there is no API Gateway: the server binds 127.0.0.1, or checks
SigV4 signatures itself with `batchplane up --auth` (docs/adr/0001, 0007, 0019).
"""

from __future__ import annotations

from typing import Any

from chalice.app import Chalice, CloudWatchEvent, DynamoDBEvent, Response, SQSEvent

from chalicelib.api import gateway, logs_api
from chalicelib.control.context import Services
from chalicelib.runtime import aws, plane


class BatchplaneApp(Chalice):
    """Chalice, also serving the HTTP API (payload format 1.0, ADR 0012) and the function URL (payload format 2.0,
    ADR 0014) that the stack puts beside the REST API."""

    def __call__(self, event: Any, context: Any) -> dict[str, Any]:
        rest = aws.rest_api_event(event, self.routes)
        if aws.unrouted(rest, self.routes):
            # Answered here: Chalice would look the path up in its route table, a defaultdict, and so add an entry
            # for every distinct unknown path a warm Lambda is sent (a function URL passes every path and method on).
            return aws.api_response(event, aws.unknown_route_response(rest))
        return aws.api_response(event, aws.typed_error(rest, super().__call__(rest, context)))

    def serve(self, services: Services | None) -> None:
        """The local runtime hands over the plane it built (`batchplane up`); None when it stops."""
        plane.serve_local(services)


app = BatchplaneApp(app_name="batchplane")
iam = aws.api_authorizer()  # IAM on AWS (packaging, Lambda); none for the local server

# botocore and the AWS CLI send application/json; tolerate the other bodies clients send by accident.
CONTENT_TYPES = [
    "application/json",
    "application/x-amz-json-1.1",
    "application/x-www-form-urlencoded",
    "text/plain",
]


def _services() -> Services:
    return plane.services()


def _serve(path: str) -> Response:
    request = app.current_request
    assert request is not None  # Chalice sets it for every routed call
    params = request.query_params
    query = {k: params.getlist(k) for k in params} if params else {}
    status, headers, body = gateway.handle(
        _services(), request.method, path, dict(request.headers), request.raw_body, query
    )
    return Response(body=body, status_code=status, headers=dict(headers))


# -- the Batch API -----------------------------------------------------------------------------------------------


@app.route("/v1/{operation}", methods=["POST"], content_types=CONTENT_TYPES, authorizer=iam)
def batch_operation(operation: str) -> Response:
    return _serve(f"/v1/{operation}")


@app.route("/v1/tags/{resource_arn}", methods=["GET", "POST", "DELETE"], content_types=CONTENT_TYPES, authorizer=iam)
def tags(resource_arn: str) -> Response:
    return _serve(f"{gateway.TAGS_PREFIX}{resource_arn}")


@app.route("/", methods=["POST"], content_types=CONTENT_TYPES, authorizer=iam)
def logs_operation() -> Response:
    """CloudWatch Logs (JSON 1.1, X-Amz-Target) for the local runtime's job logs."""
    request = app.current_request
    assert request is not None
    status, headers, body = logs_api.handle_logs(_services(), dict(request.headers), request.raw_body)
    return Response(body=body, status_code=status, headers=dict(headers))


# -- AWS: job changes, dispatch, task and instance events, sweeps, triggers -----------------------------------------


@app.on_dynamodb_record(stream_arn=aws.STREAM_ARN, batch_size=100, starting_position="TRIM_HORIZON")
def on_job_change(event: DynamoDBEvent) -> dict[str, Any]:
    """The effect log: every committed job change (docs/adr/0006). Partial-batch response on failure."""
    return plane.aws_runtime().on_stream(event.to_dict())


@app.on_sqs_message(queue_arn=aws.DISPATCH_QUEUE_ARN, batch_size=10)
def dispatch(event: SQSEvent) -> None:
    """Wake-ups for the dispatcher (FIFO, one message group: one cycle at a time); the batch is one wake."""
    context: Any = event.context
    plane.aws_runtime().on_dispatch(getattr(context, "get_remaining_time_in_millis", None))


@app.on_cw_event(aws.ECS_TASK_PATTERN)
def on_ecs_task_event(event: CloudWatchEvent) -> None:
    plane.aws_runtime().on_ecs_task_event(event.to_dict())


@app.on_cw_event(aws.EC2_PATTERN)
def on_ec2_event(event: CloudWatchEvent) -> None:
    plane.aws_runtime().on_ec2_event(event.to_dict())


@app.schedule(aws.SWEEP_RATE)
def sweep(event: CloudWatchEvent) -> None:
    context: Any = event.context
    plane.aws_runtime().on_sweep(getattr(context, "get_remaining_time_in_millis", None))


@app.schedule(aws.SWEEP_RATE)
def reconcile_capacity(event: CloudWatchEvent) -> None:
    plane.aws_runtime().on_capacity()


@app.on_cw_event(aws.S3_OBJECT_CREATED_PATTERN)
def on_object_created(event: CloudWatchEvent) -> list[str]:
    return plane.aws_runtime().on_object_created(event.to_dict())


@app.lambda_function()
def on_schedule(event: dict[str, Any], context: Any) -> str | None:
    """EventBridge Scheduler's target: input {"trigger": "<name>"}."""
    return plane.aws_runtime().on_schedule(event)


def batchplane() -> int:
    """The `batchplane` command (pyproject [project.scripts]; also `python -m app`): the CLI, handed this app for
    `batchplane up` to serve."""
    from chalicelib.cli import main

    return main(app=app)


if __name__ == "__main__":
    raise SystemExit(batchplane())
