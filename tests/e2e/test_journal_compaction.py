"""The process executor's journal (`<state>/work/journal`) does not grow with every attempt ever run: each start of
`batchplane up` compacts it to the lines of the jobs still active (compute/local_journal.py `Journal.compact`), and
what the jobs' results say is the same as before. Nor does the multi-node journal (`<state>/work/nodes.journal`),
compacted by the same start (compute/nodes.py `NodeLauncher.compact_journal`). Both are compacted while the server
runs too, once they have grown past journal_files.COMPACT_BYTES (docs/adr/0036): a server killed right after, or in
the middle of, such a compaction loses no job and runs none twice."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import EXEC_ROLE, describe, sh
from tests.e2e.test_kill_restart import (
    HOST_TERMINATED,
    Server,
    client_with_queue,
    ledger_line,
    read_ledger,
    serve,
    wait_all_terminal,
)

pytestmark = pytest.mark.e2e

CHILDREN = 300
RESOURCES = [{"type": "VCPU", "value": "1"}, {"type": "MEMORY", "value": "2048"}]


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    yield from serve(tmp_path)


def register(batch: Any, name: str, script: str) -> None:
    batch.register_job_definition(
        jobDefinitionName=name,
        type="container",
        containerProperties={
            "image": "busybox",
            "command": sh(script),
            "resourceRequirements": RESOURCES,
            "executionRoleArn": EXEC_ROLE,
        },
        platformCapabilities=["FARGATE"],
    )


def journal_files(server: Server) -> dict[str, int]:
    """The journal's files in the work root, and their sizes."""
    work = server.state / "work"
    return {p.name: p.stat().st_size for p in work.iterdir() if p.name.startswith("journal")}


def stop(server: Server) -> None:
    """`batchplane up` stopped as Ctrl-C stops it."""
    proc = server.procs[-1]
    proc.send_signal(signal.SIGINT)
    proc.wait(timeout=30)


@pytest.mark.parametrize("how", ["sigkill", "clean"])
def test_a_restart_compacts_the_journal_of_many_finished_jobs_to_nothing(server: Server, how: str) -> None:
    # GIVEN an array of a few hundred children that all ran to their end
    server.start()
    batch, queue = client_with_queue(server, max_vcpus=16)
    register(batch, "quick", 'echo "child $AWS_BATCH_JOB_ARRAY_INDEX"')
    parent = batch.submit_job(jobName="many", jobQueue=queue, jobDefinition="quick", arrayProperties={"size": CHILDREN})
    ids = [parent["jobId"], *(f"{parent['jobId']}:{i}" for i in range(CHILDREN))]
    before = wait_all_terminal(batch, ids, 120)
    assert {j["status"] for j in before.values()} == {"SUCCEEDED"}
    grown = journal_files(server)
    assert grown["journal"] > CHILDREN * 2 * len("exit x#1 0\n"), grown  # a pid and an exit line per child
    # WHEN the server is stopped (killed, or Ctrl-C) and started again
    if how == "sigkill":
        server.kill()
    else:
        stop(server)
    server.start()
    # THEN the journal holds nothing (no job is active), and no other journal file is left
    assert journal_files(server) == {"journal": 0}
    # AND the jobs' results are those they had
    after = describe(batch, ids)
    assert after == before
    # AND the server runs jobs as before, journaling them in the compacted journal
    again = batch.submit_job(jobName="again", jobQueue=queue, jobDefinition="quick")["jobId"]
    assert wait_all_terminal(batch, [again], 30)[again]["status"] == "SUCCEEDED"
    assert f"exit {again}#1 0\n" in (server.state / "work" / "journal").read_text()


