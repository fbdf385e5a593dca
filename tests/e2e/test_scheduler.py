"""The scheduler end to end: real processes under the local runtime, driven through the stock boto3 batch client.

Queue priority, the maxvCpus cap, blocking reasons, DISABLED queues, fair share by weight, and GetJobQueueSnapshot's
front in dispatch order. Order is asserted on what batchplane records (startedAt/stoppedAt, the STARTING state
change events the dispatcher publishes in claim order), never on wall-clock speed. Every wait is bounded.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.e2e.conftest import (
    Client,
    describe,
    register,
    setup_queue,
    sh,
    submit,
    unique,
    wait_for,
    wait_status,
    wait_terminal,
)

pytestmark = pytest.mark.e2e

NO_ENABLED_CE = (
    "ACTION_REQUIRED - CE(s) associated with the job queue are DISABLED: enable one (UpdateComputeEnvironment) for "
    "the job to run."
)
MAX_RESOURCE = "MISCONFIGURATION:COMPUTE_ENVIRONMENT_MAX_RESOURCE"


def set_ce(batch: Client, ce: str, state: str) -> None:
    batch.update_compute_environment(computeEnvironment=ce, state=state)


def add_queue(batch: Client, ce: str, priority: int, **extra: Any) -> str:
    name = unique("q")
    batch.create_job_queue(
        jobQueueName=name,
        priority=priority,
        computeEnvironmentOrder=[{"order": 1, "computeEnvironment": ce}],
        **extra,
    )
    return name


def fair_share_policy(batch: Client, *weights: tuple[str, float], decay: int = 0) -> str:
    resp = batch.create_scheduling_policy(
        name=unique("fs"),
        fairsharePolicy={
            "shareDecaySeconds": decay,
            "computeReservation": 0,
            "shareDistribution": [{"shareIdentifier": s, "weightFactor": w} for s, w in weights],
        },
    )
    return str(resp["arn"])


def max_overlap(jobs: list[dict[str, Any]]) -> float:
    """The most vCPUs running at once, from the jobs' startedAt/stoppedAt (a stop at the same ms as a start first)."""
    edges = []
    for job in jobs:
        for attempt in job["attempts"]:
            vcpus = 1.0  # every job here asks for 1 vCPU
            edges += [(attempt["startedAt"], 1, vcpus), (attempt["stoppedAt"], 0, -vcpus)]
    running = peak = 0.0
    for _, _, delta in sorted(edges):
        running += delta
        peak = max(peak, running)
    return peak


def test_high_priority_jobs_start_first_and_the_ce_never_runs_more_than_its_vcpus(batch: Client) -> None:
    # GIVEN one 2-vCPU CE, DISABLED, shared by a low-priority queue (jobs submitted first) and a high-priority one
    low_q, ce = setup_queue(batch, max_vcpus=2)
    high_q = add_queue(batch, ce, priority=10)
    set_ce(batch, ce, "DISABLED")
    jd = register(batch, unique("nap"), sh("sleep 0.3"))
    low = [submit(batch, low_q, jd, "low") for _ in range(4)]
    high = [submit(batch, high_q, jd, "high") for _ in range(4)]

    # ... every job waits, and each queue's head says why
    heads = wait_for(batch, [low[0], high[0]], lambda j: j.get("statusReason") == NO_ENABLED_CE, "blocked", 15)
    assert {j["status"] for j in heads.values()} == {"RUNNABLE"}

    # WHEN the CE is enabled
    set_ce(batch, ce, "ENABLED")
    jobs = wait_terminal(batch, low + high, timeout=60)

    # THEN all succeed, every high-priority job started before any low-priority one
    assert {j["status"] for j in jobs.values()} == {"SUCCEEDED"}
    assert max(jobs[i]["startedAt"] for i in high) <= min(jobs[i]["startedAt"] for i in low)
    # ... and never were more than 2 vCPUs in use
    assert max_overlap(list(jobs.values())) <= 2


def test_a_job_needing_more_vcpus_than_the_ce_has_shows_the_misconfiguration(batch: Client) -> None:
    queue, _ = setup_queue(batch, max_vcpus=2)
    big = register(
        batch,
        unique("big"),
        ["true"],
        resourceRequirements=[{"type": "VCPU", "value": "4"}, {"type": "MEMORY", "value": "8192"}],
    )
    small = register(batch, unique("small"), ["true"])
    stuck = submit(batch, queue, big, "big")
    fine = submit(batch, queue, small, "small")

    found = wait_for(batch, [stuck], lambda j: str(j.get("statusReason", "")).startswith(MAX_RESOURCE), "blocked", 15)

    assert found[stuck]["status"] == "RUNNABLE"
    # ... and it does not hold up the job behind it
    assert wait_terminal(batch, [fine])[fine]["status"] == "SUCCEEDED"
    assert describe(batch, [stuck])[stuck]["status"] == "RUNNABLE"


