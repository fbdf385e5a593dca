"""Create/Describe/Update/DeleteComputeEnvironment through boto3 (spec §3.1)."""

from __future__ import annotations

from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.functional.builders import (
    BatchClient,
    arn,
    assert_rejected,
    describe_ce,
    disable_ce,
    disable_queue,
    ec2_resources,
    fargate_resources,
    make_ce,
    make_ec2_ce,
    make_fargate_ce,
    make_queue,
    make_unmanaged_ce,
    nothing_written,
    without,
)

SCALE_DOWN = (
    "Manually scaling down compute environment is not supported. "
    "Disconnecting job queues from compute environment will cause it to scale-down to minvCpus."
)

# -- create and describe ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "resources",
    [
        pytest.param(fargate_resources(4), id="FARGATE"),
        pytest.param(fargate_resources(8, spot=True), id="FARGATE_SPOT"),
    ],
)
def test_fargate_ce_is_created_valid_and_described_as_given(batch: BatchClient, resources: dict[str, Any]) -> None:
    # GIVEN a MANAGED Fargate compute environment request
    # WHEN it is created
    resp = batch.create_compute_environment(
        computeEnvironmentName="fargate", type="MANAGED", computeResources=resources, serviceRole="svc-role"
    )
    # THEN the response names it, and describe shows it ENABLED and VALID with the resources exactly as given
    assert resp["computeEnvironmentName"] == "fargate"
    assert resp["computeEnvironmentArn"] == arn("compute-environment", "fargate")
    ce = describe_ce(batch, "fargate")
    assert ce is not None
    assert ce["computeEnvironmentArn"] == resp["computeEnvironmentArn"]
    assert ce["type"] == "MANAGED"
    assert ce["state"] == "ENABLED"
    assert ce["status"] == "VALID"
    assert ce["statusReason"] == "ComputeEnvironment Healthy"
    assert ce["computeResources"] == resources
    assert ce["serviceRole"] == "svc-role"
    assert ce["containerOrchestrationType"] == "ECS"
    assert ce["tags"] == {}
    assert len(ce["uuid"]) == 36


@pytest.mark.parametrize("spot", [False, True], ids=["EC2", "SPOT"])
def test_ec2_ce_gets_min_and_desired_vcpus_defaults(batch: BatchClient, spot: bool) -> None:
    # GIVEN an EC2/SPOT request without minvCpus or desiredvCpus
    resources = ec2_resources(16, spot=spot)
    # WHEN it is created
    make_ce(batch, "ec2", resources)
    # THEN minvCpus and desiredvCpus default to 0; EC2 gets the BEST_FIT strategy, SPOT keeps the one given
    ce = describe_ce(batch, "ec2")
    assert ce is not None
    assert ce["status"] == "VALID"
    expected = {**resources, "minvCpus": 0, "desiredvCpus": 0}
    expected.setdefault("allocationStrategy", "BEST_FIT")
    assert ce["computeResources"] == expected
    assert ce["computeResources"]["type"] == ("SPOT" if spot else "EC2")
    assert ce["computeResources"]["allocationStrategy"] == ("SPOT_CAPACITY_OPTIMIZED" if spot else "BEST_FIT")


def test_ec2_ce_keeps_explicit_vcpus_and_optional_settings(batch: BatchClient) -> None:
    resources = ec2_resources(
        32,
        minvCpus=2,
        desiredvCpus=4,
        allocationStrategy="BEST_FIT_PROGRESSIVE_ORDERED",
        imageId="ami-12345678",
        ec2KeyPair="key",
        placementGroup="pg",
        tags={"Name": "batch-worker"},
        launchTemplate={"launchTemplateName": "lt", "version": "$Latest"},
        scalingPolicy={"minScaleDownDelayMinutes": 20},
    )
    make_ce(batch, "ec2", resources, context="team-a")
    ce = describe_ce(batch, "ec2")
    assert ce is not None
    assert ce["computeResources"] == resources
    assert ce["context"] == "team-a"


