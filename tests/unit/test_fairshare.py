"""Fair-share scheduling (spec §5.4): weights, prefixes, priorities, decay, computeReservation, and the long run."""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chalicelib.domain import fairshare
from chalicelib.domain.fairshare import History, ShareOrder, ShareState, weight_of
from chalicelib.domain.model import FairsharePolicy, ShareWeight
from chalicelib.domain.scheduling import (
    WAITING_FOR_CAPACITY,
    WAITING_FOR_RESERVATION,
    Blocked,
    CapacityView,
    JobView,
    Plan,
    QueueView,
    dispatch_order,
    plan,
)
from tests.unit.builders import NOW, a_ce, capacity


def a_policy(*weights: tuple[str, float], decay: int = 0, reservation: int = 0) -> FairsharePolicy:
    return FairsharePolicy(decay, reservation, tuple(ShareWeight(s, w) for s, w in weights))


def a_share_queue(
    policy: FairsharePolicy,
    *,
    running: dict[str, float] | None = None,
    history: dict[str, float] | None = None,
    ces: tuple[str, ...] = ("ce",),
) -> QueueView:
    return QueueView("fs", 1, True, ces, fairshare=ShareState(policy, running or {}, history or {}))


def a_job(job_id: str, share: str, vcpus: float = 1, priority: int = 0) -> JobView:
    return JobView(job_id, vcpus, share_identifier=share, scheduling_priority=priority)


def ids(jobs: list[JobView]) -> list[str]:
    return [j.job_id for j in jobs]


def placed(result: Plan) -> list[str]:
    return [p.job_id for p in result.placements]


# -- weights ---------------------------------------------------------------------------------------------------


def test_a_share_without_an_entry_weighs_one() -> None:
    assert weight_of(a_policy(("A", 0.5)), "B") == 1.0


def test_an_exact_entry_wins_over_a_prefix() -> None:
    policy = a_policy(("User*", 2.0), ("UserA", 0.25))

    assert weight_of(policy, "UserA") == 0.25
    assert weight_of(policy, "UserB") == 2.0


def test_a_prefix_applies_to_every_matching_share_on_its_own() -> None:
    policy = a_policy(("Team*", 0.5))

    assert weight_of(policy, "TeamX") == weight_of(policy, "TeamY") == 0.5
    assert weight_of(policy, "Other") == 1.0


def test_the_longest_prefix_wins() -> None:
    assert weight_of(a_policy(("A*", 2.0), ("AB*", 3.0)), "ABC") == 3.0


# -- decay -----------------------------------------------------------------------------------------------------


def test_without_decay_history_is_not_kept() -> None:
    assert fairshare.attempt_usage(4, 0, 60_000, 0) == 0.0
    assert fairshare.decay_factor(1, 0) == 0.0


def test_an_attempt_counts_its_decayed_vcpu_seconds() -> None:
    # 2 vCPUs for 60 s, tau 600 s: 2 * 600 * (1 - e^-0.1)
    assert fairshare.attempt_usage(2, 0, 60_000, 600) == pytest.approx(2 * 600 * (1 - math.exp(-0.1)))
    # short against tau, it is nearly the plain vCPU-seconds
    assert fairshare.attempt_usage(2, 0, 1_000, 600_000) == pytest.approx(2.0, rel=1e-5)


def test_history_decays_by_e_every_decay_period() -> None:
    history = History({"A": 100.0}, at=NOW)

    assert fairshare.decayed(history, NOW + 600_000, 600)["A"] == pytest.approx(100 / math.e)


def test_recording_decays_the_old_and_adds_the_new() -> None:
    history = History({"A": 100.0, "B": 50.0}, at=NOW)

    after = fairshare.record(history, "A", 1, NOW, NOW + 600_000, 600, NOW + 600_000)

    assert after.at == NOW + 600_000
    assert after.shares["A"] == pytest.approx(100 / math.e + 600 * (1 - 1 / math.e))
    assert after.shares["B"] == pytest.approx(50 / math.e)


def test_a_late_stop_is_decayed_from_when_it_stopped_and_the_clock_never_goes_back() -> None:
    history = History({}, at=NOW + 600_000)

    after = fairshare.record(history, "A", 1, NOW - 1_000, NOW, 600, now=NOW + 1)

    assert after.at == NOW + 600_000
    assert after.shares["A"] == pytest.approx(fairshare.attempt_usage(1, NOW - 1_000, NOW, 600) / math.e)


def test_negligible_history_is_dropped() -> None:
    history = History({"old": 1.0}, at=NOW)

    after = fairshare.record(history, "A", 1, NOW, NOW + 1_000, 1, NOW + 60_000)

    assert "old" not in after.shares


