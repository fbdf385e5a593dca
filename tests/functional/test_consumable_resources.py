"""The consumable resource operations through a stock boto3 `batch` client (resource-aware scheduling, issue 13
item 3): create / update / delete / describe / list, the jobs that name a resource, and what is refused."""

from __future__ import annotations

from typing import Any

import pytest

from tests.functional.builders import (
    REGION,
    BatchClient,
    assert_rejected,
    make_fargate_ce,
    make_jd,
    make_queue,
)

ACCOUNT = "123456789012"


def cr_arn(name: str) -> str:
    return f"arn:aws:batch:{REGION}:{ACCOUNT}:consumable-resource/{name}"


def needs(*pairs: tuple[str, int]) -> dict[str, Any]:
    return {"consumableResourceList": [{"consumableResource": r, "quantity": q} for r, q in pairs]}


def describe(batch: BatchClient, ref: str) -> dict[str, Any]:
    resp = dict(batch.describe_consumable_resource(consumableResource=ref))
    resp.pop("ResponseMetadata")
    return resp


def test_a_created_resource_is_described_exactly(batch: BatchClient) -> None:
    # WHEN a resource is created with every member
    resp = batch.create_consumable_resource(
        consumableResourceName="licences", totalQuantity=10, resourceType="NON_REPLENISHABLE", tags={"team": "a"}
    )
    # THEN the answer names it, and DescribeConsumableResource (by name or ARN) returns what was given
    assert (resp["consumableResourceName"], resp["consumableResourceArn"]) == ("licences", cr_arn("licences"))
    got = describe(batch, "licences")
    assert isinstance(got.pop("createdAt"), int)
    assert got == {
        "consumableResourceName": "licences",
        "consumableResourceArn": cr_arn("licences"),
        "totalQuantity": 10,
        "inUseQuantity": 0,
        "availableQuantity": 10,
        "resourceType": "NON_REPLENISHABLE",
        "tags": {"team": "a"},
    }
    assert describe(batch, cr_arn("licences"))["totalQuantity"] == 10
    # ... and REPLENISHABLE is the default type
    batch.create_consumable_resource(consumableResourceName="seats", totalQuantity=1)
    assert describe(batch, "seats")["resourceType"] == "REPLENISHABLE"


@pytest.mark.parametrize(
    ("request_", "fragment"),
    [
        ({"consumableResourceName": "bad name", "totalQuantity": 1}, "consumableResourceName"),
        ({"consumableResourceName": "r", "totalQuantity": -1}, "totalQuantity must be non-negative"),
        ({"consumableResourceName": "r", "totalQuantity": 1, "resourceType": "SOMETIMES"}, "resourceType"),
    ],
    ids=["name", "negative-total", "type"],
)
def test_a_bad_create_is_refused_naming_the_field(batch: BatchClient, request_: dict[str, Any], fragment: str) -> None:
    with pytest.raises(batch.exceptions.ClientException, match=fragment):
        batch.create_consumable_resource(**request_)
    assert batch.list_consumable_resources()["consumableResources"] == []


def test_a_name_is_unique(batch: BatchClient) -> None:
    batch.create_consumable_resource(consumableResourceName="r", totalQuantity=1)
    with pytest.raises(batch.exceptions.ClientException, match="already exists"):
        batch.create_consumable_resource(consumableResourceName="r", totalQuantity=2)
    assert describe(batch, "r")["totalQuantity"] == 1


