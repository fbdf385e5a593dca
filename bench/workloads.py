"""The workloads. Each takes a Context (a fresh server, a client, the standard set-up) and returns its figures;
`TARGETS` says what each figure must meet. Timings: `wall_s` is client-observed (perf_counter from just before the
first SubmitJob to the poll that saw the last job terminal); `span_s` is server-side (min createdAt to max
stoppedAt of the jobs' own timestamps)."""

from __future__ import annotations

import itertools
import random
import resource
import statistics
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from bench import containers
from bench.client import (
    STARTED,
    WAIT_S,
    BenchTimeout,
    Setup,
    failed_count,
    make_client,
    percentile,
    set_ce_state,
    span_s,
    wait_for,
    wait_jobs,
)
from bench.server import Server


@dataclass
class Context:
    server: Server
    client: Any
    setup: Setup
    quick: bool
    array_poll_s: float = 0.02  # how often array-10000 describes its parent (diagnosis: try 1.0)
    array_size: int = 1_000_000  # the children of array-1000000 (`--array-size`: a shorter run)

    def submit(self, name: str, **kwargs: Any) -> str:
        resp = self.client.submit_job(
            jobName=name, jobQueue=self.setup.queue, jobDefinition=self.setup.job_definition, **kwargs
        )
        return str(resp["jobId"])


class Meter:
    """Server and client CPU seconds over a measured phase (is the server, or the client, the bottleneck?)."""

    def __init__(self, server: Server) -> None:
        self.server = server
        self.s0 = server.cpu_seconds()
        self.sys0 = server.cpu_split()[1]
        self.c0 = _client_cpu()
        self.t0 = time.perf_counter()

    def figures(self) -> dict[str, float]:
        elapsed = time.perf_counter() - self.t0
        server = self.server.cpu_seconds() - self.s0
        return {
            "server_cpu_s": round(server, 2),
            "server_sys_s": round(self.server.cpu_split()[1] - self.sys0, 2),  # the kernel's part (fork, I/O, futex)
            "client_cpu_s": round(_client_cpu() - self.c0, 2),
            "server_cpu_util": round(server / elapsed, 2) if elapsed > 0 else 0.0,
        }


def _client_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def _r(x: float, nd: int = 3) -> float:
    return round(x, nd)


# -- throughput and dependencies ----------------------------------------------------------------------------------


def run_independent(ctx: Context, n: int, prefix: str = "ind") -> dict[str, Any]:
    meter = Meter(ctx.server)
    t0 = time.perf_counter()
    ids = [ctx.submit(f"{prefix}-{i}") for i in range(n)]
    t_submitted = time.perf_counter()
    t_end, jobs = wait_jobs(ctx.client, ids)
    wall = t_end - t0
    return {
        "jobs": n,
        "wall_s": _r(wall),
        "span_s": span_s(jobs.values()),
        "jobs_per_s": _r(n / wall, 1),
        "submit_s": _r(t_submitted - t0),
        "failed": failed_count(jobs.values()),
        **meter.figures(),
    }


def independent_200(ctx: Context) -> dict[str, Any]:
    return run_independent(ctx, 200)


def _chains(ctx: Context, chains: int, length: int) -> tuple[float, float, dict[str, dict[str, Any]], list[list[str]]]:
    t0 = time.perf_counter()
    all_chains: list[list[str]] = []
    for c in range(chains):
        chain: list[str] = []
        for i in range(length):
            deps = {"dependsOn": [{"jobId": chain[-1]}]} if chain else {}
            chain.append(ctx.submit(f"chain{c}-{i}", **deps))
        all_chains.append(chain)
    t_submitted = time.perf_counter()
    t_end, jobs = wait_jobs(ctx.client, [j for chain in all_chains for j in chain])
    return t_end - t0, t_submitted - t0, jobs, all_chains


def _hop_gaps_ms(jobs: dict[str, dict[str, Any]], chains: list[list[str]]) -> list[float]:
    """Server-side hop: a job's startedAt minus its predecessor's stoppedAt."""
    gaps = []
    for chain in chains:
        for prev, nxt in itertools.pairwise(chain):
            a, b = jobs[prev].get("stoppedAt"), jobs[nxt].get("startedAt")
            if a is not None and b is not None:
                gaps.append(float(b - a))
    return gaps


