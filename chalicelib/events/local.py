"""The local event bus: every event is appended to `<state>/events.jsonl` (EventBridge's envelope) and handed to
in-process subscribers (the CLI's watch, tests).

The file is rotated by size, as logrotate would: past `max_bytes` it becomes `events.jsonl.1` (the older ones shift to
`.2`, ... up to `backups`, the oldest is dropped) and a new file is started, so a long-lived `batchplane up` keeps at
most (backups + 1) x max_bytes of events (100,000 jobs write about 230 MB)."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from chalicelib import compact_json

Subscriber = Callable[[dict[str, Any]], None]

MAX_BYTES = 64 * 1024 * 1024
BACKUPS = 3


class LocalEventBus:
    def __init__(
        self,
        path: Path | None,
        *,
        account: str,
        region: str,
        max_bytes: int = MAX_BYTES,
        backups: int = BACKUPS,
    ) -> None:
        self.path = path
        self.account = account
        self.region = region
        self.max_bytes = max_bytes
        self.backups = backups
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
                self._file.write(compact_json.dumps(envelope) + "\n")
                self._file.flush()
                if self._file.tell() >= self.max_bytes:
                    self._rotate()
            subscribers = list(self._subscribers)
        for fn in subscribers:
            fn(envelope)

    def _rotate(self) -> None:
        """events.jsonl -> .1 -> .2 ... -> .<backups> (dropped beyond); a fresh events.jsonl. Under the lock."""
        assert self.path is not None and self._file is not None
        self._file.close()
        for n in range(self.backups, 0, -1):
            older = self.path.with_name(f"{self.path.name}.{n - 1}") if n > 1 else self.path
            if older.exists():
                older.replace(self.path.with_name(f"{self.path.name}.{n}"))
        if self.backups == 0:
            self.path.unlink(missing_ok=True)
        self._file = self.path.open("a", encoding="utf-8")

    def close(self) -> None:
        with self._lock:
            if self._file is not None:
                self._file.close()
                self._file = None
