"""Durability under fire: `batchplane up` SIGKILLed at random points of a busy 500-job run, restarted on the same
state directory each time, then left to finish.

Every job appends to one ledger file: `<jobId> <attempt> start` when an attempt begins and `<jobId> <attempt> ok`
as its last act before exiting 0 (one small O_APPEND write each, so lines never interleave). The ledger counts real
executions; DescribeJobs says what batchplane believes. They must agree:

- nothing acknowledged is lost: every job id a SubmitJob answered exists and ends SUCCEEDED or FAILED;
- no attempt runs twice and no job runs more attempts than it was given; a job completes successfully at most
  once (a finished job never runs again, even when it finished while the server was down);
- attempts that were running when the server died are recovered as lost hosts
  ("Host EC2 (instance local) terminated."), and the retry strategy decides what follows.

The RNG is seeded (BATCHPLANE_KILL_SEED=<n> picks another schedule), so a failure is reproducible.
"""

from __future__ import annotations

import contextlib
import os
import random
import re
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from tests.e2e.conftest import EXEC_ROLE, TERMINAL, describe, kill_jobs_under, setup_queue, sh

pytestmark = pytest.mark.e2e

SEED = int(os.environ.get("BATCHPLANE_KILL_SEED", "20240611"))
KILLS = 4
KILL_DELAY_S = (0.8, 3.5)  # after each (re)start, uniformly
FINISH_TIMEOUT_S = 120.0
UP_TIMEOUT_S = 30.0
HOST_TERMINATED = "Host EC2 (instance local) terminated."
UP_LINE = re.compile(r"batchplane is up: the AWS Batch API at (http://\S+)")
CLIENT = Config(retries={"total_max_attempts": 1}, connect_timeout=2, read_timeout=10)
# Lost hosts are retried, anything else too: jobs that get three attempts.
RETRY3 = {"attempts": 3}

# The mix (500 jobs in all, array children included).
ARRAY_SIZE = 60
CHAINS, CHAIN_LENGTH = 8, 5
FLAKY = 40
PLAIN = 500 - (1 + ARRAY_SIZE) - CHAINS * CHAIN_LENGTH - FLAKY


def reserve_port() -> socket.socket:
    """A loopback port kept for this test while its server is down between a kill and the restart: a socket bound to
    it (SO_REUSEADDR, never listening), held until the test ends.

    A port merely found free was taken, in a full run beside another suite's, by a server on port 0 that answered
    the submitter's SubmitJob in the down window (tests/browser/test_proxy.py's endpoint answers any POST 200
    {"ok": true}: a KeyError('jobId')). Linux's bind to port 0 passes over a port any socket is bound to, SO_REUSEADDR
    or not, while our server's bind to that very port may share it with a socket that does not listen (both with
    SO_REUSEADDR, which socketserver sets)."""
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", 0))
    return s


@dataclass
class Server:
    """`batchplane up` on a fixed port (so clients reconnect to the same endpoint), reserved to it for the test
    (`reserve_port`), output to a file."""

    state: Path
    reservation: socket.socket
    logs: Path
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)
    args: tuple[str, ...] = ()  # more `batchplane up` options (test_kill_restart_docker.py: the executor, allowances)
    entry: tuple[str, ...] = ("-m", "app")  # how Python runs `batchplane` (test_journal_compaction.py: a patched one)

    @property
    def port(self) -> int:
        return int(self.reservation.getsockname()[1])

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        log = self.logs / f"up-{len(self.procs)}.log"
        with log.open("wb") as out:
            proc = subprocess.Popen(
                [
                    sys.executable,
                    *self.entry,
                    "up",
                    "--port",
                    str(self.port),
                    "--state-dir",
                    f"./{self.state.name}",  # relative, as `make run` passes it: jobs run in other directories
                    "--executor",
                    "process",  # the container twin is tests/e2e (docker-ci)
                    *self.args,  # later options win: test_kill_restart_docker.py's --executor docker
                ],
                cwd=self.state.parent,
                stdout=out,
                stderr=subprocess.STDOUT,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )
        self.procs.append(proc)
        deadline = time.monotonic() + UP_TIMEOUT_S
        while time.monotonic() < deadline:
            if UP_LINE.search(log.read_text(errors="replace")):
                return
            if proc.poll() is not None:
                break
            time.sleep(0.05)
        raise AssertionError(f"`batchplane up` did not come up:\n{log.read_text(errors='replace')}")

    def kill(self) -> None:
        proc = self.procs[-1]
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)

    def stop_all(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=10)
        self.reservation.close()
        kill_jobs_under(self.state)

    def output(self) -> str:
        return "\n".join(p.read_text(errors="replace") for p in sorted(self.logs.glob("up-*.log")))