def test_a_job_running_across_restarts_ends_as_before_and_its_lines_go_once_it_ended(
    server: Server, tmp_path: Path
) -> None:
    # GIVEN a job (two attempts) whose command runs until a go file exists, and a finished one beside it
    go = tmp_path / "go"
    server.start()
    batch, queue = client_with_queue(server, max_vcpus=4)
    register(batch, "waits", f"until [ -e {go} ]; do sleep 0.05; done; echo done")
    register(batch, "quick", "true")
    done = batch.submit_job(jobName="done", jobQueue=queue, jobDefinition="quick")["jobId"]
    wait_all_terminal(batch, [done], 30)
    job = batch.submit_job(jobName="waits", jobQueue=queue, jobDefinition="waits", retryStrategy={"attempts": 2})
    job_id = job["jobId"]
    wait_status(batch, job_id, "RUNNING")
    # WHEN the server is killed while it runs, and started again
    server.kill()
    server.start()
    # THEN the attempt the restart found running is a lost host, and the job runs again under the new server; the
    # journal keeps only the running job's lines
    wait_status(batch, job_id, "RUNNING", attempts=1)
    lines = (server.state / "work" / "journal").read_text().splitlines()
    assert lines and all(f" {job_id}#" in line for line in lines), lines
    assert not any(done in line for line in lines)
    # AND once it ends, its result is its own exit, and another restart changes nothing of it
    (go).touch()
    ended = wait_all_terminal(batch, [job_id, done], 30)
    assert [a["statusReason"] for a in ended[job_id]["attempts"]] == [
        HOST_TERMINATED,
        "Essential container in task exited",
    ]
    assert ended[job_id]["status"] == "SUCCEEDED" and ended[job_id]["attempts"][1]["container"]["exitCode"] == 0
    server.kill()
    server.start()
    assert describe(batch, [job_id, done]) == ended
    assert journal_files(server) == {"journal": 0}


def wait_status(batch: Any, job_id: str, status: str, attempts: int = 0, timeout: float = 30) -> None:
    """Until the job has `status` and (at least) `attempts` finished attempts."""
    deadline = time.monotonic() + timeout
    while True:
        job = describe(batch, [job_id])[job_id]
        if job["status"] == status and len(job.get("attempts", [])) >= attempts:
            return
        assert time.monotonic() < deadline, job
        time.sleep(0.05)


def register_multinode(batch: Any, name: str, script: str) -> str:
    """A 2-node job definition (main node 0) whose nodes run `script`; two attempts."""
    node = {"image": "busybox", "command": sh(script), "resourceRequirements": [{"type": "VCPU", "value": "1"}]}
    props = {"numNodes": 2, "mainNode": 0, "nodeRangeProperties": [{"targetNodes": "0:", "container": node}]}
    return str(
        batch.register_job_definition(
            jobDefinitionName=name, type="multinode", nodeProperties=props, retryStrategy={"attempts": 2}
        )["jobDefinitionArn"]
    )


def test_nodes_journal_keeps_only_the_running_multinode_jobs_lines_across_restarts(
    server: Server, tmp_path: Path
) -> None:
    # GIVEN multi-node jobs that ran to their end, and one whose nodes run until a go file exists
    go = tmp_path / "go"
    server.start()
    batch, queue = client_with_queue(server, 4, platform="EC2")
    quick = register_multinode(batch, "mnp-quick", "true")
    done = [batch.submit_job(jobName=f"done{i}", jobQueue=queue, jobDefinition=quick)["jobId"] for i in range(3)]
    assert {j["status"] for j in wait_all_terminal(batch, done, 60).values()} == {"SUCCEEDED"}
    waits = register_multinode(batch, "mnp-waits", f"until [ -e {go} ]; do sleep 0.05; done")
    job_id = batch.submit_job(jobName="waits", jobQueue=queue, jobDefinition=waits)["jobId"]
    wait_status(batch, job_id, "RUNNING")
    nodes_journal = server.state / "work" / "nodes.journal"
    assert len(nodes_journal.read_text().splitlines()) == len(done) + 1
    # WHEN the server is killed while it runs, and started again
    server.kill()
    server.start()
    # THEN the attempt is a lost host, the job runs again, and nodes.journal holds that job's attempts only
    wait_status(batch, job_id, "RUNNING", attempts=1)
    shapes = [" ".join(line.split()[:3]) for line in nodes_journal.read_text().splitlines()]  # (without the task)
    assert shapes == [f"{job_id}#1 2 0", f"{job_id}#2 2 0"]
    # AND once it ends (its own end) another restart leaves nodes.journal empty and every result as it was
    go.touch()
    ended = wait_all_terminal(batch, [job_id, *done], 60)
    assert ended[job_id]["status"] == "SUCCEEDED"
    assert ended[job_id]["attempts"][0]["statusReason"] == HOST_TERMINATED
    server.kill()
    server.start()
    assert nodes_journal.read_text() == ""
    assert describe(batch, [job_id, *done]) == ended


