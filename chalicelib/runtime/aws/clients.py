"""boto3 clients of one session for the AWS runtime, each made on first use (never at import) and kept for the
life of the Lambda container."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from chalicelib.aws_clients import LazyClient


class Clients:
    """boto3 clients of one session, each made on first use and kept for the life of the Lambda container."""

    def __init__(self, region: str, session_factory: Callable[[], Any] | None = None) -> None:
        self.region = region
        self._session_factory = session_factory
        self._session: Any = None
        self._clients: dict[str, Any] = {}
        self._lock = threading.Lock()

    def client(self, service: str) -> Any:
        with self._lock:
            if service not in self._clients:
                if self._session is None:
                    self._session = self._session_factory() if self._session_factory else _default_session()
                from botocore.config import Config

                config = Config(retries={"mode": "standard", "max_attempts": 5}, connect_timeout=5, read_timeout=30)
                self._clients[service] = self._session.client(service, region_name=self.region, config=config)
            return self._clients[service]

    def factory(self, service: str) -> Callable[[], Any]:
        return lambda: self.client(service)

    def lazy(self, service: str) -> Any:
        """A stand-in that makes the client on its first call, for adapters that take a client, not a factory."""
        return LazyClient(self.factory(service))


def _default_session() -> Any:
    import boto3

    return boto3.session.Session()
