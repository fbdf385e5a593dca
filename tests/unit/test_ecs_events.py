"""Translation of ECS task state changes and EC2 events into lifecycle events (spec §6.2, §6.3).

The fixtures follow the documented event shapes (ECS developer guide "Task state change events", EC2 "Spot Instance
interruption notices" / "EC2 Instance State-change Notification"), with the fields batchplane's tasks carry: group
`batchplane:<jobId>:<attempt>`, one container named `default`.
"""

from __future__ import annotations

import copy
import itertools
from typing import Any

import pytest

from chalicelib.compute import ecs_events
from chalicelib.compute.ecs_events import (
    FARGATE_SPOT_INTERRUPTED,
    TaskEvent,
    host_terminated_reason,
    instance_terminated,
    parse_group,
    spot_interruption,
    task_event,
    task_group,
    task_state,
)
from chalicelib.domain import lifecycle
from chalicelib.domain.jobs import ESSENTIAL_EXITED, FAILED, RUNNABLE, RUNNING, STARTING, SUCCEEDED, TIMEOUT_REASON
from chalicelib.domain.lifecycle import TaskStarted, TaskStopped
from tests.unit.builders import NOW, a_running_job, retries

JOB_ID = "4c7599ae-0a82-49aa-ba5a-4727fcce14a8"
CLUSTER = "arn:aws:ecs:us-east-1:111122223333:cluster/batchplane"
TASK_ARN = "arn:aws:ecs:us-east-1:111122223333:task/batchplane/c13b4cb40f1f4fe4a2971f76ae5a47ad"


def ecs_event(
    last_status: str, *, version: int, attempt: int = 1, job_id: str = JOB_ID, **detail: Any
) -> dict[str, Any]:
    """An "ECS Task State Change" envelope for a batchplane Fargate task (ECS developer guide example shape)."""
    container: dict[str, Any] = {
        "containerArn": "arn:aws:ecs:us-east-1:111122223333:container/batchplane/c13b4cb4/cf159fd6",
        "lastStatus": last_status,
        "name": "default",
        "image": "public.ecr.aws/docker/library/busybox:latest",
        "runtimeId": "c13b4cb40f1f4fe4a2971f76ae5a47ad-1234567890",
        "taskArn": TASK_ARN,
        "networkInterfaces": [{"attachmentId": "1789bcae", "privateIpv4Address": "10.0.0.139"}],
        "cpu": "0",
    }
    container.update(detail.pop("container", {}))
    body: dict[str, Any] = {
        "attachments": [
            {
                "id": "1789bcae-ddfb-4d10-8ebe-8ac87ddba5b8",
                "type": "eni",
                "status": "ATTACHED",
                "details": [
                    {"name": "subnetId", "value": "subnet-abcd1234"},
                    {"name": "networkInterfaceId", "value": "eni-abcd1234"},
                    {"name": "privateIPv4Address", "value": "10.0.0.139"},
                ],
            }
        ],
        "availabilityZone": "us-east-1c",
        "capacityProviderName": "FARGATE_SPOT",
        "clusterArn": CLUSTER,
        "containers": [container],
        "createdAt": "2024-01-23T17:57:34.402Z",
        "launchType": "FARGATE",
        "cpu": "1024",
        "memory": "2048",
        "desiredStatus": "STOPPED" if last_status == "STOPPED" else "RUNNING",
        "group": f"batchplane:{job_id}:{attempt}",
        "startedBy": "bp-0123456789abcdef0123456789abcdef0",
        "lastStatus": last_status,
        "overrides": {"containerOverrides": [{"name": "default", "command": ["sleep", "60"]}]},
        "connectivity": "CONNECTED",
        "connectivityAt": "2024-01-23T17:57:38.453Z",
        "updatedAt": "2024-01-23T17:57:58.103Z",
        "taskArn": TASK_ARN,
        "taskDefinitionArn": "arn:aws:ecs:us-east-1:111122223333:task-definition/batchplane-sleep-1:1",
        "version": version,
        "platformVersion": "1.4.0",
    }
    body.update(detail)
    return {
        "version": "0",
        "id": f"3317b2af-7005-947d-b652-f55e762e57{version:02d}",
        "detail-type": "ECS Task State Change",
        "source": "aws.ecs",
        "account": "111122223333",
        "time": "2024-01-23T17:57:58Z",
        "region": "us-east-1",
        "resources": [TASK_ARN],
        "detail": body,
    }


