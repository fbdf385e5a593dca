"""The Launcher port: start and stop one attempt of a job on some compute (local process, ECS task)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from chalicelib.domain.lifecycle import TaskStarted, TaskStopped


@dataclass(frozen=True)
class TaskSpec:
    job_id: str
    attempt: int
    task_id: str
    command: list[str]
    environment: dict[str, str]
    log_stream: str
    vcpus: float
    memory: int
    compute_environment: str
    timeout_seconds: int | None = None

    @property
    def key(self) -> str:
        """The idempotency key of a launch: one attempt of one job starts at most once."""
        return f"{self.job_id}#{self.attempt}"


# Launchers report what their tasks do as the same events the ECS path consumes.
TaskEventSink = Callable[[str, TaskStarted | TaskStopped], None]


class Launcher(Protocol):
    def launch(self, spec: TaskSpec) -> None:
        """Start the attempt unless it was started already (idempotent on spec.key)."""
        ...

    def stop(self, job_id: str, attempt: int, reason: str) -> None:
        """Stop the attempt if it runs (SIGTERM, then SIGKILL after a grace period); its stop is reported."""
        ...

    def recover(self, job_id: str, attempt: int) -> bool:
        """After a control-plane crash: was this attempt ever started? If it was and still runs unobserved, it is
        stopped, so it can never run twice."""
        ...


class NullLauncher:
    """Starts nothing: for deployments where another component launches tasks, and for tests."""

    def __init__(self) -> None:
        self.launched: list[TaskSpec] = []
        self.stopped: list[tuple[str, int, str]] = []

    def launch(self, spec: TaskSpec) -> None:
        if all(s.key != spec.key for s in self.launched):
            self.launched.append(spec)

    def stop(self, job_id: str, attempt: int, reason: str) -> None:
        self.stopped.append((job_id, attempt, reason))

    def recover(self, job_id: str, attempt: int) -> bool:
        return any(s.key == f"{job_id}#{attempt}" for s in self.launched)
