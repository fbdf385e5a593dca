"""An item store with the resource records read at most once per invocation (the AWS runtime's entry points)."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator, Sequence
from typing import Any, Unpack

from chalicelib.store.port import Index, Item, ItemStore, Op, Put, QueryOptions
from chalicelib.store.repository import CE_PK, JQ_PK, SP_PK


class InvocationCache:
    """The runtime's item store, with the resource records (compute environments, job queues, scheduling policies)
    read at most once per Lambda invocation: every entry point runs in a `scope`, and within it a `get` or main-index
    `query` of those partitions is answered from what the invocation already read. A dispatch invocation runs several
    cycles, and each lists the queues and compute environments; a stream batch checks the queues once per batch.

    An invocation sees the resources as they were when it first read them, as if any later update had happened just
    after it: resource updates wake the dispatcher, so the next invocation sees them. A write through this store to a
    cached partition drops what was cached of it. Outside a scope (and in other threads) nothing is cached."""

    PARTITIONS = frozenset({CE_PK, JQ_PK, SP_PK})

    def __init__(self, store: ItemStore) -> None:
        self.store = store
        self._local = threading.local()

    @contextlib.contextmanager
    def scope(self) -> Iterator[None]:
        outer: dict[tuple[Any, ...], Any] | None = getattr(self._local, "memo", None)
        if outer is None:
            self._local.memo = {}
        try:
            yield
        finally:
            if outer is None:
                self._local.memo = None

    def _memo(self, pk: str) -> dict[tuple[Any, ...], Any] | None:
        memo: dict[tuple[Any, ...], Any] | None = getattr(self._local, "memo", None)
        return memo if memo is not None and pk in self.PARTITIONS else None

    def _forget(self, pks: Sequence[str]) -> None:
        memo: dict[tuple[Any, ...], Any] | None = getattr(self._local, "memo", None)
        if memo is not None and self.PARTITIONS.intersection(pks):
            for key in [k for k in memo if k[1] in pks]:
                del memo[key]

    def get(self, pk: str, sk: str) -> Item | None:
        memo = self._memo(pk)
        if memo is None:
            return self.store.get(pk, sk)
        key = ("get", pk, sk)
        if key not in memo:
            memo[key] = self.store.get(pk, sk)
        found: Item | None = memo[key]
        return found

    def batch_get(self, keys: Sequence[tuple[str, str]]) -> list[Item]:
        return self.store.batch_get(keys)

    def put(self, item: Item, expect: int | None) -> Item:
        self._forget([item.pk])
        return self.store.put(item, expect)

    def delete(self, pk: str, sk: str, expect: int) -> None:
        self._forget([pk])
        self.store.delete(pk, sk, expect)

    def transact(self, ops: Sequence[Op]) -> None:
        self._forget([op.item.pk if isinstance(op, Put) else op.pk for op in ops])
        self.store.transact(ops)

    def query(self, index: Index, partition: str, **options: Unpack[QueryOptions]) -> list[Item]:
        memo = self._memo(partition) if index == "main" else None
        if memo is None:
            return self.store.query(index, partition, **options)
        key = ("query", partition, *sorted(options.items()))
        if key not in memo:
            memo[key] = self.store.query(index, partition, **options)
        return list(memo[key])

    def count(self, index: Index, partition: str) -> int:
        return self.store.count(index, partition)

    def close(self) -> None:
        self.store.close()
