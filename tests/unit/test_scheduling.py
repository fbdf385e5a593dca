"""One scheduling cycle (spec §5.1-5.3): queue priority, FIFO, compute environment order, blocking."""

from __future__ import annotations

from collections import defaultdict

from hypothesis import given, settings
from hypothesis import strategies as st

from chalicelib.domain.scheduling import (
    MAX_RESOURCE,
    NO_CE,
    NO_VALID_CE,
    Blocked,
    CapacityView,
    JobView,
    Plan,
    QueueView,
    plan,
)
from tests.unit.builders import a_ce, a_queue, a_runnable, capacity


def placed(result: Plan) -> list[tuple[str, str]]:
    return [(p.job_id, p.compute_environment) for p in result.placements]


# -- priority and FIFO -----------------------------------------------------------------------------------------


def test_queues_sharing_a_ce_are_served_in_descending_priority() -> None:
    # GIVEN two queues on one CE with room for 2 vCPUs, each with two 1-vCPU jobs
    queues = [a_queue("low", "ce", priority=1), a_queue("high", "ce", priority=10)]
    runnable = {"low": [a_runnable("low-1"), a_runnable("low-2")], "high": [a_runnable("high-1"), a_runnable("high-2")]}

    # WHEN a cycle runs
    result = plan(queues, capacity(a_ce("ce", max_vcpus=2)), runnable)

    # THEN the high-priority queue takes the room, whatever the order the queues were given in
    assert placed(result) == [("high-1", "ce"), ("high-2", "ce")]
    assert result.blocked == ()


def test_queues_of_equal_priority_are_served_by_name() -> None:
    queues = [a_queue("b", "ce", priority=5), a_queue("a", "ce", priority=5)]

    result = plan(queues, capacity(a_ce("ce", max_vcpus=1)), {"a": [a_runnable("a-1")], "b": [a_runnable("b-1")]})

    assert placed(result) == [("a-1", "ce")]


def test_a_lower_priority_queue_gets_what_is_left() -> None:
    queues = [a_queue("high", "ce", priority=10), a_queue("low", "ce", priority=1)]
    runnable = {"high": [a_runnable("high-1", vcpus=3)], "low": [a_runnable("low-1", vcpus=1)]}

    result = plan(queues, capacity(a_ce("ce", max_vcpus=4)), runnable)

    assert placed(result) == [("high-1", "ce"), ("low-1", "ce")]


def test_jobs_are_placed_in_fifo_order_within_a_queue() -> None:
    # GIVEN room for three of five jobs
    runnable = {"high": [a_runnable(f"job-{i}") for i in range(5)]}

    result = plan([a_queue("high", "ce")], capacity(a_ce("ce", max_vcpus=3)), runnable)

    # THEN the first three, in order
    assert placed(result) == [("job-0", "ce"), ("job-1", "ce"), ("job-2", "ce")]


def test_capacity_already_in_use_counts() -> None:
    runnable = {"high": [a_runnable("job-0"), a_runnable("job-1")]}

    result = plan([a_queue("high", "ce")], capacity(a_ce("ce", max_vcpus=4, used=3)), runnable)

    assert placed(result) == [("job-0", "ce")]


def test_a_job_that_fills_the_ce_exactly_is_placed() -> None:
    ces = capacity(a_ce("ce", max_vcpus=4, used=1.5))

    result = plan([a_queue("high", "ce")], ces, {"high": [a_runnable("j", 2.5)]})

    assert placed(result) == [("j", "ce")]


# -- compute environment order ---------------------------------------------------------------------------------


def test_jobs_overflow_to_the_next_ce_in_order() -> None:
    # GIVEN a queue on spot (2 vCPUs) then on-demand (2 vCPUs)
    queue = a_queue("high", "spot", "ondemand")
    ces = capacity(a_ce("spot", max_vcpus=2), a_ce("ondemand", max_vcpus=2))
    runnable = {"high": [a_runnable(f"job-{i}") for i in range(5)]}

    # WHEN five 1-vCPU jobs are placed
    result = plan([queue], ces, runnable)

    # THEN spot fills first, then on-demand, and the fifth waits
    assert placed(result) == [
        ("job-0", "spot"),
        ("job-1", "spot"),
        ("job-2", "ondemand"),
        ("job-3", "ondemand"),
    ]


