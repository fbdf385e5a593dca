"""Deleting job queues and compute environments (control/deletion.py, docs/adr/0021): through the API operations
(the wire handlers) over a real SQLite store, tasks driven by hand (NullLauncher), the sweep called directly."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from chalicelib.api import gateway
from chalicelib.compute.port import NullLauncher
from chalicelib.control import deletion, resources
from chalicelib.control.dispatch import Dispatcher
from chalicelib.control.react import Reactor
from chalicelib.control.sweep import SweepPolicy, sweep
from chalicelib.domain import lifecycle
from chalicelib.domain.errors import StoreUnavailable
from chalicelib.domain.jobs import DEPENDENCY_FAILED, FAILED, PENDING, RUNNABLE, RUNNING, STARTING
from chalicelib.domain.model import DELETING
from chalicelib.store.sqlite import SqliteItemStore
from tests.functional.plane import Plane, SeqIds

QUEUE_GONE = deletion.queue_deleted_reason("q")


class StopRecorder(NullLauncher):
    def __init__(self) -> None:
        super().__init__()
        self.stops: list[tuple[str, int, str]] = []

    def stop(self, job_id: str, attempt: int, reason: str) -> None:
        self.stops.append((job_id, attempt, reason))


@pytest.fixture
def plane(tmp_path: Path) -> Iterator[Plane]:
    store = SqliteItemStore(str(tmp_path / "state.db"))
    try:
        yield Plane(store, StopRecorder())
    finally:
        store.close()


def stops(plane: Plane) -> list[tuple[str, int, str]]:
    assert isinstance(plane.launcher, StopRecorder)
    return plane.launcher.stops


def error_of(plane: Plane, operation: str, **body: Any) -> str:
    status, _, text = gateway.handle(plane.svc, "POST", f"/v1/{operation.lower()}", {}, json.dumps(body))
    assert status == 400, (status, text)
    return str(json.loads(text)["message"])


def setup(plane: Plane, *, max_vcpus: int = 1) -> tuple[str, str, str]:
    ce = plane.fargate_ce("ce", "subnet-1", "sg-1", spot=False, max_vcpus=max_vcpus)
    return ce, plane.queue("q", ce), plane.job_definition("work")


def queue_status(plane: Plane, name: str = "q") -> str | None:
    found = plane.call("DescribeJobQueues", jobQueues=[name])["jobQueues"]
    return str(found[0]["status"]) if found else None


def delete_queue(plane: Plane, name: str = "q") -> None:
    plane.call("UpdateJobQueue", jobQueue=name, state="DISABLED")
    plane.call("DeleteJobQueue", jobQueue=name)


def past_the_grace(plane: Plane) -> None:
    """The clock past the deletion grace: a pass may now remove what it finds empty."""
    plane.clock.now += plane.svc.settings.deletion_grace_ms


def run(plane: Plane, job_id: str) -> None:
    plane.reactor.apply(job_id, lifecycle.TaskStarted(1))
    assert plane.job(job_id).status == RUNNING


# -- job queues ------------------------------------------------------------------------------------------------


def test_deleting_a_queue_terminates_its_waiting_jobs_and_frees_the_name(plane: Plane) -> None:
    # GIVEN a queue with a RUNNABLE job (no room: the CE holds one vCPU, taken), a PENDING one, and a dependent of it
    # in another queue
    ce, _, jd = setup(plane)
    plane.queue("other", ce)
    busy = plane.submit("q", jd, "busy")
    plane.dispatch()
    waiting = plane.submit("q", jd, "waiting")
    pending = plane.submit("q", jd, "pending", dependsOn=[{"jobId": waiting}])
    elsewhere = plane.submit("other", jd, "elsewhere", dependsOn=[{"jobId": pending}])
    run(plane, busy)

    # WHEN the queue is disabled and deleted
    delete_queue(plane)

    # THEN its waiting jobs fail at once with the reason, and so does the dependent in the other queue
    assert {j: plane.job(j).status_reason for j in (waiting, pending)} == dict.fromkeys((waiting, pending), QUEUE_GONE)
    assert plane.job(elsewhere).status == FAILED
    assert plane.job(elsewhere).status_reason == f"{DEPENDENCY_FAILED}: {pending}"
    # ... the running one is asked to stop; the queue is DELETING until it has stopped, and its name is taken
    assert stops(plane) == [(busy, 1, QUEUE_GONE)]
    assert queue_status(plane) == DELETING
    assert "being deleted" in error_of(
        plane,
        "CreateJobQueue",
        jobQueueName="q",
        priority=1,
        computeEnvironmentOrder=[{"order": 1, "computeEnvironment": ce}],
    )
    assert "being deleted" in error_of(plane, "UpdateJobQueue", jobQueue="q", state="ENABLED")
    assert "being deleted" in error_of(plane, "SubmitJob", jobName="late", jobQueue="q", jobDefinition=jd)
    # ... ListJobs still reaches its jobs meanwhile
    listed = plane.call("ListJobs", jobQueue="q", jobStatus="FAILED")["jobSummaryList"]
    assert {j["jobId"] for j in listed} == {waiting, pending}

    # WHEN the running job's stop is reported and the sweep runs
    plane.reactor.apply(busy, lifecycle.TaskStopped(1, 143))
    assert (plane.job(busy).status, plane.job(busy).status_reason) == (FAILED, QUEUE_GONE)
    assert sweep(plane.svc, plane.reactor, plane.clock.now_ms()).deleted == []  # within the grace: still DELETING
    assert queue_status(plane) == DELETING
    past_the_grace(plane)
    report = sweep(plane.svc, plane.reactor, plane.clock.now_ms())

    # THEN the queue is gone, and a new queue of that name starts empty and runs only its own jobs
    assert report.deleted == ["q"]
    assert queue_status(plane) is None
    plane.queue("q", ce)
    fresh = plane.submit("q", jd, "fresh")
    assert plane.dispatch() == 1
    assert plane.job(fresh).status == STARTING
    assert all(plane.job(j).status == FAILED for j in (busy, waiting, pending))


def test_a_crash_after_the_marker_is_finished_by_the_sweep_in_passes(
    plane: Plane, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN a queue of 7 waiting jobs (the CE is disabled), marked DELETING by a delete that crashed before
    # terminating anything; a pass terminates at most 3 jobs
    ce, _, jd = setup(plane)
    plane.call("UpdateComputeEnvironment", computeEnvironment=ce, state="DISABLED")
    jobs = [plane.submit("q", jd, f"j{i}") for i in range(7)]
    jq = plane.svc.repo.get_jq("q")
    assert jq is not None
    plane.svc.repo.save_jq(dataclasses.replace(jq, state="DISABLED", status=DELETING))
    monkeypatch.setattr(deletion, "DRAIN_PASS", 3)

    # WHEN sweeps run
    first = sweep(plane.svc, plane.reactor, plane.clock.now_ms())
    assert sum(plane.job(j).status == FAILED for j in jobs) == 3
    assert first.deleted == [] and queue_status(plane) == DELETING
    sweep(plane.svc, plane.reactor, plane.clock.now_ms())
    last = sweep(plane.svc, plane.reactor, plane.clock.now_ms())

    # THEN every job was terminated once, with the reason, and the queue is gone
    assert [plane.job(j).status_reason for j in jobs] == [QUEUE_GONE] * 7
    assert last.deleted == ["q"] and queue_status(plane) is None


def test_a_big_queue_is_drained_by_the_request_then_the_sweeps(plane: Plane, monkeypatch: pytest.MonkeyPatch) -> None:
    # GIVEN 7 waiting jobs; the Delete request terminates at most 2, a sweep pass at most 3
    ce, _, jd = setup(plane)
    plane.call("UpdateComputeEnvironment", computeEnvironment=ce, state="DISABLED")
    jobs = [plane.submit("q", jd, f"j{i}") for i in range(7)]
    monkeypatch.setattr(deletion, "INLINE_PASS", 2)
    monkeypatch.setattr(deletion, "DRAIN_PASS", 3)

    def failed() -> int:
        return sum(plane.job(j).status == FAILED for j in jobs)

    # WHEN the queue is deleted THEN the request terminated 2, and the queue is DELETING
    delete_queue(plane)
    assert (failed(), queue_status(plane)) == (2, DELETING)
    # WHEN sweeps run THEN they finish the job, and the queue is gone
    sweep(plane.svc, plane.reactor, plane.clock.now_ms())
    assert (failed(), queue_status(plane)) == (5, DELETING)
    past_the_grace(plane)
    assert sweep(plane.svc, plane.reactor, plane.clock.now_ms()).deleted == ["q"]
    assert failed() == 7 and queue_status(plane) is None


def test_a_queue_being_deleted_dispatches_nothing(plane: Plane) -> None:
    # GIVEN a DELETING queue with a RUNNABLE job left (the deletion was interrupted before the drain)
    _, _, jd = setup(plane, max_vcpus=4)
    job = plane.submit("q", jd)
    jq = plane.svc.repo.get_jq("q")
    assert jq is not None
    plane.svc.repo.save_jq(dataclasses.replace(jq, state="DISABLED", status=DELETING))
    # WHEN the dispatcher runs THEN the job is not placed
    assert plane.dispatch() == 0
    assert plane.job(job).status == RUNNABLE


def test_an_array_in_a_deleted_queue_is_terminated_with_its_children(plane: Plane) -> None:
    _, _, jd = setup(plane)
    plane.call("UpdateComputeEnvironment", computeEnvironment="ce", state="DISABLED")
    parent = plane.submit("q", jd, "array", arrayProperties={"size": 3})

    delete_queue(plane)
    past_the_grace(plane)
    sweep(plane.svc, plane.reactor, plane.clock.now_ms())

    assert plane.job(parent).status == FAILED
    assert {plane.job(f"{parent}:{i}").status for i in range(3)} == {FAILED}
    assert queue_status(plane) is None


# -- compute environments --------------------------------------------------------------------------------------


def test_deleting_a_compute_environment_terminates_the_jobs_still_running_on_it(plane: Plane) -> None:
    # GIVEN a job running on a CE that was then disabled and detached from its queue (moved to another CE)
    ce, _, jd = setup(plane)
    spare = plane.fargate_ce("spare", "subnet-1", "sg-1", spot=False)
    job = plane.submit("q", jd)
    plane.dispatch()
    run(plane, job)
    plane.call("UpdateComputeEnvironment", computeEnvironment="ce", state="DISABLED")
    plane.call("UpdateJobQueue", jobQueue="q", computeEnvironmentOrder=[{"order": 1, "computeEnvironment": spare}])

    # WHEN the CE is deleted
    plane.call("DeleteComputeEnvironment", computeEnvironment=ce)

    # THEN it is DELETING, its job is asked to stop, and it cannot be updated nor its name reused meanwhile
    reason = deletion.ce_deleted_reason("ce")
    found = plane.call("DescribeComputeEnvironments", computeEnvironments=["ce"])["computeEnvironments"]
    assert found[0]["status"] == DELETING
    assert stops(plane) == [(job, 1, reason)]
    assert "being deleted" in error_of(plane, "UpdateComputeEnvironment", computeEnvironment="ce", state="ENABLED")
    # WHEN the stop is reported and the sweep runs THEN the job failed with the reason and the CE is gone
    plane.reactor.apply(job, lifecycle.TaskStopped(1, 143))
    assert (plane.job(job).status, plane.job(job).status_reason) == (FAILED, reason)
    past_the_grace(plane)
    assert sweep(plane.svc, plane.reactor, plane.clock.now_ms()).deleted == ["ce"]
    assert plane.call("DescribeComputeEnvironments", computeEnvironments=["ce"])["computeEnvironments"] == []


def test_a_compute_environment_of_a_queue_being_deleted_can_be_deleted(plane: Plane) -> None:
    # GIVEN a queue being deleted (a job still running) that still names the CE
    ce, _, jd = setup(plane)
    job = plane.submit("q", jd)
    plane.dispatch()
    run(plane, job)
    delete_queue(plane)
    plane.call("UpdateComputeEnvironment", computeEnvironment=ce, state="DISABLED")
    # WHEN the CE is deleted THEN that queue does not hold it back
    plane.call("DeleteComputeEnvironment", computeEnvironment=ce)
    plane.reactor.apply(job, lifecycle.TaskStopped(1, 143))
    past_the_grace(plane)
    assert sorted(sweep(plane.svc, plane.reactor, plane.clock.now_ms()).deleted) == ["ce", "q"]


# -- pending cancel, the control side --------------------------------------------------------------------------


def test_a_cancelled_pending_job_fails_once_its_dependency_completed_without_running(plane: Plane) -> None:
    _, _, jd = setup(plane)
    first = plane.submit("q", jd, "first")
    second = plane.submit("q", jd, "second", dependsOn=[{"jobId": first}])
    plane.call("CancelJob", jobId=second, reason="not needed")
    assert plane.job(second).status == PENDING

    plane.dispatch()
    run(plane, first)
    plane.reactor.apply(first, lifecycle.TaskStopped(1, 0))

    after = plane.describe_one(second)
    assert (after["status"], after["statusReason"], after["attempts"]) == (FAILED, "not needed", [])
    assert plane.dispatch() == 0


# -- review fixes: the grace, the sweep's budget, EC2 hosts, errors, races ------------------------------------


def test_a_submit_that_read_the_queue_before_its_deletion_cannot_leave_a_job_for_a_recreated_queue(
    plane: Plane, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN a SubmitJob that read queue q ENABLED, and before it wrote its job, q was disabled and deleted (empty)
    ce, _, jd = setup(plane, max_vcpus=4)
    read_queue = resources.get_jq

    def read_then_delete(svc: Any, ref: str, *args: Any) -> Any:
        jq = read_queue(svc, ref, *args)
        monkeypatch.setattr(resources, "get_jq", read_queue)
        delete_queue(plane)
        return jq

    monkeypatch.setattr(resources, "get_jq", read_then_delete)
    late = plane.submit("q", jd, "late")

    # THEN the queue is still DELETING (its grace has not run out), so its name cannot be taken yet
    assert queue_status(plane) == DELETING
    assert plane.dispatch() == 0
    # WHEN the sweep runs, then runs again past the grace
    sweep(plane.svc, plane.reactor, plane.clock.now_ms())
    assert (plane.job(late).status, plane.job(late).status_reason) == (FAILED, QUEUE_GONE)
    assert queue_status(plane) == DELETING
    past_the_grace(plane)
    assert sweep(plane.svc, plane.reactor, plane.clock.now_ms()).deleted == ["q"]
    # THEN a queue recreated with the name runs only its own jobs, never the late one
    plane.queue("q", ce)
    fresh = plane.submit("q", jd, "fresh")
    assert plane.dispatch() == 1
    assert (plane.job(fresh).status, plane.job(late).status) == (STARTING, FAILED)


def test_one_sweep_terminates_at_most_its_budget_over_all_deleting_queues(
    plane: Plane, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN two DELETING queues of 3 waiting jobs each (deletions interrupted after their markers); a sweep may
    # terminate 4 jobs in all
    ce, _, jd = setup(plane)
    plane.queue("r", ce)
    plane.call("UpdateComputeEnvironment", computeEnvironment=ce, state="DISABLED")
    jobs = [plane.submit(q, jd, f"{q}{i}") for q in ("q", "r") for i in range(3)]
    for name in ("q", "r"):
        jq = plane.svc.repo.get_jq(name)
        assert jq is not None
        plane.svc.repo.save_jq(dataclasses.replace(jq, state="DISABLED", status=DELETING))
    monkeypatch.setattr(deletion, "DRAIN_PASS", 4)

    def failed() -> int:
        return sum(plane.job(j).status == FAILED for j in jobs)

    # WHEN a sweep runs THEN 4 jobs were terminated, not 4 per queue (the first queue's 3, and it is gone)
    assert sweep(plane.svc, plane.reactor, plane.clock.now_ms()).deleted == ["q"]
    assert failed() == 4
    # WHEN a sweep runs with less Lambda time left than its reserve THEN it deletes nothing more
    sweep(plane.svc, plane.reactor, plane.clock.now_ms(), SweepPolicy(remaining_ms=lambda: 1_000))
    assert failed() == 4
    # ... and the next one with time finishes
    assert sweep(plane.svc, plane.reactor, plane.clock.now_ms()).deleted == ["r"]
    assert failed() == 6


def test_the_sweep_asks_a_terminated_task_to_stop_again_only_once_its_stop_is_old_and_once_per_sweep(
    plane: Plane,
) -> None:
    # GIVEN a job running on a CE, in a queue; both are deleted (the CE detached by the queue's deletion)
    ce, _, jd = setup(plane)
    job = plane.submit("q", jd)
    plane.dispatch()
    run(plane, job)
    delete_queue(plane)
    plane.call("UpdateComputeEnvironment", computeEnvironment=ce, state="DISABLED")
    plane.call("DeleteComputeEnvironment", computeEnvironment=ce)
    assert stops(plane) == [(job, 1, QUEUE_GONE)]  # the queue's terminate; the CE's pass left it (under way)

    # WHEN sweeps run while its stop is recent THEN it is not asked again
    sweep(plane.svc, plane.reactor, plane.clock.now_ms())
    assert len(stops(plane)) == 1
    # WHEN a sweep runs once the stop is old THEN it is asked once more (not once per DELETING resource)
    plane.clock.now += deletion.RESTOP_AFTER_MS
    sweep(plane.svc, plane.reactor, plane.clock.now_ms())
    assert stops(plane)[1:] == [(job, 1, QUEUE_GONE)]


def _with_release(plane: Plane, released: list[str]) -> None:
    """The plane's services with a release_capacity that records the CE it is asked to release."""
    plane.svc = dataclasses.replace(plane.svc, release_capacity=lambda ce: released.append(ce.name))
    plane.reactor = Reactor(plane.svc, plane.launcher)
    plane.dispatcher = Dispatcher(plane.svc, plane.reactor, SeqIds("task-r").new_id)


