"""DynamoDB adapter of the store port (PynamoDB): the AWS runtime's store, one table per deployment.

Table layout (see docs/adr/0002-store-single-table.md): hash key `pk` (S), range key `sk` (S); attributes
`version` (N), `body` (the JSON text, so numbers and nesting round-trip exactly: no MapAttribute, no Decimal),
and the sparse index keys `g1p`/`g1s` (index gsi1) and `g2p`/`g2s` (index gsi2), projection ALL. A stream
(NEW_AND_OLD_IMAGES) feeds the AWS runtime. How sort keys, bodies (compressed from COMPRESS_FROM bytes) and stream
images are encoded: store/dynamo_codec.py (its names are re-exported here).

Transactions of one operation are sent as the single conditional write they amount to: TransactWriteItems bills twice
the units of PutItem for the same all-or-nothing write.

Conditions: `expect=None` is `attribute_not_exists(pk)`, an int is `version = expect`. A NumberAttribute with
explicit conditions rather than PynamoDB's VersionAttribute: the expected version is the caller's (read
earlier, maybe in another process), not whatever the model instance last saw, and Delete/Check need it too.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from botocore.exceptions import BotoCoreError, ClientError
from pynamodb.attributes import BinaryAttribute, NumberAttribute, UnicodeAttribute
from pynamodb.connection import Connection
from pynamodb.constants import PAY_PER_REQUEST_BILLING_MODE
from pynamodb.exceptions import PynamoDBException, TransactWriteError
from pynamodb.expressions.condition import Condition
from pynamodb.indexes import AllProjection, GlobalSecondaryIndex
from pynamodb.models import Model
from pynamodb.transactions import TransactWrite

from chalicelib.domain.errors import Conflict, InvalidRequest, StoreUnavailable
from chalicelib.store.dynamo_codec import COMPRESS_FROM as COMPRESS_FROM
from chalicelib.store.dynamo_codec import attributes, dec, enc, partition
from chalicelib.store.dynamo_codec import decode_body as decode_body
from chalicelib.store.dynamo_codec import encode_body as encode_body
from chalicelib.store.dynamo_codec import image as image
from chalicelib.store.dynamo_codec import image_item as image_item
from chalicelib.store.port import MAX_TRANSACT_OPS, Check, Delete, Index, Item, Op, Put

_ERRORS = (PynamoDBException, BotoCoreError, ClientError)


class _Gsi1(GlobalSecondaryIndex["ItemRecord"]):  # type: ignore[no-untyped-call]
    class Meta:
        index_name = "gsi1"
        projection = AllProjection()

    g1p = UnicodeAttribute(hash_key=True)
    g1s = UnicodeAttribute(range_key=True)


class _Gsi2(GlobalSecondaryIndex["ItemRecord"]):  # type: ignore[no-untyped-call]
    class Meta:
        index_name = "gsi2"
        projection = AllProjection()

    g2p = UnicodeAttribute(hash_key=True)
    g2s = UnicodeAttribute(range_key=True)


class ItemRecord(Model):
    """The attributes and indexes; `make_record_class` binds them to one table. PynamoDB deep-copies the
    indexes per subclass, so two stores on two tables in one process do not share an index's model."""

    pk = UnicodeAttribute(hash_key=True)
    sk = UnicodeAttribute(range_key=True)
    version = NumberAttribute()
    body = UnicodeAttribute(null=True)  # the JSON text, or
    bz = BinaryAttribute(null=True, legacy_encoding=False)  # ... its compressed form (encode_body)
    g1p = UnicodeAttribute(null=True)
    g1s = UnicodeAttribute(null=True)
    g2p = UnicodeAttribute(null=True)
    g2s = UnicodeAttribute(null=True)
    ttl = NumberAttribute(null=True)  # Item.expires_at: the table's TimeToLiveSpecification attribute (infra/)
    gsi1 = _Gsi1()
    gsi2 = _Gsi2()


def make_record_class(table_name: str, region: str, host: str | None) -> type[ItemRecord]:
    """The record model bound to one table. No AWS call: PynamoDB builds its botocore client on first use."""
    name_, region_, host_ = table_name, region, host

    class Record(ItemRecord):
        class Meta:
            table_name = name_
            region = region_
            host = host_
            billing_mode = PAY_PER_REQUEST_BILLING_MODE
            stream_view_type = "NEW_AND_OLD_IMAGES"

    return Record


