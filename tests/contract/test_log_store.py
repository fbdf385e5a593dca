"""The LogStore port's contract (chalicelib/compute/logs_port.py), run against every log store: per-attempt streams
that the launchers append to and the logs API (api/logs_api.py) pages through, CloudWatch Logs' way. The tests that
lean on how an adapter stores its lines (the file store's read blocks, torn lines, path safety) stay with it
(tests/unit/test_file_log_store.py)."""

from __future__ import annotations

import threading

import pytest

from chalicelib.compute.logs_port import LogEvent, LogStore
from tests.contract.conftest import Logs

STREAM = "my-jd/default/0123abcd-0000-4000-8000-000000000001"


def _fill(store: LogStore, n: int, stream: str = STREAM) -> None:
    store.append(stream, [(1_000 + i, f"line {i} " + "x" * (i % 11)) for i in range(n)])


def _page_all(store: LogStore, forward: bool, limit: int, **window: int | None) -> list[int]:
    """Every event, paging until the offset repeats (the client contract for tokens)."""
    offset = 0 if forward else -1
    seen: list[int] = []
    for _ in range(10_000):
        events, ahead, behind = store.read(
            STREAM,
            start_time=window.get("start_time"),
            end_time=window.get("end_time"),
            offset=offset,
            limit=limit,
            from_head=forward,
        )
        assert len(events) <= limit
        timestamps = [e.timestamp for e in events]
        seen = seen + timestamps if forward else timestamps + seen
        following = ahead if forward else behind
        if following == offset:
            assert events == []
            return seen
        offset = following
    raise AssertionError("paging did not converge")


def _read_all(store: LogStore, forward: bool) -> list[LogEvent]:
    events, _, _ = store.read(
        STREAM, start_time=None, end_time=None, offset=0 if forward else -1, limit=10_000, from_head=forward
    )
    return events


def test_satisfies_the_port(logs: Logs) -> None:
    port: LogStore = logs.port
    assert not port.exists(STREAM)


def test_append_then_read_round_trips(logs: Logs) -> None:
    store = logs.port
    store.append(STREAM, [(10, "hello"), (11, 'quotes " and \\ and \n newline'), (12, "ünïcödé ✓")])
    events, _, _ = store.read(STREAM, start_time=None, end_time=None, offset=0, limit=10, from_head=True)
    assert events == [
        LogEvent(10, "hello", 5_000),
        LogEvent(11, 'quotes " and \\ and \n newline', 5_000),
        LogEvent(12, "ünïcödé ✓", 5_000),
    ]
    assert store.exists(STREAM)


@pytest.mark.parametrize("limit", [1, 3, 7, 100])
def test_pages_forward_and_backward_cover_the_stream_once(logs: Logs, limit: int) -> None:
    _fill(logs.port, 40)
    expected = [1_000 + i for i in range(40)]
    assert _page_all(logs.port, forward=True, limit=limit) == expected
    assert _page_all(logs.port, forward=False, limit=limit) == expected


def test_default_directions_give_the_head_or_the_tail(logs: Logs) -> None:
    store = logs.port
    _fill(store, 30)
    head, ahead, behind = store.read(STREAM, start_time=None, end_time=None, offset=0, limit=5, from_head=True)
    assert [e.timestamp for e in head] == [1_000, 1_001, 1_002, 1_003, 1_004]
    assert behind == 0
    tail, ahead, behind = store.read(STREAM, start_time=None, end_time=None, offset=-1, limit=5, from_head=False)
    assert [e.timestamp for e in tail] == [1_025, 1_026, 1_027, 1_028, 1_029]
    # Forward from the tail: nothing yet, and the same position again.
    more, again, _ = store.read(STREAM, start_time=None, end_time=None, offset=ahead, limit=5, from_head=True)
    assert more == [] and again == ahead
    # ... until something is appended (a --follow reader).
    store.append(STREAM, [(2_000, "new")])
    more, _, _ = store.read(STREAM, start_time=None, end_time=None, offset=ahead, limit=5, from_head=True)
    assert [e.message for e in more] == ["new"]