def test_update_sets_adds_and_removes_the_total(batch: BatchClient) -> None:
    batch.create_consumable_resource(consumableResourceName="r", totalQuantity=5)
    resp = batch.update_consumable_resource(consumableResource="r", operation="ADD", quantity=3)
    assert (resp["consumableResourceName"], resp["consumableResourceArn"], resp["totalQuantity"]) == (
        "r",
        cr_arn("r"),
        8,
    )
    removed = batch.update_consumable_resource(consumableResource="r", operation="REMOVE", quantity=6)
    assert removed["totalQuantity"] == 2
    assert (
        batch.update_consumable_resource(consumableResource=cr_arn("r"), operation="SET", quantity=7)["totalQuantity"]
        == 7
    )
    # WHEN a REMOVE would go below zero, or the operation is unknown  THEN it is refused and nothing changes
    with pytest.raises(batch.exceptions.ClientException, match="negative"):
        batch.update_consumable_resource(consumableResource="r", operation="REMOVE", quantity=8)
    with pytest.raises(batch.exceptions.ClientException, match="operation must be SET, ADD or REMOVE"):
        batch.update_consumable_resource(consumableResource="r", operation="DOUBLE", quantity=1)
    with pytest.raises(batch.exceptions.ClientException, match="does not exist"):
        batch.update_consumable_resource(consumableResource="missing", operation="ADD", quantity=1)
    assert describe(batch, "r")["totalQuantity"] == 7


def test_list_pages_and_filters_by_name(batch: BatchClient) -> None:
    for name in ("gpu-a", "gpu-b", "licence", "GPU-c"):
        batch.create_consumable_resource(consumableResourceName=name, totalQuantity=1)
    first = batch.list_consumable_resources(maxResults=2)
    second = batch.list_consumable_resources(maxResults=2, nextToken=first["nextToken"])
    names = [r["consumableResourceName"] for r in first["consumableResources"] + second["consumableResources"]]
    assert sorted(names) == sorted(["gpu-a", "gpu-b", "licence", "GPU-c"])
    assert set(first["consumableResources"][0]) == {
        "consumableResourceName",
        "consumableResourceArn",
        "totalQuantity",
        "inUseQuantity",
        "resourceType",
    }
    filtered = batch.list_consumable_resources(filters=[{"name": "CONSUMABLE_RESOURCE_NAME", "values": ["gpu*"]}])
    assert sorted(r["consumableResourceName"] for r in filtered["consumableResources"]) == ["GPU-c", "gpu-a", "gpu-b"]
    with pytest.raises(batch.exceptions.ClientException, match="filters"):
        batch.list_consumable_resources(filters=[{"name": "JOB_STATUS", "values": ["RUNNING"]}])


def test_delete_removes_a_resource_no_job_holds(batch: BatchClient) -> None:
    batch.create_consumable_resource(consumableResourceName="r", totalQuantity=1)
    batch.delete_consumable_resource(consumableResource="r")
    with pytest.raises(batch.exceptions.ClientException, match="does not exist"):
        batch.describe_consumable_resource(consumableResource="r")
    with pytest.raises(batch.exceptions.ClientException, match="does not exist"):
        batch.delete_consumable_resource(consumableResource="r")


def test_a_resource_is_tagged_like_any_batch_resource(batch: BatchClient) -> None:
    batch.create_consumable_resource(consumableResourceName="r", totalQuantity=1, tags={"a": "1"})
    batch.tag_resource(resourceArn=cr_arn("r"), tags={"b": "2"})
    batch.untag_resource(resourceArn=cr_arn("r"), tagKeys=["a"])
    assert batch.list_tags_for_resource(resourceArn=cr_arn("r"))["tags"] == {"b": "2"}
    assert describe(batch, "r")["tags"] == {"b": "2"}


# -- what jobs name ------------------------------------------------------------------------------------------------


def test_a_definition_or_a_job_naming_a_resource_that_does_not_exist_is_refused(batch: BatchClient) -> None:
    make_queue(batch, "q", [make_fargate_ce(batch, "ce")])
    assert_rejected(
        batch,
        lambda: make_jd(batch, "jd", consumableResourceProperties=needs(("missing", 1))),
        "consumableResourceProperties.consumableResourceList[0].consumableResource",
        "missing does not exist",
    )
    make_jd(batch, "plain")
    with pytest.raises(batch.exceptions.ClientException, match=r"consumableResourcePropertiesOverride.*does not exist"):
        batch.submit_job(
            jobName="j", jobQueue="q", jobDefinition="plain", consumableResourcePropertiesOverride=needs(("nope", 1))
        )
    assert batch.list_jobs(jobQueue="q", jobStatus="RUNNABLE")["jobSummaryList"] == []