def test_the_queues_ce_order_is_followed_not_the_snapshots() -> None:
    ces = capacity(a_ce("a", max_vcpus=4), a_ce("b", max_vcpus=4))

    result = plan([a_queue("high", "b", "a")], ces, {"high": [a_runnable("job-0")]})

    assert placed(result) == [("job-0", "b")]


def test_a_job_too_big_for_the_first_ce_goes_to_a_later_one() -> None:
    ces = capacity(a_ce("small", max_vcpus=2), a_ce("big", max_vcpus=16))

    result = plan([a_queue("high", "small", "big")], ces, {"high": [a_runnable("job-0", vcpus=8)]})

    assert placed(result) == [("job-0", "big")]


def test_an_unschedulable_ce_is_skipped() -> None:
    # GIVEN the first CE is DISABLED or INVALID
    ces = capacity(a_ce("spot", max_vcpus=8, schedulable=False), a_ce("ondemand", max_vcpus=8))

    result = plan([a_queue("high", "spot", "ondemand")], ces, {"high": [a_runnable("job-0")]})

    # THEN the job goes to the next one
    assert placed(result) == [("job-0", "ondemand")]


def test_a_queue_whose_ces_are_all_unschedulable_reports_the_head_as_blocked() -> None:
    ces = capacity(a_ce("spot", schedulable=False))

    result = plan([a_queue("high", "spot")], ces, {"high": [a_runnable("job-0"), a_runnable("job-1")]})

    assert result == Plan((), (Blocked("job-0", NO_VALID_CE),))


def test_a_queue_without_known_ces_reports_the_head_as_blocked() -> None:
    result = plan([a_queue("high", "gone")], {}, {"high": [a_runnable("job-0")]})

    assert result == Plan((), (Blocked("job-0", NO_CE),))


def test_a_disabled_queue_places_nothing() -> None:
    # GIVEN a DISABLED queue with runnable jobs and room on its CE
    queue = a_queue("high", "ce", enabled=False)

    result = plan([queue], capacity(a_ce("ce", max_vcpus=8)), {"high": [a_runnable("job-0", vcpus=100)]})

    # THEN nothing is placed, nor reported blocked
    assert result == Plan((), ())


def test_a_disabled_queue_leaves_the_room_to_the_next_queue() -> None:
    queues = [a_queue("high", "ce", priority=10, enabled=False), a_queue("low", "ce", priority=1)]
    runnable = {"high": [a_runnable("high-0")], "low": [a_runnable("low-0")]}

    assert placed(plan(queues, capacity(a_ce("ce", max_vcpus=1)), runnable)) == [("low-0", "ce")]


# -- blocking --------------------------------------------------------------------------------------------------


def test_a_job_larger_than_every_ce_is_blocked_and_skipped() -> None:
    # GIVEN a job asking for more vCPUs than any CE of its queue has, ahead of a small one
    ces = capacity(a_ce("spot", max_vcpus=4), a_ce("ondemand", max_vcpus=8))
    runnable = {"high": [a_runnable("huge", vcpus=9), a_runnable("small")]}

    # WHEN a cycle runs
    result = plan([a_queue("high", "spot", "ondemand")], ces, runnable)

    # THEN the huge job is reported with MAX_RESOURCE and does not hold up the queue
    assert result.blocked == (Blocked("huge", MAX_RESOURCE),)
    assert placed(result) == [("small", "spot")]


def test_a_blocked_job_already_carrying_the_reason_is_not_reported_again() -> None:
    runnable = {"high": [a_runnable("huge", vcpus=9, status_reason=MAX_RESOURCE)]}

    result = plan([a_queue("high", "ce")], capacity(a_ce("ce", max_vcpus=4)), runnable)

    assert result == Plan((), ())


def test_a_job_larger_than_every_schedulable_ce_is_blocked() -> None:
    ces = capacity(a_ce("small", max_vcpus=2), a_ce("big", max_vcpus=16, schedulable=False))

    result = plan([a_queue("high", "small", "big")], ces, {"high": [a_runnable("job-0", vcpus=8)]})

    assert result.blocked == (Blocked("job-0", MAX_RESOURCE),)


def test_a_job_that_fits_but_not_now_blocks_the_rest_of_its_queue() -> None:
    # GIVEN 2 of 4 vCPUs in use; the head needs 3, the one behind it needs 1
    runnable = {"high": [a_runnable("head", vcpus=3), a_runnable("behind", vcpus=1)]}

    result = plan([a_queue("high", "ce")], capacity(a_ce("ce", max_vcpus=4, used=2)), runnable)

    # THEN nothing is placed (no backfill), and the head is not reported as misconfigured
    assert result == Plan((), ())