SMALL = 8192  # journal_files.COMPACT_BYTES of the servers below: about 35 attempts' lines
# `batchplane up` with that threshold (Python's -c: sys.argv[1:] are the CLI's arguments)
SMALL_UP = (
    "import sys; from chalicelib.compute import journal_files; journal_files.COMPACT_BYTES = "
    f"{SMALL}; import app; sys.argv[0] = 'batchplane'; raise SystemExit(app.batchplane())"
)


@pytest.fixture
def small(tmp_path: Path) -> Iterator[Server]:
    servers = serve(tmp_path)
    server = next(servers)
    server.entry = ("-c", SMALL_UP)
    yield server
    next(servers, None)


def wait_compacted(server: Server, below: int, timeout: float = 30) -> str:
    """Until the journal is below `below` bytes and no live compaction's journal.old is left; its text."""
    journal = server.state / "work" / "journal"
    deadline = time.monotonic() + timeout
    while journal.stat().st_size >= below or (journal.parent / "journal.old").exists():
        assert time.monotonic() < deadline, journal_files(server)
        time.sleep(0.05)
    return journal.read_text()


@pytest.mark.parametrize("crash", ["right-after", "mid-compaction"])
def test_a_running_servers_journal_is_compacted_and_a_kill_then_loses_no_job_and_runs_none_twice(
    small: Server, tmp_path: Path, crash: str
) -> None:
    # GIVEN a server whose journal is compacted past 8 KB, running a job until a go file exists
    ledger, go = tmp_path / "ledger", tmp_path / "go"
    record = ledger_line(ledger)
    small.start()
    batch, queue = client_with_queue(small, max_vcpus=16)
    register(batch, "quick", f"{record.format('start')}; {record.format('ok')}")
    register(batch, "waits", f"{record.format('start')}; until [ -e {go} ]; do sleep 0.05; done; {record.format('ok')}")
    waits = batch.submit_job(jobName="w", jobQueue=queue, jobDefinition="waits", retryStrategy={"attempts": 2})
    waits_id = waits["jobId"]
    wait_status(batch, waits_id, "RUNNING")
    # WHEN an array of 300 children runs to its end beside it (~70 KB of journal lines)
    parent = batch.submit_job(jobName="many", jobQueue=queue, jobDefinition="quick", arrayProperties={"size": 300})
    ids = [parent["jobId"], *(f"{parent['jobId']}:{i}" for i in range(300))]
    before = wait_all_terminal(batch, ids, 120)
    assert {j["status"] for j in before.values()} == {"SUCCEEDED"}
    # THEN the journal was compacted while the server ran: the running job's lines are kept, the first child's gone
    text = wait_compacted(small, 300 * 120)  # (less than half of what 300 attempts wrote, ~240 bytes each)
    assert f"pid {waits_id}#1 " in text
    assert f" {ids[1]}#1 " not in text
    # AND WHEN the server is killed right after (or in the middle of a compaction: journal.new half written, the
    # journal linked as journal.old) and started again
    small.kill()
    work = small.state / "work"
    if crash == "mid-compaction":
        (work / "journal.new").write_bytes(text.encode()[: len(text) // 2])
        os.link(work / "journal", work / "journal.old")
    small.start()
    # THEN the running job was a lost host and runs again; once it ends, every job has the result it had, and each
    # attempt ran once (the ledger counts real runs)
    wait_status(batch, waits_id, "RUNNING", attempts=1)
    go.touch()
    after = wait_all_terminal(batch, [*ids, waits_id], 60)
    assert {i: after[i] for i in ids} == before
    assert [a["statusReason"] for a in after[waits_id]["attempts"]] == [
        HOST_TERMINATED,
        "Essential container in task exited",
    ]
    runs = read_ledger(ledger)
    assert sorted(runs) == sorted(
        [(i, 1, what) for i in ids[1:] for what in ("start", "ok")]
        + [(waits_id, 1, "start"), (waits_id, 2, "start"), (waits_id, 2, "ok")]
    )
    assert not (work / "journal.old").exists() and not (work / "journal.new").exists()