def serve(tmp_path: Path, *args: str, after: Callable[[Server], None] = lambda srv: None) -> Iterator[Server]:
    """A `Server` fixture's body: `batchplane up <args>` on a state directory in `tmp_path`, stopped (then `after`
    runs: the Docker tests' container clean-up) when the test ends."""
    logs = tmp_path / "server-logs"
    logs.mkdir()
    srv = Server(tmp_path / "state", reserve_port(), logs, args=args)
    try:
        yield srv
    finally:
        srv.stop_all()
        after(srv)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    yield from serve(tmp_path)


def test_a_reserved_port_is_not_given_to_a_server_on_port_0_and_ours_still_listens_on_it() -> None:
    # Each foreign server below may only pick among a few ports around the reserved one (IP_LOCAL_PORT_RANGE, Linux
    # 6.3+), the reserved one among the first it tries: a port only found free once is taken about half the time.
    reservation = reserve_port()
    port = int(reservation.getsockname()[1])
    try:
        for _ in range(20):
            with socket.socket() as foreign:
                foreign.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as socketserver's servers
                try:
                    foreign.setsockopt(socket.IPPROTO_IP, 51, struct.pack("I", (port + 8) << 16 | (port - 1)))
                except OSError:
                    pytest.skip("no IP_LOCAL_PORT_RANGE (Linux 6.3+)")
                foreign.bind(("127.0.0.1", 0))
                foreign.listen()
                assert foreign.getsockname()[1] != port
        # AND a restart listens on the reserved port and is reached there (SO_REUSEADDR: runtime/server.py's bind)
        with socket.socket() as ours:
            ours.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            ours.bind(("127.0.0.1", port))
            ours.listen()
            with socket.create_connection(("127.0.0.1", port)) as client:
                accepted, peer = ours.accept()
                accepted.close()
                assert peer == client.getsockname()
    finally:
        reservation.close()


@dataclass(frozen=True)
class Submitted:
    job_id: str
    attempts: int  # the most attempts the job may run
    array_size: int | None = None


class Submitter(threading.Thread):
    """Submits the whole mix, riding out the kills: a request that gets no answer is not acknowledged and is sent
    again once the server is back (the unanswered one may exist too: it must also end terminal)."""

    def __init__(self, endpoint: str, queue: str, rng: random.Random) -> None:
        super().__init__(name="submitter", daemon=True)
        session = boto3.session.Session(aws_access_key_id="k", aws_secret_access_key="s", region_name="us-east-1")
        self.batch = session.client("batch", endpoint_url=endpoint, config=CLIENT)
        self.queue = queue
        self.rng = rng
        self.acknowledged: list[Submitted] = []
        self.unanswered = 0
        self.error: BaseException | None = None

    def submit(self, name: str, jd: str, attempts: int, **kwargs: Any) -> str:
        deadline = time.monotonic() + 60
        while True:
            try:
                resp = self.batch.submit_job(
                    jobName=name, jobQueue=self.queue, jobDefinition=jd, retryStrategy={"attempts": attempts}, **kwargs
                )
            except (BotoCoreError, ClientError):
                self.unanswered += 1
                assert time.monotonic() < deadline, "the server did not come back"
                time.sleep(0.1)
                continue
            # (a 200 without one came from another server on the port: see reserve_port)
            assert "jobId" in resp, f"SubmitJob answered 200 without a jobId: {resp['ResponseMetadata']}"
            size = (kwargs.get("arrayProperties") or {}).get("size")
            self.acknowledged.append(Submitted(resp["jobId"], attempts, size))
            return str(resp["jobId"])

    def run(self) -> None:
        try:
            self._run()
        except BaseException as e:  # surfaced by the test
            self.error = e

    def _run(self) -> None:
        rng = self.rng
        kinds = ["plain"] * PLAIN + ["flaky"] * FLAKY + ["chain"] * CHAINS + ["array"]
        rng.shuffle(kinds)
        for n, kind in enumerate(kinds):
            if kind == "plain":
                # A quarter run long enough to be caught running by a kill; a third have a single attempt.
                secs = rng.choice(["2", "3"]) if rng.random() < 0.25 else rng.choice(["0", "0.1", "0.3", "0.6"])
                attempts = 1 if rng.random() < 0.33 else 3
                self.submit(f"plain-{n}", "work", attempts, parameters={"secs": secs})
            elif kind == "flaky":
                self.submit(f"flaky-{n}", "flaky", 3, parameters={"secs": "0.2"})
            elif kind == "chain":
                previous = self.submit(f"chain-{n}-0", "work", 3, parameters={"secs": "0.3"})
                for i in range(1, CHAIN_LENGTH):
                    previous = self.submit(
                        f"chain-{n}-{i}", "work", 3, parameters={"secs": "0.3"}, dependsOn=[{"jobId": previous}]
                    )
            else:
                self.submit(f"array-{n}", "work", 2, parameters={"secs": "0.5"}, arrayProperties={"size": ARRAY_SIZE})