@pytest.mark.parametrize("strategy", ["SPOT_PRICE_CAPACITY_OPTIMIZED", "SPOT_CAPACITY_OPTIMIZED_PRIORITIZED"])
def test_spot_ce_with_a_spot_strategy_needs_no_fleet_role(batch: BatchClient, strategy: str) -> None:
    make_ec2_ce(batch, "spot", spot=True, resources={"allocationStrategy": strategy, "bidPercentage": 60})
    ce = describe_ce(batch, "spot")
    assert ce is not None
    assert ce["computeResources"]["allocationStrategy"] == strategy
    assert ce["computeResources"]["bidPercentage"] == 60


def test_spot_ce_with_best_fit_is_created_given_a_fleet_role(batch: BatchClient) -> None:
    make_ec2_ce(batch, "spot", spot=True, resources={"allocationStrategy": "BEST_FIT", "spotIamFleetRole": "fleet"})
    ce = describe_ce(batch, "spot")
    assert ce is not None
    assert ce["computeResources"]["spotIamFleetRole"] == "fleet"


def test_unmanaged_ce_has_no_compute_resources(batch: BatchClient) -> None:
    # GIVEN / WHEN an UNMANAGED compute environment with reserved vCPUs is created
    created = make_unmanaged_ce(batch, "mine", unmanagedvCpus=16)
    # THEN it is VALID, carries unmanagedvCpus and no computeResources
    ce = describe_ce(batch, created)
    assert ce is not None
    assert ce["type"] == "UNMANAGED"
    assert ce["status"] == "VALID"
    assert ce["unmanagedvCpus"] == 16
    assert "computeResources" not in ce


def test_explicit_enabled_state_is_accepted(batch: BatchClient) -> None:
    make_fargate_ce(batch, "ce", state="ENABLED")
    assert (describe_ce(batch, "ce") or {})["state"] == "ENABLED"


def test_describe_by_name_and_by_arn_agree_and_unknown_names_are_skipped(batch: BatchClient) -> None:
    ce_arn = make_fargate_ce(batch, "ce")
    by_name = batch.describe_compute_environments(computeEnvironments=["ce", "missing"])["computeEnvironments"]
    by_arn = batch.describe_compute_environments(computeEnvironments=[ce_arn])["computeEnvironments"]
    assert [c["computeEnvironmentName"] for c in by_name] == ["ce"]
    assert by_name == by_arn


def test_describe_everything_lists_all_in_name_order(batch: BatchClient) -> None:
    for name in ("c", "a", "b"):
        make_fargate_ce(batch, name)
    make_unmanaged_ce(batch, "d")
    listed = batch.describe_compute_environments()["computeEnvironments"]
    assert [c["computeEnvironmentName"] for c in listed] == ["a", "b", "c", "d"]


def test_describe_with_an_arn_of_another_kind_is_rejected(batch: BatchClient) -> None:
    assert_rejected(
        batch,
        lambda: batch.describe_compute_environments(computeEnvironments=[arn("job-queue", "q")]),
        "computeEnvironments",
    )


def test_describe_more_than_100_names_is_rejected(batch: BatchClient) -> None:
    names = [f"ce{i}" for i in range(101)]
    assert_rejected(
        batch, lambda: batch.describe_compute_environments(computeEnvironments=names), "computeEnvironments", "100"
    )


def test_duplicate_name_is_rejected_and_the_original_is_kept(batch: BatchClient) -> None:
    make_fargate_ce(batch, "ce", 4)
    assert_rejected(batch, lambda: make_fargate_ce(batch, "ce", 8), "computeEnvironmentName", "already exists")
    assert (describe_ce(batch, "ce") or {})["computeResources"]["maxvCpus"] == 4


# -- create: every validation rule -----------------------------------------------------------------------------


def _managed(resources: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"computeEnvironmentName": "new", "type": "MANAGED", "computeResources": resources, **extra}


FARGATE_NOT_APPLICABLE = {
    "minvCpus": 0,
    "desiredvCpus": 0,
    "allocationStrategy": "BEST_FIT",
    "instanceTypes": ["optimal"],
    "imageId": "ami-12345678",
    "ec2KeyPair": "key",
    "instanceRole": "ecsInstanceRole",
    "placementGroup": "pg",
    "bidPercentage": 50,
    "spotIamFleetRole": "fleet",
    "launchTemplate": {"launchTemplateName": "lt"},
    "ec2Configuration": [{"imageType": "ECS_AL2"}],
    "tags": {"Name": "x"},
}

