"""Runs of array children (domain/runs.py, docs/adr/0040) on the process executor, through the boto3 client: short
children are claimed several at a time onto one slot and handed on by the runner, without ever running two at once
on it; a stop reaches the children waiting in a run; a job of a higher-priority queue waits at most for the runs
claimed before it; a retried child is dispatched again; a SIGKILLed server's waiting children run once after it
restarts."""

from __future__ import annotations

import os
import signal
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from chalicelib.control.sweep import sweep
from chalicelib.domain import runs
from chalicelib.domain.jobs import STARTING
from chalicelib.runtime.engine import PERIODIC
from chalicelib.runtime.local import LocalRuntime
from tests.e2e.conftest import (
    Client,
    describe_one,
    register,
    setup_queue,
    sh,
    submit,
    unique,
    wait_terminal,
    wait_until,
    work_pid,
)
from tests.e2e.test_kill_restart import Server, client_with_queue, ledger_line, read_ledger, serve

pytestmark = pytest.mark.e2e


def indices(ledger: Path) -> list[tuple[int, str]]:
    return [(int(i), what) for i, what in (line.split() for line in ledger.read_text().splitlines())]


def children(parent: str, size: int) -> list[str]:
    return [f"{parent}:{i}" for i in range(size)]


def test_short_children_are_claimed_in_runs_and_never_share_their_slot(
    batch: Client, runtime: LocalRuntime, tmp_path: Path
) -> None:
    # GIVEN one vCPU and an array of short children that note their start and their end
    ledger = tmp_path / "ledger"
    queue, _ = setup_queue(batch, max_vcpus=1)
    note = f'echo "$AWS_BATCH_JOB_ARRAY_INDEX {{}}" >> {ledger}'
    parent = submit(
        batch,
        queue,
        register(batch, "short", sh(f"{note.format('s')}; {note.format('e')}")),
        arrayProperties={"size": 150},
    )
    # WHEN it runs to its end
    jobs = wait_terminal(batch, [parent, *children(parent, 150)], timeout=120)
    assert {j["status"] for j in jobs.values()} == {"SUCCEEDED"}
    # THEN no two children ever ran at once, and they ran in index order, once each
    assert indices(ledger) == [(i, what) for i in range(150) for what in ("s", "e")]
    # AND after the first ones (runs of one until a child was seen to end), they were claimed in runs of at most
    # MAX_RUN, each child with its own task and log stream
    stored = [runtime.services.jobs.get(c) for c in children(parent, 150)]
    attempts = [j.attempts[-1] for j in stored if j is not None]
    sizes = Counter(a.run for a in attempts if a.run is not None)
    assert sizes and max(sizes.values()) <= runs.MAX_RUN and sum(sizes.values()) >= 100, sizes
    assert len({a.task_id for a in attempts}) == len({a.log_stream for a in attempts}) == 150
    assert {j["container"]["logStreamName"] for j in jobs.values() if "container" in j} >= {
        a.log_stream for a in attempts
    }


def test_terminating_the_array_ends_the_children_waiting_in_a_run_without_running_them(
    batch: Client, runtime: LocalRuntime, tmp_path: Path, state_dir: Path
) -> None:
    # GIVEN one vCPU and short children but for index 60, which waits for a file that never comes, and children of
    # its run waiting behind it (STARTING, on no slot of their own)
    ledger = tmp_path / "ledger"
    parent, blocked, waiting = _blocked_run(batch, runtime, tmp_path, 200, f'echo "$AWS_BATCH_JOB_ID s" >> {ledger}')
    # (the first of them queued in the runner's stdin, not reached: withdrawn by the stop; the others, if any, kept
    # by the launcher)
    journal = (state_dir / "work" / "journal").read_text()
    assert f"queued {waiting[0]}#1 " in journal and f"pid {waiting[0]}#1 " not in journal
    # WHEN the array is terminated
    batch.terminate_job(jobId=parent, reason="enough")
    jobs = wait_terminal(batch, [parent, *children(parent, 200)], timeout=60)
    # THEN the blocked child was stopped, and no child after it ever ran: the waiting ones failed without running
    ran = [line.split()[0] for line in ledger.read_text().splitlines()]
    assert [j for j in ran if j.startswith(f"{parent}:")] == children(parent, 61)
    assert jobs[blocked]["status"] == "FAILED" and jobs[blocked]["container"]["exitCode"] == 143
    for job_id in waiting:
        assert jobs[job_id]["status"] == "FAILED", jobs[job_id]
        assert [a["statusReason"] for a in jobs[job_id]["attempts"]] == ["enough"], jobs[job_id]
    assert jobs[parent]["status"] == "FAILED"


