"""Runs: children of one array claimed together onto one slot (docs/adr/0040).

On the local process executor an array's children run one after another on a kept runner per slot (ADR 0039). A
run is several of them claimed in one write: each child is STARTING with its own attempt (task id, log stream), and
the attempts carry the run's id (`Attempt.run`). The children of a run hold one slot's capacity between them, not
one each: the runner hands the next to its command as the last one ends, without the dispatcher between them.

How many children a run takes is `run_size`: enough that the dispatch cycle, the claim's write and the hand-over
are paid once for many short children, few enough that the run ends within RUN_BUDGET_MS by the durations its
array's children had so far, because another job that becomes RUNNABLE meanwhile waits for the slot until then. An
array whose children have not been seen to end yet gets runs of one (control/run_sizes.py keeps the durations).
"""

from __future__ import annotations

from collections.abc import Iterable

from chalicelib.domain.jobs import Job

RUN_BUDGET_MS = 250  # a run of short children is meant to last at most this long
MAX_RUN = 32  # children per run at most (one claim transaction; what a stop of the array has to settle at once)


def run_size(mean_ms: float | None) -> int:
    """Children per run for an array whose children ran `mean_ms` on average (None: none ended yet)."""
    if mean_ms is None:
        return 1
    return max(1, min(MAX_RUN, int(RUN_BUDGET_MS / max(mean_ms, 1.0))))


def may_run_with_others(job: Job) -> bool:
    """A job that can be claimed in a run: a single-container array child, not a node, holding nothing per attempt
    that a run would count once (consumable resources, concurrency-cap places) and without an IAM role (its
    credentials are granted per attempt). The launcher decides the rest (compute/local_runs.py `eligible`)."""
    return (
        job.is_array_child
        and job.node_index is None
        and job.node_properties is None
        and job.ecs_properties is None
        and not job.consumable_resources
        and not job.caps
        and not job.container.get("jobRoleArn")
    )


def held_vcpus(jobs: Iterable[Job]) -> dict[str, float]:
    """vCPUs in use per compute environment name by these STARTING/RUNNING jobs: a run's children count once."""
    used: dict[str, float] = {}
    runs: set[str] = set()
    for job in jobs:
        current = job.current
        if current is None:
            continue
        if current.run is not None:
            if current.run in runs:
                continue
            runs.add(current.run)
        used[current.compute_environment] = used.get(current.compute_environment, 0.0) + job.vcpus
    return used
