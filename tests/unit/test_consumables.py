"""Consumable resources, the pure parts (domain/consumables.py and step 4b of domain/scheduling.py): units taken
and returned, UpdateConsumableResource's operations, the requirement list's rules, and the scheduler's step."""

from __future__ import annotations

import dataclasses

import pytest

from chalicelib.domain import consumables
from chalicelib.domain.consumables import (
    NON_REPLENISHABLE,
    REPLENISHABLE,
    RESOURCE_MISSING,
    WAITING_FOR_RESOURCES,
    ConsumableResource,
    Unavailable,
)
from chalicelib.domain.errors import InvalidRequest
from chalicelib.domain.jobs import FAILED, RUNNABLE, RUNNING, STARTING, SUCCEEDED
from chalicelib.domain.scheduling import WAITING_FOR_CAPACITY, Blocked, JobView, plan
from tests.unit.builders import a_ce, a_job, a_queue, an_attempt, capacity

ARN = "arn:aws:batch:us-east-1:123456789012:consumable-resource/licence"


def a_resource(total: int = 4, in_use: int = 0, kind: str = REPLENISHABLE) -> ConsumableResource:
    return ConsumableResource("licence", ARN, kind, total, created_at=1, in_use_quantity=in_use)


def needing(job_id: str, units: int, name: str = "licence", vcpus: float = 1) -> JobView:
    return JobView(job_id=job_id, vcpus=vcpus, consumables=((name, units),))


# -- taking and returning ------------------------------------------------------------------------------------------


def test_taking_units_moves_them_to_in_use_and_refuses_more_than_are_available() -> None:
    taken = consumables.take(a_resource(total=4, in_use=1), 3, "licence")
    assert (taken.total_quantity, taken.in_use_quantity, taken.available_quantity) == (4, 4, 0)
    with pytest.raises(Unavailable):
        consumables.take(taken, 1, "licence")
    with pytest.raises(Unavailable):
        consumables.take(None, 1, "licence")  # deleted since the dispatcher looked


def test_a_replenishable_resource_gets_its_units_back_and_a_non_replenishable_one_loses_them() -> None:
    back = consumables.give_back(a_resource(total=4, in_use=3), 2)
    assert (back.total_quantity, back.in_use_quantity, back.available_quantity) == (4, 1, 3)
    gone = consumables.give_back(a_resource(total=4, in_use=3, kind=NON_REPLENISHABLE), 2)
    assert (gone.total_quantity, gone.in_use_quantity, gone.available_quantity) == (2, 1, 1)


def test_a_write_takes_units_when_an_attempt_starts_and_returns_them_when_it_ends() -> None:
    job = a_job(status=RUNNABLE, consumable_resources={ARN: 1})
    claimed = dataclasses.replace(job, status=STARTING, current=an_attempt(1))
    running = dataclasses.replace(claimed, status=RUNNING)
    assert consumables.moves(job, claimed) == 1
    assert consumables.moves(claimed, running) == 0
    for end in (SUCCEEDED, FAILED, RUNNABLE):  # RUNNABLE: a retry; the next attempt takes them again
        assert consumables.moves(running, dataclasses.replace(running, status=end, current=None)) == -1
    assert consumables.moves(None, job) == 0  # submitted RUNNABLE: nothing held
    plain = a_job(status=RUNNABLE)
    assert consumables.moves(plain, dataclasses.replace(plain, status=STARTING, current=an_attempt(1))) == 0


# -- UpdateConsumableResource ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("operation", "quantity", "total"), [("SET", 9, 9), (None, 2, 2), ("ADD", 3, 7), ("REMOVE", 4, 0)]
)
def test_update_operations(operation: str | None, quantity: int, total: int) -> None:
    assert consumables.updated(a_resource(total=4), operation, quantity).total_quantity == total


@pytest.mark.parametrize(
    ("operation", "quantity", "fragment"),
    [("REMOVE", 5, "negative"), ("ADD", -1, "non-negative"), ("MULTIPLY", 1, "operation"), ("ADD", None, "required")],
)
def test_bad_updates_name_the_field(operation: str, quantity: int | None, fragment: str) -> None:
    with pytest.raises(InvalidRequest, match=fragment):
        consumables.updated(a_resource(total=4), operation, quantity)