def test_the_children_queued_on_a_runner_killed_from_outside_run_once_on_another(
    batch: Client, runtime: LocalRuntime, tmp_path: Path, state_dir: Path
) -> None:
    # GIVEN one vCPU and short children but for index 60, which waits for a file that never comes, with children of
    # its run queued behind it in its runner's stdin
    ledger = tmp_path / "ledger"
    record = f'echo "$AWS_BATCH_JOB_ID $AWS_BATCH_JOB_ATTEMPT" >> {ledger}'
    parent, blocked, waiting = _blocked_run(batch, runtime, tmp_path, 100, record)
    assert f"queued {waiting[0]}#1 " in (state_dir / "work" / "journal").read_text()
    # WHEN something outside batchplane kills the runner's group (as the OOM killer or an operator might)
    os.killpg(work_pid(state_dir, blocked), signal.SIGKILL)
    jobs = wait_terminal(batch, [parent, *children(parent, 100)], timeout=60)
    # THEN 60 ends with the signal, and the children queued behind it ran once each, on their first attempt
    assert jobs[blocked]["status"] == "FAILED" and jobs[blocked]["container"]["exitCode"] == 137
    assert {jobs[c]["status"] for c in children(parent, 100) if c != blocked} == {"SUCCEEDED"}
    ran = Counter(line for line in ledger.read_text().splitlines() if line.startswith(f"{parent}:"))
    assert ran == Counter(f"{c} 1" for c in children(parent, 100))


def test_the_sweep_leaves_a_child_queued_on_a_live_runner_alone(
    batch: Client, runtime: LocalRuntime, tmp_path: Path, state_dir: Path
) -> None:
    # GIVEN child 60 running (until a go file comes) with children of its run queued on its runner behind it
    go = tmp_path / "never"  # (_blocked_run's)
    parent, _, waiting = _blocked_run(batch, runtime, tmp_path, 100, "true")
    assert f"queued {waiting[0]}#1 " in (state_dir / "work" / "journal").read_text()
    # WHEN the periodic sweep looks at them, as it does at children STARTING for a sweep period (30 s here)
    now = runtime.services.clock.now_ms()
    report = sweep(runtime.services, runtime.engine.reactor, now, replace(PERIODIC, starting_grace_ms=0))
    assert set(waiting) <= {key.split("#")[0] for key in report.relaunched}, report  # (a no-op: launched once)
    # THEN they run once 60 ends, each on its first attempt
    go.touch()
    jobs = wait_terminal(batch, [parent, *children(parent, 100)], timeout=60)
    assert {j["status"] for j in jobs.values()} == {"SUCCEEDED"}
    assert {len(jobs[c]["attempts"]) for c in waiting} == {1}


def _blocked_run(
    batch: Client, runtime: LocalRuntime, tmp_path: Path, size: int, record: str
) -> tuple[str, str, list[str]]:
    """An array of `size` children on one vCPU, each running `record`, index 60 then waiting for a file that never
    comes, with children of its run waiting behind it: (the array, child 60, those children). Tried again with a
    new array when 60 happened to be the last child of its run."""
    queue, _ = setup_queue(batch, max_vcpus=1)
    wait = f'[ "$AWS_BATCH_JOB_ARRAY_INDEX" != 60 ] || until [ -e {tmp_path / "never"} ]; do sleep 0.05; done'
    jd = register(batch, "blocks", sh(f"{record}; {wait}"))
    for _ in range(3):
        parent = submit(batch, queue, jd, arrayProperties={"size": size})
        blocked = f"{parent}:60"
        _wait_running(batch, blocked)
        waiting = _waiting_behind(runtime, parent, 60)
        if waiting:
            return parent, blocked, waiting
        batch.terminate_job(jobId=parent, reason="60 ends its run: another array")
        wait_terminal(batch, [parent], timeout=60)
    raise AssertionError("60 ended its run three times")


def _wait_running(batch: Client, job_id: str) -> None:
    wait_until(lambda: describe_one(batch, job_id)["status"] == "RUNNING", f"{job_id} to run", timeout=60)


def _waiting_behind(runtime: LocalRuntime, parent: str, index: int) -> list[str]:
    """The children claimed in the run of child `index` (running) that wait behind it."""
    held = runtime.services.jobs.get(f"{parent}:{index}")
    assert held is not None and held.current is not None
    run = held.current.run
    after = [f"{parent}:{i}" for i in range(index + 1, index + 1 + runs.MAX_RUN)]
    return [
        j.job_id
        for j in runtime.services.jobs.get_many(after)
        if run is not None and j.status == STARTING and j.current is not None and j.current.run == run
    ]


