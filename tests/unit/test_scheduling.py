"""One scheduling cycle (spec §5.1-5.3, §5.6): queue priority, FIFO, compute environment order, blocking reasons,
jobStateTimeLimitActions. Fair share has its own module (test_fairshare.py)."""

from __future__ import annotations

from collections import defaultdict

from hypothesis import given, settings
from hypothesis import strategies as st

from chalicelib.domain.scheduling import (
    MAX_RESOURCE,
    NO_CE,
    NO_ENABLED_CE,
    NO_VALID_CE,
    RESOURCE_REQUIREMENT,
    WAITING_FOR_CAPACITY,
    Blocked,
    CapacityView,
    Expired,
    JobView,
    Plan,
    QueueView,
    TimeLimitAction,
    plan,
)
from tests.unit.builders import NOW, a_ce, a_queue, a_runnable, capacity


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
    assert result.blocked == (Blocked("low-1", WAITING_FOR_CAPACITY),)


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


def test_a_queue_whose_ces_are_all_invalid_reports_the_head_as_blocked() -> None:
    ces = capacity(a_ce("spot", schedulable=False, valid=False))

    result = plan([a_queue("high", "spot")], ces, {"high": [a_runnable("job-0"), a_runnable("job-1")]})

    assert result == Plan((), (Blocked("job-0", NO_VALID_CE),))


def test_a_queue_whose_ces_are_valid_but_disabled_says_so() -> None:
    # GIVEN one INVALID and one VALID but DISABLED compute environment
    ces = capacity(a_ce("bad", schedulable=False, valid=False), a_ce("off", schedulable=False))

    result = plan([a_queue("high", "bad", "off")], ces, {"high": [a_runnable("job-0")]})

    # THEN the head waits with the DISABLED reason, not the INVALID one
    assert result == Plan((), (Blocked("job-0", NO_ENABLED_CE),))


def test_a_queue_without_known_ces_reports_the_head_as_blocked() -> None:
    result = plan([a_queue("high", "gone")], {}, {"high": [a_runnable("job-0")]})

    assert result == Plan((), (Blocked("job-0", NO_CE),))


def test_a_queue_being_deleted_places_nothing() -> None:
    # GIVEN a queue being deleted with runnable jobs and room on its CE (a DISABLED queue still dispatches)
    queue = a_queue("high", "ce", enabled=False)

    result = plan([queue], capacity(a_ce("ce", max_vcpus=8)), {"high": [a_runnable("job-0", vcpus=100)]})

    # THEN nothing is placed, nor reported blocked
    assert result == Plan((), ())


def test_a_queue_being_deleted_leaves_the_room_to_the_next_queue() -> None:
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

    # THEN nothing is placed (no backfill), and the head waits for capacity (not reported as misconfigured)
    assert result == Plan((), (Blocked("head", WAITING_FOR_CAPACITY),))


def test_a_blocked_queue_does_not_stop_the_next_queue() -> None:
    # GIVEN the high queue's head waits for room on "shared"; the low queue also uses "own"
    queues = [a_queue("high", "shared", priority=10), a_queue("low", "shared", "own", priority=1)]
    ces = capacity(a_ce("shared", max_vcpus=4, used=2), a_ce("own", max_vcpus=4))
    runnable = {"high": [a_runnable("high-head", vcpus=3)], "low": [a_runnable("low-0", vcpus=2)]}

    # WHEN a cycle runs
    result = plan(queues, ces, runnable)

    # THEN the low queue is still evaluated (and may use what high could not)
    assert placed(result) == [("low-0", "shared")]


# -- reasons: resource requirements ----------------------------------------------------------------------------


def a_fargate(name: str = "fargate", max_vcpus: float = 16, used: float = 0) -> CapacityView:
    return CapacityView(name, max_vcpus, used, True, resource_type="FARGATE")


def an_ec2(name: str = "ec2", max_vcpus: float = 4, used: float = 0) -> CapacityView:
    return CapacityView(name, max_vcpus, used, True, resource_type="EC2")


def test_a_job_that_is_not_a_fargate_task_size_is_blocked_and_skipped() -> None:
    # GIVEN on a Fargate queue: 1 vCPU with 512 MiB (not a Fargate size) ahead of 1 vCPU with 2048 MiB
    runnable = {"high": [JobView("odd", 1, memory=512), JobView("fine", 1, memory=2048)]}

    result = plan([a_queue("high", "fargate")], capacity(a_fargate()), runnable)

    # THEN the odd one gets JOB_RESOURCE_REQUIREMENT and the one behind it runs
    assert [b.job_id for b in result.blocked] == ["odd"]
    assert result.blocked[0].reason.startswith("MISCONFIGURATION:JOB_RESOURCE_REQUIREMENT - 1 vCPU with 512 MiB")
    assert placed(result) == [("fine", "fargate")]


def test_a_vcpu_count_fargate_does_not_offer_is_a_resource_requirement_problem() -> None:
    result = plan([a_queue("high", "fargate")], capacity(a_fargate()), {"high": [JobView("j", 3, memory=8192)]})

    assert result.blocked[0].reason.startswith("MISCONFIGURATION:JOB_RESOURCE_REQUIREMENT")


def test_more_vcpus_than_every_ce_is_reported_before_the_memory() -> None:
    result = plan([a_queue("high", "fargate")], capacity(a_fargate(max_vcpus=2)), {"high": [JobView("j", 4, memory=1)]})

    assert result.blocked == (Blocked("j", MAX_RESOURCE),)


