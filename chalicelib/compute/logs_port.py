"""The LogStore port: per-attempt log streams (CloudWatch Logs' model: group /aws/batch/job, one stream each)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

LOG_GROUP = "/aws/batch/job"


@dataclass(frozen=True)
class LogEvent:
    timestamp: int  # epoch ms
    message: str
    ingestion_time: int


class LogStore(Protocol):
    def append(self, stream: str, events: list[tuple[int, str]]) -> None:
        """Append (timestamp ms, message) lines to a stream, creating it if needed. Thread-safe."""
        ...

    def exists(self, stream: str) -> bool: ...

    def read(
        self, stream: str, *, start_time: int | None, end_time: int | None, offset: int, limit: int, from_head: bool
    ) -> tuple[list[LogEvent], int, int]:
        """Events of one stream in time order within [start_time, end_time). Returns (events, forward_offset,
        backward_offset): opaque positions for the next page forward and backward."""
        ...

    def delete(self, stream: str) -> None:
        """Remove a stream (one that does not exist: nothing)."""
        ...

    def streams(self, prefix: str | None = None) -> list[tuple[str, int, int | None, int | None]]:
        """(stream name, creation time ms, first event ts, last event ts) in name order."""
        ...
