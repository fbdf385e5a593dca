"""What every use case receives: settings read once, injected clock and ids, the repository, the event sink."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from chalicelib.domain.validation import Limits
from chalicelib.store.repository import Repository


@dataclass(frozen=True)
class Settings:
    account: str = "123456789012"
    default_region: str = "us-east-1"
    limits: Limits = field(default_factory=Limits)


class Clock(Protocol):
    def now_ms(self) -> int: ...


class IdFactory(Protocol):
    def new_id(self) -> str: ...


class SystemClock:
    def now_ms(self) -> int:
        return time.time_ns() // 1_000_000


class UuidFactory:
    def new_id(self) -> str:
        return str(uuid.uuid4())


@dataclass(frozen=True)
class Services:
    repo: Repository
    settings: Settings = field(default_factory=Settings)
    clock: Clock = field(default_factory=SystemClock)
    ids: IdFactory = field(default_factory=UuidFactory)
    # Called after a write that may make work schedulable (the local runtime wakes its dispatcher here).
    wake: Callable[[], None] = field(default=lambda: None)


@dataclass(frozen=True)
class RequestContext:
    """Per request: the region ARNs are minted in (from the SigV4 credential scope, else the default)."""

    region: str
