"""Consumable resources under the dispatcher, on both stores (SQLite and DynamoDB on moto), through the API path:
units are taken in the claim's own conditional transaction, so two dispatchers racing for the same units never
overspend them; they come back exactly once when the attempt ends, however often its end is reported; a
NON_REPLENISHABLE resource's units are gone for good. (docs/adr/0026-consumable-resources.md)"""

from __future__ import annotations

import dataclasses
import json

from chalicelib.api import gateway
from chalicelib.compute.port import NullLauncher
from chalicelib.domain import consumables
from chalicelib.domain.jobs import RUNNABLE, STARTING, SUCCEEDED
from chalicelib.domain.lifecycle import Cancel, Claim, TaskStarted, TaskStopped, Terminate
from chalicelib.store.consumables import ConsumableRepository
from tests.functional.moto_env import aws_env, network  # noqa: F401 - fixtures
from tests.functional.plane import Plane
from tests.functional.test_dispatch_concurrency import StoreFactory, race, stores  # noqa: F401 - a fixture

JOBS = 12


def a_plane_with_a_resource(
    plane: Plane, total: int, *, kind: str = consumables.REPLENISHABLE, jobs: int = JOBS, units: int = 1
) -> list[str]:
    """A Fargate CE with room for every job, a queue, a resource of `total` units and `jobs` jobs needing `units`."""
    ce = plane.fargate_ce("fargate", "subnet-0a1b2c3d", "sg-0a1b2c3d", spot=False, max_vcpus=jobs * 4)
    queue = plane.queue("queue", ce)
    plane.call("CreateConsumableResource", consumableResourceName="licence", totalQuantity=total, resourceType=kind)
    props = {"consumableResourceList": [{"consumableResource": "licence", "quantity": units}]}
    jd = plane.job_definition("work", consumableResourceProperties=props)
    return [plane.submit(queue, jd, f"job-{i}") for i in range(jobs)]


def consumables_repo(plane: Plane) -> ConsumableRepository:
    return ConsumableRepository(plane.svc.repo.items)


def licence(plane: Plane) -> dict[str, object]:
    return plane.call("DescribeConsumableResource", consumableResource="licence")


def quantities(plane: Plane) -> tuple[object, object, object]:
    r = licence(plane)
    return r["totalQuantity"], r["inUseQuantity"], r["availableQuantity"]


def test_two_racing_dispatchers_never_spend_more_units_than_there_are(stores: StoreFactory) -> None:  # noqa: F811
    # GIVEN two control planes over one store, 12 RUNNABLE jobs needing 1 unit each of a resource of 5
    launcher = NullLauncher()
    first, second = Plane(stores(), launcher), Plane(stores(), launcher)
    second.clock = first.clock
    job_ids = a_plane_with_a_resource(first, total=5)

    # WHEN both dispatch at the same time (each snapshot sees 5 units free, so each plans 5 claims)
    placed = race(first, second)

    # THEN exactly 5 jobs were claimed and launched, and the resource holds exactly their units
    assert sum(placed) == 5
    statuses = [first.job(j).status for j in job_ids]
    assert statuses.count(STARTING) == 5 and statuses.count(RUNNABLE) == JOBS - 5
    assert len(launcher.launched) == 5 and len(set(launcher.calls)) == 5
    assert quantities(first) == (5, 5, 0)
    # ... and the jobs left wait with the resource's reason
    waiting = first.describe_one(next(j for j in job_ids if first.job(j).status == RUNNABLE))
    assert waiting["statusReason"] == consumables.WAITING_FOR_RESOURCES.format(needs="licence (1 needed)")