def chains_10x20(ctx: Context) -> dict[str, Any]:
    meter = Meter(ctx.server)
    wall, submit, jobs, chains = _chains(ctx, 10, 20)
    gaps = _hop_gaps_ms(jobs, chains)
    return {
        "jobs": 200,
        "wall_s": _r(wall),
        "span_s": span_s(jobs.values()),
        "submit_s": _r(submit),
        "hop_gap_ms_p50": _r(percentile(gaps, 50), 1) if gaps else None,
        "failed": failed_count(jobs.values()),
        **meter.figures(),
    }


def chain_200(ctx: Context) -> dict[str, Any]:
    meter = Meter(ctx.server)
    wall, submit, jobs, chains = _chains(ctx, 1, 200)
    gaps = _hop_gaps_ms(jobs, chains)
    return {
        "jobs": 200,
        "wall_s": _r(wall),
        "span_s": span_s(jobs.values()),
        "per_hop_ms": _r(wall * 1000 / 200, 2),
        "submit_s": _r(submit),
        "hop_gap_ms_p50": _r(percentile(gaps, 50), 1) if gaps else None,
        "hop_gap_ms_p99": _r(percentile(gaps, 99), 1) if gaps else None,
        "failed": failed_count(jobs.values()),
        **meter.figures(),
    }


# -- arrays -------------------------------------------------------------------------------------------------------


def _describe_one(ctx: Context, job_id: str) -> dict[str, Any]:
    jobs = ctx.client.describe_jobs(jobs=[job_id])["jobs"]
    if not jobs:
        raise RuntimeError(f"job {job_id} not found")
    return dict(jobs[0])


def _wait_status(
    ctx: Context, job_id: str, statuses: frozenset[str], poll: float, timeout: float = WAIT_S
) -> tuple[float, dict[str, Any], list[float]]:
    """(perf_counter when seen, the description, the duration of each DescribeJobs call in seconds)."""
    deadline = time.monotonic() + timeout
    calls: list[float] = []
    while True:
        t = time.perf_counter()
        job = _describe_one(ctx, job_id)
        calls.append(time.perf_counter() - t)
        if job["status"] in statuses:
            return time.perf_counter(), job, calls
        if time.monotonic() > deadline:
            summary = (job.get("arrayProperties") or {}).get("statusSummary")
            raise BenchTimeout(f"job {job_id} is {job['status']} {summary or ''} after {timeout:.0f}s")
        time.sleep(poll)


ARRAY_WAIT_S = 600.0  # 20x the target: long enough to get a figure when the target is missed, still bounded


class Incomplete(RuntimeError):
    """The workload could not finish; `figures` holds what was measured up to then (reported with the error)."""

    def __init__(self, message: str, figures: dict[str, Any]) -> None:
        super().__init__(message)
        self.figures = figures


def array_10000(ctx: Context) -> dict[str, Any]:
    size = 10_000
    meter = Meter(ctx.server)
    t0 = time.perf_counter()
    parent = ctx.submit("array", arrayProperties={"size": size})
    t1 = time.perf_counter()
    figures: dict[str, Any] = {"children": size, "submit_ms": _r((t1 - t0) * 1000, 1), "poll_s": ctx.array_poll_s}
    try:
        t_end, job, calls = _wait_status(
            ctx, parent, frozenset({"SUCCEEDED", "FAILED"}), poll=ctx.array_poll_s, timeout=ARRAY_WAIT_S
        )
    except BenchTimeout as e:
        summary = (_describe_one(ctx, parent).get("arrayProperties") or {}).get("statusSummary") or {}
        done = int(summary.get("SUCCEEDED", 0)) + int(summary.get("FAILED", 0))
        elapsed = time.perf_counter() - t0
        figures.update(
            {"children_done": done, "children_per_s": _r(done / elapsed, 1), "wall_s": None, **meter.figures()}
        )
        raise Incomplete(str(e), figures) from e
    wall = t_end - t0
    summary = (job.get("arrayProperties") or {}).get("statusSummary") or {}
    figures.update(
        {
            "wall_s": _r(wall),
            "span_s": span_s([job]),
            "children_per_s": _r(size / wall, 1),
            "status": job["status"],
            "succeeded": summary.get("SUCCEEDED"),
            "failed": summary.get("FAILED"),
            "describe_calls": len(calls),
            "describe_ms_p50": _r(percentile(calls, 50) * 1000, 1),
            "describe_ms_max": _r(max(calls) * 1000, 1),
            **meter.figures(),
        }
    )
    return figures


