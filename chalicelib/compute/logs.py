"""FileLogStore: the local runtime's log streams as append-only JSON-lines files, one per stream.

Layout: `<root>/<c1>/<c2>/.../<cn>.log` for stream `c1/c2/.../cn`. Every component is escaped so that only
[A-Za-z0-9_-] and `%XX` (UTF-8 bytes) remain: no component can be `.`/`..`, contain a separator or collide with the
`.log` suffix, and the mapping reverses exactly (for `streams()`). Each line is one event:
`{"t": timestamp_ms, "m": message, "i": ingestion_ms}`.

Positions (`offset`, and the offsets `read` returns) are byte offsets of line boundaries, so a page costs a seek and
the bytes of that page, however long the stream. Readers only consume complete lines, so a stream can be read (polled)
while it is being written. Appends are serialised in this process; each is flushed to an O_APPEND file kept open
(for the OPEN_FILES most recently appended streams), so events survive a crash of batchplane, but nothing is fsynced
(a power loss may drop the last lines). Event order is append order: the launcher's capture order (time order).
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO

from chalicelib.compute.logs_port import LogEvent

SUFFIX = ".log"
OPEN_FILES = 64  # streams kept open for appending
MAX_STREAM_NAME = 512
_MAX_COMPONENT_BYTES = 240  # below NAME_MAX (255) with room for the suffix
_BLOCK = 256 * 1024
_SAFE = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-")


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


def _encode_component(component: str) -> str:
    out = "".join(chr(b) if b in _SAFE else f"%{b:02X}" for b in component.encode("utf-8", "surrogatepass"))
    if len(out) > _MAX_COMPONENT_BYTES:
        raise ValueError(f"log stream name component too long: {component[:40]!r}...")
    return out


def _decode_component(encoded: str) -> str | None:
    raw = bytearray()
    i = 0
    while i < len(encoded):
        ch = encoded[i]
        if ch == "%":
            try:
                raw.append(int(encoded[i + 1 : i + 3], 16))
            except ValueError:
                return None
            i += 3
        elif ord(ch) in _SAFE:
            raw.append(ord(ch))
            i += 1
        else:
            return None
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return None


def stream_parts(stream: str) -> list[str]:
    """The escaped path components of a stream name; ValueError for names that are not plain relative paths."""
    if not stream or len(stream) > MAX_STREAM_NAME:
        raise ValueError(f"log stream name must be 1-{MAX_STREAM_NAME} characters")
    components = stream.split("/")
    if any(c in ("", ".", "..") for c in components):
        raise ValueError(f"invalid log stream name {stream!r}: empty, '.' or '..' path component")
    return [_encode_component(c) for c in components]


def _parse(line: bytes) -> LogEvent | None:
    """One stored line, or None for a damaged one (e.g. a write cut short by a crash)."""
    try:
        record = json.loads(line)
        return LogEvent(timestamp=int(record["t"]), message=str(record["m"]), ingestion_time=int(record["i"]))
    except (ValueError, KeyError, TypeError):
        return None


def _lines_forward(f: IO[bytes], start: int, stop: int) -> Iterator[tuple[int, int, bytes]]:
    """(start, end, line) for each complete line in [start, stop); `start` is a line boundary."""
    pos = start
    buf = b""
    buf_start = start
    while pos < stop:
        f.seek(pos)
        chunk = f.read(min(_BLOCK, stop - pos))
        if not chunk:
            return
        pos += len(chunk)
        buf += chunk
        begin = 0
        while True:
            nl = buf.find(b"\n", begin)
            if nl < 0:
                break
            yield buf_start + begin, buf_start + nl + 1, buf[begin:nl]
            begin = nl + 1
        buf_start += begin
        buf = buf[begin:]


def _lines_backward(f: IO[bytes], end: int) -> Iterator[tuple[int, int, bytes]]:
    """(start, end, line) for each complete line ending at or before `end` (a line boundary), last line first."""
    pos = end
    pending = b""  # the bytes [pos, region_end): empty or ending in a newline
    region_end = end
    while pos > 0:
        size = min(_BLOCK, pos)
        pos -= size
        f.seek(pos)
        pending = f.read(size) + pending
        cut = 0 if pos == 0 else pending.find(b"\n") + 1  # bytes before `cut` may be the tail of an earlier line
        if pos > 0 and cut == 0:
            continue  # a line longer than the block: read further back
        line_end = region_end
        for line in reversed(pending[cut:].split(b"\n")[:-1]):
            line_start = line_end - len(line) - 1
            yield line_start, line_end, line
            line_end = line_start
        region_end = line_end
        pending = pending[:cut]


def _last_boundary(f: IO[bytes], size: int) -> int:
    """The end of the last complete line at or before `size` (a line being written is not yet part of the stream)."""
    if _is_boundary(f, size):
        return size  # the usual case, one byte read: every append ends with a newline
    pos = size
    while pos > 0:
        start = max(0, pos - _BLOCK)
        f.seek(start)
        chunk = f.read(pos - start)
        nl = chunk.rfind(b"\n")
        if nl >= 0:
            return start + nl + 1
        pos = start
    return 0


def _is_boundary(f: IO[bytes], offset: int) -> bool:
    if offset == 0:
        return True
    f.seek(offset - 1)
    return f.read(1) == b"\n"


class FileLogStore:
    """The LogStore port on local files (see the module docstring)."""

    def __init__(self, root: Path, clock: Callable[[], int] = _now_ms) -> None:
        self.root = root
        self._clock = clock
        self._lock = threading.Lock()  # appends are a few microseconds each: one lock for all streams is enough
        self._files: OrderedDict[str, IO[bytes]] = OrderedDict()  # open for append, least recently used first
        self._heads: dict[str, tuple[int, int]] = {}  # stream -> (creation ms, first event ts); never change
        root.mkdir(parents=True, exist_ok=True)

    def path_of(self, stream: str) -> Path:
        parts = stream_parts(stream)
        return self.root.joinpath(*parts[:-1], parts[-1] + SUFFIX)

    # -- writing -------------------------------------------------------------------------------------------------

    def append(self, stream: str, events: list[tuple[int, str]]) -> None:
        """Append (timestamp ms, message) lines to a stream, creating it if needed. Thread-safe."""
        path = self.path_of(stream)
        ingestion = self._clock()
        data = "".join(
            json.dumps({"t": int(ts), "m": message, "i": ingestion}, ensure_ascii=False) + "\n"
            for ts, message in events
        ).encode("utf-8", "replace")  # lone surrogates (undecodable output) become '?'
        with self._lock:
            f = self._files.get(stream)
            if f is None:
                f = self._files[stream] = _open_for_append(path)
                if len(self._files) > OPEN_FILES:
                    self._files.popitem(last=False)[1].close()
            else:
                self._files.move_to_end(stream)
            if data:
                f.write(data)
                f.flush()

    def delete(self, stream: str) -> None:
        """Remove a stream and its file (a stream that does not exist: nothing). Empty directories are left: they
        are shared by every stream of a job definition."""
        with self._lock:
            f = self._files.pop(stream, None)
            if f is not None:
                f.close()
            self._heads.pop(stream, None)
            with contextlib.suppress(FileNotFoundError, ValueError):
                self.path_of(stream).unlink()

    def close(self) -> None:
        """Close the files kept open for appending (appending again reopens them)."""
        with self._lock:
            while self._files:
                self._files.popitem()[1].close()

    # -- reading -------------------------------------------------------------------------------------------------

    def exists(self, stream: str) -> bool:
        try:
            return self.path_of(stream).is_file()
        except ValueError:
            return False

    def read(
        self, stream: str, *, start_time: int | None, end_time: int | None, offset: int, limit: int, from_head: bool
    ) -> tuple[list[LogEvent], int, int]:
        """Events of one stream within [start_time, end_time), in stream order. Returns (events, forward_offset,
        backward_offset).

        from_head=True reads forward from `offset` (0 is the head); from_head=False reads backward, returning the last
        `limit` events before `offset` (a negative offset means the current tail), still in stream order. When nothing
        is left in that direction the returned offset equals the one passed in. ValueError for an unknown stream or
        an offset that is not a position this store returned."""
        if limit < 1:
            raise ValueError("limit must be at least 1")
        try:
            with open(self.path_of(stream), "rb") as f:
                return _read(f, start_time, end_time, offset, limit, from_head)
        except FileNotFoundError:
            raise ValueError(f"log stream {stream!r} does not exist") from None

    def streams(self, prefix: str | None = None) -> list[tuple[str, int, int | None, int | None]]:
        """(stream name, creation time ms, first event ts, last event ts) in name order."""
        base = self.root
        if prefix:
            # Descend through the prefix's complete components; the last (partial) one is matched by name below.
            try:
                whole = [_encode_component(c) for c in prefix.split("/")[:-1]]
            except ValueError:
                return []
            if any(c in ("", ".", "..") for c in prefix.split("/")[:-1]):
                return []
            base = self.root.joinpath(*whole)
        if not base.is_dir():
            return []
        found: list[tuple[str, int, int | None, int | None]] = []
        for name, path in self._walk(base):
            if prefix and not name.startswith(prefix):
                continue
            info = self._describe(name, path)
            if info is not None:
                found.append(info)
        found.sort(key=lambda s: s[0])
        return found

    def _walk(self, base: Path) -> Iterator[tuple[str, Path]]:
        for dirpath, _, filenames in os.walk(base):
            rel = Path(dirpath).relative_to(self.root).parts
            for filename in filenames:
                if not filename.endswith(SUFFIX):
                    continue
                decoded = [_decode_component(c) for c in (*rel, filename[: -len(SUFFIX)])]
                if all(c is not None for c in decoded):
                    yield "/".join(c for c in decoded if c is not None), Path(dirpath, filename)

    def _describe(self, stream: str, path: Path) -> tuple[str, int, int | None, int | None] | None:
        try:
            with open(path, "rb") as f:
                stat = os.fstat(f.fileno())
                tail = _last_boundary(f, stat.st_size)
                head = self._heads.get(stream)
                if head is None:
                    first = _first_event(_lines_forward(f, 0, tail))
                    if first is None:
                        return stream, stat.st_mtime_ns // 1_000_000, None, None
                    head = self._heads[stream] = (first.ingestion_time, first.timestamp)
                last = _first_event(_lines_backward(f, tail))
        except FileNotFoundError:
            return None
        return stream, head[0], head[1], last.timestamp if last is not None else None


def _read(
    f: IO[bytes], start_time: int | None, end_time: int | None, offset: int, limit: int, from_head: bool
) -> tuple[list[LogEvent], int, int]:
    tail = _last_boundary(f, os.fstat(f.fileno()).st_size)
    if not from_head and offset < 0:
        offset = tail
    if offset < 0 or offset > tail or not _is_boundary(f, offset):
        raise ValueError("invalid log position")
    found: list[LogEvent] = []
    lines = _lines_forward(f, offset, tail) if from_head else _lines_backward(f, offset)
    reached = offset  # how far the scan got in its direction
    for start, end, line in lines:
        reached = end if from_head else start
        event = _parse(line)
        if (
            event is not None
            and (start_time is None or event.timestamp >= start_time)
            and (end_time is None or event.timestamp < end_time)
        ):
            found.append(event)
            if len(found) == limit:
                break
    if from_head:
        return found, reached, offset
    found.reverse()
    return found, offset, reached


def _open_for_append(path: Path) -> IO[bytes]:
    path.parent.mkdir(parents=True, exist_ok=True)
    f = open(path, "a+b")  # noqa: SIM115 - kept open across appends; closed on eviction or close()
    size = f.seek(0, os.SEEK_END)
    if size:
        # A write cut short by a crash leaves a partial line: end it so new events start on a line boundary.
        f.seek(size - 1)
        if f.read(1) != b"\n":
            f.write(b"\n")
    return f


def _first_event(lines: Iterator[tuple[int, int, bytes]]) -> LogEvent | None:
    for _, _, line in lines:
        event = _parse(line)
        if event is not None:
            return event
    return None
