"""Create/Describe/List/Update/DeleteSchedulingPolicy through boto3 (spec §3.7)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.functional.builders import (
    BatchClient,
    arn,
    assert_rejected,
    describe_policy,
    disable_queue,
    fairshare,
    make_fargate_ce,
    make_policy,
    make_queue,
)


def test_a_fair_share_policy_is_created_and_described_exactly(batch: BatchClient) -> None:
    # GIVEN a fair-share policy with two shares, one of them a prefix
    policy = fairshare(("teamA", 2.5), ("batch*", 0.5), decay=3600, reservation=25)
    # WHEN it is created with tags
    resp = batch.create_scheduling_policy(name="fair", fairsharePolicy=policy, tags={"team": "a"})
    # THEN the response names it and describe returns exactly what was sent
    assert (resp["name"], resp["arn"]) == ("fair", arn("scheduling-policy", "fair"))
    assert describe_policy(batch, resp["arn"]) == {
        "name": "fair",
        "arn": resp["arn"],
        "fairsharePolicy": policy,
        "tags": {"team": "a"},
    }


def test_weight_factor_defaults_to_one(batch: BatchClient) -> None:
    batch.create_scheduling_policy(name="p", fairsharePolicy={"shareDistribution": [{"shareIdentifier": "a"}]})
    sp = describe_policy(batch, arn("scheduling-policy", "p"))
    assert sp is not None
    assert sp["fairsharePolicy"]["shareDistribution"] == [{"shareIdentifier": "a", "weightFactor": 1.0}]


def test_limits_at_their_bounds_are_accepted(batch: BatchClient) -> None:
    policy = fairshare(("a", 0.0001), ("b", 999.9999), ("c" * 255, 1.0), decay=604800, reservation=99)
    batch.create_scheduling_policy(name="p" * 128, fairsharePolicy=policy)
    assert (describe_policy(batch, arn("scheduling-policy", "p" * 128)) or {})["fairsharePolicy"] == policy


def test_list_returns_arns_in_name_order_and_describe_skips_unknown(batch: BatchClient) -> None:
    arns = {name: make_policy(batch, name) for name in ("b", "c", "a")}
    listed = batch.list_scheduling_policies()["schedulingPolicies"]
    assert listed == [{"arn": arns["a"]}, {"arn": arns["b"]}, {"arn": arns["c"]}]
    described = batch.describe_scheduling_policies(arns=[arns["c"], arn("scheduling-policy", "missing"), arns["a"]])
    assert [p["name"] for p in described["schedulingPolicies"]] == ["c", "a"]


def test_describe_rejects_more_than_100_arns(batch: BatchClient) -> None:
    refs = [arn("scheduling-policy", f"p{i}") for i in range(101)]
    assert_rejected(batch, lambda: batch.describe_scheduling_policies(arns=refs), "arns", "100")


def test_update_replaces_the_fair_share_policy(batch: BatchClient) -> None:
    # GIVEN a policy
    sp_arn = make_policy(batch, "p", ("a", 1.0), tags={"k": "v"})
    # WHEN its fair-share settings are replaced
    new = fairshare(("b", 3.0), ("c", 1.0), decay=60, reservation=10)
    assert batch.update_scheduling_policy(arn=sp_arn, fairsharePolicy=new)["ResponseMetadata"]["HTTPStatusCode"] == 200
    # THEN describe shows the new settings and the tags are kept
    assert describe_policy(batch, sp_arn) == {"name": "p", "arn": sp_arn, "fairsharePolicy": new, "tags": {"k": "v"}}


def test_update_without_a_policy_changes_nothing(batch: BatchClient) -> None:
    sp_arn = make_policy(batch, "p", ("a", 2.0))
    before = describe_policy(batch, sp_arn)
    batch.update_scheduling_policy(arn=sp_arn)
    assert describe_policy(batch, sp_arn) == before


def test_a_policy_in_use_by_a_queue_cannot_be_deleted(batch: BatchClient) -> None:
    # GIVEN a policy used by a fair-share queue
    sp_arn = make_policy(batch, "p")
    make_fargate_ce(batch, "ce")
    make_queue(batch, "q", ["ce"], schedulingPolicyArn=sp_arn)
    # WHEN it is deleted THEN it is refused naming the queue, and the policy remains
    assert_rejected(batch, lambda: batch.delete_scheduling_policy(arn=sp_arn), "q")
    # WHEN the queue is deleted THEN the policy can be deleted
    disable_queue(batch, "q")
    batch.delete_job_queue(jobQueue="q")
    batch.delete_scheduling_policy(arn=sp_arn)
    assert describe_policy(batch, sp_arn) is None


def test_a_policy_replaced_on_its_queue_can_be_deleted(batch: BatchClient) -> None:
    old = make_policy(batch, "old")
    new = make_policy(batch, "new")
    make_fargate_ce(batch, "ce")
    make_queue(batch, "q", ["ce"], schedulingPolicyArn=old)
    batch.update_job_queue(jobQueue="q", schedulingPolicyArn=new)
    batch.delete_scheduling_policy(arn=old)
    assert batch.list_scheduling_policies()["schedulingPolicies"] == [{"arn": new}]


def test_delete_removes_the_policy_and_its_tags(batch: BatchClient) -> None:
    sp_arn = make_policy(batch, "p", tags={"k": "v"})
    batch.delete_scheduling_policy(arn=sp_arn)
    assert batch.list_scheduling_policies()["schedulingPolicies"] == []
    with pytest.raises(batch.exceptions.ClientException):
        batch.list_tags_for_resource(resourceArn=sp_arn)


@pytest.mark.parametrize("operation", ["update", "delete"])
def test_unknown_policy_is_a_client_error(batch: BatchClient, operation: str) -> None:
    missing = arn("scheduling-policy", "missing")
    call = {
        "update": lambda: batch.update_scheduling_policy(arn=missing, fairsharePolicy=fairshare(("a", 1.0))),
        "delete": lambda: batch.delete_scheduling_policy(arn=missing),
    }[operation]
    assert_rejected(batch, call, "missing")


def test_an_arn_of_another_kind_is_rejected(batch: BatchClient) -> None:
    assert_rejected(batch, lambda: batch.delete_scheduling_policy(arn=arn("job-queue", "q")), "arn")


def _shares(*identifiers: str) -> dict[str, Any]:
    return {"fairsharePolicy": fairshare(*((i, 1.0) for i in identifiers))}


FIELD = "fairsharePolicy.shareDistribution"
INVALID_POLICIES = [
    pytest.param({"quotaSharePolicy": {"idleResourceAssignmentStrategy": "FIFO"}}, "quotaSharePolicy", id="quota"),
    pytest.param({"fairsharePolicy": {"shareDecaySeconds": -1}}, "fairsharePolicy.shareDecaySeconds", id="decay-neg"),
    pytest.param(
        {"fairsharePolicy": {"shareDecaySeconds": 604801}}, "fairsharePolicy.shareDecaySeconds", id="decay-604801"
    ),
    pytest.param(
        {"fairsharePolicy": {"computeReservation": -1}}, "fairsharePolicy.computeReservation", id="reservation-neg"
    ),
    pytest.param(
        {"fairsharePolicy": {"computeReservation": 100}}, "fairsharePolicy.computeReservation", id="reservation-100"
    ),
    pytest.param(_shares("team-a"), f"{FIELD}[0].shareIdentifier", id="identifier-hyphen"),
    pytest.param(_shares(""), f"{FIELD}[0].shareIdentifier", id="identifier-empty"),
    pytest.param(_shares("a**"), f"{FIELD}[0].shareIdentifier", id="identifier-two-stars"),
    pytest.param(_shares("*"), f"{FIELD}[0].shareIdentifier", id="identifier-bare-star"),
    pytest.param(_shares("a" * 256), f"{FIELD}[0].shareIdentifier", id="identifier-256"),
    pytest.param({"fairsharePolicy": fairshare(("a", 0.0))}, f"{FIELD}[0].weightFactor", id="weight-0"),
    pytest.param({"fairsharePolicy": fairshare(("a", 1000.0))}, f"{FIELD}[0].weightFactor", id="weight-1000"),
    pytest.param(_shares("a", "UserA", "UserA"), f"{FIELD}[2].shareIdentifier", id="duplicate"),
    pytest.param(_shares("UserA*", "UserA1"), f"{FIELD}[1].shareIdentifier", id="prefix-then-match"),
    pytest.param(_shares("UserA1", "UserA*"), f"{FIELD}[1].shareIdentifier", id="match-then-prefix"),
    pytest.param(_shares("User*", "UserA*"), f"{FIELD}[1].shareIdentifier", id="nested-prefixes"),
    pytest.param(_shares("UserA*", "UserA*"), f"{FIELD}[1].shareIdentifier", id="same-prefix"),
]


@pytest.mark.parametrize(("request_", "field"), INVALID_POLICIES)
def test_invalid_create_is_rejected_naming_the_field_and_writes_nothing(
    batch: BatchClient, request_: dict[str, Any], field: str
) -> None:
    make_policy(batch, "existing")
    assert_rejected(batch, lambda: batch.create_scheduling_policy(name="new", **request_), field)


@pytest.mark.parametrize(("request_", "field"), INVALID_POLICIES)
def test_invalid_update_is_rejected_naming_the_field_and_changes_nothing(
    batch: BatchClient, request_: dict[str, Any], field: str
) -> None:
    sp_arn = make_policy(batch, "existing", ("a", 2.0))
    assert_rejected(batch, lambda: batch.update_scheduling_policy(arn=sp_arn, **request_), field)


@pytest.mark.parametrize(
    ("name", "field"),
    [
        pytest.param("bad name", "name", id="chars"),
        pytest.param("p" * 129, "name", id="129"),
        pytest.param("existing", "already exists", id="duplicate"),
    ],
)
def test_invalid_name_is_rejected(batch: BatchClient, name: str, field: str) -> None:
    make_policy(batch, "existing")
    assert_rejected(batch, lambda: make_policy(batch, name), field)


def test_non_overlapping_prefixes_are_accepted(batch: BatchClient) -> None:
    sp_arn = make_policy(batch, "p", ("UserA*", 1.0), ("UserB", 1.0), ("User", 1.0))
    sp = describe_policy(batch, sp_arn)
    assert sp is not None
    assert [s["shareIdentifier"] for s in sp["fairsharePolicy"]["shareDistribution"]] == ["UserA*", "UserB", "User"]