def test_deleting_an_ec2_environment_ends_its_jobs_as_a_lost_host_and_releases_its_instances(plane: Plane) -> None:
    # GIVEN a job with a retry strategy running on a SPOT CE, which is then disabled and detached (the queue moved to
    # another CE)
    released: list[str] = []
    _with_release(plane, released)
    ce = plane.spot_ce("ec2", "subnet-1", "sg-1", min_vcpus=2)
    spare = plane.spot_ce("spare", "subnet-1", "sg-1")
    plane.queue("q", ce)
    jd = plane.job_definition("work", fargate=False, retryStrategy={"attempts": 2})
    job = plane.submit("q", jd)
    plane.dispatch()
    run(plane, job)
    plane.call("UpdateComputeEnvironment", computeEnvironment="ec2", state="DISABLED")
    plane.call("UpdateJobQueue", jobQueue="q", computeEnvironmentOrder=[{"order": 1, "computeEnvironment": spare}])

    # WHEN the CE is deleted
    plane.call("DeleteComputeEnvironment", computeEnvironment="ec2")

    # THEN its task is stopped and the attempt ends as on a lost host: the retry strategy applies, the job runs again
    # on the queue's other CE
    reason = deletion.ce_host_gone_reason("ec2")
    assert reason.startswith("Host EC2")
    assert stops(plane) == [(job, 1, reason)]
    after = plane.job(job)
    assert (after.status, after.attempts[0].status_reason) == (RUNNABLE, reason)
    assert plane.dispatch() == 1
    assert plane.job(job).current is not None and plane.job(job).current.compute_environment == "spare"
    # ... and once the grace is over, its instances are released before the record goes
    assert released == []
    past_the_grace(plane)
    assert sweep(plane.svc, plane.reactor, plane.clock.now_ms()).deleted == ["ec2"]
    assert released == ["ec2"]