def test_a_total_set_below_what_is_in_use_leaves_nothing_available() -> None:
    lowered = consumables.updated(a_resource(total=4, in_use=3), "SET", 1)
    assert (lowered.total_quantity, lowered.in_use_quantity, lowered.available_quantity) == (1, 3, 0)


# -- the scheduler's step ------------------------------------------------------------------------------------------


def test_jobs_take_units_in_order_and_the_head_then_waits_with_the_resource_reason() -> None:
    # GIVEN 3 units and three jobs needing 2, 1 and 1, with vCPUs for all of them
    runnable = {"q": [needing("a", 2), needing("b", 1), needing("c", 1)]}
    result = plan([a_queue("q", "ce")], capacity(a_ce("ce", max_vcpus=8)), runnable, resources={"licence": 3})
    # THEN the first two run and the third waits at the head of its queue for units
    assert [p.job_id for p in result.placements] == ["a", "b"]
    assert result.blocked == (Blocked("c", WAITING_FOR_RESOURCES.format(needs="licence (1 needed)")),)


def test_units_are_shared_across_queues() -> None:
    queues = [a_queue("high", "ce", priority=9), a_queue("low", "ce2", priority=1)]
    runnable = {"high": [needing("h", 2)], "low": [needing("l", 1)]}
    cap = capacity(a_ce("ce", max_vcpus=8), a_ce("ce2", max_vcpus=8))
    result = plan(queues, cap, runnable, resources={"licence": 2})
    assert [p.job_id for p in result.placements] == ["h"]
    assert [b.job_id for b in result.blocked] == ["l"]


def test_a_job_naming_a_deleted_resource_is_skipped_with_a_misconfiguration_and_does_not_block() -> None:
    runnable = {"q": [needing("gone", 1, name="deleted"), needing("next", 1)]}
    result = plan([a_queue("q", "ce")], capacity(a_ce("ce", max_vcpus=8)), runnable, resources={"licence": 1})
    assert [p.job_id for p in result.placements] == ["next"]
    assert result.blocked == (Blocked("gone", RESOURCE_MISSING.format(name="deleted")),)


def test_a_job_waiting_for_vcpus_takes_no_units() -> None:
    runnable = {"q": [needing("a", 1, vcpus=4), needing("b", 1, vcpus=4)]}
    result = plan([a_queue("q", "ce")], capacity(a_ce("ce", max_vcpus=4)), runnable, resources={"licence": 5})
    assert [p.job_id for p in result.placements] == ["a"]
    assert result.blocked == (Blocked("b", WAITING_FOR_CAPACITY),)


def test_a_job_already_waiting_for_units_is_not_reported_again() -> None:
    reason = WAITING_FOR_RESOURCES.format(needs="licence (2 needed)")
    waiting = dataclasses.replace(needing("a", 2), status_reason=reason)
    result = plan([a_queue("q", "ce")], capacity(a_ce("ce", max_vcpus=8)), {"q": [waiting]}, resources={"licence": 1})
    assert result.placements == () and result.blocked == ()


# -- the list a definition or a job gives --------------------------------------------------------------------------


def test_requirements_are_checked_and_kept_in_order() -> None:
    props = {
        "consumableResourceList": [
            {"consumableResource": ARN, "quantity": 2},
            {"consumableResource": "db", "quantity": 1},
        ]
    }
    assert consumables.requirements(props, "f") == [(ARN, 2), ("db", 1)]
    assert consumables.requirements(None, "f") == []
    with pytest.raises(
        InvalidRequest, match=r"consumableResourceList\[1\].consumableResource names arn.*more than once"
    ):
        consumables.requirements(
            {
                "consumableResourceList": [
                    {"consumableResource": "licence", "quantity": 1},
                    {"consumableResource": ARN, "quantity": 1},
                ]
            },
            "f",
        )
