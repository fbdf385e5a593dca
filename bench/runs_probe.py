"""Diagnosis for issue 17's last target (array children at 0.5x the raw spawn rate): what the "array runs" design
of docs/adr/0039 would cost per child on this machine, measured piece by piece before it is built.

`python -m bench.runs_probe [--children N]` prints one JSON line:

- `raw_spawn_per_s`: the denominator `make bench WORKLOAD=array-1000000` uses (bench/workloads.py
  `raw_spawn_rate`: `true` run to completion from 2 Python threads).
- `runner_per_s`, `runner_cpu_us`: the same `true` run by two long-lived `sh` runners, one per slot, each fed the
  children's keys through its stdin and doing per child what the design's runner must (a background job so its pid
  is known, the pid and exit lines appended to a journal, the end reported on its stdout). CPU is the runners' and
  children's (`getrusage(RUSAGE_CHILDREN)`), per child.
- `record_cpu_us`: the server's Python per child for what it would keep doing per child, with the real domain and
  store code: the child's record, its claim, start and stop transitions, two writes (claim; start and stop) in
  transactions of 100, and its three state-change events on the real local event bus.
- `projected_per_s`, `projected_vs_raw`: the two cores divided by the sum of the two CPU costs (the server's other
  per-child work is amortised over a run's children in the design, and not counted).

Figures, not a test: nothing is asserted.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from bench.workloads import raw_spawn_rate
from chalicelib.domain import arrays, lifecycle
from chalicelib.domain.job_detail import job_detail
from chalicelib.domain.jobs import ArrayInfo, Job
from chalicelib.domain.records import replace
from chalicelib.events.local import LocalEventBus
from chalicelib.store.jobs import job_item
from chalicelib.store.port import Put
from chalicelib.store.sqlite import SqliteItemStore

# One slot's runner: keys on stdin ("<key> <index>"), the command as "$@". No string built from job input.
RUNNER = (
    '__bp_j=$1; shift; while read -r __bp_k __bp_i; do AWS_BATCH_JOB_ARRAY_INDEX=$__bp_i "$@" </dev/null & '
    '__bp_p=$!; printf "pid %s %s\\n" "$__bp_k" "$__bp_p" >> "$__bp_j"; wait "$__bp_p"; __bp_c=$?; '
    'printf "exit %s %s\\n" "$__bp_k" "$__bp_c" >> "$__bp_j"; printf "%s %s\\n" "$__bp_k" "$__bp_c"; done'
)
SLOTS = 2
BATCH = 100


def runner_rate(children: int, work: Path, command: str) -> tuple[float, float]:
    """Children per second of SLOTS runners, and their CPU (runner and children) per child in microseconds."""
    journal = work / "journal"
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    procs = [
        subprocess.Popen(
            ["/bin/sh", "-c", RUNNER, "bp-runner", str(journal), command],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )
        for _ in range(SLOTS)
    ]
    ended = [0] * SLOTS

    def feed(slot: int) -> None:
        stdin = procs[slot].stdin
        assert stdin is not None
        stdin.write("".join(f"p:{i}#1 {i}\n" for i in range(slot, children, SLOTS)).encode())
        stdin.close()

    def read(slot: int) -> None:
        stdout = procs[slot].stdout
        assert stdout is not None
        ended[slot] = sum(1 for _ in stdout)

    threads = [threading.Thread(target=f, args=(s,)) for s in range(SLOTS) for f in (feed, read)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for p in procs:
        p.wait()
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return sum(ended) / wall, cpu / max(1, sum(ended)) * 1e6


def parent_job() -> Job:
    """An array parent as SubmitJob writes one (the fields a child copies), PENDING with its window written."""
    return Job(
        job_id="0b0d5b9e-6c0f-4c53-9f3a-3f0f6a1d2c11",
        arn="arn:aws:batch:us-east-1:123456789012:job/0b0d5b9e-6c0f-4c53-9f3a-3f0f6a1d2c11",
        name="probe",
        queue="q",
        queue_arn="arn:aws:batch:us-east-1:123456789012:job-queue/q",
        job_definition_arn="arn:aws:batch:us-east-1:123456789012:job-definition/d:1",
        job_definition_name="d",
        status="PENDING",
        created_at=1,
        container={"image": "busybox", "command": ["true"]},
        array=ArrayInfo(size=1_000_000, children_created=1000, window=1000),
    )


def record_cost(children: int, work: Path) -> float:
    """The server's CPU per child, in microseconds, for the per-child work the design keeps."""
    store = SqliteItemStore(str(work / "state.db"))
    bus = LocalEventBus(work / "events.jsonl", account="123456789012", region="us-east-1")
    parent = parent_job()
    t0 = time.process_time()
    for start in range(0, children, BATCH):
        claimed, ended = [], []
        for i in range(start, min(children, start + BATCH)):
            child = arrays.child(parent, i, [], 2)
            task = f"{i:032x}"
            after_claim = lifecycle.transition(child, lifecycle.Claim("ce", task, f"d/default/{task}"), 3).job
            assert after_claim is not None
            claimed.append(after_claim)
            after_start = lifecycle.transition(after_claim, lifecycle.TaskStarted(1), 4).job
            assert after_start is not None
            after_stop = lifecycle.transition(after_start, lifecycle.TaskStopped(1, 0), 5).job
            assert after_stop is not None
            ended.append((after_start, replace(after_stop, version=1)))
        store.transact([Put(job_item(j), None) for j in claimed])
        for j in claimed:
            bus.publish("Batch Job State Change", [j.arn], job_detail(j))
        store.transact([Put(job_item(j), 1) for _, j in ended])
        for started, stopped in ended:
            bus.publish("Batch Job State Change", [started.arn], job_detail(started))
            bus.publish("Batch Job State Change", [stopped.arn], job_detail(stopped))
    spent = time.process_time() - t0
    bus.close()
    return spent / children * 1e6


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.runs_probe", description=__doc__.split("\n\n")[0])
    parser.add_argument("--children", type=int, default=20_000)
    parser.add_argument(
        "--command",
        default="/bin/true",
        help="what each child runs (default /bin/true: `true` alone is a builtin of sh, which the runner would run "
        "without an exec, as today's supervisor does for the array-1000000 workload's children)",
    )
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bp-runs-probe-") as tmp:
        work = Path(tmp)
        raw_before = raw_spawn_rate(["true"], concurrency=SLOTS, seconds=3.0)
        runner_per_s, runner_cpu = runner_rate(args.children, work, args.command)
        record_cpu = record_cost(args.children, work)
        raw_after = raw_spawn_rate(["true"], concurrency=SLOTS, seconds=3.0)
    raw = (raw_before + raw_after) / 2
    cores = os.cpu_count() or 1
    projected = cores / ((runner_cpu + record_cpu) / 1e6)
    figures = {
        "children": args.children,
        "command": args.command,
        "cores": cores,
        "loadavg_1m": round(os.getloadavg()[0], 2),
        "raw_spawn_per_s": round(raw, 1),
        "runner_per_s": round(runner_per_s, 1),
        "runner_vs_raw": round(runner_per_s / raw, 3),
        "runner_cpu_us": round(runner_cpu, 1),
        "record_cpu_us": round(record_cpu, 1),
        "projected_per_s": round(projected, 1),
        "projected_vs_raw": round(projected / raw, 3),
    }
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
