"""Concurrency caps under the dispatcher, on both stores (SQLite and DynamoDB on moto), through the API path: a
queue, a share and an array at their cap hold their jobs back with a CAPACITY:CONCURRENCY_LIMIT reason; two
dispatchers racing never exceed a cap (the place is taken in the claim's own conditional transaction); a place
comes back once when the attempt ends, however often its end is reported. (docs/adr/0030)"""

from __future__ import annotations

import json

import pytest

from chalicelib.api import gateway
from chalicelib.compute.port import NullLauncher
from chalicelib.domain import caps
from chalicelib.domain.jobs import RUNNABLE, STARTING, SUCCEEDED
from chalicelib.domain.lifecycle import TaskStarted, TaskStopped
from chalicelib.store.caps import CapRepository
from tests.functional.moto_env import aws_env, network  # noqa: F401 - fixtures
from tests.functional.plane import Plane
from tests.functional.test_dispatch_concurrency import StoreFactory, race, stores  # noqa: F401 - a fixture

JOBS = 12


def a_capped_queue(plane: Plane, cap: int, jobs: int = JOBS) -> tuple[str, list[str]]:
    """A Fargate CE with room for every job, a queue tagged with `cap`, and `jobs` RUNNABLE jobs."""
    ce = plane.fargate_ce("fargate", "subnet-0a1b2c3d", "sg-0a1b2c3d", spot=False, max_vcpus=jobs * 4)
    queue = plane.queue("queue", ce)
    assert tag(plane, queue, {caps.TAG: str(cap)})[0] == 200
    jd = plane.job_definition("work")
    return queue, [plane.submit(queue, jd, f"job-{i}") for i in range(jobs)]


def tag(plane: Plane, arn: str, tags: dict[str, str]) -> tuple[int, str]:
    status, _, text = gateway.handle(plane.svc, "POST", f"/v1/tags/{arn}", {}, json.dumps({"tags": tags}))
    return status, text


def untag(plane: Plane, arn: str, *keys: str) -> None:
    status, _, _ = gateway.handle(plane.svc, "DELETE", f"/v1/tags/{arn}", {}, None, {"tagKeys": list(keys)})
    assert status == 200


def statuses(plane: Plane, job_ids: list[str]) -> list[str]:
    return [plane.job(j).status for j in job_ids]


def running(plane: Plane, scope: str) -> int:
    return CapRepository(plane.svc.repo.items).running([scope])[scope]


def test_two_racing_dispatchers_never_start_more_than_the_queue_cap(stores: StoreFactory) -> None:  # noqa: F811
    # GIVEN two control planes over one store and 12 RUNNABLE jobs on a queue capped at 5
    launcher = NullLauncher()
    first, second = Plane(stores(), launcher), Plane(stores(), launcher)
    second.clock = first.clock
    _, job_ids = a_capped_queue(first, cap=5)

    # WHEN both dispatch at once (each snapshot sees 0 running, so each plans 5 claims)
    placed = race(first, second)

    # THEN exactly 5 jobs were claimed and launched, and the counter holds exactly them
    assert sum(placed) == 5
    assert statuses(first, job_ids).count(STARTING) == 5
    assert len(launcher.launched) == 5
    assert running(first, "Q#queue") == 5
    # ... and the jobs left wait, the head with the cap's reason
    waiting = [first.describe_one(j) for j in job_ids if first.job(j).status == RUNNABLE]
    assert waiting[0]["statusReason"] == (
        "CAPACITY:CONCURRENCY_LIMIT - The job queue queue is at its limit of 5 running job(s) "
        "(tag batchplane:maxRunning)."
    )


def test_a_place_comes_back_once_when_a_job_ends_even_if_its_end_is_reported_twice(stores: StoreFactory) -> None:  # noqa: F811
    plane = Plane(stores())
    _, job_ids = a_capped_queue(plane, cap=2, jobs=4)
    assert plane.dispatch() == 2
    done = next(j for j in job_ids if plane.job(j).status == STARTING)

    plane.on_task_event(done, TaskStarted(1))
    plane.on_task_event(done, TaskStopped(1, 0))
    plane.on_task_event(done, TaskStopped(1, 0))

    assert plane.job(done).status == SUCCEEDED
    assert running(plane, "Q#queue") == 1
    assert plane.dispatch() == 1
    assert running(plane, "Q#queue") == 2
    assert plane.dispatch() == 0


