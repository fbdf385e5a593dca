"""What the launchers' append-only journals share (compute/local_journal.py's process journal, compute/nodes.py's
nodes.journal): their keys, the server's descriptor on them, and the steps of their compaction, at start
(docs/adr/0035) and while the server runs (docs/adr/0036). No import of an adapter: compute/nodes.py, which the
control plane reaches, uses it too."""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import NamedTuple

log = logging.getLogger("batchplane.launcher")

NEW_SUFFIX = ".new"  # a compaction's kept lines, until they are complete (renamed over the journal)
# A journal this long, and twice as long as its last compaction left it, is compacted while the server runs (`due`):
# about 17,000 process attempts (~240 bytes each). Read at each check: tests set it small.
COMPACT_BYTES = 4 << 20
CHECK_BYTES = 64 << 10  # the server's appends between two looks at the journal's size (at most COMPACT_BYTES / 8)


def job_of(key: str) -> str:
    """The job a journal key is of: "<jobId>#<attempt>[/<container>]", a multi-node job's node "<jobId>#<i>#<attempt>"
    (domain/nodes.py node_id) of the job itself. Job ids hold no "#" (a UUID, an array child's "<uuid>:<index>")."""
    return key.split("#", 1)[0]


def due(size: int, kept: int) -> bool:
    """Whether a journal of `size` bytes, `kept` of them left by its last compaction, is to be compacted: past
    COMPACT_BYTES, and twice what was kept (so that many attempts running at once do not make it compact ever more
    often: each compaction at least halves it)."""
    return size >= max(COMPACT_BYTES, 2 * kept)


def fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class Appender:
    """The server's descriptor on a journal: one os.write per record (O_APPEND: the whole line or none, never
    interleaved with another writer's), under a lock that a compaction takes to move it onto the compacted file
    (`reopen`): once that returns, no record of the server's goes to the journal's previous inode."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.lock = threading.Lock()
        self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        self._written = 0
        self._look_at = 0

    def write(self, data: bytes) -> int | None:
        """Append `data`; the journal's size when it is time to look at it (every CHECK_BYTES), else None.
        OSError once closed."""
        with self.lock:
            os.write(self._fd, data)
            self._written += len(data)
            if self._written < self._look_at:
                return None
            self._look_at = self._written + min(CHECK_BYTES, max(1, COMPACT_BYTES // 8))
            return os.fstat(self._fd).st_size

    def sync(self) -> None:
        os.fsync(self._fd)

    def reopen(self) -> None:
        """The descriptor now writes to the file at `path` (a compaction renamed it there)."""
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            with self.lock:
                self.swap(fd)
        finally:
            os.close(fd)

    def swap(self, fd: int) -> None:
        """Under `lock`: the descriptor now writes where `fd` does (atomic: its number stays valid throughout, so a
        writer never meets it closed, nor another file under it)."""
        if self._fd >= 0:
            os.dup2(fd, self._fd)

    @property
    def closed(self) -> bool:
        return self._fd < 0

    def size(self) -> int:
        return os.fstat(self._fd).st_size

    def close(self) -> None:
        with self.lock:
            if self._fd >= 0:
                fd, self._fd = self._fd, -1
                os.close(fd)


@contextlib.contextmanager
def compaction(path: Path) -> Iterator[Path]:
    """A compaction's journal.new, removed when the compaction fails (OSError: a full disk, no hard links) before it
    took the journal's place; the journal is then left whole. (A crash leaves it: the next compaction rewrites it.)"""
    new = path.with_name(path.name + NEW_SUFFIX)
    try:
        yield new
    except OSError:
        with contextlib.suppress(OSError):
            new.unlink()
        raise


class Kept(NamedTuple):
    read: int  # the offset in the journal the reading reached (complete lines only)
    written: int  # the size of journal.new after
    marked: int  # where, in journal.new, the lines read from the `mark` offset on begin


def write_kept(
    path: Path,
    new: Path,
    keep: Callable[[bytes], bool],
    *,
    start: int = 0,
    mark: int = 0,
    seen: set[bytes] | None = None,
) -> Kept:
    """A compaction's first step: write the complete lines of `path` from `start` that `keep` (each distinct line
    once: a line's content is its meaning; `seen` carries that across calls) to `new` (appended to when `start` is
    not 0), fsync'd. A line being written (no newline yet) ends the reading. Compaction's `new` is removed when this
    fails (`compaction`)."""
    seen = set() if seen is None else seen  # (a line merged back from journal.old may be in the journal already)
    read, marked = start, -1
    with open(path, "rb") as src, open(new, "ab" if start else "wb") as out:
        src.seek(start)
        for line in src:
            if not line.endswith(b"\n"):
                break
            if marked < 0 and read >= mark:
                marked = out.tell()
            read += len(line)
            if line not in seen and keep(line):
                seen.add(line)
                out.write(line)
        out.flush()
        os.fsync(out.fileno())
        return Kept(read, out.tell(), out.tell() if marked < 0 else marked)


def replace_synced(new: Path, path: Path) -> None:
    """A compaction's last step: `new` takes the place of `path`, durably (rename, then the directory fsync'd)."""
    os.replace(new, path)
    fsync_dir(path.parent)


class OwnJournal:
    """A journal only the server appends to (compute/nodes.py's nodes.journal), compacted at start (`compact`) and,
    once it grew (`due`), on a thread of its own to the lines of the jobs `kept()` names then (docs/adr/0036). The
    appends wait while it is compacted (the Appender's lock: a few milliseconds for a small file), so none can be
    written to the old inode: no journal.old is needed, nor any late line copied. A crash leaves the journal whole,
    or compacted; a failure (a full disk) leaves it whole, compacted again once it has doubled."""

    def __init__(self, path: Path, kept: Callable[[], set[str]], job_of_line: Callable[[bytes], str]) -> None:
        self.path = path
        self._kept, self._job_of_line = kept, job_of_line
        self._out = Appender(path)
        self._kept_size = 0  # its size after its last compaction
        self._lock = threading.Lock()
        self._compacting: threading.Thread | None = None

    def append(self, data: bytes) -> None:
        size = self._out.write(data)
        if size is not None and due(size, self._kept_size):
            with self._lock:
                if self._compacting is not None:
                    return
                self._compacting = threading.Thread(target=self._compact_live, name="journal-compaction", daemon=True)
                self._compacting.start()

    def wait_compacted(self, timeout: float) -> bool:
        with self._lock:
            compacting = self._compacting
        if compacting is not None:
            compacting.join(timeout)
        return compacting is None or not compacting.is_alive()

    def _compact_live(self) -> None:
        try:
            with self._out.lock:
                if not self._out.closed:
                    self._rewrite(self._kept())
        finally:
            with self._lock:
                self._compacting = None

    def compact(self, jobs: set[str]) -> None:
        with self._out.lock:
            self._rewrite(jobs)

    def _rewrite(self, jobs: set[str]) -> None:
        """Under the Appender's lock: keep the lines of `jobs` (write_kept, replace_synced)."""
        try:
            with compaction(self.path) as new:
                kept = write_kept(self.path, new, lambda line: self._job_of_line(line) in jobs)
                fd = os.open(new, os.O_WRONLY | os.O_APPEND)  # (the new file's inode, whatever happens to its name)
                try:
                    replace_synced(new, self.path)
                    self._out.swap(fd)
                finally:
                    os.close(fd)
        except OSError:
            log.exception("the journal %s cannot be compacted", self.path)
            with contextlib.suppress(OSError):
                self._kept_size = self._out.size()
            return
        self._kept_size = kept.written

    def close(self) -> None:
        self._out.close()
