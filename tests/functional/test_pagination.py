"""nextToken / maxResults through boto3's own paginators (spec §1.3)."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from typing import Any

import pytest

from tests.functional.builders import (
    BatchClient,
    assert_rejected,
    disable_ce,
    make_fargate_ce,
    make_jd,
    make_policy,
    make_queue,
)

NAMES = ["a1", "a2", "b1", "b2", "c1", "c2", "d1"]  # 7: pages of 2 are 2, 2, 2, 1


def _setup_ces(batch: BatchClient) -> None:
    for name in reversed(NAMES):
        make_fargate_ce(batch, name)


def _setup_queues(batch: BatchClient) -> None:
    make_fargate_ce(batch, "ce")
    for name in reversed(NAMES):
        make_queue(batch, name, ["ce"])


def _setup_jds(batch: BatchClient) -> None:
    for name in reversed(NAMES):
        make_jd(batch, name)


def _setup_policies(batch: BatchClient) -> None:
    for name in reversed(NAMES):
        make_policy(batch, name)


# operation -> (setup, result key, name of one result)
LISTINGS: dict[str, tuple[Callable[[BatchClient], None], str, Callable[[dict[str, Any]], str]]] = {
    "describe_compute_environments": (_setup_ces, "computeEnvironments", lambda r: r["computeEnvironmentName"]),
    "describe_job_queues": (_setup_queues, "jobQueues", lambda r: r["jobQueueName"]),
    "describe_job_definitions": (_setup_jds, "jobDefinitions", lambda r: r["jobDefinitionName"]),
    "list_scheduling_policies": (_setup_policies, "schedulingPolicies", lambda r: r["arn"].rsplit("/", 1)[1]),
}


@pytest.fixture(params=sorted(LISTINGS))
def listing(request: pytest.FixtureRequest, batch: BatchClient) -> str:
    """The operation name, with NAMES created for it."""
    LISTINGS[request.param][0](batch)
    return str(request.param)


def _pages(batch: BatchClient, operation: str, **config: Any) -> list[list[str]]:
    _, key, name = LISTINGS[operation]
    paginator = batch.get_paginator(operation)
    return [[name(r) for r in page[key]] for page in paginator.paginate(PaginationConfig=config)]


def test_paginator_walks_every_resource_once_in_pages_of_two(batch: BatchClient, listing: str) -> None:
    # GIVEN seven resources WHEN boto3's paginator reads them two at a time
    pages = _pages(batch, listing, PageSize=2)
    # THEN it gets four pages holding every resource once, in order
    assert pages == [["a1", "a2"], ["b1", "b2"], ["c1", "c2"], ["d1"]]


def test_one_page_of_100_holds_everything_and_has_no_token(batch: BatchClient, listing: str) -> None:
    _, key, name = LISTINGS[listing]
    resp = getattr(batch, listing)(maxResults=100)
    assert [name(r) for r in resp[key]] == NAMES
    assert "nextToken" not in resp


def test_page_size_one_and_resume_from_a_starting_token(batch: BatchClient, listing: str) -> None:
    # GIVEN a first read that stops after 3 items (boto3 keeps the token to resume from)
    first = batch.get_paginator(listing).paginate(PaginationConfig={"PageSize": 1, "MaxItems": 3}).build_full_result()
    _, key, name = LISTINGS[listing]
    assert [name(r) for r in first[key]] == NAMES[:3]
    # WHEN reading resumes from that token THEN the rest follows, nothing repeated or skipped
    rest = batch.get_paginator(listing).paginate(PaginationConfig={"PageSize": 2, "StartingToken": first["NextToken"]})
    assert [name(r) for page in rest for r in page[key]] == NAMES[3:]


def test_an_exact_multiple_of_the_page_size_is_read_completely(batch: BatchClient) -> None:
    for name in NAMES[:6]:
        make_fargate_ce(batch, name)
    pages = _pages(batch, "describe_compute_environments", PageSize=3)
    assert [n for page in pages for n in page] == NAMES[:6]
    assert all(len(page) <= 3 for page in pages)


def test_deleting_the_last_item_of_a_page_does_not_break_the_next_page(batch: BatchClient) -> None:
    # GIVEN the first page of two compute environments and its token
    _setup_ces(batch)
    first = batch.describe_compute_environments(maxResults=2)
    assert [c["computeEnvironmentName"] for c in first["computeEnvironments"]] == ["a1", "a2"]
    # WHEN the last item of that page is deleted before the next page is read
    disable_ce(batch, "a2")
    batch.delete_compute_environment(computeEnvironment="a2")
    # THEN the next page continues after it
    second = batch.describe_compute_environments(maxResults=2, nextToken=first["nextToken"])
    assert [c["computeEnvironmentName"] for c in second["computeEnvironments"]] == ["b1", "b2"]


def test_job_definition_filters_hold_across_pages(batch: BatchClient) -> None:
    # GIVEN revisions of two names where every other revision is deregistered
    for _ in range(5):
        make_jd(batch, "a")
        make_jd(batch, "b")
    for rev in (2, 4):
        batch.deregister_job_definition(jobDefinition=f"a:{rev}")
        batch.deregister_job_definition(jobDefinition=f"b:{rev}")
    paginator = batch.get_paginator("describe_job_definitions")

    def read(**kwargs: Any) -> list[list[tuple[str, int]]]:
        pages = paginator.paginate(PaginationConfig={"PageSize": 2}, **kwargs)
        # A full page carries a token even when nothing follows, so a final page may be empty (AWS does the same).
        got = [[(jd["jobDefinitionName"], jd["revision"]) for jd in page["jobDefinitions"]] for page in pages]
        assert all(got[:-1]), got
        return [page for page in got if page]

    # THEN a status filter yields only ACTIVE revisions, pages still hold up to two, none is lost
    active = read(status="ACTIVE")
    assert [r for page in active for r in page] == [("a", 1), ("a", 3), ("a", 5), ("b", 1), ("b", 3), ("b", 5)]
    assert all(len(page) <= 2 for page in active)
    # THEN a name filter pages through that name's revisions only
    assert read(jobDefinitionName="b") == [[("b", 1), ("b", 2)], [("b", 3), ("b", 4)], [("b", 5)]]
    assert read(jobDefinitionName="b", status="INACTIVE") == [[("b", 2), ("b", 4)]]


def _token(obj: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps(obj).encode()).decode()


BAD_TOKENS = [
    pytest.param("not a token!", id="garbage"),
    pytest.param("@@@@", id="not-base64"),
    pytest.param(base64.urlsafe_b64encode(b"\xff\xfe").decode(), id="not-utf8"),
    pytest.param(base64.urlsafe_b64encode(b"{not json").decode(), id="not-json"),
    pytest.param(_token({"x": "a1"}), id="no-cursor"),
    pytest.param(_token(["a1"]), id="a-list"),
    pytest.param(_token({"c": {"k": "v"}}), id="cursor-an-object"),
    pytest.param(_token({"c": 5}), id="cursor-a-number"),
    pytest.param(_token({"c": None}), id="cursor-null"),
]


@pytest.mark.parametrize("token", BAD_TOKENS)
def test_a_token_this_service_did_not_issue_is_a_client_error(batch: BatchClient, listing: str, token: str) -> None:
    assert_rejected(batch, lambda: getattr(batch, listing)(nextToken=token), "nextToken")


@pytest.mark.parametrize("max_results", [0, -1, 101, 1000])
def test_max_results_outside_1_to_100_is_a_client_error(batch: BatchClient, listing: str, max_results: int) -> None:
    assert_rejected(batch, lambda: getattr(batch, listing)(maxResults=max_results), "maxResults")


def test_max_results_of_one_returns_one_and_a_token(batch: BatchClient, listing: str) -> None:
    _, key, name = LISTINGS[listing]
    resp = getattr(batch, listing)(maxResults=1)
    assert [name(r) for r in resp[key]] == ["a1"]
    assert resp["nextToken"]
    assert "a1" not in resp["nextToken"]  # opaque