PROVISIONING = ecs_event("PROVISIONING", version=1)
PENDING_EVENT = ecs_event("PENDING", version=2)
RUNNING_EVENT = ecs_event("RUNNING", version=3, startedAt="2024-01-23T17:57:58.103Z")
STOPPED_OK = ecs_event(
    "STOPPED",
    version=5,
    stopCode="EssentialContainerExited",
    stoppedReason="Essential container in task exited",
    stoppedAt="2024-01-23T17:59:01.000Z",
    container={"exitCode": 0},
)
STOPPED_OOM = ecs_event(
    "STOPPED",
    version=5,
    stopCode="EssentialContainerExited",
    stoppedReason="Essential container in task exited",
    container={"exitCode": 1, "reason": "OutOfMemoryError: Container killed due to memory usage"},
)
FARGATE_SPOT_NOTICE = ecs_event(  # the two-minute warning: still RUNNING, desired STOPPED
    "RUNNING",
    version=4,
    desiredStatus="STOPPED",
    stopCode="TerminationNotice",
    stoppedReason=FARGATE_SPOT_INTERRUPTED,
    stoppingAt="2024-01-23T18:00:00.000Z",
)
FARGATE_SPOT_STOPPED = ecs_event(
    "STOPPED",
    version=6,
    stopCode="TerminationNotice",
    stoppedReason=FARGATE_SPOT_INTERRUPTED,
    container={"exitCode": 143},
)
EC2_HOST_GONE = ecs_event(
    "STOPPED",
    version=6,
    attempt=2,
    launchType="EC2",
    capacityProviderName="batchplane-spot",
    containerInstanceArn="arn:aws:ecs:us-east-1:111122223333:container-instance/batchplane/b54a2a04",
    stopCode="SpotInterruption",
    stoppedReason="Host EC2 (instance i-0737c70432d64f82a) terminated.",
)
TIMED_OUT = ecs_event(
    "STOPPED", version=7, stopCode="UserInitiated", stoppedReason=TIMEOUT_REASON, container={"exitCode": 137}
)
FAILED_TO_START = ecs_event(
    "STOPPED",
    version=4,
    stopCode="TaskFailedToStart",
    stoppedReason="CannotPullContainerError: pull image manifest has been retried 5 time(s)",
    container={"reason": "CannotPullContainerError: ref pull has been retried 5 time(s)"},
)

SPOT_WARNING: dict[str, Any] = {
    "version": "0",
    "id": "12345678-1234-1234-1234-123456789012",
    "detail-type": "EC2 Spot Instance Interruption Warning",
    "source": "aws.ec2",
    "account": "123456789012",
    "time": "2024-01-23T17:58:00Z",
    "region": "us-east-1",
    "resources": ["arn:aws:ec2:us-east-1a:instance/i-1234567890abcdef0"],
    "detail": {"instance-id": "i-1234567890abcdef0", "instance-action": "terminate"},
}


def instance_state(state: str) -> dict[str, Any]:
    return {
        "version": "0",
        "id": "7bf73129-1428-4cd3-a780-95db273d1602",
        "detail-type": "EC2 Instance State-change Notification",
        "source": "aws.ec2",
        "account": "123456789012",
        "time": "2024-01-23T18:00:01Z",
        "region": "us-east-1",
        "resources": ["arn:aws:ec2:us-east-1:123456789012:instance/i-1234567890abcdef0"],
        "detail": {"instance-id": "i-1234567890abcdef0", "state": state},
    }


# -- ECS task state change ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("event", [PROVISIONING, PENDING_EVENT], ids=["PROVISIONING", "PENDING"])
def test_states_before_running_change_nothing(event: dict[str, Any]) -> None:
    assert task_event(event) is None