def test_a_delete_whose_first_pass_fails_answers_success_and_the_sweep_finishes(
    plane: Plane, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN a queue with a waiting job, and a store that fails while the Delete request terminates it
    ce, _, jd = setup(plane)
    plane.call("UpdateComputeEnvironment", computeEnvironment=ce, state="DISABLED")
    job = plane.submit("q", jd)
    plane.call("UpdateJobQueue", jobQueue="q", state="DISABLED")
    apply_all = Reactor.apply_all

    def failing(self: Reactor, *args: Any, **kwargs: Any) -> Any:
        raise StoreUnavailable("DynamoDB throttled")

    monkeypatch.setattr(Reactor, "apply_all", failing)

    # WHEN the queue is deleted THEN the request succeeds (the deletion took effect with its marker)
    status, _, text = gateway.handle(plane.svc, "POST", "/v1/deletejobqueue", {}, json.dumps({"jobQueue": "q"}))
    assert (status, queue_status(plane), plane.job(job).status) == (200, DELETING, RUNNABLE), text
    # WHEN the store recovers and the sweep runs THEN the job is terminated
    monkeypatch.setattr(Reactor, "apply_all", apply_all)
    sweep(plane.svc, plane.reactor, plane.clock.now_ms())
    assert (plane.job(job).status, plane.job(job).status_reason) == (FAILED, QUEUE_GONE)


def test_a_queue_attaching_the_environment_while_it_is_being_deleted_keeps_it(
    plane: Plane, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN a DISABLED CE attached to no queue; queue q uses another CE
    ce, _, _ = setup(plane)
    other = plane.fargate_ce("other", "subnet-1", "sg-1", spot=False)
    plane.call("UpdateJobQueue", jobQueue="q", computeEnvironmentOrder=[{"order": 1, "computeEnvironment": other}])
    plane.call("UpdateComputeEnvironment", computeEnvironment=ce, state="DISABLED")
    # ... and an UpdateJobQueue attaching the CE to q lands just after the Delete read the queues
    list_jqs = plane.svc.repo.list_jqs

    def read_then_attach(*args: Any, **kwargs: Any) -> Any:
        queues = list_jqs(*args, **kwargs)
        monkeypatch.setattr(plane.svc.repo, "list_jqs", list_jqs)
        order = [{"order": 1, "computeEnvironment": other}, {"order": 2, "computeEnvironment": ce}]
        plane.call("UpdateJobQueue", jobQueue="q", computeEnvironmentOrder=order)
        return queues

    monkeypatch.setattr(plane.svc.repo, "list_jqs", read_then_attach)

    # WHEN the CE is deleted THEN the delete is refused, naming the queue, and the CE is not DELETING
    assert "JobQueue relationship (q)" in error_of(plane, "DeleteComputeEnvironment", computeEnvironment=ce)
    found = plane.call("DescribeComputeEnvironments", computeEnvironments=["ce"])["computeEnvironments"]
    assert found[0]["status"] == "VALID"


def test_children_written_after_their_parent_was_cancelled_do_not_wait_for_a_dependency_that_failed(
    plane: Plane, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN a SEQUENTIAL array of 4 written 2 children at a time, cancelled just before its second chunk is written:
    # the cancel fails the first chunk's children, so the second chunk's first child depends on a child that failed
    # before its edge existed (no notification will ever come)
    from chalicelib.control import react
    from chalicelib.store.jobs import JobRepository

    _, _, jd = setup(plane)
    plane.call("UpdateComputeEnvironment", computeEnvironment="ce", state="DISABLED")
    monkeypatch.setattr(react, "MAX_TRANSACT_OPS", 4)
    create_many = JobRepository.create_many
    chunks: list[int] = []

    def cancel_before_the_second_chunk(self: JobRepository, jobs: Any, edges: Any = ()) -> None:
        chunks.append(len(jobs))
        if len(chunks) == 2:
            parent = jobs[0].array.parent_id
            plane.call("CancelJob", jobId=parent, reason="not needed")
            assert {plane.job(f"{parent}:{i}").status for i in (0, 1)} == {FAILED}
        create_many(self, jobs, edges)

    monkeypatch.setattr(JobRepository, "create_many", cancel_before_the_second_chunk)

    # WHEN the array is submitted (its children written as it is evaluated)
    parent = plane.submit("q", jd, "array", arrayProperties={"size": 4}, dependsOn=[{"type": "SEQUENTIAL"}])

    # THEN the second chunk's children failed at once, not left PENDING for the stale-PENDING repair
    assert chunks == [2, 2]
    assert [plane.job(f"{parent}:{i}").status for i in range(4)] == [FAILED] * 4
    assert plane.job(parent).status == FAILED