def _to_item(r: ItemRecord) -> Item:
    return Item(
        pk=r.pk,
        sk=dec(r.sk),
        body=decode_body(r.body, r.bz),
        version=int(r.version),
        gsi1=(r.g1p, dec(r.g1s)) if r.g1p is not None and r.g1s is not None else None,
        gsi2=(r.g2p, dec(r.g2s)) if r.g2p is not None and r.g2s is not None else None,
        expires_at=int(r.ttl) if r.ttl is not None else None,
    )


def _is_condition_failure(e: PynamoDBException) -> bool:
    # TransactionConflictException: a transaction in flight holds the item. Like a lost condition, the caller
    # re-reads and re-decides.
    return e.cause_response_code in ("ConditionalCheckFailedException", "TransactionConflictException")


class DynamoItemStore:
    def __init__(self, table_name: str, region: str = "us-east-1", host: str | None = None) -> None:
        self.record: type[ItemRecord] = make_record_class(table_name, region, host)
        self._region, self._host = region, host
        self._connection: Connection | None = None  # for TransactWrite; created on first transact

    def create_table(self, wait: bool = True) -> None:
        """Create the table if missing (tests, local use). On AWS the table comes from infra/."""
        try:
            self.record.create_table(wait=wait)
        except _ERRORS as e:
            raise StoreUnavailable(f"cannot create table {self.record.Meta.table_name}: {e}") from e

    def get(self, pk: str, sk: str) -> Item | None:
        if not pk:
            return None
        try:
            return _to_item(self.record.get(pk, enc(sk), consistent_read=True))
        except self.record.DoesNotExist:
            return None
        except _ERRORS as e:
            raise StoreUnavailable(f"get {pk}|{sk} failed: {e}") from e

    def batch_get(self, keys: Sequence[tuple[str, str]]) -> list[Item]:
        # Model.batch_get de-duplicates (BatchGetItem refuses duplicate keys), sends pages of 100 keys and
        # re-sends UnprocessedKeys; surprise: it re-sends them at once, with no backoff and no cap.
        wanted = {(pk, enc(sk)) for pk, sk in keys if pk}
        found: dict[tuple[str, str], Item] = {}
        try:
            for r in self.record.batch_get(wanted, consistent_read=True):
                item = _to_item(r)
                found[(item.pk, item.sk)] = item
        except _ERRORS as e:
            raise StoreUnavailable(f"batch_get of {len(wanted)} keys failed: {e}") from e
        return [found[k] for k in keys if k in found]

    def put(self, item: Item, expect: int | None) -> Item:
        record, stored = self._record(item, expect)
        try:
            record.save(condition=self._condition(expect))
        except _ERRORS as e:
            if isinstance(e, PynamoDBException) and _is_condition_failure(e):
                raise Conflict(item.key, expect) from e
            raise StoreUnavailable(f"put {item.key} failed: {e}") from e
        return stored

    def delete(self, pk: str, sk: str, expect: int) -> None:
        try:
            self.record(partition(pk, "pk"), enc(sk)).delete(condition=self.record.version == expect)
        except _ERRORS as e:
            if isinstance(e, PynamoDBException) and _is_condition_failure(e):
                raise Conflict(f"{pk}|{sk}", expect) from e
            raise StoreUnavailable(f"delete {pk}|{sk} failed: {e}") from e

    def transact(self, ops: Sequence[Op]) -> None:
        if len(ops) > MAX_TRANSACT_OPS:
            raise InvalidRequest(f"a transaction holds at most {MAX_TRANSACT_OPS} operations, got {len(ops)}")
        if not ops:
            return
        single = ops[0]
        if len(ops) == 1 and isinstance(single, Put):  # one write: the same, at half the units
            self.put(single.item, single.expect)
            return
        if len(ops) == 1 and isinstance(single, Delete):
            self.delete(single.pk, single.sk, single.expect)
            return
        addresses = [(op.item.pk, op.item.sk) if isinstance(op, Put) else (op.pk, op.sk) for op in ops]
        if len(set(addresses)) != len(addresses):
            # DynamoDB refuses two operations on one item in a transaction (ValidationException).
            raise InvalidRequest("a transaction may touch each item at most once")
        if self._connection is None:
            self._connection = Connection(region=self._region, host=self._host)
        # Surprise: TransactWrite sends condition checks first, then deletes, then puts, whatever order they
        # were added in, and CancellationReasons follow the sent order. `sent` keeps it to name the failed op.
        checks = [i for i, op in enumerate(ops) if isinstance(op, Check)]
        deletes = [i for i, op in enumerate(ops) if isinstance(op, Delete)]
        puts = [i for i, op in enumerate(ops) if isinstance(op, Put)]
        sent = checks + deletes + puts
        try:
            with TransactWrite(connection=self._connection) as tx:
                for i in sent:
                    op = ops[i]
                    if isinstance(op, Put):
                        tx.save(self._record(op.item, op.expect)[0], condition=self._condition(op.expect))
                    elif isinstance(op, Delete):
                        pk = partition(op.pk, "pk")
                        tx.delete(self.record(pk, enc(op.sk)), condition=self.record.version == op.expect)
                    else:
                        pk = partition(op.pk, "pk")
                        tx.condition_check(self.record, pk, enc(op.sk), self.record.version == op.expect)
        except TransactWriteError as e:
            failed = [
                sent[n]
                for n, reason in enumerate(e.cancellation_reasons)
                if reason is not None and reason.code in ("ConditionalCheckFailed", "TransactionConflict")
            ]
            if failed:
                # TransactionConflict: another transaction held one of the items; like a lost condition, the
                # caller re-reads and re-decides.
                first = min(failed)
                raise Conflict("|".join(addresses[first]), ops[first].expect) from e
            raise StoreUnavailable(f"transaction of {len(ops)} operations failed: {e}") from e
        except _ERRORS as e:
            raise StoreUnavailable(f"transaction of {len(ops)} operations failed: {e}") from e

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
        if not partition or limit < 1:
            return []
        attr = {"main": self.record.sk, "gsi1": self.record.g1s, "gsi2": self.record.g2s}[index]
        # A key condition holds one condition on the sort key, so `after` and `prefix` together need a plan.
        # The keys starting with `prefix` are one contiguous run of the sort order:
        cond: Condition | None = None
        take_while_prefix = False
        if after is not None and prefix and not after.startswith(prefix):
            # `after` lies wholly before or wholly past the run: either the run is all kept or none of it is.
            kept = after < prefix if not descending else after > prefix
            if not kept:
                return []
            after = None
        if after is not None:
            cond = attr < enc(after) if descending else attr > enc(after)
            # `after` inside the run: read from `after` on and stop at the first key leaving the run.
            take_while_prefix = bool(prefix)
        elif prefix:
            cond = attr.startswith(enc(prefix))
        try:
            results: Iterable[ItemRecord] = self.record.query(
                partition,
                range_key_condition=cond,
                index_name=None if index == "main" else index,
                consistent_read=index == "main",  # GSIs are eventually consistent, always
                scan_index_forward=not descending,
                limit=limit,
            )
            items: list[Item] = []
            for r in results:
                item = _to_item(r)
                if take_while_prefix and prefix and not _sort_key(item, index).startswith(prefix):
                    break
                items.append(item)
            return items
        except _ERRORS as e:
            raise StoreUnavailable(f"query {index} {partition} failed: {e}") from e

    def count(self, index: Index, partition: str) -> int:
        if not partition:
            return 0
        try:
            # A Query with Select=COUNT (paginated by PynamoDB): consumes read capacity but returns no items.
            return int(
                self.record.count(
                    partition, index_name=None if index == "main" else index, consistent_read=index == "main"
                )
            )
        except _ERRORS as e:
            raise StoreUnavailable(f"count {index} {partition} failed: {e}") from e

    def close(self) -> None:
        """Nothing to release: botocore clients hold pooled connections that close with the process."""

    # -- helpers --------------------------------------------------------------------------------------------

    def _condition(self, expect: int | None) -> Condition:
        return self.record.pk.does_not_exist() if expect is None else self.record.version == expect

    def _record(self, item: Item, expect: int | None) -> tuple[ItemRecord, Item]:
        """The record to write for `item` and the item as it will be stored (new version)."""
        version = 1 if expect is None else expect + 1
        record = self.record(partition(item.pk, "pk"), enc(item.sk), **attributes(item, version))
        return record, Item(item.pk, item.sk, item.body, version, item.gsi1, item.gsi2, item.expires_at)


def _sort_key(item: Item, index: Index) -> str:
    if index == "main":
        return item.sk
    keys = item.gsi1 if index == "gsi1" else item.gsi2
    return keys[1] if keys is not None else ""
