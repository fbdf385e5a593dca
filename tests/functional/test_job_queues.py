"""Create/Describe/Update/DeleteJobQueue through boto3 (spec §3.2)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.functional.builders import (
    BatchClient,
    arn,
    assert_rejected,
    ce_order,
    describe_queue,
    disable_queue,
    make_ec2_ce,
    make_fargate_ce,
    make_policy,
    make_queue,
    make_unmanaged_ce,
    time_limit_action,
)


@pytest.fixture
def ces(batch: BatchClient) -> dict[str, str]:
    """Compute environments of every kind, by name -> ARN."""
    return {
        "fargate": make_fargate_ce(batch, "fargate"),
        "fargate-spot": make_fargate_ce(batch, "fargate-spot", spot=True),
        "fargate-2": make_fargate_ce(batch, "fargate-2"),
        "fargate-3": make_fargate_ce(batch, "fargate-3"),
        "ec2": make_ec2_ce(batch, "ec2"),
        "spot": make_ec2_ce(batch, "spot", spot=True),
        "unmanaged": make_unmanaged_ce(batch, "unmanaged"),
    }


# -- create and describe ---------------------------------------------------------------------------------------


def test_queue_is_created_valid_with_ce_names_resolved_to_arns(batch: BatchClient, ces: dict[str, str]) -> None:
    # GIVEN two Fargate compute environments
    # WHEN a queue is created referencing one by name and one by ARN
    resp = batch.create_job_queue(
        jobQueueName="q",
        priority=10,
        computeEnvironmentOrder=[
            {"order": 2, "computeEnvironment": "fargate-spot"},
            {"order": 1, "computeEnvironment": ces["fargate"]},
        ],
        tags={"team": "a"},
    )
    # THEN the response names it and describe shows it ENABLED, VALID, with both CEs as ARNs and their orders
    assert resp["jobQueueName"] == "q"
    assert resp["jobQueueArn"] == arn("job-queue", "q")
    jq = describe_queue(batch, "q")
    assert jq == {
        "jobQueueName": "q",
        "jobQueueArn": arn("job-queue", "q"),
        "state": "ENABLED",
        "status": "VALID",
        "statusReason": "JobQueue Healthy",
        "priority": 10,
        "computeEnvironmentOrder": [
            {"order": 2, "computeEnvironment": ces["fargate-spot"]},
            {"order": 1, "computeEnvironment": ces["fargate"]},
        ],
        "jobQueueType": "ECS_FARGATE",  # derived from its compute environments, as AWS does
        "tags": {"team": "a"},
    }


@pytest.mark.parametrize(
    "members",
    [
        pytest.param(["fargate", "fargate-spot", "fargate-2"], id="3-fargate"),
        pytest.param(["ec2", "spot"], id="ec2-and-spot"),
        pytest.param(["ec2", "unmanaged"], id="ec2-and-unmanaged"),
    ],
)
def test_queue_accepts_up_to_three_ces_of_one_kind(batch: BatchClient, ces: dict[str, str], members: list[str]) -> None:
    make_queue(batch, "q", members)
    jq = describe_queue(batch, "q")
    assert jq is not None
    assert [o["computeEnvironment"] for o in jq["computeEnvironmentOrder"]] == [ces[m] for m in members]


def test_queue_created_disabled_with_type_and_time_limits(batch: BatchClient, ces: dict[str, str]) -> None:
    actions = [time_limit_action(600), time_limit_action(86400, reason="MISCONFIGURATION:JOB_RESOURCE_REQUIREMENT")]
    make_queue(
        batch,
        "q",
        ["fargate"],
        priority=0,
        state="DISABLED",
        jobQueueType="ECS_FARGATE",
        jobStateTimeLimitActions=actions,
    )
    jq = describe_queue(batch, "q")
    assert jq is not None
    assert (jq["state"], jq["priority"], jq["jobQueueType"]) == ("DISABLED", 0, "ECS_FARGATE")
    assert jq["jobStateTimeLimitActions"] == actions


def test_fair_share_queue_records_its_policy_arn(batch: BatchClient, ces: dict[str, str]) -> None:
    policy = make_policy(batch, "fair")
    make_queue(batch, "by-arn", ["fargate"], schedulingPolicyArn=policy)
    assert (describe_queue(batch, "by-arn") or {})["schedulingPolicyArn"] == policy


def test_fifo_queue_has_no_policy(batch: BatchClient, ces: dict[str, str]) -> None:
    make_queue(batch, "q", ["fargate"])
    assert "schedulingPolicyArn" not in (describe_queue(batch, "q") or {})


def test_describe_by_name_arn_and_everything(batch: BatchClient, ces: dict[str, str]) -> None:
    q_arn = make_queue(batch, "b", ["fargate"])
    make_queue(batch, "a", ["ec2"])
    by_name = batch.describe_job_queues(jobQueues=["b", "missing"])["jobQueues"]
    by_arn = batch.describe_job_queues(jobQueues=[q_arn])["jobQueues"]
    assert [q["jobQueueName"] for q in by_name] == ["b"]
    assert by_name == by_arn
    assert [q["jobQueueName"] for q in batch.describe_job_queues()["jobQueues"]] == ["a", "b"]


def test_describe_rejects_other_arns_and_more_than_100_names(batch: BatchClient) -> None:
    assert_rejected(batch, lambda: batch.describe_job_queues(jobQueues=[arn("compute-environment", "c")]), "jobQueues")
    names = [f"q{i}" for i in range(101)]
    assert_rejected(batch, lambda: batch.describe_job_queues(jobQueues=names), "jobQueues", "100")


def _create(batch: BatchClient, **request: Any) -> Any:
    return batch.create_job_queue(
        **{"jobQueueName": "new", "priority": 1, "computeEnvironmentOrder": ce_order(["fargate"]), **request}
    )


INVALID_CREATES = [
    pytest.param({"jobQueueName": "bad name"}, "jobQueueName", id="name-chars"),
    pytest.param({"jobQueueName": "q" * 129}, "jobQueueName", id="name-129"),
    pytest.param({"jobQueueName": "existing"}, "already exists", id="duplicate-name"),
    pytest.param({"priority": -1}, "priority", id="negative-priority"),
    # AWS CreateJobQueue: "you associate one or more compute environments to the queue"
    pytest.param({"computeEnvironmentOrder": []}, "computeEnvironmentOrder: a job queue needs one", id="no-ces"),
    pytest.param(
        {"computeEnvironmentOrder": ce_order(["fargate", "fargate-spot", "fargate-2", "fargate-3"])},
        "computeEnvironmentOrder",
        id="4-ces",
    ),
    pytest.param(
        {"computeEnvironmentOrder": ce_order(["fargate", "ec2"])}, "computeEnvironmentOrder", id="fargate+ec2"
    ),
    pytest.param(
        {"computeEnvironmentOrder": ce_order(["fargate-spot", "spot"])}, "computeEnvironmentOrder", id="fargate+spot"
    ),
    pytest.param(
        {"computeEnvironmentOrder": ce_order(["fargate", "unmanaged"])},
        "computeEnvironmentOrder",
        id="fargate+unmanaged",
    ),
    pytest.param(
        {"computeEnvironmentOrder": ce_order(["fargate", "missing"])},
        "computeEnvironmentOrder[1].computeEnvironment",
        id="unknown-ce",
    ),
    pytest.param(
        {"computeEnvironmentOrder": ce_order([arn("job-queue", "existing")])},
        "computeEnvironmentOrder[0].computeEnvironment",
        id="arn-of-a-queue",
    ),
    pytest.param(
        {"computeEnvironmentOrder": ce_order(["fargate", "fargate"])}, "computeEnvironmentOrder", id="same-ce-twice"
    ),
    pytest.param(
        {
            "computeEnvironmentOrder": [
                {"order": 1, "computeEnvironment": "fargate"},
                {"order": 1, "computeEnvironment": "fargate-spot"},
            ]
        },
        "computeEnvironmentOrder",
        id="same-order-twice",
    ),
    pytest.param(
        {"schedulingPolicyArn": arn("scheduling-policy", "missing")}, "schedulingPolicyArn", id="unknown-policy"
    ),
    pytest.param(
        {"serviceEnvironmentOrder": [{"order": 1, "serviceEnvironment": "sagemaker"}]},
        "serviceEnvironmentOrder",
        id="service-environments",
    ),
    pytest.param(
        {"jobStateTimeLimitActions": [time_limit_action(599)]},
        "jobStateTimeLimitActions[0].maxTimeSeconds",
        id="time-limit-599",
    ),
    pytest.param(
        {"jobStateTimeLimitActions": [time_limit_action(600), time_limit_action(86401)]},
        "jobStateTimeLimitActions[1].maxTimeSeconds",
        id="time-limit-86401",
    ),
    pytest.param(
        {"jobStateTimeLimitActions": [time_limit_action(action="TERMINATE")]},
        "jobStateTimeLimitActions[0].action",
        id="time-limit-terminate",
    ),
    pytest.param(
        {"jobStateTimeLimitActions": [time_limit_action(reason="because")]},
        "jobStateTimeLimitActions[0].reason",
        id="time-limit-reason",
    ),
]


@pytest.mark.parametrize(("request_", "field"), INVALID_CREATES)
def test_invalid_create_is_rejected_naming_the_field_and_writes_nothing(
    batch: BatchClient, ces: dict[str, str], request_: dict[str, Any], field: str
) -> None:
    # GIVEN an existing queue
    make_queue(batch, "existing", ["fargate"])
    # WHEN an invalid create is sent THEN it is a ClientException naming the field, and nothing is written
    assert_rejected(batch, lambda: _create(batch, **request_), field)


# -- update ----------------------------------------------------------------------------------------------------


def test_update_changes_state_priority_ces_and_time_limits(batch: BatchClient, ces: dict[str, str]) -> None:
    # GIVEN a queue on one Fargate CE
    q_arn = make_queue(batch, "q", ["fargate"], priority=1, tags={"k": "v"})
    # WHEN state, priority, CEs and time limit actions are updated (by ARN)
    actions = [time_limit_action(3600)]
    resp = batch.update_job_queue(
        jobQueue=q_arn,
        state="DISABLED",
        priority=50,
        computeEnvironmentOrder=ce_order(["fargate-spot", "fargate"]),
        jobStateTimeLimitActions=actions,
    )
    # THEN describe shows every change and keeps the rest
    assert (resp["jobQueueName"], resp["jobQueueArn"]) == ("q", q_arn)
    jq = describe_queue(batch, "q")
    assert jq is not None
    assert (jq["state"], jq["priority"], jq["tags"], jq["status"]) == ("DISABLED", 50, {"k": "v"}, "VALID")
    assert jq["computeEnvironmentOrder"] == [
        {"order": 1, "computeEnvironment": ces["fargate-spot"]},
        {"order": 2, "computeEnvironment": ces["fargate"]},
    ]
    assert jq["jobStateTimeLimitActions"] == actions


def test_update_with_only_state_keeps_everything_else(batch: BatchClient, ces: dict[str, str]) -> None:
    make_queue(batch, "q", ["ec2", "spot"], priority=7, jobStateTimeLimitActions=[time_limit_action(900)])
    before = describe_queue(batch, "q")
    assert before is not None
    batch.update_job_queue(jobQueue="q", state="DISABLED")
    assert describe_queue(batch, "q") == {**before, "state": "DISABLED"}


def test_a_fifo_queue_cannot_be_given_a_scheduling_policy(batch: BatchClient, ces: dict[str, str]) -> None:
    # GIVEN a queue created without a scheduling policy (FIFO)
    make_queue(batch, "fifo", ["fargate"])
    policy = make_policy(batch, "fair")
    # WHEN a policy is added THEN it is refused and the queue stays FIFO
    assert_rejected(
        batch, lambda: batch.update_job_queue(jobQueue="fifo", schedulingPolicyArn=policy), "schedulingPolicyArn"
    )
    assert "schedulingPolicyArn" not in (describe_queue(batch, "fifo") or {})


def test_a_fair_share_queue_policy_can_be_replaced_but_not_removed(batch: BatchClient, ces: dict[str, str]) -> None:
    # GIVEN a fair-share queue
    first = make_policy(batch, "first")
    second = make_policy(batch, "second")
    make_queue(batch, "fair", ["fargate"], schedulingPolicyArn=first)
    # WHEN its policy is replaced THEN describe shows the new one
    batch.update_job_queue(jobQueue="fair", schedulingPolicyArn=second)
    assert (describe_queue(batch, "fair") or {})["schedulingPolicyArn"] == second
    # WHEN an empty policy ARN is sent THEN the policy stays (it cannot be removed)
    batch.update_job_queue(jobQueue="fair", schedulingPolicyArn="")
    assert (describe_queue(batch, "fair") or {})["schedulingPolicyArn"] == second


def _update(batch: BatchClient, **request: Any) -> Any:
    return batch.update_job_queue(**{"jobQueue": "q", **request})


INVALID_UPDATES = [
    pytest.param({"jobQueue": "missing", "priority": 2}, "jobQueue", id="unknown-queue"),
    pytest.param({"jobQueue": arn("compute-environment", "q"), "priority": 2}, "jobQueue", id="arn-of-a-ce"),
    pytest.param({"priority": -5}, "priority", id="negative-priority"),
    pytest.param(
        {"computeEnvironmentOrder": ce_order(["fargate", "fargate-spot", "fargate-2", "fargate-3"])},
        "computeEnvironmentOrder",
        id="4-ces",
    ),
    pytest.param({"computeEnvironmentOrder": ce_order(["fargate", "ec2"])}, "computeEnvironmentOrder", id="mixed"),
    pytest.param(
        {"computeEnvironmentOrder": ce_order(["missing"])},
        "computeEnvironmentOrder[0].computeEnvironment",
        id="unknown-ce",
    ),
    pytest.param(
        {"computeEnvironmentOrder": ce_order(["fargate", "fargate"])}, "computeEnvironmentOrder", id="same-ce-twice"
    ),
    pytest.param(
        {"schedulingPolicyArn": arn("scheduling-policy", "missing")}, "schedulingPolicyArn", id="unknown-policy"
    ),
    pytest.param(
        {"jobStateTimeLimitActions": [time_limit_action(100)]},
        "jobStateTimeLimitActions[0].maxTimeSeconds",
        id="time-limit-100",
    ),
    pytest.param(
        {"jobStateTimeLimitActions": [time_limit_action(action="TERMINATE")]},
        "jobStateTimeLimitActions[0].action",
        id="time-limit-terminate",
    ),
]


@pytest.mark.parametrize(("request_", "field"), INVALID_UPDATES)
def test_invalid_update_is_rejected_naming_the_field_and_changes_nothing(
    batch: BatchClient, ces: dict[str, str], request_: dict[str, Any], field: str
) -> None:
    # GIVEN a fair-share queue (so replacing its policy would otherwise be allowed)
    make_queue(batch, "q", ["fargate"], priority=3, schedulingPolicyArn=make_policy(batch, "fair"))
    assert_rejected(batch, lambda: _update(batch, **request_), field)


# -- delete ----------------------------------------------------------------------------------------------------


def test_an_enabled_queue_cannot_be_deleted(batch: BatchClient, ces: dict[str, str]) -> None:
    make_queue(batch, "q", ["fargate"])
    assert_rejected(batch, lambda: batch.delete_job_queue(jobQueue="q"), "jobQueue", "DISABLED")


def test_a_disabled_queue_is_deleted_with_its_tags(batch: BatchClient, ces: dict[str, str]) -> None:
    # GIVEN a tagged queue, disabled
    q_arn = make_queue(batch, "q", ["fargate"], tags={"k": "v"})
    make_queue(batch, "other", ["fargate"])
    disable_queue(batch, q_arn)
    # WHEN it is deleted (by ARN)
    batch.delete_job_queue(jobQueue=q_arn)
    # THEN only the other queue remains and the deleted queue's tags are gone; its CEs do not need detaching
    assert [q["jobQueueName"] for q in batch.describe_job_queues()["jobQueues"]] == ["other"]
    with pytest.raises(batch.exceptions.ClientException):
        batch.list_tags_for_resource(resourceArn=q_arn)


def test_deleting_an_unknown_queue_is_a_client_error(batch: BatchClient) -> None:
    assert_rejected(batch, lambda: batch.delete_job_queue(jobQueue="missing"), "missing")


def test_a_deleted_queue_name_can_be_reused(batch: BatchClient, ces: dict[str, str]) -> None:
    make_queue(batch, "q", ["fargate"], priority=1)
    disable_queue(batch, "q")
    batch.delete_job_queue(jobQueue="q")
    make_queue(batch, "q", ["ec2"], priority=2)
    jq = describe_queue(batch, "q")
    assert jq is not None
    assert (jq["state"], jq["priority"], jq["computeEnvironmentOrder"][0]["computeEnvironment"]) == (
        "ENABLED",
        2,
        ces["ec2"],
    )
