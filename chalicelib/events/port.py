"""The EventSink port: where "Batch Job State Change" events go (local bus, or EventBridge on AWS)."""

from __future__ import annotations

from typing import Any, Protocol


class EventSink(Protocol):
    def publish(self, detail_type: str, resources: list[str], detail: dict[str, Any]) -> None: ...


class NullSink:
    def publish(self, detail_type: str, resources: list[str], detail: dict[str, Any]) -> None:
        pass