def client_with_queue(server: Server, max_vcpus: int, platform: str = "FARGATE") -> tuple[Any, str]:
    """A boto3 batch client on the server, and a job queue on a FARGATE (or EC2) compute environment (conftest's
    `setup_queue`); returns (client, queue name)."""
    session = boto3.session.Session(aws_access_key_id="k", aws_secret_access_key="s", region_name="us-east-1")
    batch = session.client("batch", endpoint_url=server.endpoint, config=CLIENT)
    queue, _ = setup_queue(batch, max_vcpus, name="ce", platform=platform)
    return batch, queue


def ledger_line(ledger: Path) -> str:
    """The shell command that appends `<jobId> <attempt> {}` to the ledger (`.format("start")`, `.format("ok")`)."""
    return f'echo "$AWS_BATCH_JOB_ID $AWS_BATCH_JOB_ATTEMPT {{}}" >> {ledger}'


def read_ledger(path: Path) -> list[tuple[str, int, str]]:
    entries = []
    for line in path.read_text().splitlines() if path.exists() else []:
        job_id, attempt, what = line.split()
        entries.append((job_id, int(attempt), what))
    return entries


@dataclass(frozen=True)
class Runs:
    """What the ledger says ran: how often each (job, attempt) started, and the attempts of each job that ended ok."""

    starts: Counter[tuple[str, int]]
    oks: dict[str, list[int]]

    @property
    def twice(self) -> list[tuple[str, int]]:
        """The attempts that started more than once (must be none)."""
        return [key for key, n in self.starts.items() if n > 1]


def runs(ledger: Path) -> Runs:
    entries = read_ledger(ledger)
    oks: dict[str, list[int]] = defaultdict(list)
    for job_id, attempt, what in entries:
        if what == "ok":
            oks[job_id].append(attempt)
    return Runs(Counter((job_id, attempt) for job_id, attempt, what in entries if what == "start"), oks)


def every_job_id(batch: Any, queue: str) -> list[str]:
    """Every top-level job of the queue, in any state (unacknowledged submissions included)."""
    ids = []
    for status in ("SUBMITTED", "PENDING", "RUNNABLE", "STARTING", "RUNNING", "SUCCEEDED", "FAILED"):
        for page in batch.get_paginator("list_jobs").paginate(jobQueue=queue, jobStatus=status):
            ids += [s["jobId"] for s in page["jobSummaryList"]]
    return ids


def wait_all_terminal(batch: Any, ids: list[str], timeout: float) -> dict[str, dict[str, Any]]:
    deadline = time.monotonic() + timeout
    while True:
        jobs = describe(batch, ids)
        waiting = [i for i in ids if i not in jobs or jobs[i]["status"] not in TERMINAL]
        if not waiting:
            return jobs
        if time.monotonic() > deadline:
            sample = {i: jobs[i]["status"] if i in jobs else "missing" for i in waiting[:10]}
            raise AssertionError(f"{len(waiting)} jobs not terminal within {timeout}s: {sample}")
        time.sleep(0.25)