def test_a_higher_priority_queues_job_waits_at_most_for_the_runs_claimed_before_it(
    batch: Client, tmp_path: Path
) -> None:
    # GIVEN one vCPU shared by a low- and a high-priority queue, and a long array of short children in the low one
    low, ce = setup_queue(batch, max_vcpus=1)
    high = unique("high")
    batch.create_job_queue(
        jobQueueName=high, priority=10, computeEnvironmentOrder=[{"order": 1, "computeEnvironment": ce}]
    )
    jd = register(batch, "quick", ["true"])
    parent = submit(batch, low, jd, arrayProperties={"size": 2000})
    wait_until(
        lambda: describe_one(batch, parent)["arrayProperties"]["statusSummary"]["SUCCEEDED"] >= 200,
        "runs to form",
        timeout=60,
    )
    # WHEN a job is submitted to the high-priority queue while the array's runs go on
    urgent = submit(batch, high, jd, name="urgent")
    started = wait_terminal(batch, [urgent], timeout=60)[urgent]
    # THEN it started after at most the runs already claimed (one per slot, and one a cycle may have been claiming)
    kids = wait_terminal(batch, children(parent, 2000), timeout=120)
    ahead = [k for k in kids.values() if started["createdAt"] <= k["startedAt"] < started["startedAt"]]
    assert len(ahead) <= 2 * runs.MAX_RUN + 1, len(ahead)
    after = [k for k in kids.values() if k["startedAt"] > started["stoppedAt"]]
    assert after  # (the array went on after it)


def test_a_child_that_fails_in_a_run_is_retried(batch: Client, tmp_path: Path) -> None:
    # GIVEN one vCPU and children of which index 70 fails its first attempt
    queue, _ = setup_queue(batch, max_vcpus=1)
    script = '[ "$AWS_BATCH_JOB_ARRAY_INDEX:$AWS_BATCH_JOB_ATTEMPT" != 70:1 ]'
    jd = register(batch, "flaky", sh(script), retryStrategy={"attempts": 2})
    parent = submit(batch, queue, jd, arrayProperties={"size": 120})
    # WHEN the array runs THEN every child succeeds, index 70 on its second attempt
    jobs = wait_terminal(batch, [parent, *children(parent, 120)], timeout=120)
    assert {j["status"] for j in jobs.values()} == {"SUCCEEDED"}
    assert [a["container"]["exitCode"] for a in jobs[f"{parent}:70"]["attempts"]] == [1, 0]
    assert all(len(jobs[c]["attempts"]) == 1 for c in children(parent, 120) if not c.endswith(":70"))


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    yield from serve(tmp_path)


def test_a_sigkilled_servers_run_children_run_once_after_it_restarts(server: Server, tmp_path: Path) -> None:
    # GIVEN a server running an array on one vCPU whose child 50 waits for a go file, with children of its run
    # waiting behind it (STARTING: one vCPU); tried again with a new array when 50 ended its run
    ledger, go = tmp_path / "ledger", tmp_path / "go"
    record = ledger_line(ledger)
    server.start()
    batch, queue = client_with_queue(server, max_vcpus=1)
    wait = f'[ "$AWS_BATCH_JOB_ARRAY_INDEX" != 50 ] || until [ -e {go} ]; do sleep 0.05; done'
    script = f"{record.format('start')}; {wait}; {record.format('ok')}"
    jd = register(batch, "resumes", sh(script), retryStrategy={"attempts": 2})
    for _ in range(3):
        parent = submit(batch, queue, jd, arrayProperties={"size": 120})
        blocked = f"{parent}:50"
        _wait_running(batch, blocked)
        if describe_one(batch, f"{parent}:51")["status"] == STARTING:
            break
        batch.terminate_job(jobId=parent, reason="50 ends its run: another array")
        wait_terminal(batch, [parent], timeout=60)
    assert describe_one(batch, f"{parent}:51")["status"] == STARTING
    # (51 is queued in the runner's stdin, not reached: handed, its ARN journaled, no pid)
    journal = (server.state / "work" / "journal").read_text()
    assert f"queued {parent}:51#1 " in journal and f"pid {parent}:51#1 " not in journal
    # WHEN the server is SIGKILLed and started again, and the go file comes
    server.kill()
    server.start()
    time.sleep(0.5)
    go.touch()
    # THEN every child succeeds; 50 lost its host and ran again, every other child ran once (those the runner had
    # not reached too: launched again under their first attempt)
    jobs = wait_terminal(batch, [parent, *children(parent, 120)], timeout=120)
    assert {j["status"] for j in jobs.values()} == {"SUCCEEDED"}
    starts = Counter((j, a) for j, a, what in read_ledger(ledger) if what == "start" and j.startswith(f"{parent}:"))
    assert starts == Counter({(c, 1): 1 for c in children(parent, 120)} | {(blocked, 2): 1})


def test_the_children_of_a_capped_array_are_claimed_one_at_a_time(batch: Client, runtime: LocalRuntime) -> None:
    # GIVEN an array of short children capped at one running child (each child of a run would take a place)
    queue, _ = setup_queue(batch, max_vcpus=2)
    jd = register(batch, "capped", ["true"])
    parent = submit(batch, queue, jd, arrayProperties={"size": 60}, tags={"batchplane:maxRunning": "1"})
    # WHEN it runs THEN every child succeeds, none claimed in a run
    jobs = wait_terminal(batch, [parent, *children(parent, 60)], timeout=60)
    assert {j["status"] for j in jobs.values()} == {"SUCCEEDED"}
    stored = runtime.services.jobs.get_many(children(parent, 60))
    assert len(stored) == 60 and not [a.run for j in stored for a in j.attempts if a.run is not None]
