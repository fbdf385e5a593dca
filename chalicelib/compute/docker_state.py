"""What lets the Docker executor find its containers again after a restart (the recovery protocol of ADR 0016):
the labels every container of a state carries, the journal of the attempts it created and started, and where a
re-attached container's log picks up. Shared by compute/docker.py (single containers) and compute/docker_group.py
(multi-container tasks)."""

from __future__ import annotations

import os
from pathlib import Path

from chalicelib.compute.local import DOCKER_JOURNAL
from chalicelib.compute.logs_port import LogStore
from chalicelib.domain.reasons import host_terminated_reason

LABEL_JOB = "batchplane.job-id"
LABEL_ATTEMPT = "batchplane.attempt"
LABEL_STATE = "batchplane.state-dir"
LABEL_STREAM = "batchplane.log-stream"
# Containers created before docs/adr/0025 carry their attempt's timeout in label "batchplane.timeout"; it is ignored
# (the control plane times the attempt from its startedAt).
OOM_REASON = "OutOfMemoryError: Container killed due to memory usage"
OOM_EXIT = 137
LOST_HOST = host_terminated_reason("local")
JOURNAL = DOCKER_JOURNAL


class Journal:
    """`<work root>/docker-journal`: "created <key>" before an attempt's container can exist, "started <key>" before
    it can run, one append each (the process executor reads the `created` lines too: compute/local.py)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        self._started: set[str] | None = None  # the `started` lines, read at the first recovery

    def created(self, key: str) -> None:
        os.write(self.fd, f"created {key}\n".encode())

    def started(self, key: str) -> None:
        os.write(self.fd, f"started {key}\n".encode())

    def was_started(self, key: str) -> bool:
        """Whether the attempt's container may have been started (its `started` line, written before the start, was
        there when the journal was first read: the attempts of the server before this one)."""
        if self._started is None:
            try:
                lines = self.path.read_text().splitlines()
            except OSError:
                lines = []
            self._started = {line[8:] for line in lines if line.startswith("started ")}
        return key in self._started

    def close(self) -> None:
        os.close(self.fd)


def last_logged(logs: LogStore, stream: str) -> int | None:
    """The timestamp of the last line recorded in `stream`: a re-attached container's log goes on after it."""
    for name, _, _, last in logs.streams(stream):
        if name == stream:
            return last
    return None
