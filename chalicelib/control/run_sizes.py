"""The mean duration of each array's children, as the local reactor saves their ends, and so the size of the
array's next run (domain/runs.py `run_size`, docs/adr/0040)."""

from __future__ import annotations

import threading
from collections import OrderedDict

from chalicelib.domain.jobs import Job
from chalicelib.domain.runs import run_size

SMOOTHING = 0.25  # weight of a new observation in an array's mean child duration
TRACKED = 1024  # arrays whose durations are remembered (the least recently ended are forgotten first)


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
