"""The local runtime's trigger sources: a watched folder per bucket, and a schedule timer. One thread, polling.

- Buckets: an object `s3://<bucket>/<key>` is the file `<state-dir>/buckets/<bucket>/<key>`. Every POLL_SECONDS
  the folders of the buckets that triggers name are scanned (an mtime scan: no inotify, so it works everywhere).
  A file fires the triggers it matches once it is complete — its size and mtime unchanged across two scans (or
  write it elsewhere and `mv` it in; names starting with "." are ignored, for temporary files) — and only if it
  changed after the trigger was created (its ctime, which a `mv` updates), as S3 only notifies new objects.
  Each (trigger, key, mtime) fires at most once, durably: the job id derives from it (`domain.triggers.firing_id`),
  so after a restart the job's existence says the object was seen. Writing the file again is a new object.
- Schedules: each schedule trigger's next fire time (`domain.triggers.next_fire`) is kept in memory; when it has
  come, `control.triggers.on_schedule` submits the job, whose id derives from the fire time, so a tick is never
  submitted twice. Fire times missed while the runtime was down are not made up, as EventBridge Scheduler does not.
  `use_clock` swaps the timer's clock (tests run a `rate(1 minute)` schedule in a second with a clock set ahead).
"""

from __future__ import annotations

import logging
import os
import threading
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

from chalicelib.control import triggers as control
from chalicelib.control.context import Clock, Services
from chalicelib.control.react import Reactor
from chalicelib.domain import triggers as domain
from chalicelib.domain.triggers import S3Source, ScheduleSource, Trigger

log = logging.getLogger("batchplane.triggers")

POLL_SECONDS = 1.0
# Filesystem timestamps may be coarser than the trigger's creation time: a file changed this long before the
# trigger was created still counts as new.
CTIME_SLACK_MS = 2_000


class TriggerRunner:
    def __init__(self, svc: Services, reactor: Reactor, buckets: Path, *, poll_seconds: float = POLL_SECONDS) -> None:
        self.svc = svc
        self.buckets = buckets
        self.poll_seconds = poll_seconds
        self.clock: Clock = svc.clock
        self.reactor = reactor  # the plane's (runtime/plane.py)
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="triggers", daemon=True)
        self._lock = threading.Lock()  # one pass at a time (the thread's, or a test's run_once)
        self._due: dict[str, tuple[int, int | None]] = {}  # schedule trigger -> (its created_at, next fire ms)
        self._previous: dict[tuple[str, str], tuple[int, int]] = {}  # (bucket, key) -> (size, mtime_ns) last scan
        self._fired: set[tuple[str, int, str, int]] = set()  # (trigger, created_at, key, mtime_ns) handled

    def bucket_dir(self, bucket: str) -> Path:
        return self.buckets / bucket

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join(timeout=10)

    def wake(self) -> None:
        self._wake.set()

    def use_clock(self, clock: Clock) -> None:
        """The timer's clock (tests: a clock set ahead, so a schedule fires without waiting for it)."""
        self.clock = clock
        self.wake()

    def _loop(self) -> None:
        while not self._stopping.is_set():
            self._wake.wait(self._sleep())
            self._wake.clear()
            if self._stopping.is_set():
                return
            try:
                self.run_once()
            except Exception:  # keep watching; the next pass retries
                log.exception("trigger pass failed")

    def _sleep(self) -> float:
        upcoming = [due for _, due in self._due.values() if due is not None]
        if not upcoming:
            return self.poll_seconds
        return max(0.01, min(self.poll_seconds, (min(upcoming) - self.clock.now_ms()) / 1000))

    def run_once(self) -> None:
        """One pass: scan the bucket folders, fire the schedules that are due."""
        with self._lock:
            every = control.repo(self.svc).all()
            self._scan([t for t in every if isinstance(t.source, S3Source)])
            self._tick([t for t in every if isinstance(t.source, ScheduleSource)])

    # -- buckets ----------------------------------------------------------------------------------------------

    def _scan(self, triggers: list[Trigger]) -> None:
        by_bucket: dict[str, list[Trigger]] = defaultdict(list)
        for t in triggers:
            assert isinstance(t.source, S3Source)
            by_bucket[t.source.bucket].append(t)
        seen: dict[tuple[str, str], tuple[int, int]] = {}
        for bucket, ts in by_bucket.items():
            root = self.bucket_dir(bucket)
            root.mkdir(parents=True, exist_ok=True)  # so there is a folder to drop files into
            for key, st in _objects(root, {_folder_of(t) for t in ts}):
                signature = (st.st_size, st.st_mtime_ns)
                seen[(bucket, key)] = signature
                if self._previous.get((bucket, key)) != signature:
                    continue  # new or still being written: fires once it holds still for a scan
                changed_ms = max(st.st_mtime_ns, st.st_ctime_ns) // 1_000_000
                for t in ts:
                    if domain.matches(t.source, bucket, key) and changed_ms >= t.created_at - CTIME_SLACK_MS:
                        self._fire_object(t, bucket, key, st.st_mtime_ns)
        self._previous = seen

    def _fire_object(self, trigger: Trigger, bucket: str, key: str, mtime_ns: int) -> None:
        mark = (trigger.name, trigger.created_at, key, mtime_ns)
        if mark in self._fired:
            return
        job_id = domain.firing_id(trigger, "s3", key, str(mtime_ns))
        if self.svc.jobs.get(job_id) is None:  # else: fired before a restart
            control.fire_object(self.svc, self.reactor, trigger, bucket, key, job_id=job_id)
        self._fired.add(mark)

    # -- schedules --------------------------------------------------------------------------------------------

    def _tick(self, triggers: list[Trigger]) -> None:
        now = self.clock.now_ms()
        live = {t.name: t for t in triggers}
        for name in [n for n, (created, _) in self._due.items() if n not in live or live[n].created_at != created]:
            del self._due[name]  # deleted, or deleted and created again
        for name, trigger in live.items():
            if name not in self._due:
                self._due[name] = (trigger.created_at, domain.next_fire(trigger, now))
            created, due = self._due[name]
            if due is not None and now >= due:
                control.on_schedule(replace(self.svc, clock=self.clock), self.reactor, name)
                self._due[name] = (created, domain.next_fire(trigger, now))


def _folder_of(trigger: Trigger) -> str:
    """The folder under the bucket that holds every key the trigger's prefix can match ("" for the bucket)."""
    assert isinstance(trigger.source, S3Source)
    return trigger.source.prefix.rpartition("/")[0]


def _objects(root: Path, folders: set[str]) -> Iterator[tuple[str, os.stat_result]]:
    """(key, stat) of the regular files under the given folders of a bucket, each once; dot-names skipped."""
    if "" in folders:
        folders = {""}
    keys: set[str] = set()
    for folder in sorted(folders):
        top = root / folder if folder else root
        for dirpath, dirnames, filenames in os.walk(top):
            dirnames[:] = [d for d in dirnames if not d.startswith(".")]
            for name in filenames:
                if name.startswith("."):
                    continue
                path = Path(dirpath) / name
                key = path.relative_to(root).as_posix()
                if key in keys:
                    continue
                try:
                    st = path.stat()
                except OSError:
                    continue  # removed meanwhile
                if not path.is_file():
                    continue
                keys.add(key)
                yield key, st
