"""Jobs end to end: real processes under the local runtime, driven through the stock boto3 batch client.

Ordering is asserted on the timestamps batchplane records (startedAt/stoppedAt) and on files the jobs write, never
on wall-clock speed. Every wait is bounded.
"""

from __future__ import annotations

import dataclasses
import itertools
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from chalicelib.domain.jobs import CANCEL_PENDING, Attempt
from chalicelib.runtime.local import LocalRuntime
from chalicelib.store.jobs import JobRepository
from chalicelib.store.sqlite import SqliteItemStore
from tests.e2e.conftest import (
    Client,
    ClientFactory,
    CliServer,
    Runtimes,
    describe,
    describe_one,
    job_log,
    kill_quietly,
    pid_alive,
    register,
    setup_queue,
    sh,
    submit,
    wait_attempt_gone,
    wait_dead,
    wait_status,
    wait_terminal,
    wait_until,
    work_pid,
    work_pids,
)

pytestmark = pytest.mark.e2e

STATUSES = {"SUBMITTED", "PENDING", "RUNNABLE", "STARTING", "RUNNING", "SUCCEEDED", "FAILED"}
HOST_TERMINATED = "Host EC2 (instance local) terminated."
TIMEOUT_REASON = "Job attempt duration exceeded timeout"
ESSENTIAL_EXITED = "Essential container in task exited"
# The common Spot rule set: retry a lost host, give up on anything else.
SPOT_RETRY = {
    "attempts": 2,
    "evaluateOnExit": [{"onStatusReason": "Host EC2*", "action": "RETRY"}, {"onReason": "*", "action": "EXIT"}],
}


