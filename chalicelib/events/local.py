"""The local event bus: every event is appended to `<state>/events.jsonl` (EventBridge's envelope) and handed to
in-process subscribers (the CLI's watch, tests)."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

Subscriber = Callable[[dict[str, Any]], None]


class LocalEventBus:
    def __init__(self, path: Path | None, *, account: str, region: str) -> None:
        self.path = path
        self.account = account
        self.region = region
        self._lock = threading.Lock()
        self._subscribers: list[Subscriber] = []
        self._file = path.open("a", encoding="utf-8") if path else None

    def subscribe(self, fn: Subscriber) -> None:
        with self._lock:
            self._subscribers.append(fn)

    def publish(self, detail_type: str, resources: list[str], detail: dict[str, Any]) -> None:
        envelope = {
            "version": "0",
            "id": str(uuid.uuid4()),
            "detail-type": detail_type,
            "source": "aws.batch",
            "account": self.account,
            "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "region": self.region,
            "resources": resources,
            "detail": detail,
        }
        with self._lock:
            if self._file is not None:
                self._file.write(json.dumps(envelope, separators=(",", ":")) + "\n")
                self._file.flush()
            subscribers = list(self._subscribers)
        for fn in subscribers:
            fn(envelope)

    def close(self) -> None:
        with self._lock:
            if self._file is not None:
                self._file.close()
                self._file = None
