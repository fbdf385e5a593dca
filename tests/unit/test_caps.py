"""Concurrency caps, pure parts: which caps a job is under (from tags), what a cap tag may hold, and scheduling's
step 4c (a queue at its cap blocks, an array or a share at its cap is skipped). (docs/adr/0030)"""

from __future__ import annotations

import dataclasses

import pytest

from chalicelib.domain import caps
from chalicelib.domain.errors import InvalidRequest
from chalicelib.domain.scheduling import Blocked, JobView, plan
from tests.unit.builders import a_ce, a_queue, a_runnable, capacity

QUEUE_CAP = (("Q#q", 2),)


def capped(job_id: str, *pairs: tuple[str, int]) -> JobView:
    return dataclasses.replace(a_runnable(job_id), caps=tuple(pairs))


def test_a_job_is_under_the_caps_its_queue_policy_and_array_tags_set() -> None:
    got = caps.caps_of(
        queue="q",
        queue_tags={caps.TAG: "10", "team": "a"},
        job_tags={caps.TAG: "3"},
        parent_id="parent",
        share="blue",
        policy_tags={caps.SHARE_TAG_PREFIX + "blue": "4", caps.SHARE_TAG_PREFIX + "red": "1"},
    )
    assert got == (("Q#q", 10), ("S#q#blue", 4), ("A#parent", 3))


def test_a_job_that_is_not_an_array_child_is_not_under_its_own_tag() -> None:
    got = caps.caps_of(queue="q", queue_tags={}, job_tags={caps.TAG: "3"}, parent_id=None, share=None, policy_tags={})
    assert got == ()


def test_a_tag_that_is_not_a_cap_is_ignored_where_it_was_never_checked() -> None:
    got = caps.caps_of(queue="q", queue_tags={caps.TAG: "x"}, job_tags={}, parent_id=None, share=None, policy_tags={})
    assert got == ()


@pytest.mark.parametrize("value", ["0", "-1", "1.5", "ten", "", "1000001"])
def test_a_cap_is_a_whole_number_from_one_to_a_million(value: str) -> None:
    with pytest.raises(InvalidRequest, match=r"tags\.batchplane:maxRunning must be a whole number"):
        caps.check_tags({caps.TAG: value}, "tags")


def test_a_share_cap_belongs_on_a_policy_and_names_a_share() -> None:
    with pytest.raises(InvalidRequest, match="only a scheduling policy"):
        caps.check_tags({caps.SHARE_TAG_PREFIX + "a": "1"}, "tags")
    with pytest.raises(InvalidRequest, match="must name a share identifier"):
        caps.check_tags({caps.SHARE_TAG_PREFIX: "1"}, "tags", shares=True)
    caps.check_tags({caps.SHARE_TAG_PREFIX + "a": "1", "other": "x"}, "tags", shares=True)


def test_a_queue_at_its_cap_blocks_the_whole_queue() -> None:
    # GIVEN a queue capped at 2 running 1, three jobs waiting
    jobs = {"q": [capped(f"j{i}", *QUEUE_CAP) for i in range(3)]}
    # WHEN a cycle runs THEN one more starts and the next waits with the cap's reason; the third gets no reason
    result = plan([a_queue("q", "ce")], capacity(a_ce("ce", max_vcpus=16)), jobs, running={"Q#q": 1})
    assert [p.job_id for p in result.placements] == ["j0"]
    assert result.blocked == (Blocked("j1", caps.reason("Q#q", 2)),)


def test_an_array_at_its_cap_is_skipped_and_the_queue_goes_on() -> None:
    jobs = {"q": [capped("a:0", ("A#a", 1)), capped("a:1", ("A#a", 1)), a_runnable("plain")]}
    result = plan([a_queue("q", "ce")], capacity(a_ce("ce", max_vcpus=16)), jobs)
    assert [p.job_id for p in result.placements] == ["a:0", "plain"]
    assert result.blocked == (Blocked("a:1", caps.reason("A#a", 1)),)


def test_a_job_already_waiting_with_the_caps_reason_is_not_reported_again() -> None:
    reason = caps.reason("Q#q", 2)
    waiting = dataclasses.replace(capped("j", *QUEUE_CAP), status_reason=reason)
    result = plan([a_queue("q", "ce")], capacity(a_ce("ce", max_vcpus=16)), {"q": [waiting]}, running={"Q#q": 2})
    assert result.placements == () and result.blocked == ()


def test_the_reason_says_what_is_capped_and_by_which_tag() -> None:
    assert caps.reason("S#q#blue", 4) == (
        "CAPACITY:CONCURRENCY_LIMIT - The share identifier blue in job queue q is at its limit of 4 running job(s) "
        "(tag batchplane:maxRunning:blue)."
    )
    assert caps.at_limit((("Q#q", 2), ("A#a", 1)), {"A#a": 1}) == ("A#a", 1)
    assert caps.at_limit((("Q#q", 2),), {"Q#q": 1}) is None
