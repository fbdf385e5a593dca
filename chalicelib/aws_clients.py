"""boto3 clients for the AWS adapters: created on first use (never at import), once, thread-safely."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from chalicelib.domain.errors import BatchplaneError, StoreUnavailable, Throttled

ClientFactory = Callable[[], Any]  # returns a boto3 client; called once, on first use


class LazyClient:
    """A boto3 client made on first use: `get()` it, or call its methods on this stand-in (for adapters that take a
    client, not a factory). The one lazy-client wrapper of the AWS adapters and the AWS runtime."""

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

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):  # never for its own state (before __init__ set it, e.g. while copying)
            raise AttributeError(name)
        return getattr(self.get(), name)


# Throttling error codes across the services batchplane calls (botocore's retry config lists the same family).
THROTTLED = frozenset(
    {"Throttling", "ThrottlingException", "ThrottledException", "TooManyRequestsException", "RequestLimitExceeded"}
)
Classify = Callable[[str, str], BatchplaneError | None]  # (code, message) -> a specific domain error, or None


def error_code(e: BaseException) -> str:
    """The AWS error code of a botocore ClientError (or anything carrying its `response`); "" when there is none."""
    response = getattr(e, "response", None)
    if not isinstance(response, dict):
        return ""
    return str(response.get("Error", {}).get("Code", "") or "")


def translate(e: BaseException, what: str, classify: Classify | None = None) -> BatchplaneError:
    """The domain error for a failed AWS call (raise it `from e`): Throttled for throttling, what `classify`
    says for the service's own codes, StoreUnavailable for everything else (5xx, access denied, network)."""
    code = error_code(e)
    if not code:
        return StoreUnavailable(f"{what} failed: {e}")
    response: dict[str, Any] = getattr(e, "response", {})
    message = str(response.get("Error", {}).get("Message", "")) or str(e)
    if code in THROTTLED:
        return Throttled(f"{what}: {code}: {message}")
    specific = classify(code, message) if classify is not None else None
    return specific or StoreUnavailable(f"{what}: {code}: {message}")