@pytest.mark.parametrize(
    ("props", "fragment"),
    [
        (needs(("r", 0)), "quantity must be at least 1"),
        (needs(("r", 1), ("r", 2)), "more than once"),
        (needs(*[(f"r{i}", 1) for i in range(6)]), "at most 5"),
    ],
    ids=["zero", "twice", "six"],
)
def test_a_bad_list_is_refused(batch: BatchClient, props: dict[str, Any], fragment: str) -> None:
    for i in ("", *range(6)):
        batch.create_consumable_resource(consumableResourceName=f"r{i}", totalQuantity=1)
    with pytest.raises(batch.exceptions.ClientException, match=fragment):
        make_jd(batch, "jd", consumableResourceProperties=props)


def test_a_job_shows_what_it_needs_and_is_listed_by_each_resource(batch: BatchClient) -> None:
    # GIVEN two resources, a definition needing 2 of one, and a job overriding that list with both
    batch.create_consumable_resource(consumableResourceName="licence", totalQuantity=4)
    batch.create_consumable_resource(consumableResourceName="db", totalQuantity=4)
    make_queue(batch, "q", [make_fargate_ce(batch, "ce")])
    jd = make_jd(batch, "jd", consumableResourceProperties=needs(("licence", 2)))
    first = batch.submit_job(jobName="first", jobQueue="q", jobDefinition="jd")["jobId"]
    second = batch.submit_job(
        jobName="second",
        jobQueue="q",
        jobDefinition="jd",
        consumableResourcePropertiesOverride=needs((cr_arn("db"), 1), ("licence", 3)),
    )["jobId"]

    # THEN the definition keeps its list, and DescribeJobs shows each job's own, by ARN
    (described,) = batch.describe_job_definitions(jobDefinitions=[jd["jobDefinitionArn"]])["jobDefinitions"]
    assert described["consumableResourceProperties"] == needs(("licence", 2))
    jobs = {j["jobId"]: j for j in batch.describe_jobs(jobs=[first, second])["jobs"]}
    assert jobs[first]["consumableResourceProperties"] == needs((cr_arn("licence"), 2))
    assert jobs[second]["consumableResourceProperties"] == needs((cr_arn("db"), 1), (cr_arn("licence"), 3))

    # AND ListJobsByConsumableResource lists them with their units, filtered by name or status
    listed = batch.list_jobs_by_consumable_resource(consumableResource="licence")["jobs"]
    assert [(j["jobName"], j["quantity"]) for j in listed] == [("first", 2), ("second", 3)]
    assert listed[0]["jobArn"].endswith(first) and listed[0]["jobQueueArn"].endswith(":job-queue/q")
    assert listed[1]["consumableResourceProperties"] == jobs[second]["consumableResourceProperties"]
    db_jobs = batch.list_jobs_by_consumable_resource(consumableResource=cr_arn("db"))["jobs"]
    assert [j["jobName"] for j in db_jobs] == ["second"]
    by_name = batch.list_jobs_by_consumable_resource(
        consumableResource="licence", filters=[{"name": "JOB_NAME", "values": ["SEC*"]}]
    )["jobs"]
    assert [j["jobName"] for j in by_name] == ["second"]
    # (the jobs run meanwhile: no job of this test is ever PENDING, every one is in one of the others)
    pending = [{"name": "JOB_STATUS", "values": ["PENDING"]}]
    assert batch.list_jobs_by_consumable_resource(consumableResource="licence", filters=pending)["jobs"] == []
    others = [{"name": "JOB_STATUS", "values": ["RUNNABLE", "STARTING", "RUNNING", "SUCCEEDED", "FAILED"]}]
    assert len(batch.list_jobs_by_consumable_resource(consumableResource="licence", filters=others)["jobs"]) == 2
    paged = batch.list_jobs_by_consumable_resource(consumableResource="licence", maxResults=1)
    rest = batch.list_jobs_by_consumable_resource(
        consumableResource="licence", maxResults=1, nextToken=paged["nextToken"]
    )
    assert [j["jobName"] for j in paged["jobs"] + rest["jobs"]] == ["first", "second"]
