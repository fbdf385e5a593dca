"""Typed errors of the domain. `api/errors.py` maps them to wire codes in one place; nothing matches on text."""

from __future__ import annotations


class BatchplaneError(Exception):
    """Base of every error batchplane raises on purpose."""


class InvalidRequest(BatchplaneError):
    """The caller sent something the API rejects: wire `ClientException`, HTTP 400.

    The message names the field and the rule it broke.
    """


class NotFound(InvalidRequest):
    """A referenced resource does not exist (AWS answers these with ClientException too)."""


class Conflict(BatchplaneError):
    """A conditional write lost: the stored version was not the expected one. Re-read and re-decide."""

    def __init__(self, key: str, expected: int | None) -> None:
        super().__init__(f"conditional write on {key} failed (expected version {expected})")
        self.key = key
        self.expected = expected


class Throttled(BatchplaneError):
    """The caller exceeds a rate limit: wire `TooManyRequestsException`, HTTP 429."""


class StoreUnavailable(BatchplaneError):
    """The store failed for a reason that is not the caller's: wire `ServerException`, HTTP 500."""
