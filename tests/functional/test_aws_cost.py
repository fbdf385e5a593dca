"""AWS calls per job on moto (docs/performance.md, "AWS cost per job"): the deterministic counts behind the bench's
`aws-cost` workload. Targets (issue "Benchmarks"): a plain job costs at most 4 DynamoDB writes, 1 RunTask and 3
handler invocations. The other counts are pinned at their measured values so that a change shows: if one moves,
check that it is intended, then update it here and in docs/performance.md."""

from __future__ import annotations

from typing import Any

import pytest

from tests.functional.serverless_harness import measure_aws_cost


@pytest.fixture(scope="module")
def costs() -> dict[str, dict[str, Any]]:
    return measure_aws_cost(array_size=10, loaded=20)


def test_a_plain_job_costs_at_most_four_writes_and_one_run_task(costs: dict[str, dict[str, Any]]) -> None:
    for kind in ("plain", "plain_loaded"):
        per_job = costs[kind]["per_job"]
        assert per_job["dynamodb_writes"] <= 4, (kind, per_job)
        assert per_job["ecs_RunTask"] == 1, (kind, per_job)
        assert per_job["api_gateway_requests"] == 1, (kind, per_job)


@pytest.mark.xfail(
    strict=True,
    reason="target missed: 1 API + 2 ECS task-event invocations already make 3; the stream and dispatch add 4 alone "
    "(0.2 when 20 jobs share batches). docs/performance.md, 'AWS cost per job'",
)
def test_a_plain_job_costs_at_most_three_handler_invocations(costs: dict[str, dict[str, Any]]) -> None:
    assert costs["plain"]["per_job"]["handler_invocations"] <= 3


PINNED = {
    "plain": {
        "api_gateway_requests": 1.0,
        "dynamodb_reads": 31.0,
        "dynamodb_writes": 4.0,
        "dynamodb_wru": 5.0,
        "ecs_RunTask": 1.0,
        "eventbridge_putevents_entries": 4.0,
        "handler_invocations": 7.0,
        "lambda_dispatch": 2.0,
        "lambda_on_ecs_task_event": 2.0,
        "lambda_on_job_change": 2.0,
        "sqs_messages": 2.0,
    },
    "plain_loaded": {
        "dynamodb_reads": 7.25,
        "dynamodb_writes": 4.0,
        "eventbridge_putevents_entries": 4.0,
        "handler_invocations": 3.2,
        "lambda_dispatch": 0.1,
        "lambda_on_job_change": 0.1,
        "sqs_messages": 0.1,
    },
    "deps3": {
        "api_gateway_requests": 1.0,
        "dynamodb_reads": 27.0,
        "dynamodb_writes": 10.0,
        "dynamodb_wru": 14.0,
        "ecs_RunTask": 1.0,
        "eventbridge_putevents_entries": 5.0,
        "handler_invocations": 5.0,
        "lambda_dispatch": 1.0,
        "lambda_on_ecs_task_event": 2.0,
        "lambda_on_job_change": 1.0,
        "sqs_messages": 1.0,
    },
    "array_child": {
        "api_gateway_requests": 0.1,
        "dynamodb_reads": 8.6,
        "dynamodb_writes": 5.2,
        "dynamodb_wru": 6.3,
        "ecs_RunTask": 1.0,
        "eventbridge_putevents_entries": 4.2,
        "handler_invocations": 2.6,
        "lambda_dispatch": 0.2,
        "lambda_on_ecs_task_event": 2.0,
        "lambda_on_job_change": 0.3,
        "sqs_messages": 0.2,
    },
}


@pytest.mark.parametrize("kind", sorted(PINNED))
def test_the_calls_per_job_are_as_measured(costs: dict[str, dict[str, Any]], kind: str) -> None:
    per_job = costs[kind]["per_job"]
    assert {k: per_job.get(k, 0) for k in PINNED[kind]} == PINNED[kind]
    # no ECS call but RunTask once the task definition is registered (no DescribeTasks, no ListTasks)
    assert {k for k in per_job if k.startswith("ecs_")} == {"ecs_RunTask"}, per_job
