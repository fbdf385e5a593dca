"""`batchplane watch JOBID | --queue Q`: jobs by state, live.

- JOBID: the job with its ancestors and descendants (the DAG of `batchplane dag`), one row each, a progress bar
  per array (children finished) and one for the whole DAG (arrays count as their size). Exits when every job of
  the DAG is terminal: status 0 when all SUCCEEDED, 1 otherwise. New descendants are looked for as it goes.
- --queue Q: the queue's jobs counted by state (up to COUNT_LIMIT per state) and its active jobs, with why a
  RUNNABLE job is not running, and what the jobs listed cost (batchplaneCost, domain/cost.py) per share identifier
  and in all. Runs until Ctrl-C (or one snapshot with --once).
- --plain: no live screen; a line per change of state (logs, CI, tests).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from chalicelib.console import containers, dag
from chalicelib.console.client import ACTIVE, STATUSES, TERMINAL, Api, short
from chalicelib.console.views import cost_text, status_text, took
from chalicelib.domain import cost

COUNT_LIMIT = 1000
ALL = "\0all"  # the key of the queue's total among the per-share costs
ACTIVE_ROWS = 15
REDISCOVER_EVERY = 10  # polls between looks for new descendants


def _stop(console: Console, live: Live | None) -> None:
    if live is not None:
        live.stop()
        if not console.is_terminal:
            console.print()  # the last frame ends without a newline when not on a terminal


def _bar(done: int, total: int, width: int = 24) -> Table:
    grid = Table.grid(padding=(0, 1))
    grid.add_row(ProgressBar(total=max(total, 1), completed=done, width=width), Text(f"{done}/{total}"))
    return grid


def _dag_order(graph: dag.Graph) -> list[str]:
    return [node for layer in dag.layers(graph) for node in layer]


def dag_view(graph: dag.Graph) -> RenderableType:
    done = total = running = 0
    table = Table(expand=False)
    for column in ("Job", "Id", "Status", "Progress", "Attempts", "Reason"):
        table.add_column(column)
    for node in _dag_order(graph):
        job = graph.jobs[node]
        d, t = dag.progress_of(job)
        done, total = done + d, total + t
        summary = (job.get("arrayProperties") or {}).get("statusSummary") or {}
        running += summary.get("RUNNING", 0) + (1 if job["status"] == "RUNNING" else 0)
        marker = " ◀" if node == graph.root else ""
        ends = containers.summary(job)  # a multi-container job: its containers' exits
        table.add_row(
            job["jobName"] + marker + (f" [{ends}]" if ends else ""),
            short(node),
            status_text(job["status"]),
            _bar(d, t) if t > 1 else Text(""),
            str(len(job.get("attempts", []))) if t == 1 else "",
            Text(job.get("statusReason", "") if job["status"] != "SUCCEEDED" else "", style="dim"),
        )
        for n in graph.nodes.get(node, []):  # a multi-node job's nodes, under it
            details = n.get("nodeDetails") or {}
            main = " (main)" if details.get("isMainNode") else ""
            exit_code = (n.get("container") or {}).get("exitCode")
            table.add_row(
                f"  node {details.get('nodeIndex')}{main}",
                short(n["jobId"]),
                status_text(n["status"]),
                Text(""),
                "" if exit_code is None else f"exit {exit_code}",
                Text(n.get("statusReason", "") if n["status"] == "FAILED" else "", style="dim"),
            )
    head = Table.grid(padding=(0, 1))
    head.add_row(Text("DAG", style="bold"), _bar(done, total, 40), Text(f"{running} running", style="cyan"))
    return Group(head, table)


def dag_line(graph: dag.Graph) -> str:
    done = total = 0
    parts = []
    for node in _dag_order(graph):
        job = graph.jobs[node]
        d, t = dag.progress_of(job)
        done, total = done + d, total + t
        ends = containers.summary(job)
        parts.append(
            f"{job['jobName']} {job['status']}" + (f" {d}/{t}" if t > 1 else "") + (f" [{ends}]" if ends else "")
        )
    return f"DAG {done}/{total} | " + " | ".join(parts)


def watch_job(
    api: Api, console: Console, job_id: str, *, plain: bool, interval: float, once: bool, sleep: Callable[[float], None]
) -> int:
    graph = dag.build(api, job_id)
    polls = 0
    last = ""
    live = None if plain else Live(console=console, auto_refresh=False, transient=False)
    try:
        if live is not None:
            live.start()
        while True:
            if polls and polls % REDISCOVER_EVERY == 0:
                graph = dag.build(api, job_id)
            else:
                graph.jobs.update(api.describe(list(graph.jobs)))
                dag.refresh_nodes(api, graph)
            polls += 1
            finished = all(j["status"] in TERMINAL for j in graph.jobs.values())
            if live is not None:
                live.update(dag_view(graph), refresh=True)
            else:
                line = dag_line(graph)
                if line != last:
                    console.print(f"{datetime.now():%H:%M:%S}  {line}", markup=False, highlight=False, soft_wrap=True)
                    last = line
            if finished or once:
                break
            sleep(interval)
    finally:
        _stop(console, live)
    if not all(j["status"] in TERMINAL for j in graph.jobs.values()):
        return 0  # --once on a DAG still running
    failed = [j for j in graph.jobs.values() if j["status"] == "FAILED"]
    for job in failed:
        console.print(f"FAILED: {job['jobName']} ({job['jobId']}): {job.get('statusReason', '')}", markup=False)
    return 1 if failed else 0


# -- a queue ---------------------------------------------------------------------------------------------------


def queue_snapshot(api: Api, queue: str) -> tuple[dict[str, int], list[dict[str, Any]]]:
    counts, active, _ = queue_state(api, queue)
    return counts, active


def queue_state(api: Api, queue: str) -> tuple[dict[str, int], list[dict[str, Any]], dict[str, dict[str, float]]]:
    """The queue's counts per status, its RUNNABLE/STARTING/RUNNING jobs, and the cost of the jobs listed (at most
    COUNT_LIMIT per status) summed per share identifier ("" for jobs without one) and in all (key ALL)."""
    counts: dict[str, int] = {}
    active: list[dict[str, Any]] = []
    by_share: dict[str, list[dict[str, Any]]] = {}
    for status in STATUSES:
        jobs = list(api.queue_jobs(queue, status, COUNT_LIMIT))
        counts[status] = len(jobs)
        if status in ACTIVE and status not in ("SUBMITTED", "PENDING"):
            active += jobs
        for job in jobs:
            if cost.MEMBER in job:
                by_share.setdefault(job.get("shareIdentifier") or "", []).append(job[cost.MEMBER])
    order = {"RUNNING": 0, "STARTING": 1, "RUNNABLE": 2}
    active.sort(key=lambda j: (order.get(j["status"], 3), j.get("createdAt", 0)))
    totals = {share: cost.total(members) for share, members in by_share.items()}
    if totals:
        totals[ALL] = cost.total(m for members in by_share.values() for m in members)
    return counts, active, totals


def _count(n: int) -> str:
    return f"{n}+" if n >= COUNT_LIMIT else str(n)


def cost_table(costs: dict[str, dict[str, float]]) -> Table:
    """The cost of the jobs listed, per share identifier and in all."""
    table = Table(title="cost of the jobs listed (finished attempts)", title_justify="left")
    for column in ("Share", "Jobs' cost"):
        table.add_column(column)
    for share in sorted(s for s in costs if s != ALL):
        table.add_row(share or "(no share)", cost_text(costs[share]))
    table.add_row(Text("queue total", style="bold"), cost_text(costs[ALL]))
    return table


def queue_view(
    queue: str, counts: dict[str, int], active: list[dict[str, Any]], costs: dict[str, dict[str, float]] | None = None
) -> RenderableType:
    totals = Table(title=f"queue {queue}", title_justify="left")
    for status in STATUSES:
        totals.add_column(status, justify="right", style=dag.STATUS_STYLE.get(status, ""))
    totals.add_row(*(_count(counts[s]) for s in STATUSES))
    parts: list[RenderableType] = [totals]
    if costs:
        parts.append(cost_table(costs))
    if not active:
        return Group(*parts, Text("no job is RUNNABLE, STARTING or RUNNING", style="dim"))
    jobs = Table(title=f"active jobs (first {ACTIVE_ROWS})", title_justify="left")
    for column in ("Job", "Id", "Status", "Running for", "Cost so far", "Why not running"):
        jobs.add_column(column)
    for job in active[:ACTIVE_ROWS]:
        why = job.get("statusReason", "waiting for capacity") if job["status"] == "RUNNABLE" else ""
        spent = cost_text(job[cost.MEMBER]) if cost.MEMBER in job else "-"
        jobs.add_row(
            job["jobName"],
            short(job["jobId"]),
            status_text(job["status"]),
            took(job.get("startedAt"), None),
            spent,
            why,
        )
    return Group(*parts, jobs)


def queue_line(queue: str, counts: dict[str, int], costs: dict[str, dict[str, float]] | None = None) -> str:
    line = f"{queue}: " + " ".join(f"{s}={_count(counts[s])}" for s in STATUSES)
    if costs:
        line += " | " + cost_text(costs[ALL])
    return line


def watch_queue(
    api: Api, console: Console, queue: str, *, plain: bool, interval: float, once: bool, sleep: Callable[[float], None]
) -> int:
    last = ""
    live = None if plain else Live(console=console, auto_refresh=False)
    try:
        if live is not None:
            live.start()
        while True:
            counts, active, costs = queue_state(api, queue)
            if live is not None:
                live.update(queue_view(queue, counts, active, costs), refresh=True)
            else:
                line = queue_line(queue, counts, costs)
                if line != last:
                    console.print(f"{datetime.now():%H:%M:%S}  {line}", markup=False, highlight=False, soft_wrap=True)
                    last = line
            if once:
                return 0
            sleep(interval)
    finally:
        _stop(console, live)


def run(
    api: Api,
    console: Console,
    job_id: str | None,
    queue: str | None,
    *,
    plain: bool,
    interval: float,
    once: bool,
    sleep: Callable[[float], None] = time.sleep,
) -> int:
    if queue is not None:
        return watch_queue(api, console, queue, plain=plain, interval=interval, once=once, sleep=sleep)
    assert job_id is not None
    return watch_job(api, console, job_id, plain=plain, interval=interval, once=once, sleep=sleep)