def test_a_cap_raised_or_removed_applies_to_the_jobs_already_waiting(stores: StoreFactory) -> None:  # noqa: F811
    plane = Plane(stores())
    queue, job_ids = a_capped_queue(plane, cap=1, jobs=4)
    assert plane.dispatch() == 1
    assert tag(plane, queue, {caps.TAG: "3"})[0] == 200
    assert plane.dispatch() == 2
    untag(plane, queue, caps.TAG)
    assert plane.dispatch() == 1
    assert statuses(plane, job_ids).count(STARTING) == 4


def test_an_array_runs_at_most_its_cap_of_children_and_the_rest_of_the_queue_goes_on(stores: StoreFactory) -> None:  # noqa: F811
    # GIVEN an array of 6 children capped at 2, submitted before a plain job on the same (uncapped) queue
    plane = Plane(stores())
    ce = plane.fargate_ce("fargate", "subnet-0a1b2c3d", "sg-0a1b2c3d", spot=False, max_vcpus=64)
    queue = plane.queue("queue", ce)
    jd = plane.job_definition("work")
    parent = plane.submit(queue, jd, "array", arrayProperties={"size": 6}, tags={caps.TAG: "2"})
    plain = plane.submit(queue, jd, "plain")

    # WHEN the dispatcher runs
    plane.dispatch()

    # THEN two children and the plain job started; the other children wait with the array's reason
    children = [f"{parent}:{i}" for i in range(6)]
    assert statuses(plane, children).count(STARTING) == 2
    assert plane.job(plain).status == STARTING
    waiting = plane.describe_one(next(c for c in children if plane.job(c).status == RUNNABLE))
    assert waiting["statusReason"] == caps.reason(f"A#{parent}", 2)
    assert f"The array job {parent} is at its limit of 2" in waiting["statusReason"]


def test_a_share_runs_at_most_its_cap_and_other_shares_go_on(stores: StoreFactory) -> None:  # noqa: F811
    # GIVEN a fair-share queue whose policy caps share "a" at 1
    plane = Plane(stores())
    ce = plane.fargate_ce("fargate", "subnet-0a1b2c3d", "sg-0a1b2c3d", spot=False, max_vcpus=64)
    policy = plane.call(
        "CreateSchedulingPolicy",
        name="fair",
        fairsharePolicy={"shareDecaySeconds": 0},
        tags={caps.SHARE_TAG_PREFIX + "a": "1"},
    )["arn"]
    body = plane.call(
        "CreateJobQueue",
        jobQueueName="queue",
        priority=1,
        schedulingPolicyArn=policy,
        computeEnvironmentOrder=[{"order": 1, "computeEnvironment": ce}],
    )
    queue = body["jobQueueArn"]
    jd = plane.job_definition("work")
    a_jobs = [plane.submit(queue, jd, f"a{i}", shareIdentifier="a") for i in range(3)]
    b_jobs = [plane.submit(queue, jd, f"b{i}", shareIdentifier="b") for i in range(3)]

    plane.dispatch()

    assert statuses(plane, a_jobs).count(STARTING) == 1
    assert statuses(plane, b_jobs).count(STARTING) == 3
    waiting = next(plane.describe_one(j) for j in a_jobs if plane.job(j).status == RUNNABLE)
    assert waiting["statusReason"] == (
        "CAPACITY:CONCURRENCY_LIMIT - The share identifier a in job queue queue is at its limit of 1 running job(s) "
        "(tag batchplane:maxRunning:a)."
    )


@pytest.mark.parametrize(
    ("tags", "fragment"),
    [
        ({caps.TAG: "0"}, "tags.batchplane:maxRunning must be a whole number"),
        ({caps.TAG: "lots"}, "tags.batchplane:maxRunning must be a whole number"),
        ({caps.SHARE_TAG_PREFIX + "a": "2"}, "only a scheduling policy takes"),
    ],
    ids=["zero", "not-a-number", "share-cap-on-a-queue"],
)
def test_a_bad_cap_is_refused_naming_the_tag(
    stores: StoreFactory,  # noqa: F811
    tags: dict[str, str],
    fragment: str,
) -> None:
    plane = Plane(stores())
    queue, _ = a_capped_queue(plane, cap=1, jobs=0)
    status, text = tag(plane, queue, tags)
    assert status == 400 and fragment in json.loads(text)["message"], text
    status, _, text = gateway.handle(plane.svc, "GET", f"/v1/tags/{queue}", {}, None)
    assert json.loads(text)["tags"] == {caps.TAG: "1"}
