"""The job model (jobs.py) and its wire shapes (job_detail.py, spec §3.5, §4.4)."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chalicelib.domain.job_detail import attempt_detail, job_detail, job_summary
from chalicelib.domain.jobs import (
    FAILED,
    PENDING,
    RUNNING,
    STATUSES,
    SUBMITTED,
    SUCCEEDED,
    Dependency,
    bitmap_has,
    bitmap_set,
    child_id,
    split_child_id,
)
from tests.unit.builders import (
    NOW,
    a_child,
    a_finished_attempt,
    a_job,
    a_parent,
    a_running_job,
    an_attempt,
    done_bits,
    retries,
)

# -- bitmap ----------------------------------------------------------------------------------------------------


def test_an_empty_bitmap_has_nothing() -> None:
    assert not bitmap_has("", 0)
    assert not bitmap_has("", 9_999)


def test_setting_a_bit_sets_only_that_bit() -> None:
    bits = bitmap_set("", 10)

    assert bitmap_has(bits, 10)
    assert [i for i in range(64) if bitmap_has(bits, i)] == [10]


def test_the_bitmap_is_hex_and_grows_only_as_far_as_needed() -> None:
    assert bitmap_set("", 0) == "01"
    assert bitmap_set("", 7) == "80"
    assert bitmap_set("", 8) == "0001"
    assert len(bitmap_set("", 9_999)) == 2 * (9_999 // 8 + 1)


def test_setting_a_bit_twice_is_idempotent() -> None:
    once = bitmap_set("", 3)

    assert bitmap_set(once, 3) == once


def test_setting_a_bit_keeps_the_others() -> None:
    bits = bitmap_set(bitmap_set("", 20), 2)

    assert bitmap_has(bits, 2)
    assert bitmap_has(bits, 20)


@settings(max_examples=200, derandomize=True, deadline=None)
@given(st.sets(st.integers(0, 10_000), max_size=40), st.integers(0, 10_000))
def test_a_bitmap_holds_exactly_the_indices_set(indices: set[int], probe: int) -> None:
    bits = done_bits(sorted(indices, reverse=True))

    assert bits == bits.lower() and len(bits) % 2 == 0
    assert all(bitmap_has(bits, i) for i in indices)
    assert bitmap_has(bits, probe) == (probe in indices)


# -- child ids -------------------------------------------------------------------------------------------------


def test_child_id() -> None:
    assert child_id("a1b2", 0) == "a1b2:0"
    assert child_id("a1b2", 9_999) == "a1b2:9999"


@pytest.mark.parametrize(
    ("job_id", "expected"),
    [
        ("a1b2:0", ("a1b2", 0)),
        ("a1b2:9999", ("a1b2", 9_999)),
        ("a:b:3", ("a:b", 3)),
        ("a1b2", None),
        ("a1b2:", None),
        ("a1b2:x", None),
        ("a1b2:-1", None),
        ("a1b2:1.5", None),
        ("a1b2:\u00b2", None),  # a superscript two is a "digit" to str.isdigit, but no index
    ],
)
def test_split_child_id(job_id: str, expected: tuple[str, int] | None) -> None:
    assert split_child_id(job_id) == expected


@settings(max_examples=100, derandomize=True, deadline=None)
@given(st.text(min_size=1), st.integers(0, 10_000))
def test_split_child_id_inverts_child_id(parent: str, index: int) -> None:
    assert split_child_id(child_id(parent, index)) == (parent, index)


# -- Job properties --------------------------------------------------------------------------------------------


def test_a_plain_job_is_neither_parent_nor_child() -> None:
    job = a_job()

    assert not job.is_array_parent
    assert not job.is_array_child


def test_a_parent_and_a_child() -> None:
    assert a_parent(3).is_array_parent and not a_parent(3).is_array_child
    assert a_child("p", 0).is_array_child and not a_child("p", 0).is_array_parent


@pytest.mark.parametrize(("status", "terminal"), [(s, s in (SUCCEEDED, FAILED)) for s in STATUSES])
def test_terminal(status: str, terminal: bool) -> None:
    assert a_job(status=status).terminal is terminal


def test_attempt_number_is_the_next_attempt_when_none_is_in_flight() -> None:
    assert a_job().attempt_number == 1
    assert a_job(attempts=(a_finished_attempt(1), a_finished_attempt(2))).attempt_number == 3


def test_attempt_number_is_the_current_attempt_when_one_is_in_flight() -> None:
    assert a_running_job(2).attempt_number == 2


@pytest.mark.parametrize(("strategy", "expected"), [({}, 1), ({"attempts": None}, 1), (retries(4), 4)])
def test_max_attempts_defaults_to_one(strategy: dict[str, object], expected: int) -> None:
    assert a_job(retry_strategy=strategy).max_attempts == expected


# -- job_detail ------------------------------------------------------------------------------------------------


def no_nones(value: object) -> bool:
    if isinstance(value, dict):
        return all(v is not None and no_nones(v) for v in value.values())
    if isinstance(value, list):
        return all(no_nones(v) for v in value)
    return True


def test_a_submitted_job_renders_without_nones_and_with_epoch_ms() -> None:
    # GIVEN a job that never ran
    job = a_job("job-1", status=SUBMITTED)

    # WHEN it is rendered
    detail = job_detail(job)

    # THEN absent values are omitted (not null), timestamps are epoch-ms ints, and it is plain JSON
    assert no_nones(detail)
    assert detail["createdAt"] == NOW and type(detail["createdAt"]) is int
    for absent in ("startedAt", "stoppedAt", "statusReason", "arrayProperties", "isCancelled", "isTerminated"):
        assert absent not in detail
    assert detail["jobId"] == "job-1"
    assert detail["status"] == SUBMITTED
    assert detail["attempts"] == []
    assert json.loads(json.dumps(detail)) == detail


def test_a_finished_job_renders_its_attempts_and_container() -> None:
    # GIVEN a job that failed its first attempt and succeeded on the second
    first = a_finished_attempt(1, exit_code=1, reason="OutOfMemoryError: Container killed")
    second = a_finished_attempt(2, exit_code=0, started_at=NOW + 30, stopped_at=NOW + 40)
    job = a_job(status=SUCCEEDED, attempts=(first, second), started_at=NOW + 10, stopped_at=NOW + 40)

    detail = job_detail(job)

    assert no_nones(detail)
    assert (detail["startedAt"], detail["stoppedAt"]) == (NOW + 10, NOW + 40)
    assert [a["container"]["exitCode"] for a in detail["attempts"]] == [1, 0]
    assert detail["attempts"][0]["container"]["reason"] == "OutOfMemoryError: Container killed"
    assert "reason" not in detail["attempts"][1]["container"]
    assert detail["attempts"][1]["startedAt"] == NOW + 30
    assert all(type(a["startedAt"]) is int and type(a["stoppedAt"]) is int for a in detail["attempts"])
    # the container shows the last attempt
    assert detail["container"]["exitCode"] == 0
    assert detail["container"]["taskArn"] == "task-2"
    assert detail["container"]["image"] == job.container["image"]


def test_an_attempt_renders_like_batchs_attempt_detail() -> None:
    attempt = an_attempt(1, started_at=NOW + 1, stopped_at=NOW + 2, exit_code=0, status_reason="done")

    assert attempt_detail(attempt) == {
        "container": {
            "taskArn": "task-1",
            "exitCode": 0,
            "logStreamName": "sleep/default/task-1",
            "networkInterfaces": [],
        },
        "startedAt": NOW + 1,
        "stoppedAt": NOW + 2,
        "statusReason": "done",
    }


def test_an_attempt_names_its_container_instance_on_ec2_only() -> None:
    instance = "arn:aws:ecs:us-east-1:123456789012:container-instance/c/abc"
    attempt = an_attempt(1, container_instance_arn=instance)
    assert attempt_detail(attempt)["container"]["containerInstanceArn"] == instance
    assert "containerInstanceArn" not in attempt_detail(attempt, ec2=False)["container"]


def test_a_running_job_renders_its_current_attempt_in_the_container() -> None:
    detail = job_detail(a_running_job(2))

    assert detail["container"]["taskArn"] == "task-2"
    assert "exitCode" not in detail["container"]
    assert len(detail["attempts"]) == 1


def test_cancelled_and_terminated_flags_appear_only_when_set() -> None:
    assert job_detail(a_job(status=FAILED, is_cancelled=True))["isCancelled"] is True
    assert job_detail(a_job(status=FAILED, is_terminated=True))["isTerminated"] is True


def test_dependencies_render_with_their_type_only_when_given() -> None:
    job = a_job(depends_on=(Dependency("job-a"), Dependency("job-b", "N_TO_N"), Dependency(None, "SEQUENTIAL")))

    assert job_detail(job)["dependsOn"] == [
        {"jobId": "job-a"},
        {"jobId": "job-b", "type": "N_TO_N"},
        {"type": "SEQUENTIAL"},
    ]


def test_a_parents_status_summary_has_all_seven_statuses() -> None:
    # GIVEN a parent of 5 with some children counted
    parent = a_parent(5, created=5, updated_at=NOW + 7)

    # WHEN it is rendered with the children's counts
    detail = job_detail(parent, {RUNNING: 2, SUCCEEDED: 3})

    # THEN statusSummary has every status key, zeros included, and the parent has no container
    assert detail["arrayProperties"] == {
        "size": 5,
        "statusSummary": {
            SUBMITTED: 0,
            PENDING: 0,
            "RUNNABLE": 0,
            "STARTING": 0,
            RUNNING: 2,
            SUCCEEDED: 3,
            FAILED: 0,
        },
        "statusSummaryLastUpdatedAt": NOW + 7,
    }
    assert "container" not in detail
    assert detail["attempts"] == []


def test_a_parent_without_counts_still_has_all_seven_statuses() -> None:
    summary = job_detail(a_parent(2))["arrayProperties"]["statusSummary"]

    assert summary == dict.fromkeys(STATUSES, 0)


def test_a_child_renders_its_index() -> None:
    detail = job_detail(a_child("parent", 4))

    assert detail["arrayProperties"] == {"index": 4}
    assert detail["jobId"] == "parent:4"


# -- job_summary -----------------------------------------------------------------------------------------------


def test_a_summary_of_a_job_that_never_ran() -> None:
    summary = job_summary(a_job("job-1", vcpus=2.0))

    assert summary == {
        "jobArn": "arn:aws:batch:us-east-1:123456789012:job/job-1",
        "jobId": "job-1",
        "jobName": "a-job",
        "createdAt": NOW,
        "status": SUBMITTED,
        "jobDefinition": "arn:aws:batch:us-east-1:123456789012:job-definition/sleep:1",
        "capacityUsage": [{"capacityUnit": "VCPU", "quantity": 2.0}],
    }


def test_a_summary_of_a_finished_job_carries_its_last_exit() -> None:
    job = a_job(
        status=FAILED,
        status_reason="Essential container in task exited",
        attempts=(a_finished_attempt(1, exit_code=3),),
        started_at=NOW + 10,
        stopped_at=NOW + 20,
    )

    summary = job_summary(job)

    assert no_nones(summary)
    assert summary["container"] == {"exitCode": 3}
    assert (summary["startedAt"], summary["stoppedAt"]) == (NOW + 10, NOW + 20)
    assert type(summary["stoppedAt"]) is int
    assert summary["statusReason"] == "Essential container in task exited"


def test_a_summary_of_a_running_job_has_no_container_yet() -> None:
    assert "container" not in job_summary(a_running_job(1))


def test_scheduled_at_is_when_the_latest_attempt_was_placed() -> None:
    first, second = a_finished_attempt(1, created_at=NOW + 5), an_attempt(2, created_at=NOW + 50)
    assert "scheduledAt" not in job_summary(a_job())  # never placed
    assert job_summary(a_job(status=FAILED, attempts=(first,)))["scheduledAt"] == NOW + 5
    assert job_summary(a_job(status=RUNNING, attempts=(first,), current=second))["scheduledAt"] == NOW + 50


def test_array_properties_in_summaries() -> None:
    # An array parent's summary carries its children's statusSummary, as its JobDetail does (issue 12 item 10).
    parent = job_summary(a_parent(3), {"RUNNING": 1, "PENDING": 2})["arrayProperties"]
    assert parent["size"] == 3
    assert parent["statusSummary"]["RUNNING"] == 1 and parent["statusSummary"]["SUCCEEDED"] == 0
    assert "statusSummaryLastUpdatedAt" in parent
    assert job_summary(a_child("parent", 2))["arrayProperties"] == {"index": 2}
    assert "arrayProperties" not in job_summary(a_job())