def test_more_memory_than_an_ec2_ce_could_ever_launch_is_blocked() -> None:
    # GIVEN an EC2 CE of 4 vCPUs: at most 4 x 32 GiB of memory on any instance it could launch
    runnable = {"high": [JobView("huge", 1, memory=4 * 32 * 1024 + 1), JobView("ok", 1, memory=4 * 32 * 1024)]}

    result = plan([a_queue("high", "ec2")], capacity(an_ec2()), runnable)

    assert result.blocked == (Blocked("huge", RESOURCE_REQUIREMENT),)
    assert placed(result) == [("ok", "ec2")]


def test_a_job_goes_to_the_ce_that_can_run_it() -> None:
    # GIVEN the first CE (Fargate) cannot give 1 vCPU with 512 MiB, the second one (unmanaged) sets no memory rule
    ces = capacity(a_fargate("fargate"), a_ce("own", max_vcpus=4))

    result = plan([a_queue("high", "fargate", "own")], ces, {"high": [JobView("j", 1, memory=512)]})

    assert placed(result) == [("j", "own")]
    assert result.blocked == ()


def test_a_head_already_waiting_is_not_reported_again() -> None:
    runnable = {"high": [a_runnable("head", vcpus=3, status_reason=WAITING_FOR_CAPACITY)]}

    result = plan([a_queue("high", "ce")], capacity(a_ce("ce", max_vcpus=4, used=2)), runnable)

    assert result == Plan((), ())


def test_a_job_with_a_stale_reason_gets_the_current_one() -> None:
    # GIVEN a retried job (RUNNABLE again, its reason still the exit of its last attempt) that cannot be placed now
    stale = a_runnable("retried", status_reason="Essential container in task exited")

    result = plan([a_queue("high", "ce")], capacity(a_ce("ce", max_vcpus=1, used=1)), {"high": [stale]})

    assert result.blocked == (Blocked("retried", WAITING_FOR_CAPACITY),)


# -- jobStateTimeLimitActions ----------------------------------------------------------------------------------

MAX_RESOURCE_ACTION = TimeLimitAction("MISCONFIGURATION:COMPUTE_ENVIRONMENT_MAX_RESOURCE", 600)
CAPACITY_ACTION = TimeLimitAction("CAPACITY:INSUFFICIENT_INSTANCE_CAPACITY", 600)


def limited_queue(*actions: TimeLimitAction) -> QueueView:
    return QueueView("high", 1, True, ("ce",), time_limit_actions=actions)


def test_a_job_blocked_longer_than_max_time_seconds_expires() -> None:
    # GIVEN a job that has carried MAX_RESOURCE for 600 s on a queue with a 600 s CANCEL action for that reason
    job = JobView("huge", 9, status_reason=MAX_RESOURCE, reason_since=NOW - 600_000)

    result = plan([limited_queue(MAX_RESOURCE_ACTION)], capacity(a_ce("ce")), {"high": [job]}, NOW)

    assert result.expired == (Expired("huge", MAX_RESOURCE_ACTION.reason),)
    assert result.expired[0].status_reason == (
        "Canceled by JobStateTimeLimit action due to reason: MISCONFIGURATION:COMPUTE_ENVIRONMENT_MAX_RESOURCE"
    )


def test_a_job_blocked_for_less_than_max_time_seconds_stays() -> None:
    job = JobView("huge", 9, status_reason=MAX_RESOURCE, reason_since=NOW - 599_999)

    result = plan([limited_queue(MAX_RESOURCE_ACTION)], capacity(a_ce("ce")), {"high": [job]}, NOW)

    assert result.expired == ()


def test_a_reason_written_now_starts_the_clock() -> None:
    # GIVEN the job's old reason was set long ago, but the cycle gives it a new one
    job = JobView("huge", 9, status_reason="Essential container in task exited", reason_since=0)

    result = plan([limited_queue(MAX_RESOURCE_ACTION)], capacity(a_ce("ce")), {"high": [job]}, NOW)

    assert result == Plan((), (Blocked("huge", MAX_RESOURCE),))


def test_waiting_for_a_busy_ce_never_matches_a_time_limit_action() -> None:
    # GIVEN a head waiting for a full CE for a day, and an INSUFFICIENT_INSTANCE_CAPACITY action
    job = JobView("head", 1, status_reason=WAITING_FOR_CAPACITY, reason_since=NOW - 86_400_000)

    result = plan([limited_queue(CAPACITY_ACTION)], capacity(a_ce("ce", max_vcpus=1, used=1)), {"high": [job]}, NOW)

    # THEN it keeps waiting: a busy CE is queueing, not a capacity shortage
    assert result == Plan((), ())


def test_without_a_clock_nothing_expires() -> None:
    job = JobView("huge", 9, status_reason=MAX_RESOURCE, reason_since=0)

    assert plan([limited_queue(MAX_RESOURCE_ACTION)], capacity(a_ce("ce")), {"high": [job]}).expired == ()


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


@settings(max_examples=300, derandomize=True, deadline=None)
@given(snapshots())
def test_every_job_a_cycle_looked_at_and_did_not_place_has_a_reason(
    snapshot: tuple[list[QueueView], dict[str, CapacityView], dict[str, list[JobView]]],
) -> None:
    queues, ces, runnable = snapshot

    result = plan(queues, ces, runnable)

    # the jobs a FIFO queue looked at: everything up to its last placement, and the one it stopped at
    placed_ids = {p.job_id for p in result.placements}
    reason = {b.job_id: b.reason for b in result.blocked}
    for queue in (q for q in queues if q.enabled):
        jobs = runnable[queue.name]
        last = max((i for i, j in enumerate(jobs) if j.job_id in placed_ids), default=-1)
        looked_at = [j for j in jobs[: last + 1] if j.job_id not in placed_ids] + jobs[last + 1 : last + 2]
        for job in looked_at:
            assert reason.get(job.job_id, job.status_reason), f"{job.job_id} was looked at and left without a reason"