def lines_of(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


def first_attempt_blocks(marks: Path) -> str:
    """A script that records each attempt in marks/<jobId>; attempt 1 then blocks (exec: the pidfile's pid is the
    sleep itself), later attempts succeed at once."""
    record = f'echo "$AWS_BATCH_JOB_ATTEMPT" >> {marks}/"$AWS_BATCH_JOB_ID"'
    return f'{record}; [ "$AWS_BATCH_JOB_ATTEMPT" = 1 ] && exec sleep 600; exit 0'


# -- 1. a job runs and its output is in its log stream ---------------------------------------------------------


def test_echo_succeeds_and_its_output_is_in_the_log(batch: Client, logs: Client) -> None:
    queue, _ = setup_queue(batch)
    jd = register(batch, "hello", ["echo", "hello"])
    job_id = submit(batch, queue, jd)

    job = wait_terminal(batch, [job_id])[job_id]

    assert job["status"] == "SUCCEEDED"
    assert job["container"]["exitCode"] == 0
    assert len(job["attempts"]) == 1
    assert job["createdAt"] <= job["startedAt"] <= job["stoppedAt"]
    stream = job["container"]["logStreamName"]
    assert stream.startswith("hello/default/")
    assert "hello" in job_log(logs, job)
    streams = logs.describe_log_streams(logGroupName="/aws/batch/job", logStreamNamePrefix="hello/")["logStreams"]
    assert stream in [s["logStreamName"] for s in streams]


# -- 2. retries and evaluateOnExit -----------------------------------------------------------------------------


def test_retry_on_exit_code_runs_every_attempt_then_fails(batch: Client, marks: Path) -> None:
    queue, _ = setup_queue(batch)
    runs = marks / "runs"
    jd = register(batch, "exit3", sh(f'echo "$AWS_BATCH_JOB_ATTEMPT" >> {runs}; exit 3'))
    retry = {"attempts": 3, "evaluateOnExit": [{"onExitCode": "3", "action": "RETRY"}]}

    job_id = submit(batch, queue, jd, retryStrategy=retry)
    job = wait_terminal(batch, [job_id])[job_id]

    assert job["status"] == "FAILED"
    assert [a["container"]["exitCode"] for a in job["attempts"]] == [3, 3, 3]
    assert all(a["statusReason"] == "Essential container in task exited" for a in job["attempts"])
    assert lines_of(runs) == ["1", "2", "3"]
    starts = [a["startedAt"] for a in job["attempts"]]
    assert starts == sorted(starts)


def test_exit_rule_stops_retrying_at_once(batch: Client, marks: Path) -> None:
    queue, _ = setup_queue(batch)
    runs = marks / "runs"
    jd = register(batch, "exit3", sh(f"echo run >> {runs}; exit 3"))
    retry = {"attempts": 3, "evaluateOnExit": [{"onExitCode": "3", "action": "EXIT"}]}

    job_id = submit(batch, queue, jd, retryStrategy=retry)
    job = wait_terminal(batch, [job_id])[job_id]

    assert job["status"] == "FAILED"
    assert [a["container"]["exitCode"] for a in job["attempts"]] == [3]
    assert lines_of(runs) == ["run"]


# -- 3. dependency chains ----------------------------------------------------------------------------------------


def test_chain_runs_in_order(batch: Client, marks: Path) -> None:
    queue, _ = setup_queue(batch, max_vcpus=4)
    order = marks / "order"
    # Ref:: replaces whole command elements only: the step name reaches the script as its $1
    command = ["sh", "-c", f'sleep 0.1; echo "$1" >> {order}', "sh", "Ref::step"]
    jd = register(batch, "step", command, parameters={"step": "x"})

    a = submit(batch, queue, jd, "A", parameters={"step": "A"})
    b = submit(batch, queue, jd, "B", parameters={"step": "B"}, dependsOn=[{"jobId": a}])
    c = submit(batch, queue, jd, "C", parameters={"step": "C"}, dependsOn=[{"jobId": b}])
    jobs = wait_terminal(batch, [a, b, c])

    assert [jobs[j]["status"] for j in (a, b, c)] == ["SUCCEEDED"] * 3
    assert jobs[b]["startedAt"] >= jobs[a]["stoppedAt"]
    assert jobs[c]["startedAt"] >= jobs[b]["stoppedAt"]
    assert lines_of(order) == ["A", "B", "C"]
    assert jobs[b]["dependsOn"] == [{"jobId": a}]


def test_failed_dependency_fails_the_chain_without_running_it(batch: Client, marks: Path) -> None:
    queue, _ = setup_queue(batch, max_vcpus=4)
    ran = marks / "ran"
    fails = register(batch, "fails", sh(f"echo A >> {ran}; exit 1"))
    step = register(batch, "step", sh(f"echo dependent >> {ran}"))

    a = submit(batch, queue, fails, "A")
    b = submit(batch, queue, step, "B", dependsOn=[{"jobId": a}])
    c = submit(batch, queue, step, "C", dependsOn=[{"jobId": b}])
    jobs = wait_terminal(batch, [a, b, c])

    assert [jobs[j]["status"] for j in (a, b, c)] == ["FAILED"] * 3
    for dependent in (b, c):
        assert jobs[dependent]["attempts"] == []
        assert "Dependent Job failed" in jobs[dependent]["statusReason"]
        assert "startedAt" not in jobs[dependent]
    assert lines_of(ran) == ["A"]


# -- 4. N_TO_N arrays --------------------------------------------------------------------------------------------


def test_n_to_n_arrays_run_child_by_child(batch: Client, marks: Path) -> None:
    queue, _ = setup_queue(batch, max_vcpus=4)
    size = 100
    # A:i leaves a marker; B:i fails unless A:i's marker is there, so B:i can only succeed after A:i ran.
    writer = register(batch, "a-side", sh(f'touch {marks}/a-"$AWS_BATCH_JOB_ARRAY_INDEX"'))
    reader = register(batch, "b-side", sh(f'test -f {marks}/a-"$AWS_BATCH_JOB_ARRAY_INDEX"'))

    a = submit(batch, queue, writer, "A", arrayProperties={"size": size})
    b = submit(batch, queue, reader, "B", arrayProperties={"size": size}, dependsOn=[{"jobId": a, "type": "N_TO_N"}])
    parents = wait_terminal(batch, [a, b], timeout=60)

    assert parents[a]["status"] == "SUCCEEDED"
    assert parents[b]["status"] == "SUCCEEDED"
    for parent in (a, b):
        summary = parents[parent]["arrayProperties"]["statusSummary"]
        assert set(summary) == STATUSES
        assert summary["SUCCEEDED"] == size
        assert sum(summary.values()) == size
        assert parents[parent]["arrayProperties"]["size"] == size
    children = describe(batch, [f"{p}:{i}" for p in (a, b) for i in range(size)])
    for i in range(size):
        a_i, b_i = children[f"{a}:{i}"], children[f"{b}:{i}"]
        assert a_i["status"] == b_i["status"] == "SUCCEEDED"
        assert b_i["startedAt"] >= a_i["stoppedAt"], i
        assert b_i["arrayProperties"] == {"index": i}

    paginator = batch.get_paginator("list_jobs")
    pages = list(
        paginator.paginate(arrayJobId=b, jobStatus="SUCCEEDED", PaginationConfig={"PageSize": 30, "MaxItems": 1000})
    )
    listed = [s["jobId"] for page in pages for s in page["jobSummaryList"]]
    assert len(pages) >= 4
    assert sorted(listed) == sorted(f"{b}:{i}" for i in range(size))
    assert len(set(listed)) == size


def test_status_summary_adds_up_to_the_size_while_children_are_created(batch: Client) -> None:
    queue, ce = setup_queue(batch)
    batch.update_compute_environment(computeEnvironment=ce, state="DISABLED")  # the children stay RUNNABLE
    size = 2000
    parent = submit(batch, queue, register(batch, "many", ["true"]), arrayProperties={"size": size})

    def created() -> bool:
        summary = describe_one(batch, parent)["arrayProperties"]["statusSummary"]
        assert set(summary) == STATUSES
        assert sum(summary.values()) == size, summary
        return bool(summary["RUNNABLE"] == size)

    wait_until(created, "every child to be created", 30)


# -- 5. SEQUENTIAL arrays ----------------------------------------------------------------------------------------


def test_sequential_array_runs_one_child_at_a_time_in_order(batch: Client, marks: Path) -> None:
    queue, _ = setup_queue(batch, max_vcpus=4)
    order = marks / "order"
    jd = register(batch, "seq", sh(f'echo "$AWS_BATCH_JOB_ARRAY_INDEX" >> {order}; sleep 0.2'))

    parent = submit(batch, queue, jd, "seq", arrayProperties={"size": 5}, dependsOn=[{"type": "SEQUENTIAL"}])
    assert wait_terminal(batch, [parent])[parent]["status"] == "SUCCEEDED"

    children = describe(batch, [f"{parent}:{i}" for i in range(5)])
    intervals = [(children[f"{parent}:{i}"]["startedAt"], children[f"{parent}:{i}"]["stoppedAt"]) for i in range(5)]
    for (_, stopped), (started, _) in itertools.pairwise(intervals):
        assert started >= stopped, intervals
    assert lines_of(order) == ["0", "1", "2", "3", "4"]


# -- 6. cancel and terminate ---------------------------------------------------------------------------------------


def test_cancel_of_a_runnable_job_fails_it_with_the_reason(batch: Client, marks: Path) -> None:
    queue, ce = setup_queue(batch)
    batch.update_compute_environment(computeEnvironment=ce, state="DISABLED")
    ran = marks / "ran"
    jd = register(batch, "never", sh(f"echo ran >> {ran}"))
    job_id = submit(batch, queue, jd)
    wait_status(batch, [job_id], "RUNNABLE")

    batch.cancel_job(jobId=job_id, reason="no longer needed")
    job = wait_terminal(batch, [job_id])[job_id]

    assert job["status"] == "FAILED"
    assert job["statusReason"] == "no longer needed"
    assert job["isCancelled"] is True
    assert job["attempts"] == []
    batch.update_compute_environment(computeEnvironment=ce, state="ENABLED")
    # the CE takes jobs again, and the cancelled one is not among them
    other = submit(batch, queue, register(batch, "ok", ["true"]))
    assert wait_terminal(batch, [other])[other]["status"] == "SUCCEEDED"
    assert not ran.exists()


def test_terminate_of_a_running_job_stops_its_process(batch: Client, state_dir: Path) -> None:
    queue, _ = setup_queue(batch)
    jd = register(batch, "sleeper", ["sleep", "600"])
    job_id = submit(batch, queue, jd)
    wait_status(batch, [job_id], "RUNNING")
    pid = work_pid(state_dir, job_id)
    try:
        assert pid_alive(pid)

        batch.terminate_job(jobId=job_id, reason="operator stop")
        job = wait_terminal(batch, [job_id], timeout=15)[job_id]

        assert job["status"] == "FAILED"
        assert job["statusReason"] == "operator stop"
        assert job["isTerminated"] is True
        assert len(job["attempts"]) == 1
        assert job["attempts"][0]["container"]["exitCode"] == 128 + signal.SIGTERM
        assert wait_dead(pid), "the terminated job's process is still running"
    finally:
        kill_quietly(pid)


def test_cancel_of_a_running_job_is_a_no_op(batch: Client, state_dir: Path) -> None:
    queue, _ = setup_queue(batch)
    jd = register(batch, "sleeper", ["sleep", "600"])
    job_id = submit(batch, queue, jd)
    wait_status(batch, [job_id], "RUNNING")
    pid = work_pid(state_dir, job_id)
    try:
        resp = batch.cancel_job(jobId=job_id, reason="too late")
        assert resp["ResponseMetadata"]["HTTPStatusCode"] == 200

        job = describe_one(batch, job_id)
        assert job["status"] == "RUNNING"
        assert "isCancelled" not in job
        assert pid_alive(pid)
    finally:
        batch.terminate_job(jobId=job_id, reason="cleanup")
        wait_terminal(batch, [job_id], timeout=15)
        kill_quietly(pid)


def test_a_job_ignoring_sigterm_is_killed_after_the_grace_period(batch: Client, state_dir: Path) -> None:
    queue, _ = setup_queue(batch)
    jd = register(batch, "stubborn", sh("trap '' TERM; sleep 600"))  # sleep inherits the ignored SIGTERM
    job_id = submit(batch, queue, jd)
    wait_status(batch, [job_id], "RUNNING")
    pid = work_pid(state_dir, job_id)
    try:
        batch.terminate_job(jobId=job_id, reason="operator stop")
        job = wait_terminal(batch, [job_id], timeout=15)[job_id]

        assert job["status"] == "FAILED"
        assert job["statusReason"] == "operator stop"
        assert job["attempts"][0]["container"]["exitCode"] == 128 + signal.SIGKILL
        assert wait_dead(pid)
    finally:
        kill_quietly(pid)


def test_terminate_at_any_moment_of_placement_stops_the_job(batch: Client, state_dir: Path) -> None:
    """TerminateJob racing the dispatcher: whether the job is RUNNABLE, STARTING (claimed, process not yet
    started) or RUNNING when the request lands, it ends FAILED and no process is left behind."""
    queue, _ = setup_queue(batch, max_vcpus=4)
    jd = register(batch, "sleeper", ["sleep", "600"])
    ids = []
    for i in range(12):
        job_id = submit(batch, queue, jd, f"racer{i}")
        ids.append(job_id)
        batch.terminate_job(jobId=job_id, reason="raced")
    pids: list[int] = []
    try:
        jobs = wait_terminal(batch, ids, timeout=20)
        for job_id in ids:
            assert jobs[job_id]["status"] == "FAILED"
            assert jobs[job_id]["statusReason"] == "raced"
            assert jobs[job_id]["isTerminated"] is True
            if f"{job_id}#1" in work_pids(state_dir):
                pids.append(work_pid(state_dir, job_id))
        assert all(wait_dead(pid) for pid in pids)
    finally:
        for pid in pids:
            kill_quietly(pid)
        batch.terminate_jobs(jobs=ids, reason="cleanup")


def test_terminate_after_cancel_stops_the_running_children_of_an_array(batch: Client, state_dir: Path) -> None:
    """CancelJob on a parent reaches every child: a running one is left alone and a PENDING one (a SEQUENTIAL
    array's next child) waits for its dependency, as AWS's CancelJob says; a later TerminateJob stops them all,
    and the parent fails."""
    queue, _ = setup_queue(batch)
    jd = register(batch, "sleeper", ["sleep", "600"])
    parent = submit(batch, queue, jd, "seq", arrayProperties={"size": 3}, dependsOn=[{"type": "SEQUENTIAL"}])
    first = f"{parent}:0"
    wait_status(batch, [first], "RUNNING")
    pid = work_pid(state_dir, first)
    try:
        batch.cancel_job(jobId=parent, reason="cancelled")
        wait_until(
            lambda: describe_one(batch, f"{parent}:2").get("statusReason") == CANCEL_PENDING + "cancelled",
            "the cancel pending on the last child",
        )
        assert describe_one(batch, first)["status"] == "RUNNING"
        assert describe_one(batch, parent)["status"] == "PENDING"

        batch.terminate_job(jobId=parent, reason="terminated")
        jobs = wait_terminal(batch, [parent, first], timeout=15)

        assert jobs[parent]["status"] == "FAILED"
        assert jobs[parent]["statusReason"] == "terminated"
        assert jobs[parent]["isTerminated"] is True
        assert jobs[parent]["arrayProperties"]["statusSummary"]["FAILED"] == 3
        assert jobs[first]["status"] == "FAILED"
        assert jobs[first]["statusReason"] == "terminated"
        assert wait_attempt_gone(first)
    finally:
        kill_quietly(pid)


# -- 7. parameters and environment ---------------------------------------------------------------------------------


def test_parameters_are_substituted_with_submit_overriding_defaults(batch: Client, logs: Client) -> None:
    queue, _ = setup_queue(batch)
    jd = register(
        batch,
        "params",
        ["echo", "Ref::greeting", "Ref::who", "Ref::unknown"],
        parameters={"greeting": "hi", "who": "default"},
    )

    job_id = submit(batch, queue, jd, parameters={"who": "override"})
    job = wait_terminal(batch, [job_id])[job_id]

    assert job["status"] == "SUCCEEDED"
    assert job["parameters"] == {"greeting": "hi", "who": "override"}
    assert job_log(logs, job) == ["hi override Ref::unknown"]


def test_batch_and_user_environment_reach_the_process(batch: Client, logs: Client) -> None:
    queue, ce = setup_queue(batch)
    jd = register(
        batch,
        "env",
        ["env"],
        environment=[{"name": "FROM_JD", "value": "jd"}, {"name": "OVERRIDDEN", "value": "jd"}],
    )
    overrides = {"environment": [{"name": "OVERRIDDEN", "value": "submit"}, {"name": "FROM_SUBMIT", "value": "s"}]}

    parent = submit(batch, queue, jd, "env", arrayProperties={"size": 2}, containerOverrides=overrides)
    plain = submit(batch, queue, jd, "plain", containerOverrides=overrides)
    wait_terminal(batch, [parent, plain])
    ids = [f"{parent}:0", f"{parent}:1", plain]
    jobs = describe(batch, ids)

    for job_id in ids:
        job = jobs[job_id]
        assert job["status"] == "SUCCEEDED"
        env = dict(line.split("=", 1) for line in job_log(logs, job) if "=" in line)
        assert env["AWS_BATCH_JOB_ID"] == job_id
        assert env["AWS_BATCH_JOB_ATTEMPT"] == "1"
        assert env["AWS_BATCH_CE_NAME"] == ce
        assert env["AWS_BATCH_JQ_NAME"] == queue
        assert env["FROM_JD"] == "jd"
        assert env["OVERRIDDEN"] == "submit"
        assert env["FROM_SUBMIT"] == "s"
        if job_id == plain:
            assert "AWS_BATCH_JOB_ARRAY_INDEX" not in env
        else:
            assert env["AWS_BATCH_JOB_ARRAY_INDEX"] == job_id.rsplit(":", 1)[1]


# -- 8. timeouts ---------------------------------------------------------------------------------------------------


def test_attempt_timeout_fails_the_job_without_retry(batch: Client, state_dir: Path) -> None:
    queue, _ = setup_queue(batch)
    jd = register(batch, "slow", ["sleep", "600"], timeout={"attemptDurationSeconds": 1})

    job_id = submit(batch, queue, jd, retryStrategy={"attempts": 3})
    wait_status(batch, [job_id], "RUNNING")
    pid = work_pid(state_dir, job_id)
    try:
        job = wait_terminal(batch, [job_id], timeout=20)[job_id]

        assert job["status"] == "FAILED"
        assert job["statusReason"] == TIMEOUT_REASON
        assert len(job["attempts"]) == 1
        assert job["attempts"][0]["statusReason"] == TIMEOUT_REASON
        assert wait_dead(pid)
    finally:
        kill_quietly(pid)


# -- 9. events -----------------------------------------------------------------------------------------------------


def test_state_change_events_carry_job_details(batch: Client, events: list[dict[str, Any]]) -> None:
    queue, _ = setup_queue(batch)
    jd = register(batch, "evented", ["true"])
    job_id = submit(batch, queue, jd)
    wait_terminal(batch, [job_id])

    def mine() -> list[dict[str, Any]]:
        return [e for e in list(events) if e["detail"].get("jobId") == job_id]

    wait_until(lambda: any(e["detail"]["status"] == "SUCCEEDED" for e in mine()), "the SUCCEEDED event", 10)
    seen = mine()
    # Publishers are different threads (request, dispatcher, process watcher) and EventBridge does not promise
    # order either: each state exactly once, checked in lifecycle order.
    order = ["RUNNABLE", "STARTING", "RUNNING", "SUCCEEDED"]
    assert sorted((e["detail"]["status"] for e in seen), key=order.index) == order
    for envelope in seen:
        assert envelope["detail-type"] == "Batch Job State Change"
        assert envelope["source"] == "aws.batch"
        detail = envelope["detail"]
        assert detail["jobId"] == job_id
        assert detail["jobName"] == "job"
        assert detail["jobQueue"].endswith(f":job-queue/{queue}")
        assert isinstance(detail["createdAt"], int) and detail["createdAt"] > 10**12
        assert envelope["resources"] == [detail["jobArn"]]


# -- 10. restart durability ----------------------------------------------------------------------------------------


def test_a_succeeded_job_is_not_rerun_after_restart(
    make_runtime: Runtimes, runtime: LocalRuntime, clients: ClientFactory, marks: Path
) -> None:
    batch = clients("batch", runtime.endpoint)
    queue, _ = setup_queue(batch)
    runs = marks / "runs"
    jd = register(batch, "once", sh(f"echo run >> {runs}"))
    job_id = submit(batch, queue, jd)
    assert wait_terminal(batch, [job_id])[job_id]["status"] == "SUCCEEDED"
    make_runtime.stop(runtime)

    again = make_runtime.start()
    batch = clients("batch", again.endpoint)
    # a later job finishing shows recovery and dispatch have run since the restart
    later = submit(batch, queue, jd, "later")
    assert wait_terminal(batch, [later])[later]["status"] == "SUCCEEDED"

    job = describe_one(batch, job_id)
    assert job["status"] == "SUCCEEDED"
    assert len(job["attempts"]) == 1
    assert lines_of(runs) == ["run", "run"]  # the first job's run and the later job's


def test_a_job_running_at_a_clean_stop_is_recovered_at_the_next_start(
    make_runtime: Runtimes, runtime: LocalRuntime, clients: ClientFactory, marks: Path
) -> None:
    """stop() kills running processes; their attempts are lost hosts at the next start (not exit-137 failures), so
    a Spot-style rule set retries them."""
    batch = clients("batch", runtime.endpoint)
    queue, _ = setup_queue(batch)
    jd = register(batch, "interrupted", sh(first_attempt_blocks(marks)))
    job_id = submit(batch, queue, jd, retryStrategy=SPOT_RETRY)
    wait_status(batch, [job_id], "RUNNING")
    wait_until(lambda: lines_of(marks / job_id) == ["1"], "the first attempt to run")
    pid = work_pid(runtime.config.state_dir, job_id)
    make_runtime.stop(runtime)
    assert wait_dead(pid)

    again = make_runtime.start()
    batch = clients("batch", again.endpoint)
    job = wait_terminal(batch, [job_id])[job_id]

    assert job["status"] == "SUCCEEDED"
    assert [a["statusReason"] for a in job["attempts"]] == [HOST_TERMINATED, ESSENTIAL_EXITED]
    assert lines_of(marks / job_id) == ["1", "2"]


def test_a_claimed_but_never_launched_attempt_is_launched_once_at_restart(
    make_runtime: Runtimes, runtime: LocalRuntime, clients: ClientFactory, marks: Path
) -> None:
    """A crash between the claim (STARTING) and the launch: recovery launches that attempt, once, and leaves it
    running (the state is written directly: no request can stop the server at exactly that point). Jobs already
    placed keep running on a DISABLED compute environment."""
    batch = clients("batch", runtime.endpoint)
    queue, ce = setup_queue(batch)
    batch.update_compute_environment(computeEnvironment=ce, state="DISABLED")  # it stays RUNNABLE
    jd = register(batch, "claimed", sh(f'echo "$AWS_BATCH_JOB_ATTEMPT" >> {marks}/runs; sleep 0.5'))
    job_id = submit(batch, queue, jd)
    wait_status(batch, [job_id], "RUNNABLE")
    state = runtime.config.state_dir
    make_runtime.stop(runtime)
    store = SqliteItemStore(str(state / "state.db"))
    try:
        repo = JobRepository(store)
        job = repo.get(job_id)
        assert job is not None and job.status == "RUNNABLE"
        claim = Attempt(1, "claimed-task", ce, "claimed/default/claimed-task", created_at=job.created_at)
        repo.save(dataclasses.replace(job, status="STARTING", current=claim))
    finally:
        store.close()

    again = make_runtime.start()
    batch = clients("batch", again.endpoint)
    done = wait_terminal(batch, [job_id])[job_id]

    assert done["status"] == "SUCCEEDED"
    assert [a["statusReason"] for a in done["attempts"]] == [ESSENTIAL_EXITED]
    assert lines_of(marks / "runs") == ["1"]


def test_jobs_running_when_the_server_is_killed_are_recovered(
    cli_server: Callable[[Path], CliServer], clients: ClientFactory, state_dir: Path, marks: Path
) -> None:
    server = cli_server(state_dir)
    batch = clients("batch", server.endpoint)
    queue, _ = setup_queue(batch, max_vcpus=3)
    jd = register(batch, "crashy", sh(first_attempt_blocks(marks)))
    retried = submit(batch, queue, jd, "retried", retryStrategy={"attempts": 2})
    single = submit(batch, queue, jd, "single", retryStrategy={"attempts": 1})
    # its pid is removed from the journal below: as if the server died between spawning the process and recording it
    unrecorded = submit(batch, queue, jd, "unrecorded", retryStrategy={"attempts": 2})
    jobs = (retried, single, unrecorded)
    wait_status(batch, jobs, "RUNNING")
    wait_until(lambda: all(lines_of(marks / j) == ["1"] for j in jobs), "the first attempts to run")
    pids = {j: work_pid(state_dir, j) for j in jobs}
    try:
        assert all(pid_alive(p) for p in pids.values())

        server.proc.send_signal(signal.SIGKILL)
        server.proc.wait(timeout=10)
        assert all(pid_alive(p) for p in pids.values()), "the jobs' processes should outlive the server"
        journal = state_dir / "work" / "journal"
        lines = journal.read_text().splitlines(keepends=True)
        journal.write_text("".join(line for line in lines if not line.startswith(f"pid {unrecorded}#1 ")))

        server = cli_server(state_dir)
        batch = clients("batch", server.endpoint)
        done = wait_terminal(batch, jobs)

        for job_id in (retried, unrecorded):
            assert done[job_id]["status"] == "SUCCEEDED"
            assert [a["statusReason"] for a in done[job_id]["attempts"]] == [HOST_TERMINATED, ESSENTIAL_EXITED]
            assert done[job_id]["attempts"][1]["container"]["exitCode"] == 0
            assert lines_of(marks / job_id) == ["1", "2"]  # attempt 1 was not run again

        assert done[single]["status"] == "FAILED"
        assert done[single]["statusReason"] == HOST_TERMINATED
        assert [a["statusReason"] for a in done[single]["attempts"]] == [HOST_TERMINATED]
        assert lines_of(marks / single) == ["1"]

        for pid in pids.values():
            assert wait_dead(pid), f"the first attempt's process {pid} is still running"
    finally:
        for pid in pids.values():
            kill_quietly(pid)


# -- 11. validation --------------------------------------------------------------------------------------------------


def all_jobs(batch: Client, queues: list[str]) -> list[str]:
    ids = []
    for queue in queues:
        for status in sorted(STATUSES):
            for page in batch.get_paginator("list_jobs").paginate(jobQueue=queue, jobStatus=status):
                ids += [s["jobId"] for s in page["jobSummaryList"]]
    return sorted(ids)


def test_invalid_submissions_are_rejected_and_write_nothing(batch: Client) -> None:
    queue, _ = setup_queue(batch)
    disabled, _ = setup_queue(batch)
    batch.update_job_queue(jobQueue=disabled, state="DISABLED")
    jd = register(batch, "valid", ["true"])
    gone = register(batch, "gone", ["true"])
    batch.deregister_job_definition(jobDefinition=gone)
    existing = submit(batch, queue, jd, "existing")
    wait_terminal(batch, [existing])
    before = all_jobs(batch, [queue, disabled])
    ok: dict[str, Any] = {"jobName": "bad", "jobQueue": queue, "jobDefinition": jd}

    cases: list[tuple[dict[str, Any], str]] = [
        ({"jobQueue": "no-such-queue"}, "jobQueue"),
        ({"jobQueue": disabled}, "jobQueue"),
        ({"jobDefinition": gone}, "jobDefinition"),
        ({"jobDefinition": "no-such-definition"}, "jobDefinition"),
        ({"dependsOn": [{"jobId": "00000000-0000-0000-0000-000000000000"}]}, "dependsOn[0].jobId"),
        ({"dependsOn": [{"jobId": existing}] * 21}, "dependsOn"),
        ({"arrayProperties": {"size": 1}}, "arrayProperties.size"),
        ({"arrayProperties": {"size": 10001}}, "arrayProperties.size"),
        (
            {"containerOverrides": {"environment": [{"name": "AWS_BATCH_X", "value": "1"}]}},
            "containerOverrides.environment",
        ),
        ({"containerOverrides": {"command": ["echo", ""]}}, "containerOverrides.command"),
    ]
    for change, field in cases:
        with pytest.raises(batch.exceptions.ClientException) as info:
            batch.submit_job(**{**ok, **change})
        message = info.value.response["Error"]["Message"]
        assert field in message, (change, message)
        assert info.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400

    assert all_jobs(batch, [queue, disabled]) == before
    assert before == [existing]