def test_usage_is_running_vcpus_plus_the_average_over_the_decay_period() -> None:
    state = ShareState(a_policy(decay=600), running={"A": 2.0}, history={"A": 1200.0})

    assert state.usage("A") == pytest.approx(4.0)
    assert state.usage("A", placed=1.0) == pytest.approx(5.0)
    assert ShareState(a_policy(decay=0), {"A": 2.0}, {"A": 1200.0}).usage("A") == 2.0


# -- the order -------------------------------------------------------------------------------------------------


def test_the_share_with_the_lowest_weighted_usage_goes_first() -> None:
    # GIVEN A runs 2 vCPUs at weight 1 (usage 2), B runs 3 at weight 0.5 (usage 1.5)
    queue = a_share_queue(a_policy(("B", 0.5)), running={"A": 2, "B": 3})

    # THEN B's job goes first even though A's was submitted first
    assert ids(dispatch_order(queue, [a_job("a1", "A"), a_job("b1", "B")]))[0] == "b1"


def test_placements_in_the_cycle_count_and_weights_split_the_order() -> None:
    # GIVEN two idle shares, B with weight 0.5: B may hold twice A's vCPUs before A is next again
    queue = a_share_queue(a_policy(("B", 0.5)))
    jobs = [a_job(f"a{i}", "A") for i in range(3)] + [a_job(f"b{i}", "B") for i in range(6)]

    order = ids(dispatch_order(queue, jobs))

    assert order == ["a0", "b0", "b1", "a1", "b2", "b3", "a2", "b4", "b5"]


def test_within_a_share_higher_scheduling_priority_first_then_submission_order() -> None:
    queue = a_share_queue(a_policy())
    jobs = [a_job("low", "A", priority=1), a_job("high", "A", priority=9), a_job("high-later", "A", priority=9)]

    assert ids(dispatch_order(queue, jobs)) == ["high", "high-later", "low"]


def test_scheduling_priority_does_not_cross_shares() -> None:
    # GIVEN B's job has a far higher priority, but A's usage is lower
    queue = a_share_queue(a_policy(), running={"B": 1})

    assert ids(dispatch_order(queue, [a_job("b", "B", priority=9999), a_job("a", "A", priority=0)])) == ["a", "b"]


def test_history_counts_against_a_share() -> None:
    # GIVEN A ran a lot recently (average 3 vCPUs over the decay period), B did not
    queue = a_share_queue(a_policy(decay=600), history={"A": 1800.0})

    assert ids(dispatch_order(queue, [a_job("a", "A"), a_job("b", "B")])) == ["b", "a"]


def test_equal_usage_ties_go_to_the_earlier_submission() -> None:
    queue = a_share_queue(a_policy())

    assert ids(dispatch_order(queue, [a_job("b", "B"), a_job("a", "A")])) == ["b", "a"]


def test_a_skipped_job_does_not_count_as_usage() -> None:
    order = ShareOrder(ShareState(a_policy()), [a_job("a1", "A", vcpus=8), a_job("a2", "A"), a_job("b1", "B")])

    first = order.peek()
    order.skip()

    # A placed nothing: its next job still ties with B's, and was submitted first
    after = order.peek()
    assert first is not None and first.job_id == "a1"
    assert after is not None and after.job_id == "a2"


# -- plan ------------------------------------------------------------------------------------------------------


def test_a_fair_share_queue_fills_a_ce_by_weight() -> None:
    queue = a_share_queue(a_policy(("B", 0.5)))
    jobs = [a_job(f"a{i}", "A") for i in range(5)] + [a_job(f"b{i}", "B") for i in range(5)]

    result = plan([queue], capacity(a_ce("ce", max_vcpus=3)), {"fs": jobs})

    assert sorted(placed(result)) == ["a0", "b0", "b1"]
    assert result.blocked == (Blocked("a1", WAITING_FOR_CAPACITY),)


def test_the_next_job_by_share_waits_when_it_does_not_fit() -> None:
    # GIVEN B is next by usage but its 4-vCPU job does not fit in the 2 free vCPUs
    queue = a_share_queue(a_policy(), running={"A": 2})
    jobs = [a_job("a", "A"), a_job("b", "B", vcpus=4)]

    result = plan([queue], capacity(a_ce("ce", max_vcpus=4, used=2)), {"fs": jobs})

    # THEN nothing jumps it (no backfill) and it waits with a reason
    assert result == Plan((), (Blocked("b", WAITING_FOR_CAPACITY),))


def test_compute_reservation_keeps_room_for_inactive_shares() -> None:
    # GIVEN computeReservation 50 and one active share on 8 vCPUs: (0.5)^1 of them is reserved
    queue = a_share_queue(a_policy(reservation=50))
    jobs = [a_job(f"a{i}", "A") for i in range(8)]

    result = plan([queue], capacity(a_ce("ce", max_vcpus=8)), {"fs": jobs})

    assert placed(result) == ["a0", "a1", "a2", "a3"]
    assert result.blocked == (Blocked("a4", WAITING_FOR_RESERVATION),)


