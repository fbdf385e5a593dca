"""Runs: children of one array claimed together onto one slot (docs/adr/0040).

On the local process executor an array's children run one after another on a kept runner per slot (ADR 0039). A
run is several of them claimed in one write: each child is STARTING with its own attempt (task id, log stream), and
the attempts carry the run's id (`Attempt.run`). The children of a run hold one slot's capacity between them, not
one each: the runner hands the next to its command as the last one ends, without the dispatcher between them.

How many children a run takes is `run_size`: enough that the dispatch cycle, the claim's write and the hand-over
are paid once for many short children, few enough that the run ends within RUN_BUDGET_MS by the durations its
array's children had so far, because another job that becomes RUNNABLE meanwhile waits for the slot until then. An
array whose children have not been seen to end yet gets runs of one.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Iterable

from chalicelib.domain.jobs import Job

RUN_BUDGET_MS = 250  # a run of short children is meant to last at most this long
MAX_RUN = 32  # children per run at most (one claim transaction; what a stop of the array has to settle at once)
SMOOTHING = 0.25  # weight of a new observation in an array's mean child duration
TRACKED = 1024  # arrays whose durations are remembered (the least recently ended are forgotten first)


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


class RunSizes:
    """The mean duration of each array's children, as the reactor saves their ends (any thread), and so the size
    of the array's next run."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._mean: OrderedDict[str, float] = OrderedDict()  # parent id -> mean child duration (ms)

    def observe(self, job: Job) -> None:
        if job.current is not None or not job.attempts or job.array is None or job.array.parent_id is None:
            return
        last = job.attempts[-1]
        if last.started_at is None or last.stopped_at is None:
            return
        took = float(last.stopped_at - last.started_at)
        parent = job.array.parent_id
        with self._lock:
            mean = self._mean.pop(parent, None)
            self._mean[parent] = took if mean is None else mean + SMOOTHING * (took - mean)
            if len(self._mean) > TRACKED:
                self._mean.popitem(last=False)

    def size(self, parent_id: str) -> int:
        with self._lock:
            return run_size(self._mean.get(parent_id))
