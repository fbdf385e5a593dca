"""`batchplane describe JOBID` and `batchplane logs JOBID`."""

from __future__ import annotations

import sys
import time
from datetime import datetime
from typing import Any

from rich.console import Console, Group
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from chalicelib.console import containers
from chalicelib.console.client import TERMINAL, Api, CliError, short
from chalicelib.console.dag import STATUS_STYLE, progress_of
from chalicelib.domain import cost
from chalicelib.domain.jobs import CANCEL_PENDING

LOG_GROUP = "/aws/batch/job"
FOLLOW_POLL_S = 1.0


def when(ms: int | None) -> str:
    return datetime.fromtimestamp(ms / 1000).strftime("%Y-%m-%d %H:%M:%S") if ms else "-"


def took(start: int | None, stop: int | None) -> str:
    if not start:
        return "-"
    seconds = ((stop or int(time.time() * 1000)) - start) / 1000
    return f"{seconds:.1f}s" if seconds < 120 else f"{seconds / 60:.1f}m"


def status_text(status: str) -> Text:
    return Text(status, style=f"bold {STATUS_STYLE.get(status, '')}")


def why_waiting(job: dict[str, Any], deps: dict[str, dict[str, Any]]) -> str | None:
    """For a job that is not running yet: what it waits for."""
    status = job["status"]
    if status == "RUNNABLE":
        return job.get("statusReason") or "waiting for room on a compute environment of its queue"
    if status in ("PENDING", "SUBMITTED"):
        if "size" in (job.get("arrayProperties") or {}):
            return "an array job: it finishes when its children do"
        waiting = [d for d in deps.values() if d["status"] not in ("SUCCEEDED", "FAILED")]  # not ended yet
        if waiting:
            return "waiting for " + ", ".join(f"{d['jobName']} ({short(d['jobId'])}, {d['status']})" for d in waiting)
    return None


def cost_text(member: dict[str, Any]) -> str:
    """A job's (or a total's) batchplaneCost for a person: resource-seconds, and the price where there is one."""
    parts = [
        f"{cost.fmt_seconds(float(member.get('vcpuSeconds', 0)))} vCPU",
        f"{cost.fmt_seconds(float(member.get('memoryGiBSeconds', 0)))} GiB",
    ]
    if float(member.get("gpuSeconds", 0)):
        parts.append(f"{cost.fmt_seconds(float(member['gpuSeconds']))} GPU")
    text = " · ".join(parts)
    if "costUsd" in member:
        text += f" · {cost.fmt_usd(float(member['costUsd']))}{' (estimate)' if member.get('estimated') else ''}"
    return text


def consumable_table(api: Api, job: dict[str, Any]) -> Table | None:
    """The consumable resources a job needs, with what each has available now (None: it needs none)."""
    needs = (job.get("consumableResourceProperties") or {}).get("consumableResourceList") or []
    if not needs:
        return None
    table = Table(title="Consumable resources", title_justify="left", expand=False)
    for column in ("Resource", "Needs", "Available", "In use", "Total", "Type"):
        table.add_column(column)
    for need in needs:
        ref = need["consumableResource"]
        try:
            r = api.call("DescribeConsumableResource", {"consumableResource": ref})
        except CliError:
            table.add_row(ref.rpartition("/")[2], str(need["quantity"]), Text("deleted", "red"), "-", "-", "-")
            continue
        row = (r["availableQuantity"], r["inUseQuantity"], r["totalQuantity"])
        table.add_row(r["consumableResourceName"], str(need["quantity"]), *map(str, row), r["resourceType"])
    return table