def test_compute_reservation_shrinks_as_shares_become_active() -> None:
    # GIVEN two active shares: (0.5)^2 = 25% of 8 vCPUs reserved, 6 usable
    queue = a_share_queue(a_policy(reservation=50))
    jobs = [a_job(f"a{i}", "A") for i in range(8)] + [a_job(f"b{i}", "B") for i in range(8)]

    result = plan([queue], capacity(a_ce("ce", max_vcpus=8)), {"fs": jobs})

    assert len(result.placements) == 6


def test_running_jobs_count_against_the_reservation() -> None:
    queue = a_share_queue(a_policy(reservation=50), running={"A": 4})

    result = plan([queue], capacity(a_ce("ce", max_vcpus=8, used=4)), {"fs": [a_job("a", "A")]})

    assert result == Plan((), (Blocked("a", WAITING_FOR_RESERVATION),))


# -- the long run ----------------------------------------------------------------------------------------------


@dataclass
class Simulation:
    """A pure loop: plan a cycle, run the placed jobs for their share's fixed duration, record the usage of those
    that finished, tick. Every share always has a backlog."""

    policy: FairsharePolicy
    durations: dict[str, int]  # share -> seconds per job
    max_vcpus: float
    vcpus: float = 1.0
    now: int = NOW
    history: History = field(default_factory=History)
    running: list[tuple[str, str, int, int]] = field(default_factory=list)  # job id, share, started, ends
    vcpu_seconds: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    serial: int = 0

    def backlog(self) -> list[JobView]:
        jobs = []
        for _ in range(int(self.max_vcpus) + 1):  # enough for any share to fill the CE alone
            for share in self.durations:
                self.serial += 1
                jobs.append(JobView(f"{share}-{self.serial}", self.vcpus, share_identifier=share))
        return jobs

    def step(self) -> None:
        for job_id, share, started, ends in [r for r in self.running if r[3] <= self.now]:
            self.running.remove((job_id, share, started, ends))
            self.history = fairshare.record(
                self.history, share, self.vcpus, started, ends, self.policy.share_decay_seconds, self.now
            )
        running: dict[str, float] = defaultdict(float)
        for _, share, _, _ in self.running:
            running[share] += self.vcpus
        history = fairshare.decayed(self.history, self.now, self.policy.share_decay_seconds)
        queue = QueueView("fs", 1, True, ("ce",), fairshare=ShareState(self.policy, running, history))
        ce = CapacityView("ce", self.max_vcpus, sum(running.values()), True)
        jobs = {j.job_id: j for j in self.backlog()}
        for p in plan([queue], {"ce": ce}, {"fs": list(jobs.values())}).placements:
            owner = jobs[p.job_id].share_identifier
            assert owner is not None
            self.running.append((p.job_id, owner, self.now, self.now + self.durations[owner] * 1000))
        for _, share, _, _ in self.running:
            self.vcpu_seconds[share] += self.vcpus
        self.now += 1000

    def fractions(self) -> dict[str, float]:
        total = sum(self.vcpu_seconds.values())
        return {share: used / total for share, used in self.vcpu_seconds.items()}


WEIGHTS = st.sampled_from([0.25, 0.5, 1.0, 2.0, 4.0])


@settings(max_examples=25, derandomize=True, deadline=None)
@given(
    weights=st.lists(WEIGHTS, min_size=2, max_size=3),
    durations=st.lists(st.integers(1, 5), min_size=3, max_size=3),
    max_vcpus=st.sampled_from([24.0, 32.0, 48.0]),
    decay=st.sampled_from([0, 60, 600]),
)
def test_in_the_long_run_capacity_splits_by_weight(
    weights: list[float], durations: list[int], max_vcpus: float, decay: int
) -> None:
    # GIVEN shares with backlogs, weights and (different) fixed job durations
    shares = [f"S{i}" for i in range(len(weights))]
    policy = a_policy(*zip(shares, weights, strict=True), decay=decay)
    sim = Simulation(policy, dict(zip(shares, durations, strict=False)), max_vcpus)

    # WHEN the scheduler runs for a long while
    for _ in range(1500):
        sim.step()

    # THEN each share's fraction of the vCPU-time is its inverse weight's fraction, within a slot or so
    inverse = {s: 1 / w for s, w in zip(shares, weights, strict=True)}
    expected = {s: v / sum(inverse.values()) for s, v in inverse.items()}
    got = sim.fractions()
    tolerance = 1.5 / max_vcpus + 0.02
    for share in shares:
        assert got[share] == pytest.approx(expected[share], abs=tolerance), (got, expected)
    # and the CE was kept full
    assert sum(sim.vcpu_seconds.values()) == pytest.approx(max_vcpus * 1500, rel=0.02)
