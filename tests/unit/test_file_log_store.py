"""FileLogStore: what depends on its files (lines across read blocks, torn and damaged lines, path safety, creation
times). What every LogStore promises runs in tests/contract/test_log_store.py."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from chalicelib.compute import logs as logs_module
from chalicelib.compute.logs import FileLogStore
from chalicelib.compute.logs_port import LogEvent
from tests.contract.test_log_store import STREAM, _fill, _page_all  # the port suite's paging helpers


@pytest.fixture
def store(tmp_path: Path) -> FileLogStore:
    return FileLogStore(tmp_path / "logs", clock=lambda: 5_000)


@pytest.fixture
def small_blocks(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tiny read blocks, so lines straddle block boundaries everywhere."""
    monkeypatch.setattr(logs_module, "_BLOCK", 7)


def test_lone_surrogates_do_not_break_the_stream(store: FileLogStore) -> None:
    store.append(STREAM, [(1, "bad \udcff byte"), (2, "fine")])
    events, _, _ = store.read(STREAM, start_time=None, end_time=None, offset=0, limit=10, from_head=True)
    assert [e.message for e in events] == ["bad ? byte", "fine"]


@pytest.mark.parametrize("limit", [1, 3, 7, 100])
@pytest.mark.usefixtures("small_blocks")
def test_pages_forward_and_backward_cover_the_stream_once(store: FileLogStore, limit: int) -> None:
    _fill(store, 40)
    expected = [1_000 + i for i in range(40)]
    assert _page_all(store, forward=True, limit=limit) == expected
    assert _page_all(store, forward=False, limit=limit) == expected


@pytest.mark.usefixtures("small_blocks")
def test_time_window_is_start_inclusive_end_exclusive(store: FileLogStore) -> None:
    _fill(store, 40)
    expected = list(range(1_010, 1_020))
    assert _page_all(store, forward=True, limit=3, start_time=1_010, end_time=1_020) == expected
    assert _page_all(store, forward=False, limit=3, start_time=1_010, end_time=1_020) == expected
    assert _page_all(store, forward=True, limit=3, start_time=5_000) == []


def test_long_lines_span_many_blocks(store: FileLogStore, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(logs_module, "_BLOCK", 64)
    messages = ["short", "L" * 1_000, "mid" * 30, "M" * 5_000, "end"]
    store.append(STREAM, [(i, m) for i, m in enumerate(messages)])
    assert [e.message for e in _read_all(store, forward=True)] == messages
    assert [e.message for e in _read_all(store, forward=False)] == messages


def _read_all(store: FileLogStore, forward: bool) -> list[LogEvent]:
    events, _, _ = store.read(
        STREAM, start_time=None, end_time=None, offset=0 if forward else -1, limit=10_000, from_head=forward
    )
    return events


def test_a_partial_last_line_is_invisible_and_a_damaged_one_is_skipped(tmp_path: Path) -> None:
    store = FileLogStore(tmp_path)
    store.append(STREAM, [(1, "one")])
    store.close()
    path = store.path_of(STREAM)
    with open(path, "ab") as f:
        f.write(b'{"t": 2, "m": "half-writ')  # a writer mid-line, or one killed mid-line
    assert [e.message for e in _read_all(store, forward=True)] == ["one"]
    assert [e.message for e in _read_all(store, forward=False)] == ["one"]
    reopened = FileLogStore(tmp_path)  # after a crash: the next append starts on a fresh line
    reopened.append(STREAM, [(3, "three")])
    assert [e.message for e in _read_all(reopened, forward=True)] == ["one", "three"]
    assert [e.message for e in _read_all(reopened, forward=False)] == ["one", "three"]


def test_a_reader_follows_a_stream_while_it_is_written(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(logs_module, "_BLOCK", 97)
    store = FileLogStore(tmp_path)
    total = 3_000
    store.append(STREAM, [])  # the stream exists before any output

    def writer() -> None:
        for i in range(total):
            store.append(STREAM, [(i, f"event {i} " + "z" * (i % 40))])

    thread = threading.Thread(target=writer)
    thread.start()
    seen: list[int] = []
    offset = 0
    while len(seen) < total:
        events, offset, _ = store.read(STREAM, start_time=None, end_time=None, offset=offset, limit=250, from_head=True)
        seen.extend(e.timestamp for e in events)
    thread.join()
    assert seen == list(range(total))


@pytest.mark.parametrize(
    "name",
    ["", "/abs/olute", "../escape", "a/../../b", "a//b", "a/./b", ".", "..", "a/", "x" * 513, "a/" + "é" * 100],
)
def test_unsafe_stream_names_are_rejected(store: FileLogStore, name: str) -> None:
    with pytest.raises(ValueError):
        store.append(name, [(1, "x")])
    assert not store.exists(name)
    assert not any(store.root.parent.glob("**/*.log"))


def test_odd_names_stay_under_root_and_round_trip(store: FileLogStore) -> None:
    names = ["a b/ü/%2E.log", "jd/default/t.log", "jd/default/t", "jd.v2/default/...x", "back\\slash/C:/x"]
    for name in names:
        store.append(name, [(1, name)])
    root = store.root.resolve()
    for path in root.rglob("*"):
        assert path.resolve().is_relative_to(root)
        assert path.name not in (".", "..")
    assert [s[0] for s in store.streams()] == sorted(names)
    for name in names:
        events, _, _ = store.read(name, start_time=None, end_time=None, offset=0, limit=5, from_head=True)
        assert [e.message for e in events] == [name]


def test_streams_lists_names_times_and_filters_by_prefix(tmp_path: Path) -> None:
    clock = iter([100, 200, 300, 400])
    store = FileLogStore(tmp_path, clock=lambda: next(clock))
    store.append("jd-b/default/2", [(20, "x"), (25, "y")])
    store.append("jd-a/default/1", [(10, "x")])
    store.append("jd-a/default/1", [(15, "z")])
    store.append("jd-ab/default/3", [])
    listed = store.streams()
    assert [s[0] for s in listed] == ["jd-a/default/1", "jd-ab/default/3", "jd-b/default/2"]
    assert listed[0][1:] == (200, 10, 15)
    assert listed[2][1:] == (100, 20, 25)
    assert listed[1][2:] == (None, None)  # created, no events yet
    assert [s[0] for s in store.streams("jd-a")] == ["jd-a/default/1", "jd-ab/default/3"]
    assert [s[0] for s in store.streams("jd-a/")] == ["jd-a/default/1"]
    assert [s[0] for s in store.streams("jd-a/default/1")] == ["jd-a/default/1"]
    assert store.streams("nope/") == []
    assert store.streams("../") == []
