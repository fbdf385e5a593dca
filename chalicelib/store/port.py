"""The store port: a small, conditional item store that SQLite and DynamoDB both implement exactly.

Shape (see docs/adr/0002-store-single-table.md): every record is an `Item` addressed by (pk, sk), carrying a JSON
body, a version for compare-and-set, and up to two sparse secondary-index keys (gsi1, gsi2), each (partition, sort).
This is DynamoDB's single-table model reduced to what batchplane uses, so the SQLite adapter cannot offer a query
DynamoDB could not answer cheaply.

Rules every adapter obeys (tests/contract checks them on both):
- every write is conditional: `expect=None` means "must not exist", an int means "stored version must equal it";
  a lost condition raises `Conflict`; a successful write stores version expect+1 (or 1 on create);
- `transact` applies all of its operations or none of them;
- `query` returns items of one partition ordered by sort key, strictly after `after`, at most `limit` of them;
  sort keys are unique within a partition (callers append the item key to make them so).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, TypedDict

Index = Literal["main", "gsi1", "gsi2"]


@dataclass(frozen=True)
class Item:
    pk: str
    sk: str
    body: dict[str, Any] = field(default_factory=dict)
    version: int = 0
    gsi1: tuple[str, str] | None = None
    gsi2: tuple[str, str] | None = None
    # Epoch seconds after which the store may delete the item: DynamoDB's TTL does (within days of it, and a read
    # may still see it meanwhile); the SQLite store keeps every item.
    expires_at: int | None = None

    @property
    def key(self) -> str:
        return f"{self.pk}|{self.sk}"


@dataclass(frozen=True)
class Put:
    item: Item
    expect: int | None  # None: must not exist; int: stored version must equal it


@dataclass(frozen=True)
class Delete:
    pk: str
    sk: str
    expect: int


@dataclass(frozen=True)
class Check:
    """A condition in a transaction with no write: the item exists at exactly this version."""

    pk: str
    sk: str
    expect: int


Op = Put | Delete | Check

# DynamoDB TransactWriteItems takes at most 100 operations; the SQLite adapter enforces the same bound.
MAX_TRANSACT_OPS = 100


class QueryOptions(TypedDict, total=False):
    """`ItemStore.query`'s keyword arguments, for a store that passes them on (`**options: Unpack[QueryOptions]`)."""

    after: str | None
    limit: int
    descending: bool
    prefix: str | None


class ItemStore(Protocol):
    def get(self, pk: str, sk: str) -> Item | None: ...

    def batch_get(self, keys: Sequence[tuple[str, str]]) -> list[Item]:
        """The items that exist, in the order of `keys`; missing keys are left out."""
        ...

    def put(self, item: Item, expect: int | None) -> Item:
        """Conditional write; returns the item as stored (with its new version)."""
        ...

    def delete(self, pk: str, sk: str, expect: int) -> None: ...

    def transact(self, ops: Sequence[Op]) -> None:
        """All or nothing. Raises Conflict naming the first failed condition."""
        ...

    def query(
        self,
        index: Index,
        partition: str,
        *,
        after: str | None = None,
        limit: int = 100,
        descending: bool = False,
        prefix: str | None = None,
    ) -> list[Item]: ...

    def count(self, index: Index, partition: str) -> int:
        """How many items one partition holds (without returning them)."""
        ...

    def close(self) -> None: ...


class PartitionWatch(Protocol):
    """A store that tells what was written into an index partition (the local SQLite store: no other process
    writes it). The local dispatcher keeps the first RUNNABLE jobs of a queue between cycles and reads them again
    only when a write may have changed that prefix (control/runnable_cache.py)."""

    def watch(self, index: Index, partition: str) -> Callable[[], str | None]:
        """A watch on `partition` of `index`, its own (watches do not share what they take): each call of the
        function returned gives the lowest sort key an item was put into the partition with since the previous
        call (since the watch began, for the first); None when nothing was put."""
        ...
