"""The local event bus: every event is appended to `<state>/events.jsonl` (EventBridge's envelope) and handed to
in-process subscribers (the CLI's watch, tests).

The file is rotated by size, as logrotate would: past `max_bytes` it becomes `events.jsonl.1` (the older ones shift to
`.2`, ... up to `backups`, the oldest is dropped) and a new file is started, so a long-lived `batchplane up` keeps at
most (backups + 1) x max_bytes of events (100,000 jobs write about 230 MB)."""

from __future__ import annotations

import itertools
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
        # Binary, its size counted here: a text file's tell() costs more than the event's write (an array's children
        # publish four events each). Each event is still written through at once (a reader tails the file).
        self._file = path.open("ab") if path else None
        self._size = self._file.tell() if self._file is not None else 0
        # Event ids: a random prefix and a counter, UUID-shaped (uuid4 asks the kernel for 16 random bytes each).
        self._id_prefix = uuid.uuid4().hex[:16]
        self._ids = itertools.count()
        self._second = -1
        self._time = ""

    def subscribe(self, fn: Subscriber) -> None:
        with self._lock:
            self._subscribers.append(fn)

    def _event_id(self) -> str:
        p, n = self._id_prefix, next(self._ids) & 0xFFFF_FFFF_FFFF_FFFF
        return f"{p[:8]}-{p[8:12]}-4{p[13:16]}-{0x8000 | (n >> 48) & 0x3FFF:04x}-{n & 0xFFFF_FFFF_FFFF:012x}"

    def _now(self) -> str:
        second = int(time.time())
        if second != self._second:
            self._second, self._time = second, time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(second))
        return self._time

    def publish(self, detail_type: str, resources: list[str], detail: dict[str, Any]) -> None:
        envelope = {
            "version": "0",
            "id": self._event_id(),
            "detail-type": detail_type,
            "source": "aws.batch",
            "account": self.account,
            "time": self._now(),
            "region": self.region,
            "resources": resources,
            "detail": detail,
        }
        with self._lock:
            if self._file is not None:
                line = (compact_json.dumps(envelope) + "\n").encode()
                self._file.write(line)
                self._file.flush()
                self._size += len(line)
                if self._size >= self.max_bytes:
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
        self._file = self.path.open("ab")
        self._size = 0

    def close(self) -> None:
        with self._lock:
            if self._file is not None:
                self._file.close()
                self._file = None
