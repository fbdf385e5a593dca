"""The ports of events/:

- EventSink: where "Batch Job State Change" events go (the local bus, or EventBridge on AWS); NullSink drops them.
- SchedulePort: where schedule triggers tick. `LocalSchedules` registers nothing: the local runtime's timer
  (chalicelib/runtime/triggers.py) reads the trigger definitions from the store, so a created trigger ticks and a
  deleted one stops without being told. On AWS, EventBridge Scheduler (events/schedules.py).
"""

from __future__ import annotations

from typing import Any, Protocol

from chalicelib.domain.triggers import Trigger


class EventSink(Protocol):
    def publish(self, detail_type: str, resources: list[str], detail: dict[str, Any]) -> None: ...


class NullSink:
    def publish(self, detail_type: str, resources: list[str], detail: dict[str, Any]) -> None:
        pass


class SchedulePort(Protocol):
    def register(self, trigger: Trigger) -> None:
        """Make a schedule trigger tick (idempotent; replaces an existing schedule of the same name)."""
        ...

    def unregister(self, name: str) -> None:
        """Stop the trigger's schedule; nothing happens when there is none."""
        ...


class LocalSchedules:
    def register(self, trigger: Trigger) -> None:
        pass

    def unregister(self, name: str) -> None:
        pass