def describe(api: Api, console: Console, job_id: str) -> int:
    job = api.job(job_id)
    dep_ids = [d["jobId"] for d in job.get("dependsOn", []) if d.get("jobId")]
    deps = api.describe(dep_ids)

    facts = Table.grid(padding=(0, 2))
    facts.add_column(style="bold")
    facts.add_column()
    facts.add_row("Status", status_text(job["status"]))
    reason = job.get("statusReason") or ""
    if job["status"] == "PENDING" and reason.startswith(CANCEL_PENDING):
        # CancelJob of a PENDING job waits for its dependencies (AWS's rule; domain/lifecycle.py)
        why = reason[len(CANCEL_PENDING) :]
        facts.add_row("Cancel", Text(f"pending: fails with reason {why!r} once its dependencies complete", "red"))
    elif reason:
        facts.add_row("Reason", reason)
    waiting = why_waiting(job, deps)
    if waiting:
        facts.add_row("Why not running", Text(waiting, style="yellow"))
    facts.add_row("Queue", job["jobQueue"])
    facts.add_row("Definition", job["jobDefinition"])
    facts.add_row("Created", when(job.get("createdAt")))
    facts.add_row("Started", when(job.get("startedAt")))
    facts.add_row("Stopped", f"{when(job.get('stoppedAt'))}   (ran {took(job.get('startedAt'), job.get('stoppedAt'))})")
    if job.get("parameters"):
        facts.add_row("Parameters", ", ".join(f"{k}={v}" for k, v in sorted(job["parameters"].items())))
    if cost.MEMBER in job:
        facts.add_row("Cost", cost_text(job[cost.MEMBER]))
    retry = (job.get("retryStrategy") or {}).get("attempts")
    facts.add_row("Attempts", f"{len(job.get('attempts', []))} of at most {retry or 1}")
    array = job.get("arrayProperties") or {}
    if "size" in array:
        summary = {k: v for k, v in (array.get("statusSummary") or {}).items() if v}
        done, total = progress_of(job)
        counts = ", ".join(f"{k} {v}" for k, v in summary.items())
        facts.add_row("Array", f"{done}/{total} children finished ({counts})")
    elif "index" in array:
        facts.add_row("Array index", str(array["index"]))
    node_props, node = job.get("nodeProperties") or {}, job.get("nodeDetails")
    if node is not None:
        facts.add_row("Node", f"{node.get('nodeIndex')}{' (the main node)' if node.get('isMainNode') else ''}")
    elif "numNodes" in node_props:
        facts.add_row("Nodes", f"{node_props['numNodes']}, main node {node_props.get('mainNode', 0)}")
    parts: list[Any] = [facts]
    if containers.of(job):  # a multi-container job (ecsProperties)
        parts.append(containers.table(job))
    if node is None and "numNodes" in node_props:
        parts.append(nodes_table(api, job))

    if job.get("dependsOn"):
        table = Table(title="Depends on", title_justify="left", expand=False)
        for column in ("Job", "Id", "Type", "Status"):
            table.add_column(column)
        for d in job["dependsOn"]:
            dep = deps.get(d.get("jobId", ""))
            name = dep["jobName"] if dep else "-"
            status = status_text(dep["status"]) if dep else Text("-")
            table.add_row(name, d.get("jobId", "(previous child)"), d.get("type", "-"), status)
        parts.append(table)

    resources = consumable_table(api, job)
    if resources is not None:
        parts.append(resources)

    if job.get("attempts"):
        table = Table(title="Attempts", title_justify="left")
        for column in ("#", "Exit", "Status reason", "Started", "Ran", "Log stream"):
            table.add_column(column)
        for i, a in enumerate(job["attempts"], start=1):
            container = a.get("container", {})
            exit_code = container.get("exitCode")
            reason = a.get("statusReason", "") + (f" ({container['reason']})" if container.get("reason") else "")
            ends = containers.summary(a)  # a multi-container job's attempt: every container's exit
            table.add_row(
                str(i),
                ends or ("-" if exit_code is None else str(exit_code)),
                reason,
                when(a.get("startedAt")),
                took(a.get("startedAt"), a.get("stoppedAt")),
                container.get("logStreamName", "-"),
            )
        parts.append(table)
    title = f"{job['jobName']}  {job['jobId']}"
    console.print(Panel(Group(*parts), title=title, title_align="left"))
    return 0


# -- logs ------------------------------------------------------------------------------------------------------