def raw_spawn_rate(command: list[str], concurrency: int, seconds: float) -> float:
    """How many times per second this machine can run `command` to completion, `concurrency` at a time (the
    compute environment's slots): the ceiling any executor of these jobs could reach."""
    done = [0] * concurrency
    deadline = time.perf_counter() + seconds

    def spawn(slot: int) -> None:
        while time.perf_counter() < deadline:
            subprocess.run(command, check=True, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
            done[slot] += 1

    t0 = time.perf_counter()
    threads = [threading.Thread(target=spawn, args=(i,)) for i in range(concurrency)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return sum(done) / (time.perf_counter() - t0)


def array_big(ctx: Context) -> dict[str, Any]:
    """array-1000000 (docs/adr/0031): one array of `ctx.array_size` children running `true` on the CE's 2 slots.
    Figures: submit time; children per second, and its ratio to the raw spawn rate of `true` with the same 2 slots
    on this machine (measured for 3 s before the array and 3 s after it: on a shared machine one sample can be off
    by 2x, so the ratio is against their mean); the server's resident set when idle and its peak above that (lazy
    children: it must stay flat, whatever the size)."""
    size = ctx.array_size
    raw = raw_spawn_rate(["true"], concurrency=2, seconds=3.0)
    ctx.server.wait_idle()
    idle_kib = ctx.server.memory_kib().get("VmRSS", 0)
    meter = Meter(ctx.server)
    t0 = time.perf_counter()
    parent = ctx.submit("array", arrayProperties={"size": size})
    t1 = time.perf_counter()
    figures: dict[str, Any] = {
        "children": size,
        "submit_ms": _r((t1 - t0) * 1000, 1),
        "raw_spawn_before_per_s": _r(raw, 1),
        "idle_rss_mb": _r(idle_kib / 1024, 1),
    }
    poll = max(ctx.array_poll_s, 1.0)
    deadline = time.monotonic() + max(ARRAY_WAIT_S, size / 50)
    job = _describe_one(ctx, parent)
    while job["status"] not in ("SUCCEEDED", "FAILED"):
        if time.monotonic() > deadline:
            break
        time.sleep(_next_poll(poll, _done(job), size, time.perf_counter() - t0))
        job = _describe_one(ctx, parent)
    wall = time.perf_counter() - t0
    summary = (job.get("arrayProperties") or {}).get("statusSummary") or {}
    done = _done(job)
    peak_kib = ctx.server.memory_kib().get("VmHWM", 0)
    after = raw_spawn_rate(["true"], concurrency=2, seconds=3.0)
    raw = (raw + after) / 2
    figures.update(
        {
            "raw_spawn_after_per_s": _r(after, 1),
            "raw_spawn_per_s": _r(raw, 1),
            "wall_s": _r(wall, 1),
            "children_done": done,
            "children_per_s": _r(done / wall, 1),
            "vs_raw_spawn": _r(done / wall / raw, 3) if raw else None,
            "peak_rss_above_idle_mb": _r((peak_kib - idle_kib) / 1024, 1),
            "status": job["status"],
            "succeeded": summary.get("SUCCEEDED"),
            "failed": summary.get("FAILED"),
            **meter.figures(),
        }
    )
    if job["status"] not in ("SUCCEEDED", "FAILED"):
        raise Incomplete(f"array {parent} not finished after {wall:.0f}s: {summary}", figures)
    return figures


FINE_POLL_S = 0.05  # array-1000000's poll near the end: the wall time of a 20,000-child run is not quantized by 1 s


def _done(job: dict[str, Any]) -> int:
    summary = (job.get("arrayProperties") or {}).get("statusSummary") or {}
    return int(summary.get("SUCCEEDED", 0)) + int(summary.get("FAILED", 0))


def _next_poll(poll: float, done: int, size: int, elapsed: float) -> float:
    """`poll` seconds until the array is about to end at its rate so far, then shorter (down to FINE_POLL_S): a
    DescribeJobs of the parent a second costs the server nothing measurable, and the last one now lands within
    FINE_POLL_S of the end instead of up to a second after it."""
    if done <= 0 or elapsed <= 0:
        return poll
    remaining = (size - done) / (done / elapsed)
    return max(FINE_POLL_S, min(poll, remaining / 2))


# -- API rates ----------------------------------------------------------------------------------------------------


@dataclass
class _Tally:
    ok: int = 0
    errors: int = 0
    throttled: int = 0
    last_error: str | None = None


def _hammer(
    ctx: Context, threads: int, seconds: float, call: Callable[[Any, random.Random, list[str]], None]
) -> tuple[list[_Tally], list[list[str]], float]:
    """Run `call(client, rng, out)` in a loop from `threads` threads (each with its own client) for `seconds`."""
    clients = [make_client(ctx.server.endpoint) for _ in range(threads)]
    tallies = [_Tally() for _ in range(threads)]
    outs: list[list[str]] = [[] for _ in range(threads)]
    start = threading.Barrier(threads + 1)
    stop_at = [0.0]

    def worker(i: int) -> None:
        rng = random.Random(i)
        start.wait()
        while time.perf_counter() < stop_at[0]:
            try:
                call(clients[i], rng, outs[i])
                tallies[i].ok += 1
            except ClientError as e:
                code = e.response.get("Error", {}).get("Code")
                if (
                    code == "TooManyRequestsException"
                    or e.response.get("ResponseMetadata", {}).get("HTTPStatusCode") == 429
                ):
                    tallies[i].throttled += 1
                else:
                    tallies[i].errors += 1
                    tallies[i].last_error = f"{code}: {e}"[:300]
            except Exception as e:  # connection errors and the like count as errors
                tallies[i].errors += 1
                tallies[i].last_error = f"{type(e).__name__}: {e}"[:300]

    pool = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(threads)]
    for t in pool:
        t.start()
    stop_at[0] = time.perf_counter() + seconds
    t0 = time.perf_counter()
    start.wait()
    for t in pool:
        t.join(seconds + 60)
    elapsed = time.perf_counter() - t0
    if any(t.is_alive() for t in pool):
        raise BenchTimeout("client threads did not finish")
    return tallies, outs, elapsed


def submit_rate(ctx: Context) -> dict[str, Any]:
    set_ce_state(ctx.client, ctx.setup, "DISABLED")
    seconds = 10.0 if ctx.quick else 30.0
    threads = 8

    def submit(client: Any, rng: random.Random, out: list[str]) -> None:
        resp = client.submit_job(jobName="rate", jobQueue=ctx.setup.queue, jobDefinition=ctx.setup.job_definition)
        out.append(resp["jobId"])

    m1 = Meter(ctx.server)
    tallies, outs, elapsed = _hammer(ctx, threads, seconds, submit)
    sub_meter = m1.figures()
    ids = [j for out in outs for j in out]
    if not ids:
        raise RuntimeError(f"no submission succeeded: {next((t.last_error for t in tallies if t.last_error), '')}")

    def describe(client: Any, rng: random.Random, out: list[str]) -> None:
        client.describe_jobs(jobs=rng.sample(ids, min(100, len(ids))))

    m2 = Meter(ctx.server)
    d_tallies, _, d_elapsed = _hammer(ctx, threads, 10.0, describe)
    desc_meter = m2.figures()
    return {
        "threads": threads,
        "submit_seconds": _r(elapsed, 1),
        "submitted": sum(t.ok for t in tallies),
        "submit_per_s": _r(sum(t.ok for t in tallies) / elapsed, 1),
        "submit_errors": sum(t.errors for t in tallies),
        "submit_throttled": sum(t.throttled for t in tallies),
        "submit_server_cpu_util": sub_meter["server_cpu_util"],
        "submit_client_cpu_s": sub_meter["client_cpu_s"],
        "describe_seconds": _r(d_elapsed, 1),
        "describe_per_s": _r(sum(t.ok for t in d_tallies) / d_elapsed, 1),
        "jobs_described_per_s": _r(100 * sum(t.ok for t in d_tallies) / d_elapsed, 1),
        "describe_errors": sum(t.errors for t in d_tallies),
        "describe_throttled": sum(t.throttled for t in d_tallies),
        "describe_server_cpu_util": desc_meter["server_cpu_util"],
        "describe_client_cpu_s": desc_meter["client_cpu_s"],
        "last_error": next((t.last_error for t in tallies + d_tallies if t.last_error), None),
    }


# -- latency ------------------------------------------------------------------------------------------------------


def latency(ctx: Context) -> dict[str, Any]:
    n = 500
    server_ms: list[float] = []
    client_ms: list[float] = []
    meter = Meter(ctx.server)
    for i in range(n):
        t0 = time.perf_counter()
        job_id = ctx.submit(f"lat-{i}")
        t_seen, job, _ = _wait_status(ctx, job_id, STARTED, poll=0.005, timeout=60)
        client_ms.append((t_seen - t0) * 1000)
        if job.get("startedAt") is not None:
            server_ms.append(float(job["startedAt"] - job["createdAt"]))
    return {
        "jobs": n,
        "p50_ms": _r(percentile(server_ms, 50), 1),
        "p99_ms": _r(percentile(server_ms, 99), 1),
        "max_ms": _r(max(server_ms), 1) if server_ms else None,
        "mean_ms": _r(statistics.fmean(server_ms), 2) if server_ms else None,
        "client_p50_ms": _r(percentile(client_ms, 50), 1),
        "client_p99_ms": _r(percentile(client_ms, 99), 1),
        "started": len(server_ms),
        **meter.figures(),
    }


def api_latency(ctx: Context) -> dict[str, Any]:
    """One keep-alive boto3 client calling DescribeJobQueues back to back: the per-request cost of the HTTP front
    end (the foundation issue asks for a median under 5 ms; Nagle's algorithm alone would cost ~44 ms)."""
    calls = 1000
    ctx.client.describe_job_queues()  # the connection is open before timing starts
    ms = []
    for _ in range(calls):
        t0 = time.perf_counter()
        ctx.client.describe_job_queues()
        ms.append((time.perf_counter() - t0) * 1000)
    return {
        "calls": calls,
        "p50_ms": _r(percentile(ms, 50), 2),
        "p99_ms": _r(percentile(ms, 99), 2),
        "max_ms": _r(max(ms), 2),
    }


# -- scale --------------------------------------------------------------------------------------------------------

ARRAY_CHUNK = 10_000


def prefill(ctx: Context, total: int) -> float:
    """Put `total` finished jobs in the store, fast: with the CE disabled, array jobs of up to 10,000 children are
    submitted, their children written (RUNNABLE), then the parents cancelled (every child becomes FAILED).
    Returns the seconds it took."""
    t0 = time.perf_counter()
    set_ce_state(ctx.client, ctx.setup, "DISABLED")
    left = total
    while left > 0:
        size = min(ARRAY_CHUNK, left)
        parent = ctx.submit("fill", arrayProperties={"size": size})

        def all_written(parent: str = parent, size: int = size) -> bool:
            summary = (_describe_one(ctx, parent).get("arrayProperties") or {}).get("statusSummary") or {}
            return int(summary.get("RUNNABLE", 0)) == size

        wait_for(all_written, f"the {size} children of {parent}", poll=0.2)
        ctx.client.cancel_job(jobId=parent, reason="bench prefill")
        _, job, _ = _wait_status(ctx, parent, frozenset({"FAILED", "SUCCEEDED"}), poll=0.2)
        summary = (job.get("arrayProperties") or {}).get("statusSummary") or {}
        if int(summary.get("FAILED", 0)) + int(summary.get("SUCCEEDED", 0)) != size:
            raise RuntimeError(f"prefill array {parent} ended with {summary}")
        left -= size
    set_ce_state(ctx.client, ctx.setup, "ENABLED")
    return time.perf_counter() - t0


def _throughput(ctx: Context, label: str, rounds: int = 5) -> dict[str, Any]:
    runs = [run_independent(ctx, 200, prefix=f"{label}-{r}") for r in range(rounds)]
    rates = [r["jobs_per_s"] for r in runs]
    return {"jobs_per_s": statistics.median(rates), "runs_jobs_per_s": rates}


def scale(ctx: Context) -> dict[str, Any]:
    small, large = (1_000, 10_000) if ctx.quick else (1_000, 100_000)
    # After each prefill, the same wait for an idle server: a parent is FAILED once its children are counted, but
    # notifying the dependents of its (up to 10,000) cancelled children is still queued on the server's work thread,
    # and it would run during, and slow, the first measured batch (docs/performance.md, "scale, second pass").
    fill_small = prefill(ctx, small)
    settle_small = ctx.server.wait_idle()
    at_small = _throughput(ctx, "small")
    fill_large = prefill(ctx, large - small)
    settle_large = ctx.server.wait_idle()
    at_large = _throughput(ctx, "large")
    ratio = at_large["jobs_per_s"] / at_small["jobs_per_s"] if at_small["jobs_per_s"] else 0.0
    return {
        "small_store_jobs": small,
        "large_store_jobs": large,
        "jobs_per_s_small": at_small["jobs_per_s"],
        "jobs_per_s_large": at_large["jobs_per_s"],
        "runs_small": at_small["runs_jobs_per_s"],
        "runs_large": at_large["runs_jobs_per_s"],
        "ratio": _r(ratio),
        "prefill_s": _r(fill_small + fill_large, 1),
        "prefill_jobs_per_s": _r(large / (fill_small + fill_large), 1),
        "settle_s": [_r(settle_small, 2), _r(settle_large, 2)],
    }


# -- AWS cost per job (in-process, on moto: no server) --------------------------------------------------------------


def aws_cost(_: Context | None = None) -> dict[str, Any]:
    """AWS calls and list-price cost per job on the serverless runtime, played on moto by the e2e test's harness
    (bench/aws_harness.py, shared with the tests; imported here: moto and Chalice load only for this workload)."""
    from bench.aws_harness import LAMBDA_ASSUMED_MS, LAMBDA_MEMORY_MB, PRICES, measure_aws_cost

    kinds = measure_aws_cost(array_size=10, loaded=20)
    figures: dict[str, Any] = {}
    plain = kinds["plain"]
    figures["plain_dynamodb_writes"] = plain["per_job"]["dynamodb_writes"]
    figures["plain_handler_invocations"] = plain["per_job"]["handler_invocations"]
    figures["plain_usd_per_million"] = plain["usd_per_million"]["control_plane"]
    figures["kinds"] = kinds
    figures["prices_usd"] = PRICES
    figures["lambda_assumed"] = {"memory_mb": LAMBDA_MEMORY_MB, "billed_ms": LAMBDA_ASSUMED_MS}
    return figures


# -- registry -----------------------------------------------------------------------------------------------------

Workload = Callable[[Context], dict[str, Any]]

WORKLOADS: dict[str, Workload] = {
    "independent-200": independent_200,
    "chains-10x20": chains_10x20,
    "chain-200": chain_200,
    "array-10000": array_10000,
    "array-1000000": array_big,
    "submit-rate": submit_rate,
    "latency": latency,
    "api-latency": api_latency,
    "scale": scale,
    "aws-cost": aws_cost,
    # bench/containers.py: the Docker executor beside plain docker (skipped when no engine answers)
    **{name: (lambda ctx, run=run: run(ctx.client)) for name, run in containers.WORKLOADS.items()},
}

# Workloads that run in-process and need no server: the runner calls these without a Context.
IN_PROCESS: dict[str, Callable[[], dict[str, Any]]] = {"aws-cost": aws_cost}

# Per workload: figure -> (bound, "<=" or ">=").
TARGETS: dict[str, dict[str, tuple[float, str]]] = {
    "independent-200": {"wall_s": (5.0, "<=")},
    "chains-10x20": {"wall_s": (3.0, "<=")},
    "chain-200": {"wall_s": (4.0, "<=")},
    "array-10000": {"submit_ms": (200.0, "<="), "wall_s": (30.0, "<=")},
    "array-1000000": {"submit_ms": (200.0, "<="), "vs_raw_spawn": (0.5, ">="), "peak_rss_above_idle_mb": (200.0, "<=")},
    "submit-rate": {"submit_per_s": (500.0, ">=")},
    "latency": {"p50_ms": (20.0, "<="), "p99_ms": (100.0, "<=")},
    "api-latency": {"p50_ms": (5.0, "<=")},
    "scale": {"ratio": (0.8, ">=")},
    "aws-cost": {
        "plain_dynamodb_writes": (4, "<="),
        "plain_handler_invocations": (3, "<="),
        "plain_usd_per_million": (5.0, "<="),
    },
    **containers.TARGETS,
}


def judge(name: str, figures: dict[str, Any]) -> tuple[dict[str, float], bool, dict[str, bool]]:
    """(targets, all met, met per figure)."""
    targets = TARGETS.get(name, {})
    per: dict[str, bool] = {}
    for key, (bound, op) in targets.items():
        value = figures.get(key)
        if not isinstance(value, (int, float)):
            per[key] = False
        else:
            per[key] = value <= bound if op == "<=" else value >= bound
    return {k: b for k, (b, _) in targets.items()}, all(per.values()), per