INVALID_CREATES = [
    pytest.param(
        {"computeEnvironmentName": "has space", "type": "UNMANAGED"}, "computeEnvironmentName", id="name-chars"
    ),
    pytest.param({"computeEnvironmentName": "a" * 129, "type": "UNMANAGED"}, "computeEnvironmentName", id="name-129"),
    pytest.param({"computeEnvironmentName": "", "type": "UNMANAGED"}, "computeEnvironmentName", id="name-empty"),
    pytest.param({"computeEnvironmentName": "new", "type": "UNMANAGED", "state": "DISABLED"}, "state", id="disabled"),
    pytest.param({"computeEnvironmentName": "new", "type": "MANAGED"}, "computeResources", id="managed-no-resources"),
    pytest.param(_managed(fargate_resources(), unmanagedvCpus=4), "unmanagedvCpus", id="managed-unmanagedvcpus"),
    pytest.param(
        {"computeEnvironmentName": "new", "type": "UNMANAGED", "computeResources": fargate_resources()},
        "computeResources",
        id="unmanaged-with-resources",
    ),
    pytest.param(
        {"computeEnvironmentName": "new", "type": "UNMANAGED", "unmanagedvCpus": -1},
        "unmanagedvCpus",
        id="unmanaged-negative-vcpus",
    ),
    pytest.param(
        _managed(fargate_resources(type="ECS_MANAGED_INSTANCES")), "computeResources.type", id="ecs-managed-instances"
    ),
    pytest.param(_managed(fargate_resources(-1)), "computeResources.maxvCpus", id="negative-max"),
    pytest.param(_managed(ec2_resources(minvCpus=-1)), "computeResources.minvCpus", id="negative-min"),
    pytest.param(_managed(ec2_resources(desiredvCpus=-1)), "computeResources.desiredvCpus", id="negative-desired"),
    pytest.param(_managed(ec2_resources(4, minvCpus=8)), "computeResources.minvCpus", id="min-above-max"),
    pytest.param(
        _managed(ec2_resources(8, minvCpus=4, desiredvCpus=2)), "computeResources.desiredvCpus", id="desired-below-min"
    ),
    pytest.param(_managed(ec2_resources(8, desiredvCpus=9)), "computeResources.desiredvCpus", id="desired-above-max"),
    *[
        pytest.param(
            _managed(fargate_resources(spot=spot, **{key: value})),
            f"computeResources.{key}",
            id=f"{'FARGATE_SPOT' if spot else 'FARGATE'}-{key}",
        )
        for key, value in FARGATE_NOT_APPLICABLE.items()
        for spot in (False, True)
    ],
    pytest.param(
        _managed(without(fargate_resources(), "securityGroupIds")), "computeResources.securityGroupIds", id="fargate-sg"
    ),
    pytest.param(
        _managed(fargate_resources(securityGroupIds=[])), "computeResources.securityGroupIds", id="fargate-sg-empty"
    ),
    pytest.param(
        _managed(fargate_resources(subnets=[f"subnet-{i}" for i in range(17)])),
        "computeResources.subnets",
        id="fargate-17-subnets",
    ),
    *[
        pytest.param(_managed(without(res, "subnets")), "computeResources.subnets", id=f"{res['type']}-no-subnets")
        for res in (fargate_resources(), fargate_resources(spot=True), ec2_resources(), ec2_resources(spot=True))
    ],
    *[
        pytest.param(
            _managed(ec2_resources(allocationStrategy=strategy)),
            "computeResources.allocationStrategy",
            id=f"EC2-{strategy}",
        )
        for strategy in (
            "SPOT_CAPACITY_OPTIMIZED",
            "SPOT_PRICE_CAPACITY_OPTIMIZED",
            "SPOT_CAPACITY_OPTIMIZED_PRIORITIZED",
        )
    ],
    pytest.param(
        _managed(ec2_resources(spot=True, allocationStrategy="BEST_FIT_PROGRESSIVE_ORDERED")),
        "computeResources.allocationStrategy",
        id="SPOT-BEST_FIT_PROGRESSIVE_ORDERED",
    ),
    pytest.param(
        _managed(ec2_resources(spot=True, allocationStrategy="BEST_FIT")),
        "computeResources.spotIamFleetRole",
        id="SPOT-best-fit-no-fleet-role",
    ),
    pytest.param(
        _managed(without(ec2_resources(spot=True), "allocationStrategy")),
        "computeResources.spotIamFleetRole",
        id="SPOT-default-strategy-no-fleet-role",
    ),
    *[
        pytest.param(
            _managed(without(ec2_resources(spot=spot), key)),
            f"computeResources.{key}",
            id=f"{'SPOT' if spot else 'EC2'}-no-{key}",
        )
        for key in ("instanceTypes", "instanceRole")
        for spot in (False, True)
    ],
    pytest.param(_managed(ec2_resources(spot=True, bidPercentage=101)), "computeResources.bidPercentage", id="bid-101"),
    pytest.param(_managed(ec2_resources(spot=True, bidPercentage=-1)), "computeResources.bidPercentage", id="bid-neg"),
    pytest.param(
        _managed(ec2_resources(instanceTypes=["optimal", "unknown"])),
        "computeResources.instanceTypes[1] Instance type can only be one of [optimal",
        id="unknown-instance-type",
    ),
    *[
        pytest.param(
            _managed(ec2_resources(scalingPolicy={"minScaleDownDelayMinutes": minutes})),
            "computeResources.scalingPolicy.minScaleDownDelayMinutes",
            id=f"scale-down-delay-{minutes}",
        )
        for minutes in (19, 10081)
    ],
]


