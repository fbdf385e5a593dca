"""The containers of a multi-container job (ecsProperties) as the CLI shows them (docs/adr/0028)."""

from __future__ import annotations

from typing import Any

from rich.table import Table

from chalicelib.console.client import CliError


def of(detail: dict[str, Any]) -> list[dict[str, Any]]:
    """The containers of a JobDetail's task, or of an AttemptDetail's; [] for a single-container job."""
    tasks = (detail.get("ecsProperties") or {}).get("taskProperties") or detail.get("taskProperties") or []
    return list((tasks[0] if tasks else {}).get("containers") or [])


def summary(job: dict[str, Any]) -> str:
    """`main=3 side=143` (exit codes; `-` while running or when it never ran); "" for a single-container job."""
    return " ".join(f"{c['name']}={c.get('exitCode', '-')}" for c in of(job))


def table(job: dict[str, Any]) -> Table:
    t = Table(title="Containers", title_justify="left")
    for column in ("Name", "Essential", "Depends on", "Exit", "Reason", "Log stream"):
        t.add_column(column)
    for c in of(job):
        deps = ", ".join(f"{d['containerName']} {d['condition']}" for d in c.get("dependsOn") or [])
        t.add_row(
            c["name"],
            "yes" if c.get("essential", True) else "no",
            deps or "-",
            str(c["exitCode"]) if "exitCode" in c else "-",
            c.get("reason", ""),
            c.get("logStreamName", "-"),
        )
    return t


def stream(job: dict[str, Any], holder: dict[str, Any], name: str | None) -> str | None:
    """The log stream of container `name` (default: the job's first essential container) in `holder`, the job or
    one of its attempts. For a single-container job: the container's stream, and `name` must not be given."""
    defined = of(job)
    if not defined:
        if name is not None:
            raise CliError(f"job {job['jobId']} has a single container; --container is for multi-container jobs")
        found: str | None = (holder.get("container") or {}).get("logStreamName")
        return found
    names = [c["name"] for c in defined]
    if name is None:
        name = next((c["name"] for c in defined if c.get("essential", True)), names[0])
    elif name not in names:
        raise CliError(f"job {job['jobId']} has no container {name!r} (it has {', '.join(names)})")
    chosen = next((c for c in of(holder) if c.get("name") == name), {})
    return chosen.get("logStreamName")
