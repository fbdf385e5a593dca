"""Retention in the local store (control/retention.py): a finished job, its edges, an array's children and the log
streams of its attempts go once the retention period has passed since it stopped; nothing else does.

The plane runs in-process on SQLite with a fake clock; jobs finish by their task events, as the launcher reports
them."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from app import app
from chalicelib.compute.logs import FileLogStore
from chalicelib.control.retention import DAY_MS, purge, purge_tokens
from chalicelib.domain import lifecycle
from chalicelib.domain.idempotency import TOKEN_TAG, TOKEN_TTL_MS
from chalicelib.domain.jobs import RUNNING, SUCCEEDED, Job, child_id
from chalicelib.runtime import engine
from chalicelib.runtime.local import LocalConfig
from chalicelib.runtime.plane import build_local
from chalicelib.store import tokens
from chalicelib.store.jobs import job_pk
from chalicelib.store.sqlite import SqliteItemStore
from tests.functional.builders import make_fargate_ce, make_jd, make_queue
from tests.functional.conftest import CLIENT_CONFIG
from tests.functional.plane import Plane
from tests.runtimes import stop_runtime

RETENTION_MS = 30 * DAY_MS


@pytest.fixture
def plane(tmp_path: Path) -> Iterator[Plane]:
    store = SqliteItemStore(str(tmp_path / "state.db"))
    plane = Plane(store)
    plane.svc = dataclasses.replace(plane.svc, logs=FileLogStore(tmp_path / "logs"))
    ce = plane.fargate_ce("ce", "subnet-1", "sg-1", spot=False, max_vcpus=64)
    plane.queue("q", ce)
    plane.job_definition("work")
    yield plane
    store.close()


def run(plane: Plane, job_id: str, *, finish: bool = True) -> None:
    """Place the job, start its task with a line of output, and (with `finish`) let it succeed."""
    plane.dispatch()
    job = plane.job(job_id)
    assert job.current is not None
    plane.on_task_event(job_id, lifecycle.TaskStarted(job.current.number))
    stream = plane.job(job_id).current
    assert stream is not None and plane.svc.logs is not None
    plane.svc.logs.append(stream.log_stream, [(plane.clock.now_ms(), "hello")])
    if finish:
        plane.on_task_event(job_id, lifecycle.TaskStopped(job.current.number, 0))


def gone(plane: Plane, job_id: str) -> bool:
    return plane.svc.jobs.items.get(job_pk(job_id), "") is None


def streams(plane: Plane) -> list[str]:
    assert plane.svc.logs is not None
    return [name for name, *_ in plane.svc.logs.streams()]


def test_a_job_finished_longer_ago_than_the_retention_goes_with_its_edges_and_logs(plane: Plane) -> None:
    forgotten: list[str] = []
    # GIVEN a finished job another finished job depended on, and a job still running
    first = plane.submit("q", "work", "first")
    run(plane, first)
    second = plane.submit("q", "work", "second", dependsOn=[{"jobId": first}])
    run(plane, second)
    assert plane.job(second).status == SUCCEEDED and len(streams(plane)) == 2
    plane.clock.advance(RETENTION_MS - 1_000)
    running = plane.submit("q", "work", "running")
    run(plane, running, finish=False)

    # WHEN a purge runs before the retention has passed
    assert purge(plane.svc, plane.clock.now_ms(), RETENTION_MS, forget=lambda j: forgotten.append(j.job_id)) == 0
    # AND once it has
    plane.clock.advance(2_000)
    removed = purge(plane.svc, plane.clock.now_ms(), RETENTION_MS, forget=lambda j: forgotten.append(j.job_id))

    # THEN both finished jobs are gone, their edge and log streams too, and the running job is untouched
    assert removed == 2 and gone(plane, first) and gone(plane, second)
    assert sorted(forgotten) == sorted([first, second])
    assert plane.svc.jobs.items.query("main", f"DEP#{first}") == []
    assert plane.call("DescribeJobs", jobs=[first, second])["jobs"] == []
    assert plane.call("ListJobs", jobQueue="q", jobStatus="SUCCEEDED")["jobSummaryList"] == []
    assert plane.job(running).status == RUNNING and len(streams(plane)) == 1
    # AND a second purge has nothing left to do
    assert purge(plane.svc, plane.clock.now_ms(), RETENTION_MS, forget=lambda j: None) == 0


def test_an_array_goes_with_its_children_and_a_job_created_long_ago_stays_until_it_stopped_long_ago(
    plane: Plane,
) -> None:
    # GIVEN an array of 3 that finished, and a job submitted at the same time that finished much later
    array = plane.submit("q", "work", "array", arrayProperties={"size": 3})
    late = plane.submit("q", "work", "late")
    plane.dispatch()
    for i in range(3):
        run(plane, child_id(array, i))
    assert plane.job(array).status == SUCCEEDED
    plane.clock.advance(RETENTION_MS // 2)
    run(plane, late)
    plane.clock.advance(RETENTION_MS // 2 + 1_000)

    removed = purge(plane.svc, plane.clock.now_ms(), RETENTION_MS, forget=lambda j: None)

    assert removed == 4  # the parent and its 3 children
    assert all(gone(plane, j) for j in (array, *(child_id(array, i) for i in range(3))))
    late_job: Job = plane.job(late)
    assert late_job.status == SUCCEEDED  # stopped half a retention ago: kept
    assert len(streams(plane)) == 1


def test_an_expired_client_token_leaves_the_store_and_its_retry_makes_a_new_job(plane: Plane) -> None:
    # GIVEN a submit with a client token, and another one 12 hours later
    nightly = plane.submit("q", "work", "nightly", tags={TOKEN_TAG: "nightly"})
    plane.clock.advance(TOKEN_TTL_MS // 2)
    later = plane.submit("q", "work", "later", tags={TOKEN_TAG: "later"})
    plane.clock.advance(TOKEN_TTL_MS // 2)

    # WHEN a purge runs once the first token's 24 hours are over (long before the jobs' retention)
    purge(plane.svc, plane.clock.now_ms(), RETENTION_MS, forget=lambda j: None)

    # THEN its claim is gone and the live one stays; both jobs stay
    items = plane.svc.repo.items
    assert tokens.claim_of(items, "nightly") == (None, None)
    assert tokens.claim_of(items, "later")[0] is not None
    assert set(plane.describe(nightly, later)) == {nightly, later}
    # a retry of the live token returns its job; a retry of the expired one makes a new job (AWS clientToken)
    assert plane.submit("q", "work", "later", tags={TOKEN_TAG: "later"}) == later
    again = plane.submit("q", "work", "nightly", tags={TOKEN_TAG: "nightly"})
    assert again not in (nightly, later)
    assert tokens.claim_of(items, "nightly")[0] is not None
    assert plane.submit("q", "work", "nightly", tags={TOKEN_TAG: "nightly"}) == again


def test_expired_client_tokens_are_removed_a_bounded_number_per_purge(plane: Plane) -> None:
    for i in range(5):
        plane.submit("q", "work", f"j{i}", tags={TOKEN_TAG: f"t{i}"})
    plane.clock.advance(TOKEN_TTL_MS)

    assert purge_tokens(plane.svc, plane.clock.now_ms(), budget=3) == 3
    assert purge_tokens(plane.svc, plane.clock.now_ms(), budget=3) == 2
    assert purge_tokens(plane.svc, plane.clock.now_ms(), budget=3) == 0
    assert all(tokens.claim_of(plane.svc.repo.items, f"t{i}") == (None, None) for i in range(5))


# -- the local runtime, through the API ------------------------------------------------------------------------------


def test_the_local_runtime_removes_a_finished_job_its_logs_and_work_dir_after_the_retention(
    tmp_path: Path, boto_session: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN a local control plane keeping finished jobs for 2 seconds, sweeping every 0.2 s (30 s in production)
    monkeypatch.setattr(engine, "SWEEP_SECONDS", 0.2)
    runtime = build_local(LocalConfig(state_dir=tmp_path / "state", port=0, retention_days=2 / 86_400), app)
    runtime.start()
    try:
        batch = boto_session.client("batch", endpoint_url=runtime.endpoint, config=CLIENT_CONFIG)
        make_queue(batch, "q", [make_fargate_ce(batch, "ce")])
        make_jd(batch, "hello")
        # WHEN a job runs (`echo hello`) and succeeds
        job_id = batch.submit_job(jobName="j", jobQueue="q", jobDefinition="hello")["jobId"]
        job = _wait(lambda: _succeeded(batch, job_id), "the job to succeed")
        stream = job["container"]["logStreamName"]
        assert runtime.services.logs is not None and runtime.services.logs.exists(stream)
        work = runtime.launcher.work_dir(job_id, 1).parent
        assert work.is_dir()
        # THEN once its retention has passed it is gone: from the API, its log stream and its work directory
        _wait(lambda: batch.describe_jobs(jobs=[job_id])["jobs"] == [], "the job to be removed")
        assert not runtime.services.logs.exists(stream)
        assert not work.exists()
        assert batch.list_jobs(jobQueue="q", jobStatus="SUCCEEDED")["jobSummaryList"] == []
    finally:
        stop_runtime(runtime, 10.0)


def _succeeded(batch: Any, job_id: str) -> dict[str, Any] | None:
    jobs = batch.describe_jobs(jobs=[job_id])["jobs"]
    assert jobs and jobs[0]["status"] != "FAILED", jobs
    return dict(jobs[0]) if jobs[0]["status"] == "SUCCEEDED" else None


def _wait(check: Callable[[], Any], what: str, timeout_s: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


# -- what retention must not break ----------------------------------------------------------------------------------


def test_a_finished_job_a_dependent_still_waits_for_is_kept_until_the_dependent_knows(
    plane: Plane, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN a job that finished while its dependent's notification was still queued (here: lost)
    first = plane.submit("q", "work", "first")
    dependent = plane.submit("q", "work", "dependent", dependsOn=[{"jobId": first}])
    with monkeypatch.context() as patched:
        patched.setattr(plane.reactor, "notify_dependents", lambda *args, **kwargs: None)
        run(plane, first)
    assert plane.job(dependent).pending == (first,)
    plane.clock.advance(RETENTION_MS + 1_000)

    # WHEN a purge runs past its retention THEN the job stays, with its edge
    assert purge(plane.svc, plane.clock.now_ms(), RETENTION_MS, forget=lambda j: None) == 0
    assert not gone(plane, first)
    # AND once the dependent has learned (the sweep settles it), the job goes
    plane.reactor.settle_pending(plane.job(dependent))
    assert plane.job(dependent).pending == ()
    assert purge(plane.svc, plane.clock.now_ms(), RETENTION_MS, forget=lambda j: None) == 1


def test_a_dependency_that_no_longer_exists_fails_its_dependent_with_that_reason(plane: Plane) -> None:
    # GIVEN dependents waiting on a job and on an array's child, both removed since (on AWS: expired by their TTL)
    first = plane.submit("q", "work", "first")
    array = plane.submit("q", "work", "array", arrayProperties={"size": 2})
    dependent = plane.submit("q", "work", "dependent", dependsOn=[{"jobId": first}])
    plane.dispatch()
    assert plane.svc.jobs.remove(plane.job(first))
    for job_id in (child_id(array, 0), child_id(array, 1), array):
        assert plane.svc.jobs.remove(plane.job(job_id))
    child_waiter = dataclasses.replace(plane.job(dependent), job_id="waiter", pending=(child_id(array, 1),), version=0)
    plane.svc.jobs.create_with_edges(child_waiter, [])

    # WHEN the sweep settles them
    for job_id in (dependent, "waiter"):
        plane.reactor.settle_pending(plane.job(job_id))

    # THEN each fails, saying which dependency is gone (not waiting forever, not running without it)
    assert plane.job(dependent).status == "FAILED"
    assert plane.job(dependent).status_reason == f"Dependent Job failed: {first} no longer exists"
    assert plane.job("waiter").status_reason == f"Dependent Job failed: {child_id(array, 1)} no longer exists"


def test_an_array_with_a_child_still_running_is_kept(plane: Plane) -> None:
    # GIVEN a cancelled array, one of whose children had already been claimed and runs on
    array = plane.submit("q", "work", "array", arrayProperties={"size": 2})
    plane.dispatch()
    run(plane, child_id(array, 0), finish=False)
    plane.call("CancelJob", jobId=array, reason="enough")
    parent = plane.job(array)
    failed_parent = dataclasses.replace(parent, status="FAILED", stopped_at=plane.clock.now_ms())
    plane.svc.jobs.save(failed_parent)  # as if its children had been counted while one still ran
    plane.clock.advance(RETENTION_MS + 1_000)

    assert purge(plane.svc, plane.clock.now_ms(), RETENTION_MS, forget=lambda j: None) == 0
    assert not gone(plane, array) and not gone(plane, child_id(array, 0))
