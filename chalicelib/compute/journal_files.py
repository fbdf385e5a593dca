"""What the launchers' append-only journals share (compute/local_journal.py's process journal, compute/nodes.py's
nodes.journal): their keys, and the steps of their compaction at start (docs/adr/0035). No import of an adapter:
compute/nodes.py, which the control plane reaches, uses it too."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path


def job_of(key: str) -> str:
    """The job a journal key is of: "<jobId>#<attempt>[/<container>]", a multi-node job's node "<jobId>#<i>#<attempt>"
    (domain/nodes.py node_id) of the job itself. Job ids hold no "#" (a UUID, an array child's "<uuid>:<index>")."""
    return key.split("#", 1)[0]


def fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_kept(path: Path, new: Path, keep: Callable[[bytes], bool]) -> tuple[int, int]:
    """A compaction's first step (the process journal's, compute/nodes.py's): write the complete lines of `path`
    that `keep` (each distinct line once: a line's content is its meaning) to `new`, fsync'd; how many bytes were
    read, and written. A line being written (no newline yet) ends the reading."""
    seen: set[bytes] = set()  # (a line merged back from journal.old may be in the journal already)
    read = 0
    with open(path, "rb") as src, open(new, "wb") as out:
        for line in src:
            if not line.endswith(b"\n"):
                break
            read += len(line)
            if line not in seen and keep(line):
                seen.add(line)
                out.write(line)
        out.flush()
        os.fsync(out.fileno())
        return read, out.tell()


def replace_synced(new: Path, path: Path) -> None:
    """A compaction's last step: `new` takes the place of `path`, durably (rename, then the directory fsync'd)."""
    os.replace(new, path)
    fsync_dir(path.parent)
