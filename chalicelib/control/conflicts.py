"""Read-modify-write of one resource record, retried when another writer got there first (a conditional write's
Conflict): every control module that updates a queue, compute environment, policy, tag set or consumable does it
this one way."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from chalicelib.domain.errors import Conflict

T = TypeVar("T")
CONFLICT_RETRIES = 8


def retry_on_conflict(fn: Callable[[], T]) -> T:
    """`fn` again (it reads afresh) while its write loses a race, up to CONFLICT_RETRIES times; the last Conflict
    is raised."""
    for _ in range(CONFLICT_RETRIES - 1):
        try:
            return fn()
        except Conflict:
            continue
    return fn()