@pytest.mark.parametrize(("request_", "field"), INVALID_CREATES)
def test_invalid_create_is_rejected_naming_the_field_and_writes_nothing(
    batch: BatchClient, request_: dict[str, Any], field: str
) -> None:
    # GIVEN an existing compute environment (so "nothing written" also covers changes to it)
    make_fargate_ce(batch, "existing")
    # WHEN an invalid create is sent THEN it is a ClientException naming the field, and no resource appears
    assert_rejected(batch, lambda: batch.create_compute_environment(**request_), field)


@pytest.mark.parametrize("minutes", [0, 20, 10080])
def test_scale_down_delay_bounds_and_zero_are_accepted(batch: BatchClient, minutes: int) -> None:
    make_ec2_ce(batch, "ce", resources={"scalingPolicy": {"minScaleDownDelayMinutes": minutes}})
    ce = describe_ce(batch, "ce")
    assert ce is not None
    assert ce["computeResources"]["scalingPolicy"] == {"minScaleDownDelayMinutes": minutes}


def test_sixteen_fargate_subnets_are_accepted(batch: BatchClient) -> None:
    subnets = [f"subnet-{i}" for i in range(16)]
    make_ce(batch, "ce", fargate_resources(subnets=subnets))
    assert (describe_ce(batch, "ce") or {})["computeResources"]["subnets"] == subnets


# -- update ----------------------------------------------------------------------------------------------------


def test_state_goes_disabled_and_back_to_enabled(batch: BatchClient) -> None:
    # GIVEN an ENABLED compute environment
    ce_arn = make_fargate_ce(batch, "ce")
    # WHEN it is disabled (by ARN) THEN describe shows DISABLED, still VALID
    resp = batch.update_compute_environment(computeEnvironment=ce_arn, state="DISABLED")
    assert (resp["computeEnvironmentName"], resp["computeEnvironmentArn"]) == ("ce", ce_arn)
    ce = describe_ce(batch, "ce")
    assert ce is not None
    assert (ce["state"], ce["status"]) == ("DISABLED", "VALID")
    # WHEN it is enabled again (by name) THEN describe shows ENABLED
    batch.update_compute_environment(computeEnvironment="ce", state="ENABLED")
    assert (describe_ce(batch, "ce") or {})["state"] == "ENABLED"


def test_fargate_scaling_update_changes_only_what_was_sent(batch: BatchClient) -> None:
    make_fargate_ce(batch, "ce", 4)
    batch.update_compute_environment(
        computeEnvironment="ce", computeResources={"maxvCpus": 16, "securityGroupIds": ["sg-new"]}
    )
    ce = describe_ce(batch, "ce")
    assert ce is not None
    assert ce["computeResources"] == fargate_resources(16, securityGroupIds=["sg-new"])


