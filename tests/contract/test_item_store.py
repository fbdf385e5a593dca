"""The store port's contract (chalicelib/store/port.py), run against every adapter."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from chalicelib.domain.errors import Conflict, InvalidRequest
from chalicelib.store.port import MAX_TRANSACT_OPS, Check, Delete, Item, ItemStore, Put
from chalicelib.store.sqlite import SqliteItemStore


def item(pk: str = "CE", sk: str = "a", **body: object) -> Item:
    return Item(pk=pk, sk=sk, body=dict(body) or {"n": 1})


def test_create_then_get_returns_version_1(store: ItemStore) -> None:
    stored = store.put(item(x=[1, {"y": "z"}]), expect=None)
    assert stored.version == 1
    got = store.get("CE", "a")
    assert got is not None
    assert got.body == {"x": [1, {"y": "z"}]}
    assert got.version == 1


def test_get_missing_is_none(store: ItemStore) -> None:
    assert store.get("CE", "nope") is None


def test_create_twice_conflicts(store: ItemStore) -> None:
    store.put(item(), expect=None)
    with pytest.raises(Conflict):
        store.put(item(), expect=None)


def test_update_with_expected_version_increments(store: ItemStore) -> None:
    store.put(item(), expect=None)
    updated = store.put(item(n=2), expect=1)
    assert updated.version == 2
    got = store.get("CE", "a")
    assert got is not None and got.body == {"n": 2} and got.version == 2


def test_update_with_stale_version_conflicts_and_changes_nothing(store: ItemStore) -> None:
    store.put(item(n=1), expect=None)
    store.put(item(n=2), expect=1)
    with pytest.raises(Conflict):
        store.put(item(n=3), expect=1)
    got = store.get("CE", "a")
    assert got is not None and got.body == {"n": 2}


def test_update_of_missing_item_conflicts(store: ItemStore) -> None:
    with pytest.raises(Conflict):
        store.put(item(), expect=3)
    assert store.get("CE", "a") is None


def test_delete_is_conditional(store: ItemStore) -> None:
    store.put(item(), expect=None)
    with pytest.raises(Conflict):
        store.delete("CE", "a", expect=7)
    store.delete("CE", "a", expect=1)
    assert store.get("CE", "a") is None
    with pytest.raises(Conflict):
        store.delete("CE", "a", expect=1)


def test_batch_get_keeps_request_order_and_skips_missing(store: ItemStore) -> None:
    for sk in ("a", "b", "c"):
        store.put(item(sk=sk), expect=None)
    got = store.batch_get([("CE", "c"), ("CE", "zz"), ("CE", "a")])
    assert [i.sk for i in got] == ["c", "a"]


def test_transact_applies_all(store: ItemStore) -> None:
    store.put(item(sk="a"), expect=None)
    store.put(item(sk="b"), expect=None)
    store.transact([Put(item(sk="c"), expect=None), Delete("CE", "b", expect=1), Check("CE", "a", expect=1)])
    assert store.get("CE", "c") is not None
    assert store.get("CE", "b") is None


def test_transact_failed_condition_writes_nothing(store: ItemStore) -> None:
    store.put(item(sk="a"), expect=None)
    store.put(item(sk="b"), expect=None)
    with pytest.raises(Conflict):
        store.transact([Put(item(sk="c"), expect=None), Delete("CE", "b", expect=1), Check("CE", "a", expect=9)])
    assert store.get("CE", "c") is None
    assert store.get("CE", "b") is not None


def test_query_main_orders_by_sort_key_and_pages(store: ItemStore) -> None:
    for sk in ("c", "a", "e", "b", "d"):
        store.put(item(pk="P", sk=sk), expect=None)
    store.put(item(pk="OTHER", sk="a"), expect=None)
    first = store.query("main", "P", limit=2)
    assert [i.sk for i in first] == ["a", "b"]
    rest = store.query("main", "P", after="b", limit=10)
    assert [i.sk for i in rest] == ["c", "d", "e"]
    back = store.query("main", "P", descending=True, after="d", limit=2)
    assert [i.sk for i in back] == ["c", "b"]


def test_query_prefix(store: ItemStore) -> None:
    for sk in ("job#1", "job#2", "jobs", "jo"):
        store.put(item(pk="P", sk=sk), expect=None)
    assert [i.sk for i in store.query("main", "P", prefix="job#")] == ["job#1", "job#2"]


def test_secondary_indexes_follow_updates(store: ItemStore) -> None:
    store.put(Item("J#1", "", {"s": "RUNNABLE"}, gsi1=("q#RUNNABLE", "0001#1")), expect=None)
    store.put(Item("J#2", "", {"s": "RUNNABLE"}, gsi1=("q#RUNNABLE", "0002#2")), expect=None)
    store.put(Item("J#3", "", {"s": "x"}, gsi2=("other", "1")), expect=None)
    assert [i.pk for i in store.query("gsi1", "q#RUNNABLE")] == ["J#1", "J#2"]
    # Moving J#1 to another index partition removes it from the first one.
    store.put(Item("J#1", "", {"s": "STARTING"}, gsi1=("q#STARTING", "0001#1")), expect=1)
    assert [i.pk for i in store.query("gsi1", "q#RUNNABLE")] == ["J#2"]
    assert [i.pk for i in store.query("gsi1", "q#STARTING")] == ["J#1"]
    # Dropping the index key takes the item out of the (sparse) index.
    store.put(Item("J#2", "", {"s": "done"}), expect=1)
    assert store.query("gsi1", "q#RUNNABLE") == []
    got = store.query("gsi2", "other")
    assert [(i.pk, i.gsi2) for i in got] == [("J#3", ("other", "1"))]


def test_secondary_index_pages_after_sort_key(store: ItemStore) -> None:
    for n in range(5):
        store.put(Item(f"J#{n}", "", {"n": n}, gsi1=("q", f"{n:04d}#{n}")), expect=None)
    page = store.query("gsi1", "q", after="0001#1", limit=2)
    assert [i.body["n"] for i in page] == [2, 3]
    newest = store.query("gsi1", "q", descending=True, limit=2)
    assert [i.body["n"] for i in newest] == [4, 3]


def test_concurrent_writers_one_wins(store: ItemStore) -> None:
    """Two writers that read version 1 race to write; exactly one succeeds."""
    store.put(item(), expect=None)
    store.put(item(n="first"), expect=1)
    with pytest.raises(Conflict):
        store.put(item(n="second"), expect=1)


# -- added with the DynamoDB adapter: edges where DynamoDB limits could leak through the port ---------------


def test_body_types_and_unicode_round_trip_exactly(store: ItemStore) -> None:
    body = {
        "int": 2**63 + 1,
        "neg": -7,
        "float": 0.1,
        "exp": 1e-300,
        "bool": True,
        "null": None,
        "empty": {"list": [], "map": {}, "str": ""},
        "text": 'héllo 日本 🚀 \u0000 "quoted"',
        "nested": [[1, [2, [3]]], {"a": {"b": {"c": [True, None]}}}],
    }
    store.put(Item("P", "ключ-🚀", body), expect=None)
    got = store.get("P", "ключ-🚀")
    assert got is not None and got.body == body
    assert type(got.body["int"]) is int and type(got.body["float"]) is float


def test_large_body_round_trips(store: ItemStore) -> None:
    big = {"blob": "x" * 300_000, "uni": "é" * 10_000}
    store.put(Item("P", "big", big), expect=None)
    got = store.get("P", "big")
    assert got is not None and got.body == big


def test_query_pages_past_large_items(store: ItemStore) -> None:
    """DynamoDB returns at most 1 MB per request; the adapter must keep reading until `limit`."""
    for n in range(6):
        store.put(Item("P", f"{n}", {"blob": "y" * 250_000}), expect=None)
    assert [i.sk for i in store.query("main", "P", limit=5)] == ["0", "1", "2", "3", "4"]


def test_empty_sort_key_sorts_first_and_after_excludes_it(store: ItemStore) -> None:
    for sk in ("b", "", "a"):
        store.put(Item("P", sk, {"sk": sk}), expect=None)
    assert [i.sk for i in store.query("main", "P")] == ["", "a", "b"]
    assert [i.sk for i in store.query("main", "P", after="")] == ["a", "b"]
    assert [i.sk for i in store.query("main", "P", descending=True)] == ["b", "a", ""]
    assert [i.sk for i in store.query("main", "P", prefix="a")] == ["a"]
    store.put(Item("Q", "x", gsi1=("G", ""), gsi2=("H", "")), expect=None)
    got = store.query("gsi1", "G")
    assert [(i.pk, i.gsi1) for i in got] == [("Q", ("G", ""))]
    assert [i.gsi2 for i in store.query("gsi2", "H")] == [("H", "")]


def test_unicode_sort_keys_order_by_code_point(store: ItemStore) -> None:
    for sk in ("z", "é", "日", "A", "a"):
        store.put(Item("P", sk), expect=None)
    assert [i.sk for i in store.query("main", "P")] == ["A", "a", "z", "é", "日"]


@pytest.mark.parametrize(
    ("after", "descending", "expected"),
    [
        (None, False, ["job#1", "job#2", "job#3"]),
        ("a", False, ["job#1", "job#2", "job#3"]),  # `after` before the prefix run
        ("job#1", False, ["job#2", "job#3"]),  # `after` inside the run
        ("jobs", False, []),  # `after` past the run
        (None, True, ["job#3", "job#2", "job#1"]),
        ("zzz", True, ["job#3", "job#2", "job#1"]),
        ("job#3", True, ["job#2", "job#1"]),
        ("jo", True, []),
    ],
)
def test_query_prefix_with_after(store: ItemStore, after: str | None, descending: bool, expected: list[str]) -> None:
    for sk in ("a", "jo", "job#1", "job#2", "job#3", "jobs", "k"):
        store.put(item(pk="P", sk=sk), expect=None)
    got = store.query("main", "P", prefix="job#", after=after, descending=descending)
    assert [i.sk for i in got] == expected


def test_secondary_index_prefix_with_after(store: ItemStore) -> None:
    for n, s in enumerate(("A#1", "B#1", "B#2", "B#3", "C#1")):
        store.put(Item(f"J#{n}", "", gsi2=("p", s)), expect=None)
    got = store.query("gsi2", "p", prefix="B#", after="B#1", limit=1)
    assert [i.gsi2 for i in got] == [("p", "B#2")]


def test_transact_failed_put_condition_names_it_and_writes_nothing(store: ItemStore) -> None:
    store.put(item(sk="a"), expect=None)
    store.put(item(sk="b"), expect=None)
    with pytest.raises(Conflict) as failed:
        store.transact([Delete("CE", "b", expect=1), Put(item(sk="a", n=2), expect=None)])
    assert failed.value.key == "CE|a" and failed.value.expected is None
    got = store.get("CE", "b")
    assert got is not None and got.version == 1


def test_transact_100_operations(store: ItemStore) -> None:
    store.transact([Put(item(sk=f"{n:03d}"), expect=None) for n in range(MAX_TRANSACT_OPS)])
    assert len(store.query("main", "CE", limit=1000)) == MAX_TRANSACT_OPS
    with pytest.raises(InvalidRequest):
        store.transact([Put(item(sk=f"x{n:03d}"), expect=None) for n in range(MAX_TRANSACT_OPS + 1)])
    assert store.query("main", "CE", prefix="x") == []


def test_batch_get_more_than_100_keys_keeps_order(store: ItemStore) -> None:
    store.transact([Put(item(sk=f"{n:03d}"), expect=None) for n in range(100)])
    store.transact([Put(item(sk=f"{n:03d}"), expect=None) for n in range(100, 150)])
    keys = [("CE", f"{n:03d}") for n in range(160)]
    keys.reverse()
    got = store.batch_get(keys)
    assert [i.sk for i in got] == [f"{n:03d}" for n in reversed(range(150))]
    assert store.batch_get([]) == []


def test_query_prefix_includes_keys_beyond_the_basic_plane(store: ItemStore) -> None:
    for sk in ("ab", "a\uffff", "a\U0001f680", "b"):
        store.put(item(pk="P", sk=sk), expect=None)
    assert [i.sk for i in store.query("main", "P", prefix="a")] == ["ab", "a\uffff", "a\U0001f680"]


def test_count_counts_one_partition_of_each_index(store: ItemStore) -> None:
    for n in range(7):
        store.put(Item("P", f"{n}", {"n": n}, gsi1=("a" if n < 3 else "b", f"{n}"), gsi2=("c", f"{n}")), expect=None)
    store.put(Item("Q", "x", {}), expect=None)
    assert store.count("main", "P") == 7
    assert store.count("gsi1", "a") == 3
    assert store.count("gsi1", "b") == 4
    assert store.count("gsi2", "c") == 7
    assert store.count("gsi1", "none") == 0


def test_a_partition_watch_gives_the_lowest_key_put_since_it_was_last_taken(tmp_path: Path) -> None:
    # SQLite only (store/port.py PartitionWatch): the local dispatcher keeps a queue's first RUNNABLE jobs while no
    # put lands at or before what it kept (control/runnable_cache.py).
    store = SqliteItemStore(str(tmp_path / "watch.db"))
    mine, theirs = store.watch("gsi1", "Q#a"), store.watch("gsi1", "Q#a")
    kids = store.watch("gsi2", "ARR#p")
    assert mine() is None  # nothing put since the watch began
    store.put(Item("J", "1", {}, gsi1=("Q#a", "0005")), None)
    store.put(Item("J", "2", {}, gsi1=("Q#a", "0003")), None)
    store.put(Item("J", "3", {}, gsi1=("Q#b", "0001")), None)  # another partition
    assert mine() == "0003"
    assert mine() is None  # taken
    moved = store.get("J", "1")
    assert moved is not None
    store.put(Item("J", "1", {}, gsi1=("Q#z", "0001"), gsi2=("ARR#p", "0007")), moved.version)  # moves out of Q#a
    assert mine() is None  # what leaves a partition is not a put into it
    store.transact([Put(Item("J", "4", {}, gsi1=("Q#a", "0009")), None), Put(Item("J", "5", {}), None)])
    assert mine() == "0009"
    with pytest.raises(Conflict):  # rolled back: counted all the same (it only makes the watcher read again)
        store.transact([Put(Item("J", "6", {}, gsi1=("Q#a", "0002")), None), Put(Item("J", "5", {}), None)])
    assert mine() == "0002"
    assert theirs() == "0002"  # each watch its own: taking one leaves the others
    assert kids() == "0007"
    store.close()


def test_a_partition_watch_sees_every_put_of_a_transaction_and_puts_made_on_other_threads(tmp_path: Path) -> None:
    store = SqliteItemStore(str(tmp_path / "watch.db"))
    take = store.watch("gsi1", "Q#a")
    # two puts into the partition in one transaction (a chunk of array children): the lower key, whatever the order
    store.transact(
        [Put(Item("J", "1", {}, gsi1=("Q#a", "0008")), None), Put(Item("J", "2", {}, gsi1=("Q#a", "0004")), None)]
    )
    assert take() == "0004"
    # a put made on another thread (an API request) while the watcher's thread is elsewhere
    writer = threading.Thread(target=lambda: store.put(Item("J", "3", {}, gsi1=("Q#a", "0006")), None))
    writer.start()
    writer.join()
    assert take() == "0006"
    # a put of an item already in the partition, in place (a reason written): its own key
    current = store.get("J", "2")
    assert current is not None
    store.put(Item("J", "2", {"reason": "x"}, gsi1=("Q#a", "0004")), current.version)
    assert take() == "0004"
    # a delete is not a put: nothing enters the partition (what leaves it is the dispatcher's to know)
    current = store.get("J", "1")
    assert current is not None
    store.delete("J", "1", current.version)
    assert take() is None
    store.close()