def test_a_disabled_queue_still_runs_the_jobs_it_holds(batch: Client) -> None:
    # AWS JobQueueDetail.state: "new jobs can't be added to the queue, but jobs already in the queue can finish"
    # GIVEN jobs queued behind a DISABLED CE, then their queue is DISABLED and the CE enabled
    held_q, ce = setup_queue(batch, max_vcpus=2)
    set_ce(batch, ce, "DISABLED")
    jd = register(batch, unique("quick"), ["true"])
    held = [submit(batch, held_q, jd, "held") for _ in range(3)]
    batch.update_job_queue(jobQueue=held_q, state="DISABLED")
    set_ce(batch, ce, "ENABLED")

    # THEN the jobs it held run to completion
    assert {j["status"] for j in wait_terminal(batch, held).values()} == {"SUCCEEDED"}


def test_a_fair_share_queue_splits_the_ce_by_weight(batch: Client) -> None:
    # GIVEN a 3-vCPU CE (DISABLED for now) and a fair-share queue where share B weighs 0.5 against A's 1
    _, ce = setup_queue(batch, max_vcpus=3)
    queue = add_queue(batch, ce, priority=5, schedulingPolicyArn=fair_share_policy(batch, ("A", 1.0), ("B", 0.5)))
    set_ce(batch, ce, "DISABLED")
    jd = register(batch, unique("nap"), sh("sleep 0.3"))
    a = [submit(batch, queue, jd, "a", shareIdentifier="A") for _ in range(8)]
    b = [submit(batch, queue, jd, "b", shareIdentifier="B") for _ in range(16)]

    # WHEN the CE is enabled and everything runs
    set_ce(batch, ce, "ENABLED")
    jobs = wait_terminal(batch, a + b, timeout=90)
    assert {j["status"] for j in jobs.values()} == {"SUCCEEDED"}

    # THEN while both shares had a backlog, B got about two of every three start slots
    end = min(max(jobs[i]["startedAt"] for i in a), max(jobs[i]["startedAt"] for i in b))
    started_a = sum(1 for i in a if jobs[i]["startedAt"] < end)
    started_b = sum(1 for i in b if jobs[i]["startedAt"] < end)
    assert started_a + started_b >= 12
    assert started_b / (started_a + started_b) == pytest.approx(2 / 3, abs=0.12)
    assert max_overlap(list(jobs.values())) <= 3


def test_the_snapshot_front_is_the_dispatch_order(batch: Client, events: list[dict[str, Any]]) -> None:
    # GIVEN a fair-share queue on a DISABLED CE with room for all, jobs of three shares and priorities
    _, ce = setup_queue(batch, max_vcpus=8)
    policy = fair_share_policy(batch, ("A", 1.0), ("B", 0.5), ("C", 2.0))
    queue = add_queue(batch, ce, priority=5, schedulingPolicyArn=policy)
    set_ce(batch, ce, "DISABLED")
    jd = register(batch, unique("quick"), ["true"])
    submitted = [
        submit(batch, queue, jd, "j", shareIdentifier=share, schedulingPriorityOverride=priority)
        for share, priority in [("A", 0), ("A", 5), ("B", 0), ("C", 0), ("B", 9), ("A", 0), ("C", 1), ("B", 0)]
    ]

    # WHEN the snapshot is read, then the CE enabled
    front = batch.get_job_queue_snapshot(jobQueue=queue)["frontOfQueue"]["jobs"]
    set_ce(batch, ce, "ENABLED")
    wait_terminal(batch, submitted)

    # THEN the dispatcher claimed the jobs (its STARTING events, published in claim order) in the front's order
    shown = [j["jobArn"].rsplit("/", 1)[1] for j in front]
    claimed = [e["detail"]["jobId"] for e in list(events) if e["detail"].get("status") == "STARTING"]
    assert claimed == shown
    assert shown == [submitted[i] for i in (1, 4, 6, 2, 0, 7, 3, 5)]
    assert sorted(shown) == sorted(submitted)


def test_jobs_wait_runnable_with_a_reason_while_the_queue_is_full(batch: Client) -> None:
    queue, _ = setup_queue(batch, max_vcpus=1)
    jd = register(batch, unique("nap"), sh("sleep 1"))
    first, second = submit(batch, queue, jd, "first"), submit(batch, queue, jd, "second")

    wait_status(batch, [first], "RUNNING")
    waiting = wait_for(batch, [second], lambda j: bool(j.get("statusReason")), "given a reason", 15)[second]

    assert waiting["status"] == "RUNNABLE"
    assert waiting["statusReason"].startswith("CAPACITY:")
    assert wait_terminal(batch, [second])[second]["status"] == "SUCCEEDED"