def test_update_keeps_uuid_tags_and_everything_not_sent(batch: BatchClient) -> None:
    make_fargate_ce(batch, "ce", tags={"team": "a"}, serviceRole="old")
    before = describe_ce(batch, "ce")
    assert before is not None
    batch.update_compute_environment(computeEnvironment="ce", serviceRole="new")
    after = describe_ce(batch, "ce")
    assert after == {**before, "serviceRole": "new"}


def test_update_policy_is_stored(batch: BatchClient) -> None:
    make_ec2_ce(batch, "ce")
    policy = {"terminateJobsOnUpdate": True, "jobExecutionTimeoutMinutes": 90}
    batch.update_compute_environment(computeEnvironment="ce", updatePolicy=policy)
    assert (describe_ce(batch, "ce") or {})["updatePolicy"] == policy


def test_unmanaged_vcpus_can_be_updated_on_an_unmanaged_ce(batch: BatchClient) -> None:
    make_unmanaged_ce(batch, "ce", unmanagedvCpus=4)
    batch.update_compute_environment(computeEnvironment="ce", unmanagedvCpus=12)
    assert (describe_ce(batch, "ce") or {})["unmanagedvCpus"] == 12


def _ec2_vcpus(batch: BatchClient, name: str) -> tuple[int, int, int]:
    res = (describe_ce(batch, name) or {})["computeResources"]
    return res["minvCpus"], res["desiredvCpus"], res["maxvCpus"]


def test_desired_vcpus_can_be_raised_within_min_and_max(batch: BatchClient) -> None:
    make_ec2_ce(batch, "ce", 16, resources={"minvCpus": 0, "desiredvCpus": 2})
    batch.update_compute_environment(computeEnvironment="ce", computeResources={"desiredvCpus": 8})
    assert _ec2_vcpus(batch, "ce") == (0, 8, 16)


def test_desired_vcpus_equal_to_current_is_accepted(batch: BatchClient) -> None:
    make_ec2_ce(batch, "ce", 16, resources={"desiredvCpus": 4})
    batch.update_compute_environment(computeEnvironment="ce", computeResources={"desiredvCpus": 4})
    assert _ec2_vcpus(batch, "ce") == (0, 4, 16)


def test_manually_scaling_down_desired_vcpus_is_not_supported(batch: BatchClient) -> None:
    # GIVEN an EC2 compute environment at desiredvCpus 8
    make_ec2_ce(batch, "ce", 16, resources={"minvCpus": 0, "desiredvCpus": 8})
    # WHEN desiredvCpus is lowered THEN AWS's exact message comes back and nothing changes
    assert_rejected(
        batch,
        lambda: batch.update_compute_environment(computeEnvironment="ce", computeResources={"desiredvCpus": 4}),
        "desiredvCpus",
        SCALE_DOWN,
    )
    assert _ec2_vcpus(batch, "ce") == (0, 8, 16)


def test_raising_min_vcpus_above_desired_raises_desired(batch: BatchClient) -> None:
    # Batch recommends changing minvCpus rather than desiredvCpus (spec §3.1); desired follows min up.
    make_ec2_ce(batch, "ce", 16, resources={"minvCpus": 0, "desiredvCpus": 2})
    batch.update_compute_environment(computeEnvironment="ce", computeResources={"minvCpus": 6})
    assert _ec2_vcpus(batch, "ce") == (6, 6, 16)


def test_lowering_max_vcpus_below_desired_lowers_desired(batch: BatchClient) -> None:
    # A scaling update of maxvCpus alone keeps desiredvCpus inside the new range (batchplane's reading of
    # "Batch modifies this value between the minimum and maximum values"); it is not a manual scale-down.
    make_ec2_ce(batch, "ce", 16, resources={"desiredvCpus": 8})
    batch.update_compute_environment(computeEnvironment="ce", computeResources={"maxvCpus": 4})
    assert _ec2_vcpus(batch, "ce") == (0, 4, 4)