def test_a_blocked_queue_does_not_stop_the_next_queue() -> None:
    # GIVEN the high queue's head waits for room on "shared"; the low queue also uses "own"
    queues = [a_queue("high", "shared", priority=10), a_queue("low", "shared", "own", priority=1)]
    ces = capacity(a_ce("shared", max_vcpus=4, used=2), a_ce("own", max_vcpus=4))
    runnable = {"high": [a_runnable("high-head", vcpus=3)], "low": [a_runnable("low-0", vcpus=2)]}

    # WHEN a cycle runs
    result = plan(queues, ces, runnable)

    # THEN the low queue is still evaluated (and may use what high could not)
    assert placed(result) == [("low-0", "shared")]


# -- property: never over capacity -----------------------------------------------------------------------------

VCPUS = st.sampled_from([0.25, 0.5, 1.0, 2.0, 4.0, 8.0])


@st.composite
def snapshots(draw: st.DrawFn) -> tuple[list[QueueView], dict[str, CapacityView], dict[str, list[JobView]]]:
    ce_names = [f"ce-{i}" for i in range(draw(st.integers(1, 4)))]
    ces = {}
    for name in ce_names:
        max_vcpus = draw(st.sampled_from([0.0, 1.0, 2.0, 4.0, 8.0, 16.0]))
        used = draw(st.sampled_from([u for u in (0.0, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0) if u <= max_vcpus]))
        ces[name] = a_ce(name, max_vcpus=max_vcpus, used=used, schedulable=draw(st.booleans()))
    queues, runnable = [], {}
    for q in range(draw(st.integers(1, 4))):
        order = draw(st.lists(st.sampled_from(ce_names), min_size=1, max_size=3, unique=True))
        queue = a_queue(f"q-{q}", *order, priority=draw(st.integers(0, 3)), enabled=draw(st.booleans()))
        queues.append(queue)
        runnable[queue.name] = [a_runnable(f"q-{q}-job-{j}", vcpus=v) for j, v in enumerate(draw(st.lists(VCPUS)))]
    return queues, ces, runnable


@settings(max_examples=300, derandomize=True, deadline=None)
@given(snapshots())
def test_a_plan_never_exceeds_any_ces_capacity(
    snapshot: tuple[list[QueueView], dict[str, CapacityView], dict[str, list[JobView]]],
) -> None:
    queues, ces, runnable = snapshot

    result = plan(queues, ces, runnable)

    jobs = {j.job_id: j for js in runnable.values() for j in js}
    queue_of = {j.job_id: q.name for q in queues for j in runnable[q.name]}
    by_name = {q.name: q for q in queues}
    added: dict[str, float] = defaultdict(float)
    for p in result.placements:
        queue = by_name[queue_of[p.job_id]]
        # each job placed once, from an ENABLED queue, on one of its queue's schedulable CEs
        assert queue.enabled
        assert p.compute_environment in queue.compute_environments
        assert ces[p.compute_environment].schedulable
        added[p.compute_environment] += jobs[p.job_id].vcpus
    assert len({p.job_id for p in result.placements}) == len(result.placements)
    for name, extra in added.items():
        assert ces[name].used_vcpus + extra <= ces[name].max_vcpus
    # a job is either placed or reported blocked, never both
    assert not {p.job_id for p in result.placements} & {b.job_id for b in result.blocked}


@settings(max_examples=200, derandomize=True, deadline=None)
@given(snapshots())
def test_within_a_queue_placements_keep_fifo_order(
    snapshot: tuple[list[QueueView], dict[str, CapacityView], dict[str, list[JobView]]],
) -> None:
    queues, ces, runnable = snapshot

    result = plan(queues, ces, runnable)

    # the placed jobs of a queue, in placement order, are a subsequence of the queue in FIFO order
    for queue in queues:
        order = [j.job_id for j in runnable[queue.name]]
        mine = [p.job_id for p in result.placements if p.job_id in order]
        assert mine == [j for j in order if j in mine]
        # ... and a job skipped ahead of a placed one was too big for every schedulable CE (no backfill)
        if mine:
            usable_max = max((ces[n].max_vcpus for n in queue.compute_environments if ces[n].schedulable), default=0)
            for job in runnable[queue.name][: order.index(mine[-1])]:
                if job.job_id not in mine:
                    assert job.vcpus > usable_max
