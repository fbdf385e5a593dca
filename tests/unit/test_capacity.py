"""Capacity of managed EC2/SPOT compute environments, the pure part (spec §5.5): `allot` shares RUNNABLE demand
among CEs as the dispatcher would place it; `decide` turns running vCPUs and demand into desiredvCpus."""

from __future__ import annotations

from typing import Any

import pytest

from chalicelib.control.capacity import CeCapacity, CeLoad, QueueDemand, allot, clamp, decide
from tests.unit.builders import NOW

MINUTE = 60_000


def a_load(name: str = "spot", max_vcpus: float = 16, running: float = 0, *, schedulable: bool = True) -> CeLoad:
    return CeLoad(name, max_vcpus, running, schedulable)


def loads(*ces: CeLoad) -> dict[str, CeLoad]:
    return {c.name: c for c in ces}


def a_queue(name: str, *ces: str, jobs: tuple[float, ...] = (), priority: int = 1) -> QueueDemand:
    return QueueDemand(name, priority, ces, jobs)


def a_ce(**overrides: Any) -> CeCapacity:
    fields: dict[str, Any] = {
        "name": "spot",
        "min_vcpus": 0,
        "max_vcpus": 64,
        "desired_vcpus": 0,
        "idle_since": None,
        "scale_down_delay_ms": 0,
        "running_vcpus": 0.0,
        "demand_vcpus": 0.0,
    }
    fields.update(overrides)
    return CeCapacity(**fields)


# -- allot ------------------------------------------------------------------------------------------------------


def test_a_queue_s_demand_goes_to_its_first_ce() -> None:
    assert allot([a_queue("q", "spot", "ondemand", jobs=(2, 2, 4))], loads(a_load("spot"), a_load("ondemand"))) == {
        "spot": 8,
        "ondemand": 0,
    }


def test_demand_spills_over_to_the_next_ce_in_order_when_the_first_is_full() -> None:
    ces = loads(a_load("spot", max_vcpus=8, running=4), a_load("ondemand", max_vcpus=16))
    assert allot([a_queue("q", "spot", "ondemand", jobs=(4, 4, 4))], ces) == {"spot": 4, "ondemand": 8}


def test_fargate_first_in_order_takes_demand_before_instances_are_asked_for() -> None:
    ces = loads(a_load("fargate", max_vcpus=4), a_load("spot", max_vcpus=32))
    assert allot([a_queue("q", "fargate", "spot", jobs=(1, 1, 1, 1, 1, 1))], ces) == {"fargate": 4, "spot": 2}


def test_a_disabled_ce_takes_no_demand() -> None:
    ces = loads(a_load("spot", schedulable=False), a_load("ondemand"))
    assert allot([a_queue("q", "spot", "ondemand", jobs=(2,))], ces) == {"spot": 0, "ondemand": 2}


def test_higher_priority_queues_are_served_first() -> None:
    ces = loads(a_load("spot", max_vcpus=10))
    low = a_queue("low", "spot", jobs=(4, 4), priority=1)
    high = a_queue("high", "spot", jobs=(6,), priority=10)
    assert allot([low, high], ces) == {"spot": 10}  # 6 for high, then one 4 of low; the second 4 does not fit


def test_a_job_too_big_for_any_ce_asks_for_nothing() -> None:
    assert allot([a_queue("q", "spot", jobs=(32,))], loads(a_load("spot", max_vcpus=16))) == {"spot": 0}


def test_a_queue_naming_an_unknown_ce_is_harmless() -> None:
    assert allot([a_queue("q", "gone", "spot", jobs=(1,))], loads(a_load("spot"))) == {"spot": 1}


# -- decide -----------------------------------------------------------------------------------------------------


def test_queued_demand_scales_out_at_once() -> None:
    decision = decide(a_ce(demand_vcpus=6), NOW)
    assert (decision.desired_vcpus, decision.action, decision.idle_since) == (6, "scale-out", None)


def test_running_and_queued_add_up_and_fractions_round_up() -> None:
    assert decide(a_ce(running_vcpus=4, demand_vcpus=2.5), NOW).desired_vcpus == 7


def test_desired_is_clamped_to_max_and_min() -> None:
    assert decide(a_ce(max_vcpus=16, demand_vcpus=100), NOW).desired_vcpus == 16
    assert decide(a_ce(min_vcpus=4, demand_vcpus=1), NOW).desired_vcpus == 4


def test_while_busy_desired_never_goes_down() -> None:
    # GIVEN a CE scaled to 32 vCPUs of which 4 still run  WHEN reconciled  THEN it holds (instances run tasks)
    decision = decide(a_ce(desired_vcpus=32, running_vcpus=4), NOW)
    assert (decision.desired_vcpus, decision.action) == (32, "hold")


def test_idle_without_a_delay_scales_in_to_min_at_once() -> None:
    decision = decide(a_ce(desired_vcpus=32, min_vcpus=2), NOW)
    assert (decision.desired_vcpus, decision.action, decision.idle_since) == (2, "scale-in", NOW)


def test_idle_waits_for_min_scale_down_delay() -> None:
    ce = a_ce(desired_vcpus=32, scale_down_delay_ms=20 * MINUTE)

    # WHEN it first becomes idle  THEN the time is remembered and nothing scales in
    first = decide(ce, NOW)
    assert (first.desired_vcpus, first.idle_since, first.action) == (32, NOW, "hold")

    # ... still idle before the delay: hold, same idle_since
    later = decide(a_ce(desired_vcpus=32, scale_down_delay_ms=20 * MINUTE, idle_since=NOW), NOW + 19 * MINUTE)
    assert (later.desired_vcpus, later.idle_since) == (32, NOW)

    # ... once the delay has passed: scale in to minvCpus
    done = decide(a_ce(desired_vcpus=32, scale_down_delay_ms=20 * MINUTE, idle_since=NOW), NOW + 20 * MINUTE)
    assert (done.desired_vcpus, done.action) == (0, "scale-in")


def test_work_arriving_resets_the_idle_clock() -> None:
    decision = decide(a_ce(desired_vcpus=8, idle_since=NOW, demand_vcpus=2), NOW + MINUTE)
    assert (decision.desired_vcpus, decision.idle_since) == (8, None)


def test_a_user_raised_desired_is_kept_while_busy_and_scaled_in_when_idle() -> None:
    assert decide(a_ce(desired_vcpus=48, demand_vcpus=4), NOW).desired_vcpus == 48
    assert decide(a_ce(desired_vcpus=48), NOW).desired_vcpus == 0


def test_a_lowered_max_brings_desired_down_even_while_busy() -> None:
    decision = decide(a_ce(desired_vcpus=64, max_vcpus=16, running_vcpus=8), NOW)
    assert (decision.desired_vcpus, decision.action) == (16, "scale-in")


def test_a_settled_ce_holds() -> None:
    decision = decide(a_ce(desired_vcpus=0, idle_since=NOW - MINUTE), NOW)
    assert (decision.desired_vcpus, decision.action, decision.idle_since) == (0, "hold", NOW - MINUTE)


@pytest.mark.parametrize(("value", "expected"), [(-1, 0), (0, 0), (5, 5), (17, 16)])
def test_clamp(value: int, expected: int) -> None:
    assert clamp(value, 0, 16) == expected