def test_units_come_back_once_when_a_job_ends_even_if_its_end_is_reported_twice(stores: StoreFactory) -> None:  # noqa: F811
    plane = Plane(stores())
    job_ids = a_plane_with_a_resource(plane, total=2, jobs=3)
    assert plane.dispatch() == 2
    running = [j for j in job_ids if plane.job(j).status == STARTING]
    done = running[0]

    # WHEN a running job succeeds and its stop is delivered twice
    plane.on_task_event(done, TaskStarted(1))
    plane.on_task_event(done, TaskStopped(1, 0))
    plane.on_task_event(done, TaskStopped(1, 0))

    # THEN its unit is back once: 2 total, 1 in use, 1 available
    assert plane.job(done).status == SUCCEEDED
    assert quantities(plane) == (2, 1, 1)
    # ... and the waiting job takes it
    assert plane.dispatch() == 1
    assert quantities(plane) == (2, 2, 0)


def test_a_failed_a_terminated_and_a_cancelled_job_all_return_their_units(stores: StoreFactory) -> None:  # noqa: F811
    plane = Plane(stores())
    job_ids = a_plane_with_a_resource(plane, total=3, jobs=4)
    assert plane.dispatch() == 3
    a, b, c = (j for j in job_ids if plane.job(j).status == STARTING)
    plane.on_task_event(a, TaskStarted(1))
    plane.on_task_event(a, TaskStopped(1, 1))  # fails
    plane.reactor.apply(b, Terminate("stop it"))  # terminated while STARTING
    plane.on_task_event(b, TaskStopped(1, None, status_reason="stop it"))
    plane.on_task_event(c, TaskStarted(1))
    plane.on_task_event(c, TaskStopped(1, 137, timed_out=True))  # attempt timeout
    assert quantities(plane) == (3, 0, 3)
    # AND a RUNNABLE job cancelled while waiting never held any
    (last,) = [j for j in job_ids if plane.job(j).status == RUNNABLE]
    plane.reactor.apply(last, Cancel("no longer needed"))
    assert quantities(plane) == (3, 0, 3)


def test_non_replenishable_units_are_consumed_for_good(stores: StoreFactory) -> None:  # noqa: F811
    plane = Plane(stores())
    job_ids = a_plane_with_a_resource(plane, total=3, kind=consumables.NON_REPLENISHABLE, jobs=4, units=2)
    assert plane.dispatch() == 1  # 2 units each: one job fits in 3
    (first,) = [j for j in job_ids if plane.job(j).status == STARTING]
    assert quantities(plane) == (3, 2, 1)
    plane.on_task_event(first, TaskStarted(1))
    plane.on_task_event(first, TaskStopped(1, 0))
    # THEN the units left the total with the job: 1 unit is all there is, and no other job can run
    assert quantities(plane) == (1, 0, 1)
    assert plane.dispatch() == 0
    # WHEN more are added  THEN the next job runs
    body = {"consumableResource": "licence", "operation": "ADD", "quantity": 1}
    status, _, _ = gateway.handle(plane.svc, "POST", "/v1/updateconsumableresource", {}, json.dumps(body))
    assert status == 200
    assert plane.dispatch() == 1


def test_a_resource_in_use_is_not_deleted_and_jobs_waiting_for_a_deleted_one_say_so(stores: StoreFactory) -> None:  # noqa: F811
    plane = Plane(stores())
    job_ids = a_plane_with_a_resource(plane, total=1, jobs=2)
    assert plane.dispatch() == 1
    held, waiting = sorted(job_ids, key=lambda j: plane.job(j).status != STARTING)
    body = {"consumableResource": "licence"}
    status, _, text = gateway.handle(plane.svc, "POST", "/v1/deleteconsumableresource", {}, json.dumps(body))
    assert status == 400 and "in use" in json.loads(text)["message"]

    # WHEN the job holding it ends, the resource is deleted, and the dispatcher runs
    plane.on_task_event(held, TaskStarted(1))
    plane.on_task_event(held, TaskStopped(1, 0))
    plane.call("DeleteConsumableResource", consumableResource="licence")
    assert plane.dispatch() == 0
    # THEN the job that needed it stays RUNNABLE with a MISCONFIGURATION reason naming it
    job = plane.describe_one(waiting)
    assert (job["status"], job["statusReason"]) == (RUNNABLE, consumables.RESOURCE_MISSING.format(name="licence"))