def test_time_window_is_start_inclusive_end_exclusive(logs: Logs) -> None:
    _fill(logs.port, 40)
    expected = list(range(1_010, 1_020))
    assert _page_all(logs.port, forward=True, limit=3, start_time=1_010, end_time=1_020) == expected
    assert _page_all(logs.port, forward=False, limit=3, start_time=1_010, end_time=1_020) == expected
    assert _page_all(logs.port, forward=True, limit=3, start_time=5_000) == []


def test_durable_across_instances(logs: Logs) -> None:
    logs.port.append(STREAM, [(1, "kept")])
    assert [e.message for e in _read_all(logs.reopen(), forward=True)] == ["kept"]


def test_invalid_positions_and_unknown_streams_are_value_errors(logs: Logs) -> None:
    store = logs.port
    _fill(store, 3)
    for offset in (3, 10**9):
        with pytest.raises(ValueError):
            store.read(STREAM, start_time=None, end_time=None, offset=offset, limit=1, from_head=True)
    with pytest.raises(ValueError):
        store.read("nope/default/x", start_time=None, end_time=None, offset=0, limit=1, from_head=True)
    with pytest.raises(ValueError):
        store.read(STREAM, start_time=None, end_time=None, offset=0, limit=0, from_head=True)


def test_concurrent_appends_keep_every_line_whole(logs: Logs) -> None:
    store = logs.port
    threads, per_thread = 8, 1_500
    streams = [STREAM, "other/default/t"]

    def writer(n: int) -> None:
        for i in range(0, per_thread, 3):
            batch = [(i + k, f"w{n} {i + k} " + "y" * ((i + k) % 50)) for k in range(3)]
            store.append(streams[n % 2], batch)

    workers = [threading.Thread(target=writer, args=(n,)) for n in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    for index, stream in enumerate(streams):
        events, _, _ = store.read(stream, start_time=None, end_time=None, offset=0, limit=10_000, from_head=True)
        assert len(events) == threads // 2 * per_thread
        for n in range(index, threads, 2):
            mine = [int(e.message.split()[1]) for e in events if e.message.startswith(f"w{n} ")]
            assert mine == list(range(per_thread))  # each writer's order survives interleaving


def test_an_empty_append_creates_the_stream(logs: Logs) -> None:
    """A launcher creates its attempt's stream before any output, so a reader finds it (and nothing in it)."""
    logs.port.append(STREAM, [])
    assert logs.port.exists(STREAM)
    assert _read_all(logs.port, forward=True) == [] and _read_all(logs.port, forward=False) == []


def test_delete_removes_a_stream_and_only_that_one(logs: Logs) -> None:
    store = logs.port
    _fill(store, 3)
    _fill(store, 2, stream="other/default/t")
    store.delete(STREAM)
    store.delete(STREAM)  # one that does not exist: nothing
    assert not store.exists(STREAM)
    assert [s[0] for s in store.streams()] == ["other/default/t"]
    with pytest.raises(ValueError):
        store.read(STREAM, start_time=None, end_time=None, offset=0, limit=1, from_head=True)


def test_streams_lists_names_in_order_with_first_and_last_events_and_filters_by_prefix(logs: Logs) -> None:
    store = logs.port
    store.append("jd-b/default/2", [(20, "x"), (25, "y")])
    store.append("jd-a/default/1", [(10, "x")])
    store.append("jd-a/default/1", [(15, "z")])
    store.append("jd-ab/default/3", [])
    listed = store.streams()
    assert [s[0] for s in listed] == ["jd-a/default/1", "jd-ab/default/3", "jd-b/default/2"]
    assert [s[2:] for s in listed] == [(10, 15), (None, None), (20, 25)]  # no events yet: None
    assert [s[0] for s in store.streams("jd-a")] == ["jd-a/default/1", "jd-ab/default/3"]
    assert [s[0] for s in store.streams("jd-a/")] == ["jd-a/default/1"]
    assert store.streams("nope/") == []
