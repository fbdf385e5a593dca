"""TagResource / UntagResource / ListTagsForResource on every taggable ARN (spec §2)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import quote

import pytest

from tests.functional.builders import (
    BatchClient,
    arn,
    assert_client_error,
    assert_rejected,
    describe_ce,
    describe_jds,
    describe_policy,
    describe_queue,
    make_ec2_ce,
    make_fargate_ce,
    make_jd,
    make_policy,
    make_queue,
    nothing_written,
    raw_request,
)

Maker = Callable[[BatchClient, str, dict[str, str] | None], str]


def _ce(batch: BatchClient, name: str, tags: dict[str, str] | None) -> str:
    return make_fargate_ce(batch, name, **({"tags": tags} if tags is not None else {}))


def _queue(batch: BatchClient, name: str, tags: dict[str, str] | None) -> str:
    if describe_ce(batch, "tag-ce") is None:
        make_fargate_ce(batch, "tag-ce")
    return make_queue(batch, name, ["tag-ce"], **({"tags": tags} if tags is not None else {}))


def _jd(batch: BatchClient, name: str, tags: dict[str, str] | None) -> str:
    return str(make_jd(batch, name, tags=tags)["jobDefinitionArn"])


def _policy(batch: BatchClient, name: str, tags: dict[str, str] | None) -> str:
    return make_policy(batch, name, **({"tags": tags} if tags is not None else {}))


MAKERS: dict[str, Maker] = {
    "compute-environment": _ce,
    "job-queue": _queue,
    "job-definition": _jd,
    "scheduling-policy": _policy,
}


def _described_tags(batch: BatchClient, kind: str, resource_arn: str) -> dict[str, str]:
    described: dict[str, Any] | None = {
        "compute-environment": lambda: describe_ce(batch, resource_arn),
        "job-queue": lambda: describe_queue(batch, resource_arn),
        "job-definition": lambda: describe_jds(batch, jobDefinitions=[resource_arn])[0],
        "scheduling-policy": lambda: describe_policy(batch, resource_arn),
    }[kind]()
    assert described is not None
    return dict(described["tags"])


def _tags(batch: BatchClient, resource_arn: str) -> dict[str, str]:
    return dict(batch.list_tags_for_resource(resourceArn=resource_arn)["tags"])


@pytest.fixture(params=sorted(MAKERS))
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def test_tags_given_at_creation_are_listed_and_described(batch: BatchClient, kind: str) -> None:
    # GIVEN a resource created with tags
    resource_arn = MAKERS[kind](batch, "tagged", {"team": "a", "cost-center": "42"})
    # THEN ListTagsForResource and describe agree on them
    assert _tags(batch, resource_arn) == {"team": "a", "cost-center": "42"}
    assert _described_tags(batch, kind, resource_arn) == {"team": "a", "cost-center": "42"}


def test_a_resource_created_without_tags_has_none(batch: BatchClient, kind: str) -> None:
    resource_arn = MAKERS[kind](batch, "plain", None)
    assert _tags(batch, resource_arn) == {}


def test_tag_adds_and_overwrites_untag_removes(batch: BatchClient, kind: str) -> None:
    # GIVEN a tagged resource
    resource_arn = MAKERS[kind](batch, "res", {"keep": "1", "change": "old", "drop": "x"})
    # WHEN a tag is overwritten and one is added
    batch.tag_resource(resourceArn=resource_arn, tags={"change": "new", "add": ""})
    # THEN both show, the others are kept
    assert _tags(batch, resource_arn) == {"keep": "1", "change": "new", "drop": "x", "add": ""}
    # WHEN two keys are removed (one of them absent)
    batch.untag_resource(resourceArn=resource_arn, tagKeys=["drop", "never-set"])
    # THEN only that key is gone, in the list and in describe
    assert _tags(batch, resource_arn) == {"keep": "1", "change": "new", "add": ""}
    assert _described_tags(batch, kind, resource_arn) == {"keep": "1", "change": "new", "add": ""}


def test_tags_of_one_resource_do_not_touch_another(batch: BatchClient, kind: str) -> None:
    first = MAKERS[kind](batch, "first", {"k": "1"})
    second = MAKERS[kind](batch, "second", {"k": "2"})
    batch.tag_resource(resourceArn=first, tags={"k": "changed"})
    assert (_tags(batch, first), _tags(batch, second)) == ({"k": "changed"}, {"k": "2"})


def test_job_definition_tags_belong_to_one_revision(batch: BatchClient) -> None:
    first = make_jd(batch, "jd", tags={"rev": "1"})["jobDefinitionArn"]
    second = make_jd(batch, "jd")["jobDefinitionArn"]
    batch.tag_resource(resourceArn=second, tags={"rev": "2"})
    assert (_tags(batch, first), _tags(batch, second)) == ({"rev": "1"}, {"rev": "2"})


def test_instance_tags_of_a_ce_are_not_resource_tags(batch: BatchClient) -> None:
    ce_arn = make_ec2_ce(batch, "ce", resources={"tags": {"Name": "worker"}})
    assert _tags(batch, ce_arn) == {}
    assert (describe_ce(batch, ce_arn) or {})["computeResources"]["tags"] == {"Name": "worker"}


def test_fifty_tags_in_total_are_accepted(batch: BatchClient, kind: str) -> None:
    resource_arn = MAKERS[kind](batch, "res", {f"k{i}": "v" for i in range(30)})
    batch.tag_resource(resourceArn=resource_arn, tags={f"n{i}": "v" for i in range(20)})
    assert len(_tags(batch, resource_arn)) == 50


def test_bounds_of_keys_and_values_are_accepted(batch: BatchClient, kind: str) -> None:
    resource_arn = MAKERS[kind](batch, "res", None)
    tags = {"k" * 128: "v" * 256, "awsome": "", "x:aws:y": "z"}
    batch.tag_resource(resourceArn=resource_arn, tags=tags)
    assert _tags(batch, resource_arn) == tags


INVALID_TAGS = [
    pytest.param({}, "tags", id="none"),
    pytest.param({f"k{i}": "v" for i in range(51)}, "tags", id="51"),
    pytest.param({"k" * 129: "v"}, "tags key", id="key-129"),
    pytest.param({"k": "v" * 257}, "tags['k']", id="value-257"),
    pytest.param({"aws:owner": "me"}, "aws:", id="aws-prefix"),
    pytest.param({"AWS:owner": "me"}, "aws:", id="aws-prefix-uppercase"),
]


@pytest.mark.parametrize(("tags", "field"), INVALID_TAGS)
def test_invalid_tag_resource_is_rejected_and_changes_nothing(
    batch: BatchClient, kind: str, tags: dict[str, str], field: str
) -> None:
    resource_arn = MAKERS[kind](batch, "res", {"k": "v"})
    assert_rejected(batch, lambda: batch.tag_resource(resourceArn=resource_arn, tags=tags), field)


@pytest.mark.parametrize(("tags", "field"), INVALID_TAGS)
def test_invalid_tags_on_create_are_rejected_and_nothing_is_created(
    batch: BatchClient, kind: str, tags: dict[str, str], field: str
) -> None:
    make_fargate_ce(batch, "tag-ce")  # the queue maker's CE, created up front so nothing else is written
    assert_rejected(batch, lambda: MAKERS[kind](batch, "res", tags), field)


def test_more_than_fifty_tags_in_total_are_rejected(batch: BatchClient, kind: str) -> None:
    resource_arn = MAKERS[kind](batch, "res", {f"k{i}": "v" for i in range(30)})
    extra = {f"n{i}": "v" for i in range(21)}
    assert_rejected(batch, lambda: batch.tag_resource(resourceArn=resource_arn, tags=extra), "tags", "50")


def test_untagging_more_than_fifty_keys_is_rejected(batch: BatchClient, kind: str) -> None:
    resource_arn = MAKERS[kind](batch, "res", {"k0": "v"})
    keys = [f"k{i}" for i in range(51)]
    assert_rejected(batch, lambda: batch.untag_resource(resourceArn=resource_arn, tagKeys=keys), "tagKeys")


# botocore refuses an empty tag key and an empty tagKeys list itself (it checks `min`), so these go raw.


def test_an_empty_tag_key_is_rejected_on_the_wire(batch: BatchClient, endpoint: str, kind: str) -> None:
    resource_arn = MAKERS[kind](batch, "res", {"k": "v"})
    with nothing_written(batch):
        resp = raw_request(endpoint, "POST", f"/v1/tags/{quote(resource_arn, safe='')}", {"tags": {"": "v"}})
    assert_client_error(resp, "tags key")


def test_untag_without_keys_is_rejected_on_the_wire(batch: BatchClient, endpoint: str, kind: str) -> None:
    resource_arn = MAKERS[kind](batch, "res", {"k": "v"})
    with nothing_written(batch):
        resp = raw_request(endpoint, "DELETE", f"/v1/tags/{quote(resource_arn, safe='')}")
    assert_client_error(resp, "tagKeys")


def test_raw_tag_operations_round_trip(batch: BatchClient, endpoint: str) -> None:
    # The three tag routes as any HTTP client would call them: ARN percent-encoded in the path, keys as a query.
    path = f"/v1/tags/{quote(make_fargate_ce(batch, 'ce'), safe='')}"
    assert raw_request(endpoint, "POST", path, {"tags": {"a": "1", "b": "2", "c": "3"}}).status == 200
    assert raw_request(endpoint, "DELETE", f"{path}?tagKeys=a&tagKeys=c").status == 200
    listed = raw_request(endpoint, "GET", path)
    assert (listed.status, listed.body) == (200, {"tags": {"b": "2"}})


UNKNOWN_ARNS = [
    pytest.param(arn("compute-environment", "missing"), "missing", id="compute-environment"),
    pytest.param(arn("job-queue", "missing"), "missing", id="job-queue"),
    pytest.param(arn("job-definition", "missing:1"), "missing:1", id="job-definition"),
    pytest.param(arn("scheduling-policy", "missing"), "missing", id="scheduling-policy"),
    pytest.param(arn("job-definition", "jd"), "resourceArn", id="job-definition-without-revision"),
    pytest.param("arn:aws:batch:us-east-1:123456789012:consumable-resource/c", "resourceArn", id="unsupported-kind"),
    pytest.param("arn:aws:s3:::bucket/key", "resourceArn", id="not-batch"),
    pytest.param("not-an-arn", "resourceArn", id="not-an-arn"),
]


@pytest.mark.parametrize(("resource_arn", "fragment"), UNKNOWN_ARNS)
@pytest.mark.parametrize("operation", ["list", "tag", "untag"])
def test_unknown_or_malformed_arns_are_client_errors(
    batch: BatchClient, resource_arn: str, fragment: str, operation: str
) -> None:
    make_jd(batch, "jd")
    call = {
        "list": lambda: batch.list_tags_for_resource(resourceArn=resource_arn),
        "tag": lambda: batch.tag_resource(resourceArn=resource_arn, tags={"k": "v"}),
        "untag": lambda: batch.untag_resource(resourceArn=resource_arn, tagKeys=["k"]),
    }[operation]
    assert_rejected(batch, call, fragment)