def test_a_claim_whose_units_went_meanwhile_takes_none_of_them(stores: StoreFactory) -> None:  # noqa: F811
    # GIVEN a job needing one unit of each of two resources, and the second's last unit taken after it was planned
    plane = Plane(stores())
    ce = plane.fargate_ce("fargate", "subnet-0a1b2c3d", "sg-0a1b2c3d", spot=False)
    queue = plane.queue("queue", ce)
    for name in ("licence", "db"):
        plane.call("CreateConsumableResource", consumableResourceName=name, totalQuantity=1)
    both = {"consumableResourceList": [{"consumableResource": n, "quantity": 1} for n in ("licence", "db")]}
    job_id = plane.submit(queue, plane.job_definition("work", consumableResourceProperties=both), "both")
    db = consumables_repo(plane).get("db")
    assert db is not None
    consumables_repo(plane).save(dataclasses.replace(db, in_use_quantity=1))

    # WHEN its claim is applied (as a dispatcher with a stale snapshot would)
    after = plane.reactor.apply(job_id, Claim("fargate", "task-1", "work/default/task-1"))

    # THEN the claim is not made, nothing was launched, and the first resource's unit was not taken either
    assert after is not None and after.status == RUNNABLE
    assert isinstance(plane.launcher, NullLauncher) and plane.launcher.launched == []
    assert quantities(plane) == (1, 0, 1)


def test_a_retried_attempt_returns_its_units_and_the_next_attempt_takes_them_again(stores: StoreFactory) -> None:  # noqa: F811
    plane = Plane(stores())
    ce = plane.fargate_ce("fargate", "subnet-0a1b2c3d", "sg-0a1b2c3d", spot=False)
    queue = plane.queue("queue", ce)
    plane.call("CreateConsumableResource", consumableResourceName="licence", totalQuantity=1)
    needs = {"consumableResourceList": [{"consumableResource": "licence", "quantity": 1}]}
    jd = plane.job_definition("work", consumableResourceProperties=needs)
    job_id = plane.submit(queue, jd, "flaky", retryStrategy={"attempts": 2})
    assert plane.dispatch() == 1 and quantities(plane) == (1, 1, 0)
    plane.on_task_event(job_id, TaskStarted(1))
    plane.on_task_event(job_id, TaskStopped(1, 1))  # fails: back to RUNNABLE for attempt 2
    assert plane.job(job_id).status == RUNNABLE and quantities(plane) == (1, 0, 1)
    assert plane.dispatch() == 1 and quantities(plane) == (1, 1, 0)
    plane.on_task_event(job_id, TaskStarted(2))
    plane.on_task_event(job_id, TaskStopped(2, 0))
    assert plane.job(job_id).status == SUCCEEDED and quantities(plane) == (1, 0, 1)


def test_each_child_of_an_array_takes_its_own_units(stores: StoreFactory) -> None:  # noqa: F811
    # GIVEN an array of 4 children needing 1 unit each of a resource of 2
    plane = Plane(stores())
    ce = plane.fargate_ce("fargate", "subnet-0a1b2c3d", "sg-0a1b2c3d", spot=False)
    queue = plane.queue("queue", ce)
    plane.call("CreateConsumableResource", consumableResourceName="licence", totalQuantity=2)
    needs = {"consumableResourceList": [{"consumableResource": "licence", "quantity": 1}]}
    parent = plane.submit(
        queue,
        plane.job_definition("work"),
        "array",
        arrayProperties={"size": 4},
        consumableResourcePropertiesOverride=needs,
    )
    # WHEN the dispatcher runs  THEN two children hold a unit each, the parent none
    assert plane.dispatch() == 2
    assert quantities(plane) == (2, 2, 0)
    children = [f"{parent}:{i}" for i in range(4)]
    started = [c for c in children if plane.job(c).status == STARTING]
    assert len(started) == 2
    # ... and a finished child's unit goes to the next
    plane.on_task_event(started[0], TaskStarted(1))
    plane.on_task_event(started[0], TaskStopped(1, 0))
    assert plane.dispatch() == 1 and quantities(plane) == (2, 2, 0)