INVALID_UPDATES = [
    pytest.param("ec2", {"computeResources": {"desiredvCpus": 17}}, "computeResources.desiredvCpus", id="desired>max"),
    pytest.param(
        "ec2",
        {"computeResources": {"minvCpus": 8, "desiredvCpus": 7}},
        "computeResources.desiredvCpus",
        id="desired<min",
    ),
    pytest.param("ec2", {"computeResources": {"minvCpus": 17}}, "computeResources.minvCpus", id="min>max"),
    pytest.param("ec2", {"computeResources": {"maxvCpus": -1}}, "computeResources.maxvCpus", id="negative-max"),
    pytest.param("ec2", {"computeResources": {"minvCpus": -1}}, "computeResources.minvCpus", id="negative-min"),
    pytest.param("ec2", {"computeResources": {"type": "SPOT"}}, "computeResources.type", id="type-change"),
    pytest.param(
        "ec2", {"computeResources": {"instanceTypes": ["unknown"]}}, "Instance type can only be one of", id="itype"
    ),
    pytest.param(
        "ec2",
        {"computeResources": {"allocationStrategy": "SPOT_CAPACITY_OPTIMIZED"}},
        "computeResources.allocationStrategy",
        id="ec2-spot-strategy",
    ),
    pytest.param(
        "ec2",
        {"computeResources": {"scalingPolicy": {"minScaleDownDelayMinutes": 5}}},
        "computeResources.scalingPolicy.minScaleDownDelayMinutes",
        id="scale-down-delay",
    ),
    pytest.param("ec2", {"unmanagedvCpus": 4}, "unmanagedvCpus", id="managed-unmanagedvcpus"),
    pytest.param("fargate", {"computeResources": {"minvCpus": 1}}, "computeResources.minvCpus", id="fargate-min"),
    pytest.param(
        "fargate", {"computeResources": {"desiredvCpus": 1}}, "computeResources.desiredvCpus", id="fargate-desired"
    ),
    pytest.param(
        "fargate", {"computeResources": {"instanceTypes": ["c5"]}}, "computeResources.instanceTypes", id="fargate-types"
    ),
    pytest.param(
        "fargate",
        {"computeResources": {"subnets": [f"subnet-{i}" for i in range(17)]}},
        "computeResources.subnets",
        id="fargate-17-subnets",
    ),
    pytest.param("fargate", {"computeResources": {"type": "EC2"}}, "computeResources.type", id="fargate-to-ec2"),
    pytest.param("unmanaged", {"computeResources": {"maxvCpus": 4}}, "computeResources", id="unmanaged-resources"),
    pytest.param("unmanaged", {"unmanagedvCpus": -1}, "unmanagedvCpus", id="unmanaged-negative"),
    pytest.param("missing", {"state": "DISABLED"}, "computeEnvironment", id="unknown-ce"),
    pytest.param(arn("job-queue", "ec2"), {"state": "DISABLED"}, "computeEnvironment", id="arn-of-a-queue"),
]


@pytest.mark.parametrize(("target", "changes", "field"), INVALID_UPDATES)
def test_invalid_update_is_rejected_naming_the_field_and_changes_nothing(
    batch: BatchClient, target: str, changes: dict[str, Any], field: str
) -> None:
    # GIVEN one compute environment of each kind
    make_ec2_ce(batch, "ec2", 16, resources={"minvCpus": 0, "desiredvCpus": 4})
    make_fargate_ce(batch, "fargate")
    make_unmanaged_ce(batch, "unmanaged", unmanagedvCpus=4)
    # WHEN an invalid update is sent THEN it is a ClientException naming the field and every CE is unchanged
    assert_rejected(batch, lambda: batch.update_compute_environment(computeEnvironment=target, **changes), field)


# -- delete ----------------------------------------------------------------------------------------------------


def test_an_enabled_ce_cannot_be_deleted(batch: BatchClient) -> None:
    make_fargate_ce(batch, "ce")
    assert_rejected(batch, lambda: batch.delete_compute_environment(computeEnvironment="ce"), "DISABLED")