def test_sigkill_at_random_points_loses_nothing_and_runs_nothing_twice(server: Server, tmp_path: Path) -> None:
    rng = random.Random(SEED)
    ledger = tmp_path / "ledger"
    record = ledger_line(ledger)
    server.start()
    # GIVEN a queue on a 16-vCPU compute environment and two job definitions that log to the ledger
    batch, queue = client_with_queue(server, max_vcpus=16)
    resources = [{"type": "VCPU", "value": "1"}, {"type": "MEMORY", "value": "2048"}]
    work = f'{record.format("start")}; sleep "$1"; {record.format("ok")}'
    # flaky: attempt 1 exits 3, later attempts succeed
    flaky = f'{record.format("start")}; sleep "$1"; [ "$AWS_BATCH_JOB_ATTEMPT" = 1 ] && exit 3; {record.format("ok")}'
    for name, script in (("work", work), ("flaky", flaky)):
        batch.register_job_definition(
            jobDefinitionName=name,
            type="container",
            containerProperties={
                "image": "busybox",
                "command": [*sh(script), "job", "Ref::secs"],
                "resourceRequirements": resources,
                "executionRoleArn": EXEC_ROLE,
            },
            platformCapabilities=["FARGATE"],
            parameters={"secs": "0"},
        )

    # WHEN 500 jobs are submitted while the server is SIGKILLed at random points and restarted each time
    submitter = Submitter(server.endpoint, queue, random.Random(rng.random()))
    submitter.start()
    journals = []  # each start compacts the journal to the active jobs' lines: what it held before each kill
    for _ in range(KILLS):
        time.sleep(rng.uniform(*KILL_DELAY_S))
        server.kill()
        journals.append((server.state / "work" / "journal").read_text())
        server.start()
    submitter.join(timeout=120)
    assert not submitter.is_alive(), "the submissions did not finish"
    assert submitter.error is None, submitter.error

    # THEN every acknowledged job ends terminal, and so does every job the store holds
    acked = {s.job_id: s for s in submitter.acknowledged}
    children = {
        f"{s.job_id}:{i}": Submitted(f"{s.job_id}:{i}", s.attempts)
        for s in acked.values()
        for i in range(s.array_size or 0)
    }
    expected = {**acked, **children}
    assert len(expected) == 500
    jobs = wait_all_terminal(batch, list(expected), FINISH_TIMEOUT_S)
    stray = every_job_id(batch, queue)
    assert set(acked) <= set(stray)
    wait_all_terminal(batch, stray, 30)  # unanswered submissions that were written are jobs too

    # AND no attempt ran twice, no job ran more attempts than it has, and each job succeeded at most once
    ran = runs(ledger)
    starts, oks = ran.starts, ran.oks
    assert ran.twice == [], "an attempt ran twice"
    # the supervisors' "exit <jobId>#<n> <status>": an attempt a restart recovered was active at that start, so its
    # lines were kept by that start's compaction and are in the journal at the next kill (or at the end)
    journal = "".join(journals) + (server.state / "work" / "journal").read_text()
    for job_id, sub in expected.items():
        job = jobs[job_id]
        if sub.array_size is not None:
            continue  # an array parent runs nothing itself
        ran = sorted(a for j, a in starts if j == job_id)
        assert all(1 <= a <= len(job["attempts"]) <= sub.attempts for a in ran), (job_id, ran, job["attempts"])
        # A command's "ok" is its last act, not its exit: an attempt that wrote it but whose exit was not yet
        # journalled when the restart found it running is killed and recorded as a lost host (its end is not
        # known), and the job retried, as AWS retries an attempt whose host was lost. Only such an attempt may
        # have written "ok" besides the one the job records as its success.
        # But never one whose exit 0 the supervisor journalled: recovery reports that as the job's success.
        lost = {n for n, a in enumerate(job["attempts"], 1) if a.get("statusReason") == HOST_TERMINATED}
        assert not [n for n in lost if f"exit {job_id}#{n} 0\n" in journal], (job_id, lost, job["attempts"])
        own = [a for a in oks[job_id] if a not in lost]
        assert len(own) <= 1, f"{job_id} completed successfully {len(own)} times ({oks[job_id]}, lost: {lost})"
        if job["status"] == "SUCCEEDED":
            # the one successful execution is the job's last attempt, the one recorded with exit code 0
            assert own == [len(job["attempts"])], (job_id, oks[job_id], job["attempts"])
            assert job["attempts"][-1]["container"]["exitCode"] == 0
        else:
            assert own == [], (job_id, job["statusReason"], job["attempts"])

    # AND attempts caught running by a kill were recovered as lost hosts, per the job's retry strategy
    recovered = [
        (job_id, i)
        for job_id, job in jobs.items()
        for i, a in enumerate(job["attempts"])
        if a.get("statusReason") == HOST_TERMINATED
    ]
    assert recovered, "no attempt was running at any kill: the schedule tests nothing"
    for job_id, i in recovered:
        job, allowed = jobs[job_id], expected[job_id].attempts
        if i + 1 < allowed:
            assert len(job["attempts"]) > i + 1, f"{job_id}: a lost host with attempts left was not retried"
        else:
            assert job["status"] == "FAILED" and job["statusReason"] == HOST_TERMINATED, (job_id, job["statusReason"])
    # the flaky jobs failed their first attempt on their own and were retried
    for job in (j for j in jobs.values() if j["jobName"].startswith("flaky-")):
        first = job["attempts"][0]
        assert first["container"].get("exitCode") == 3 or first.get("statusReason") == HOST_TERMINATED, job
        assert job["status"] == "FAILED" or len(job["attempts"]) >= 2, job
    # AND the server never logged an unhandled error
    assert "Traceback" not in server.output(), server.output()


