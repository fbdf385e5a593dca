"""SQLite adapter of the store port: the local runtime's embedded, durable default.

One file in WAL mode. `synchronous=NORMAL` in WAL mode survives a killed process (SIGKILL) with every committed
transaction intact; only an OS crash or power loss can drop the last commits. `durable=True` selects FULL for
those who want that too (see docs/adr/0002-store-single-table.md).

One connection serialised by a lock: SQLite allows a single writer anyway, and a lock held for the microseconds of
a statement is cheaper than a connection pool's bookkeeping at this scale.

It is also a `PartitionWatch` (store/port.py): for each watch of an index partition, a put records the lowest
sort key written into it since the watch was last taken. A put that is rolled back counts too (its transaction
failed): that only makes the watcher read again.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from chalicelib import compact_json
from chalicelib.domain.errors import Conflict, InvalidRequest
from chalicelib.store.port import MAX_TRANSACT_OPS, Check, Delete, Index, Item, Op, Put

_SCHEMA = """
CREATE TABLE IF NOT EXISTS items (
    pk TEXT NOT NULL,
    sk TEXT NOT NULL,
    version INTEGER NOT NULL,
    body TEXT NOT NULL,
    g1p TEXT, g1s TEXT,
    g2p TEXT, g2s TEXT,
    PRIMARY KEY (pk, sk)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS items_gsi1 ON items (g1p, g1s) WHERE g1p IS NOT NULL;
CREATE INDEX IF NOT EXISTS items_gsi2 ON items (g2p, g2s) WHERE g2p IS NOT NULL;
"""


class _Low:
    """One watch's lowest sort key put into its partition since it was last taken (`SqliteItemStore.watch`)."""

    __slots__ = ("key",)

    def __init__(self) -> None:
        self.key: str | None = None


_COLUMNS = {"main": ("pk", "sk"), "gsi1": ("g1p", "g1s"), "gsi2": ("g2p", "g2s")}


def _row_to_item(row: tuple[Any, ...]) -> Item:
    pk, sk, version, body, g1p, g1s, g2p, g2s = row
    return Item(
        pk=pk,
        sk=sk,
        body=compact_json.loads(body),
        version=version,
        gsi1=(g1p, g1s) if g1p is not None else None,
        gsi2=(g2p, g2s) if g2p is not None else None,
    )


class SqliteItemStore:
    def __init__(self, path: str, *, durable: bool = False) -> None:
        self._conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._lock = threading.RLock()
        with self._lock:
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute(f"PRAGMA synchronous={'FULL' if durable else 'NORMAL'}")
            self._conn.execute("PRAGMA busy_timeout=5000")
            # The WAL is checkpointed by the write that crosses SQLite's threshold, on this connection, on purpose.
            # Tried and dropped (session 10): PASSIVE checkpoints from a thread and connection of their own, to spare
            # the writing thread the page writes and fsync. Under continuous writes such a checkpoint never catches
            # up with the last frame, so no writer ever rewinds the WAL: it grew by 3.8 GB in 8 s of puts, and a
            # million-child array filled the disk. Only a checkpoint that runs between two of this connection's
            # transactions (this one) completes.
            self._conn.executescript(_SCHEMA)
        self._watched: dict[tuple[Index, str], list[_Low]] = {}  # (index, partition) -> its watches

    def watch(self, index: Index, partition: str) -> Callable[[], str | None]:
        low = _Low()
        with self._lock:
            self._watched.setdefault((index, partition), []).append(low)

        def take() -> str | None:
            with self._lock:
                key, low.key = low.key, None
            return key

        return take

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield self._conn
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")

    def get(self, pk: str, sk: str) -> Item | None:
        with self._lock:
            row = self._conn.execute(
                "SELECT pk, sk, version, body, g1p, g1s, g2p, g2s FROM items WHERE pk=? AND sk=?", (pk, sk)
            ).fetchone()
        return _row_to_item(row) if row else None

    def batch_get(self, keys: Sequence[tuple[str, str]]) -> list[Item]:
        found = {}
        for pk, sk in keys:
            item = self.get(pk, sk)
            if item is not None:
                found[(pk, sk)] = item
        return [found[k] for k in keys if k in found]

    def put(self, item: Item, expect: int | None) -> Item:
        with self._tx() as conn:
            return self._put(conn, item, expect)

    def delete(self, pk: str, sk: str, expect: int) -> None:
        with self._tx() as conn:
            self._delete(conn, pk, sk, expect)

    def transact(self, ops: Sequence[Op]) -> None:
        if len(ops) > MAX_TRANSACT_OPS:
            raise InvalidRequest(f"a transaction holds at most {MAX_TRANSACT_OPS} operations, got {len(ops)}")
        with self._tx() as conn:
            for op in ops:
                if isinstance(op, Put):
                    self._put(conn, op.item, op.expect)
                elif isinstance(op, Delete):
                    self._delete(conn, op.pk, op.sk, op.expect)
                else:
                    self._check(conn, op)

    def query(
        self,
        index: Index,
        partition: str,
        *,
        after: str | None = None,
        limit: int = 100,
        descending: bool = False,
        prefix: str | None = None,
    ) -> list[Item]:
        pcol, scol = _COLUMNS[index]
        sql = f"SELECT pk, sk, version, body, g1p, g1s, g2p, g2s FROM items WHERE {pcol}=?"
        args: list[Any] = [partition]
        if after is not None:
            sql += f" AND {scol} {'<' if descending else '>'} ?"
            args.append(after)
        if prefix:
            # The lower bound lets SQLite use the index; substr() is the exact "starts with" (an upper bound such as
            # prefix + U+FFFF would miss keys continuing with characters above U+FFFF).
            sql += f" AND {scol} >= ? AND substr({scol}, 1, ?) = ?"
            args += [prefix, len(prefix), prefix]
        sql += f" ORDER BY {scol} {'DESC' if descending else 'ASC'} LIMIT ?"
        args.append(limit)
        with self._lock:
            rows = self._conn.execute(sql, args).fetchall()
        return [_row_to_item(r) for r in rows]

    def count(self, index: Index, partition: str) -> int:
        pcol, _ = _COLUMNS[index]
        with self._lock:
            row = self._conn.execute(f"SELECT COUNT(*) FROM items WHERE {pcol}=?", (partition,)).fetchone()
        return int(row[0])

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    # -- inside a transaction -------------------------------------------------------------------------------

    def _stored_version(self, conn: sqlite3.Connection, pk: str, sk: str) -> int | None:
        row = conn.execute("SELECT version FROM items WHERE pk=? AND sk=?", (pk, sk)).fetchone()
        return None if row is None else int(row[0])

    def _put(self, conn: sqlite3.Connection, item: Item, expect: int | None) -> Item:
        """The condition is the statement's own (one statement, not a read then a write): an INSERT fails on an
        existing key, an UPDATE of the expected version changes no row when another version is stored."""
        g1p, g1s = item.gsi1 or (None, None)
        g2p, g2s = item.gsi2 or (None, None)
        body = compact_json.dumps(item.body)
        if self._watched:
            if item.gsi1 is not None and ("gsi1", item.gsi1[0]) in self._watched:
                self._low(("gsi1", item.gsi1[0]), item.gsi1[1])
            if item.gsi2 is not None and ("gsi2", item.gsi2[0]) in self._watched:
                self._low(("gsi2", item.gsi2[0]), item.gsi2[1])
        if expect is None:
            try:
                conn.execute(
                    "INSERT INTO items (pk, sk, version, body, g1p, g1s, g2p, g2s) VALUES (?,?,?,?,?,?,?,?)",
                    (item.pk, item.sk, 1, body, g1p, g1s, g2p, g2s),
                )
            except sqlite3.IntegrityError:  # the key exists (only the primary key is unique)
                raise Conflict(item.key, expect) from None
            return Item(item.pk, item.sk, item.body, 1, item.gsi1, item.gsi2)
        changed = conn.execute(
            "UPDATE items SET version=?, body=?, g1p=?, g1s=?, g2p=?, g2s=? WHERE pk=? AND sk=? AND version=?",
            (expect + 1, body, g1p, g1s, g2p, g2s, item.pk, item.sk, expect),
        ).rowcount
        if changed != 1:
            raise Conflict(item.key, expect)
        return Item(item.pk, item.sk, item.body, expect + 1, item.gsi1, item.gsi2)

    def _low(self, watched: tuple[Index, str], key: str) -> None:
        for low in self._watched[watched]:
            if low.key is None or key < low.key:
                low.key = key

    def _delete(self, conn: sqlite3.Connection, pk: str, sk: str, expect: int) -> None:
        if self._stored_version(conn, pk, sk) != expect:
            raise Conflict(f"{pk}|{sk}", expect)
        conn.execute("DELETE FROM items WHERE pk=? AND sk=?", (pk, sk))

    def _check(self, conn: sqlite3.Connection, op: Check) -> None:
        if self._stored_version(conn, op.pk, op.sk) != op.expect:
            raise Conflict(f"{op.pk}|{op.sk}", op.expect)