def test_a_ce_attached_to_a_queue_cannot_be_deleted(batch: BatchClient) -> None:
    # GIVEN a DISABLED compute environment still attached to a queue
    make_fargate_ce(batch, "ce")
    make_queue(batch, "q", ["ce"])
    disable_ce(batch, "ce")
    # WHEN it is deleted THEN the request is refused, naming the queue, and the CE remains
    assert_rejected(batch, lambda: batch.delete_compute_environment(computeEnvironment="ce"), "JobQueue", "q")
    assert describe_ce(batch, "ce") is not None


def test_a_disabled_detached_ce_is_deleted_with_its_tags(batch: BatchClient) -> None:
    # GIVEN a tagged CE that was attached to a queue which was then deleted
    ce_arn = make_fargate_ce(batch, "ce", tags={"team": "a"})
    make_queue(batch, "q", ["ce"])
    disable_queue(batch, "q")
    batch.delete_job_queue(jobQueue="q")
    disable_ce(batch, "ce")
    # WHEN the CE is deleted (by ARN)
    batch.delete_compute_environment(computeEnvironment=ce_arn)
    # THEN it is gone from describe and its tags are gone with it
    assert batch.describe_compute_environments()["computeEnvironments"] == []
    with pytest.raises(batch.exceptions.ClientException):
        batch.list_tags_for_resource(resourceArn=ce_arn)


def test_a_ce_detached_by_updating_the_queue_can_be_deleted(batch: BatchClient) -> None:
    make_fargate_ce(batch, "old")
    make_fargate_ce(batch, "new")
    make_queue(batch, "q", ["old"])
    batch.update_job_queue(jobQueue="q", computeEnvironmentOrder=[{"order": 1, "computeEnvironment": "new"}])
    disable_ce(batch, "old")
    batch.delete_compute_environment(computeEnvironment="old")
    assert describe_ce(batch, "old") is None


def test_a_deleted_name_can_be_reused_as_a_new_ce(batch: BatchClient) -> None:
    make_fargate_ce(batch, "ce", 4)
    first = describe_ce(batch, "ce")
    disable_ce(batch, "ce")
    batch.delete_compute_environment(computeEnvironment="ce")
    make_fargate_ce(batch, "ce", 8)
    second = describe_ce(batch, "ce")
    assert first is not None and second is not None
    assert second["uuid"] != first["uuid"]
    assert (second["state"], second["computeResources"]["maxvCpus"]) == ("ENABLED", 8)


def test_deleting_an_unknown_ce_is_a_client_error(batch: BatchClient) -> None:
    assert_rejected(batch, lambda: batch.delete_compute_environment(computeEnvironment="missing"), "missing")


def test_a_failed_delete_leaves_other_resources_alone(batch: BatchClient) -> None:
    make_fargate_ce(batch, "a")
    make_fargate_ce(batch, "b")
    disable_ce(batch, "b")
    with nothing_written(batch), pytest.raises(batch.exceptions.ClientException):
        batch.delete_compute_environment(computeEnvironment="a")
    batch.delete_compute_environment(computeEnvironment="b")
    assert [c["computeEnvironmentName"] for c in batch.describe_compute_environments()["computeEnvironments"]] == ["a"]


def test_a_bid_percentage_is_a_spot_setting_ignored_on_ec2(batch: BatchClient) -> None:
    # AWS documents bidPercentage as the Spot price limit; an On-Demand (EC2) environment does not use it, so its
    # 0-100 range is checked only for SPOT (issue 12 item 13).
    make_ec2_ce(batch, "ec2", resources={"bidPercentage": 123})
    batch.update_compute_environment(computeEnvironment="ec2", computeResources={"bidPercentage": 150})
    with pytest.raises(ClientError):
        make_ec2_ce(batch, "spot", spot=True, resources={"bidPercentage": 123})


def test_every_environment_names_its_ecs_cluster(batch: BatchClient) -> None:
    make_ec2_ce(batch, "ec2")
    make_unmanaged_ce(batch, "own")
    clusters = {
        c["computeEnvironmentName"]: c["ecsClusterArn"]
        for c in batch.describe_compute_environments()["computeEnvironments"]
    }
    assert clusters == {n: "arn:aws:ecs:us-east-1:123456789012:cluster/batchplane-local" for n in ("ec2", "own")}
