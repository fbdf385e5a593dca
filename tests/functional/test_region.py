"""ARNs carry the region of the request's SigV4 credential scope (spec §2); unsigned requests get the default."""

from __future__ import annotations

from collections.abc import Callable

from tests.functional.builders import (
    BatchClient,
    arn,
    describe_queue,
    make_fargate_ce,
    make_jd,
    make_policy,
    make_queue,
    raw_operation,
)


def test_arns_are_minted_in_the_region_the_client_signs_for(make_client: Callable[[str], BatchClient]) -> None:
    # GIVEN a stock client configured for eu-west-1
    eu = make_client("eu-west-1")
    # WHEN it creates one resource of each kind
    ce_arn = make_fargate_ce(eu, "ce")
    sp_arn = make_policy(eu, "p", tags={"k": "v"})
    q_arn = make_queue(eu, "q", ["ce"], schedulingPolicyArn=sp_arn)
    jd_arn = make_jd(eu, "jd")["jobDefinitionArn"]
    # THEN every ARN, returned and described, names eu-west-1
    assert ce_arn == arn("compute-environment", "ce", "eu-west-1")
    assert sp_arn == arn("scheduling-policy", "p", "eu-west-1")
    assert q_arn == arn("job-queue", "q", "eu-west-1")
    assert jd_arn == arn("job-definition", "jd:1", "eu-west-1")
    jq = describe_queue(eu, q_arn)
    assert jq is not None
    assert jq["computeEnvironmentOrder"] == [{"order": 1, "computeEnvironment": ce_arn}]
    assert jq["schedulingPolicyArn"] == sp_arn
    assert eu.list_tags_for_resource(resourceArn=sp_arn)["tags"] == {"k": "v"}


def test_two_regions_mint_their_own_arns(make_client: Callable[[str], BatchClient]) -> None:
    us, ap = make_client("us-east-1"), make_client("ap-southeast-2")
    assert make_fargate_ce(us, "us-ce") == arn("compute-environment", "us-ce", "us-east-1")
    assert make_fargate_ce(ap, "ap-ce") == arn("compute-environment", "ap-ce", "ap-southeast-2")


def test_an_unsigned_request_uses_the_default_region(endpoint: str) -> None:
    resp = raw_operation(endpoint, "CreateSchedulingPolicy", {"name": "p"})
    assert (resp.status, resp.body["arn"]) == (200, arn("scheduling-policy", "p", "us-east-1"))
