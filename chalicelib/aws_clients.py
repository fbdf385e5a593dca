"""boto3 clients for the AWS adapters: created on first use (never at import), once, thread-safely."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

ClientFactory = Callable[[], Any]  # returns a boto3 client; called once, on first use


class LazyClient:
    def __init__(self, factory: ClientFactory) -> None:
        self._factory = factory
        self._client: Any = None
        self._lock = threading.Lock()

    def get(self) -> Any:
        if self._client is None:
            with self._lock:
                if self._client is None:
                    self._client = self._factory()
        return self._client