@pytest.mark.parametrize("status", ["ACTIVATING", "DEACTIVATING", "STOPPING", "DEPROVISIONING"])
def test_transitional_states_change_nothing(status: str) -> None:
    assert task_event(ecs_event(status, version=4)) is None


def test_running_is_task_started_with_version_and_arn() -> None:
    assert task_event(RUNNING_EVENT) == TaskEvent(JOB_ID, 1, TaskStarted(1, TASK_ARN), version=3, task_arn=TASK_ARN)


def test_stopped_exit_0() -> None:
    translated = task_event(STOPPED_OK)
    stopped = TaskStopped(1, 0, None, ESSENTIAL_EXITED, task_arn=TASK_ARN)
    assert translated == TaskEvent(JOB_ID, 1, stopped, version=5, task_arn=TASK_ARN)


def test_stopped_exit_1_carries_the_container_reason() -> None:
    translated = task_event(STOPPED_OOM)
    assert translated is not None
    assert translated.event == TaskStopped(
        1,
        1,
        reason="OutOfMemoryError: Container killed due to memory usage",
        status_reason=ESSENTIAL_EXITED,
        task_arn=TASK_ARN,
    )


def test_fargate_spot_termination_notice_is_still_running() -> None:
    # The warning changes nothing the job can act on: the task runs until its STOPPED event.
    translated = task_event(FARGATE_SPOT_NOTICE)
    assert translated is not None and translated.event == TaskStarted(1, TASK_ARN)


def test_fargate_spot_interruption_surfaces_the_ecs_reason() -> None:
    translated = task_event(FARGATE_SPOT_STOPPED)
    assert translated is not None
    assert translated.event == TaskStopped(1, 143, None, "Your Spot Task was interrupted.", task_arn=TASK_ARN)


def test_ec2_host_terminated_matches_the_batch_retry_pattern() -> None:
    translated = task_event(EC2_HOST_GONE)
    assert translated is not None
    assert (translated.job_id, translated.attempt) == (JOB_ID, 2)
    host_gone = "Host EC2 (instance i-0737c70432d64f82a) terminated."
    instance = "arn:aws:ecs:us-east-1:111122223333:container-instance/batchplane/b54a2a04"  # EC2: kept (item 19)
    assert translated.event == TaskStopped(2, None, None, host_gone, task_arn=TASK_ARN, container_instance_arn=instance)
    assert isinstance(translated.event, TaskStopped) and translated.event.status_reason
    assert translated.event.status_reason.startswith("Host EC2")  # evaluateOnExit onStatusReason "Host EC2*"


def test_stop_for_timeout_is_reported_timed_out() -> None:
    translated = task_event(TIMED_OUT)
    assert translated is not None
    assert translated.event == TaskStopped(1, 137, None, TIMEOUT_REASON, timed_out=True, task_arn=TASK_ARN)


def test_failed_to_start_has_no_exit_code() -> None:
    translated = task_event(FAILED_TO_START)
    assert translated is not None and isinstance(translated.event, TaskStopped)
    assert translated.event.exit_code is None
    assert translated.event.reason == "CannotPullContainerError: ref pull has been retried 5 time(s)"
    assert translated.event.status_reason == "CannotPullContainerError: pull image manifest has been retried 5 time(s)"


@pytest.mark.parametrize(
    ("stop_code", "launch_type", "expected"),
    [
        ("TerminationNotice", "FARGATE", FARGATE_SPOT_INTERRUPTED),
        ("SpotInterruption", "EC2", "Host EC2 (instance unknown) terminated."),
        ("TaskFailedToStart", "FARGATE", "Task failed to start"),
        ("EssentialContainerExited", "FARGATE", ESSENTIAL_EXITED),
        ("UserInitiated", "FARGATE", None),
    ],
)
def test_reason_derived_from_stop_code_when_ecs_gives_none(stop_code: str, launch_type: str, expected: str) -> None:
    event = ecs_event("STOPPED", version=5, stopCode=stop_code, launchType=launch_type, capacityProviderName=None)
    translated = task_event(event)
    assert translated is not None and isinstance(translated.event, TaskStopped)
    assert translated.event.status_reason == expected