def nodes_table(api: Api, job: dict[str, Any]) -> Table:
    """A multi-node parallel job's node jobs (`<jobId>#<index>`): status, exit and log stream of each."""
    count = int(job["nodeProperties"]["numNodes"])
    ids = [f"{job['jobId']}#{i}" for i in range(count)]
    found = api.describe(ids)
    table = Table(title="Nodes", title_justify="left")
    for column in ("Node", "Id", "Status", "Exit", "Log stream"):
        table.add_column(column)
    for i, node_id in enumerate(ids):
        n = found.get(node_id)
        if n is None:
            continue
        container = n.get("container") or {}
        main = " (main)" if (n.get("nodeDetails") or {}).get("isMainNode") else ""
        exit_code = container.get("exitCode")
        table.add_row(
            f"{i}{main}",
            node_id,
            status_text(n["status"]),
            "-" if exit_code is None else str(exit_code),
            container.get("logStreamName", "-"),
        )
    return table


def stream_of(job: dict[str, Any], attempt: int | None, container: str | None = None) -> str | None:
    """The log stream of an attempt (1-based; None: the latest), None while it has not started. `container`: which
    container of a multi-container job (default: its first essential one)."""
    attempts = job.get("attempts", [])
    running = job["status"] in ("STARTING", "RUNNING")
    count = len(attempts) + (1 if running else 0)
    if attempt is None:
        return containers.stream(job, job, container) if count else None
    if not 1 <= attempt <= max(count, 1) or (count == 0 and attempt == 1 and job["status"] in TERMINAL):
        raise CliError(f"job {job['jobId']} has no attempt {attempt} (it has {count})")
    if attempt <= len(attempts):
        return containers.stream(job, attempts[attempt - 1], container)
    return containers.stream(job, job, container) if running else None


def logs(
    api: Api, console: Console, job_id: str, follow: bool, attempt: int | None, container: str | None = None
) -> int:
    job = api.job(job_id)
    if "size" in (job.get("arrayProperties") or {}):
        raise CliError(f"job {job_id} is an array job; its children have the logs: {job_id}:<index>")
    if "numNodes" in (job.get("nodeProperties") or {}) and not job.get("nodeDetails"):
        raise CliError(f"job {job_id} is a multi-node parallel job; its nodes have the logs: {job_id}#<index>")
    stream = stream_of(job, attempt, container)
    while stream is None:
        if job["status"] in TERMINAL:
            reason = job.get("statusReason", job["status"])
            console.print(f"job {job_id} ended without running ({reason}): no logs", markup=False)
            return 0
        if not follow:
            console.print(f"job {job_id} has not started yet ({job['status']}): no logs", style="yellow")
            return 0
        time.sleep(FOLLOW_POLL_S)
        job = api.job(job_id)
        stream = stream_of(job, attempt, container)
    token: str | None = None
    out = console.file or sys.stdout
    while True:
        token, count = _page_all(api, stream, token, out)
        if not follow:
            return 0
        if count:
            continue
        job = api.job(job_id)
        latest = stream_of(job, None, container)
        if attempt is None and latest is not None and latest != stream:  # retried: follow the new attempt
            token, _ = _page_all(api, stream, token, out)
            stream, token = latest, None
            out.write(f"--- attempt {len(job.get('attempts', [])) + 1} ---\n")
            continue
        if job["status"] in TERMINAL or latest != stream:
            _page_all(api, stream, token, out)  # whatever came in before the stop
            return 0
        time.sleep(FOLLOW_POLL_S)


def _page_all(api: Api, stream: str, token: str | None, out: Any) -> tuple[str | None, int]:
    """Print every event after `token`; returns the token to continue from and how many were printed."""
    printed = 0
    while True:
        kwargs: dict[str, Any] = {"logGroupName": LOG_GROUP, "logStreamName": stream, "startFromHead": True}
        if token:
            kwargs["nextToken"] = token
        try:
            resp = api.logs.get_log_events(**kwargs)
        except Exception as e:
            code = (getattr(e, "response", None) or {}).get("Error", {}).get("Code")
            if code == "ResourceNotFoundException":
                return token, printed  # the stream has no events yet
            raise CliError(f"GetLogEvents: {e}") from None
        for event in resp.get("events", []):
            out.write(event["message"] + "\n")
        out.flush()
        printed += len(resp.get("events", []))
        nxt = resp.get("nextForwardToken")
        if not resp.get("events") or nxt == token:
            return nxt or token, printed
        token = nxt