def test_a_job_that_finishes_while_the_server_is_down_is_not_run_again(server: Server, tmp_path: Path) -> None:
    # GIVEN a running job that waits for a go file, then records its run and exits 0 (or 5 for the other job)
    go, runs = tmp_path / "go", tmp_path / "runs"
    script = f'until [ -e {go} ]; do sleep 0.05; done; echo "$AWS_BATCH_JOB_ID $AWS_BATCH_JOB_ATTEMPT" >> {runs}'
    server.start()
    batch, queue = client_with_queue(server, max_vcpus=4)
    resources = [{"type": "VCPU", "value": "1"}, {"type": "MEMORY", "value": "2048"}]
    for name, code in (("ok", 0), ("bad", 5)):
        batch.register_job_definition(
            jobDefinitionName=name,
            type="container",
            containerProperties={
                "image": "busybox",
                "command": sh(f"{script}; exit {code}"),
                "resourceRequirements": resources,
                "executionRoleArn": EXEC_ROLE,
            },
            platformCapabilities=["FARGATE"],
        )
    ok = batch.submit_job(jobName="ok", jobQueue=queue, jobDefinition="ok", retryStrategy=RETRY3)["jobId"]
    bad = batch.submit_job(jobName="bad", jobQueue=queue, jobDefinition="bad", retryStrategy={"attempts": 2})["jobId"]
    deadline = time.monotonic() + 30
    while {j["status"] for j in describe(batch, [ok, bad]).values()} != {"RUNNING"}:
        assert time.monotonic() < deadline, "the jobs did not start"
        time.sleep(0.05)

    # WHEN the server is SIGKILLed, the jobs finish while it is down, and it is started again
    server.kill()
    go.touch()
    journal = server.state / "work" / "journal"
    exits = {f"exit {job_id}#1 " for job_id in (ok, bad)}
    deadline = time.monotonic() + 30
    while not all(any(line.startswith(e) for line in journal.read_text().splitlines()) for e in exits):
        assert time.monotonic() < deadline, "the jobs did not finish"  # each supervisor records its exit status
        time.sleep(0.05)
    server.start()
    jobs = wait_all_terminal(batch, [ok, bad], 30)

    # THEN the job that exited 0 succeeded with its one attempt and did not run again
    assert jobs[ok]["status"] == "SUCCEEDED"
    assert [(a["statusReason"], a["container"]["exitCode"]) for a in jobs[ok]["attempts"]] == [
        ("Essential container in task exited", 0)
    ]
    # AND one that failed unobserved counts as a lost host (its output pipe died with the server), so it is retried
    assert [a["statusReason"] for a in jobs[bad]["attempts"]] == [HOST_TERMINATED, "Essential container in task exited"]
    assert sorted(runs.read_text().splitlines()) == sorted([f"{ok} 1", f"{bad} 1", f"{bad} 2"])