def test_essential_container_is_the_one_named_default() -> None:
    event = ecs_event("STOPPED", version=5, container={"exitCode": 3})
    sidecar = {"name": "log-router", "lastStatus": "STOPPED", "exitCode": 0}
    event["detail"]["containers"].insert(0, sidecar)
    translated = task_event(event)
    assert translated is not None and isinstance(translated.event, TaskStopped)
    assert translated.event.exit_code == 3


@pytest.mark.parametrize(
    "group",
    ["family:sample-fargate", "service:web", "batchplane:", f"batchplane:{JOB_ID}", f"batchplane:{JOB_ID}:0", None],
)
def test_tasks_batchplane_did_not_start_are_ignored(group: str | None) -> None:
    event = copy.deepcopy(RUNNING_EVENT)
    event["detail"]["group"] = group
    assert task_event(event) is None


def test_other_detail_types_are_ignored() -> None:
    other = copy.deepcopy(RUNNING_EVENT)
    other["detail-type"] = "ECS Container Instance State Change"
    assert task_event(other) is None
    assert task_event(SPOT_WARNING) is None


def test_array_child_ids_round_trip_through_the_group() -> None:
    child = f"{JOB_ID}:17"
    assert parse_group(task_group(child, 3)) == (child, 3)
    translated = task_event(ecs_event("RUNNING", version=3, job_id=child, attempt=3))
    assert translated is not None and (translated.job_id, translated.attempt) == (child, 3)


def test_describe_tasks_output_translates_like_an_event() -> None:
    task = copy.deepcopy(STOPPED_OOM["detail"])
    task["createdAt"] = 1706032654.402  # DescribeTasks has epoch timestamps; none is read
    assert task_state(task) == task_event(STOPPED_OOM)


# -- at-least-once, unordered delivery -------------------------------------------------------------------------

SEQUENCE = [PROVISIONING, PENDING_EVENT, RUNNING_EVENT, STOPPED_OOM]


def test_duplicates_translate_identically() -> None:
    for event in [*SEQUENCE, FARGATE_SPOT_STOPPED, EC2_HOST_GONE]:
        assert task_event(copy.deepcopy(event)) == task_event(event)


def test_out_of_order_delivery_translates_each_event_the_same() -> None:
    in_order = [task_event(e) for e in SEQUENCE]
    for order in itertools.permutations(range(len(SEQUENCE))):
        assert [task_event(SEQUENCE[i]) for i in order] == [in_order[i] for i in order]


@pytest.mark.parametrize("order", list(itertools.permutations(range(3))))
def test_any_delivery_order_with_duplicates_ends_in_the_same_job(order: tuple[int, ...]) -> None:
    """Through the state machine: RUNNING, STOPPED(exit 0) and a duplicate RUNNING, in every order, end SUCCEEDED
    (a STOPPED that overtakes RUNNING finishes a STARTING job; a RUNNING after it changes nothing)."""
    events = [RUNNING_EVENT, STOPPED_OK, copy.deepcopy(RUNNING_EVENT)]
    job = a_running_job(status=STARTING)
    for i in order:
        translated = task_event(events[i])
        assert translated is not None
        outcome = lifecycle.transition(job, translated.event, NOW + 100)
        job = outcome.job or job
    assert job.status == SUCCEEDED
    assert len(job.attempts) == 1 and job.attempts[0].exit_code == 0


def test_a_late_event_of_an_earlier_attempt_is_ignored() -> None:
    job = a_running_job(status=STARTING, attempt=1, retry_strategy=retries(2))
    stopped = task_event(STOPPED_OOM)
    assert stopped is not None
    job = lifecycle.transition(job, stopped.event, NOW + 1).job or job
    assert job.status == RUNNABLE  # retried
    for late in (RUNNING_EVENT, STOPPED_OOM):
        translated = task_event(late)
        assert translated is not None
        assert lifecycle.transition(job, translated.event, NOW + 2).job is None


def test_host_terminated_event_retries_with_the_spot_rule() -> None:
    rule = {"onStatusReason": "Host EC2*", "action": "RETRY"}
    job = a_running_job(attempt=2, status=RUNNING, retry_strategy=retries(3, rule, {"onReason": "*", "action": "EXIT"}))
    translated = task_event(EC2_HOST_GONE)
    assert translated is not None
    after = lifecycle.transition(job, translated.event, NOW + 1).job
    assert after is not None and after.status == RUNNABLE
    assert after.status_reason == "Host EC2 (instance i-0737c70432d64f82a) terminated."


@pytest.mark.parametrize(
    ("rules", "after_status"),
    [
        ((), RUNNABLE),  # no rule matches: retried
        (({"onStatusReason": "Your Spot Task*", "action": "RETRY"}, {"onReason": "*", "action": "EXIT"}), RUNNABLE),
        (({"onStatusReason": "Host EC2*", "action": "RETRY"}, {"onReason": "*", "action": "EXIT"}), FAILED),
    ],
    ids=["no-rules", "fargate-spot-rule", "ec2-rule-only"],
)
def test_a_fargate_spot_interruption_is_retried_by_a_rule_on_its_status_reason(
    rules: tuple[dict[str, str], ...], after_status: str
) -> None:
    job = a_running_job(status=RUNNING, retry_strategy=retries(3, *rules))
    translated = task_event(FARGATE_SPOT_STOPPED)
    assert translated is not None
    after = lifecycle.transition(job, translated.event, NOW + 1).job
    assert after is not None and after.status == after_status
    assert after.attempts[-1].status_reason == "Your Spot Task was interrupted."
    assert after.attempts[-1].task_id == TASK_ARN


def test_exit_1_with_a_catch_all_exit_rule_fails() -> None:
    job = a_running_job(status=RUNNING, retry_strategy=retries(3, {"onReason": "*", "action": "EXIT"}))
    translated = task_event(STOPPED_OOM)
    assert translated is not None
    after = lifecycle.transition(job, translated.event, NOW + 1).job
    assert after is not None and after.status == FAILED
    assert after.attempts[-1].reason == "OutOfMemoryError: Container killed due to memory usage"


def test_started_moves_starting_to_running() -> None:
    translated = task_event(RUNNING_EVENT)
    assert translated is not None
    after = lifecycle.transition(a_running_job(status=STARTING), translated.event, NOW + 1).job
    assert after is not None and after.status == RUNNING


# -- EC2 --------------------------------------------------------------------------------------------------------


def test_spot_interruption_warning_gives_the_instance() -> None:
    assert spot_interruption(SPOT_WARNING) == "i-1234567890abcdef0"


@pytest.mark.parametrize("action", ["stop", "hibernate"])
def test_spot_interruption_for_any_action(action: str) -> None:
    event = copy.deepcopy(SPOT_WARNING)
    event["detail"]["instance-action"] = action
    assert spot_interruption(event) == "i-1234567890abcdef0"


def test_spot_interruption_ignores_other_events() -> None:
    assert spot_interruption(instance_state("terminated")) is None
    assert spot_interruption(RUNNING_EVENT) is None


def test_instance_terminated() -> None:
    assert instance_terminated(instance_state("terminated")) == "i-1234567890abcdef0"


@pytest.mark.parametrize("state", ["pending", "running", "stopping", "stopped", "shutting-down"])
def test_instance_state_changes_other_than_terminated_are_ignored(state: str) -> None:
    assert instance_terminated(instance_state(state)) is None


def test_instance_terminated_ignores_other_events() -> None:
    assert instance_terminated(SPOT_WARNING) is None


def test_host_terminated_reason_text() -> None:
    assert host_terminated_reason("i-0737c70432d64f82a") == "Host EC2 (instance i-0737c70432d64f82a) terminated."


def test_rule_pattern_selects_batchplane_groups_in_the_cluster() -> None:
    pattern = ecs_events.task_rule_pattern(CLUSTER)
    assert pattern["detail"]["clusterArn"] == [CLUSTER] and pattern["detail"]["group"] == [{"prefix": "batchplane:"}]


def test_log_stream_name_matches_batch() -> None:
    assert ecs_events.log_stream_name("sleep", TASK_ARN) == "sleep/default/c13b4cb40f1f4fe4a2971f76ae5a47ad"
