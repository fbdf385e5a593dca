"""Threads that run a launcher's watches, kept between tasks.

A launcher watches each running task on a thread of its own (it blocks reading the task's output, then waiting for
its exit). Starting a thread per task cost its caller, the local engine's dispatcher thread, the wait in
`Thread.start` until the new thread ran (a GIL hand-over: about a sixth of that thread's time per short array
child in `make bench WORKLOAD=array-1000000`). `Workers.run` hands the watch to an idle thread through a queue,
which does not wait, and starts a thread only when none is idle; a thread idle for IDLE_SECONDS ends.

There is no bound on the threads: a watch lasts as long as its task, so a bound would hold a task back from
starting behind long-running ones. `wait_idle` lets shutdown wait (bounded) until every watch has returned.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable

log = logging.getLogger("batchplane.launcher")

IDLE_SECONDS = 30.0


class Workers:
    def __init__(self, prefix: str = "task", idle_seconds: float = IDLE_SECONDS) -> None:
        self.prefix = prefix
        self.idle_seconds = idle_seconds
        self._queue: queue.SimpleQueue[tuple[str, Callable[[], None]]] = queue.SimpleQueue()
        self._lock = threading.Condition()
        self._idle = 0  # threads waiting for work that no queued item has claimed yet
        self._busy = 0  # items queued or running

    def run(self, name: str, work: Callable[[], None]) -> None:
        """Run `work` on a worker thread (named `<prefix>-<name>` while it runs); returns at once."""
        with self._lock:
            self._busy += 1
            start = self._idle == 0
            if not start:
                self._idle -= 1  # that thread's: it takes this item (or another, whose thread takes this one)
        self._queue.put((name, work))
        if start:
            threading.Thread(target=self._work, name=f"{self.prefix}-{name}", daemon=True).start()

    def wait_idle(self, timeout: float) -> bool:
        """Wait until no work is queued or running; False if some still is after `timeout` seconds."""
        with self._lock:
            return self._lock.wait_for(lambda: self._busy == 0, timeout)

    def _work(self) -> None:
        me = threading.current_thread()
        while True:
            try:
                name, work = self._queue.get(timeout=self.idle_seconds)
            except queue.Empty:
                with self._lock:
                    if self._idle > 0:  # nobody counts on this thread: it ends
                        self._idle -= 1
                        return
                continue  # every idle thread is claimed by an item on its way: take one
            me.name = f"{self.prefix}-{name}"
            try:
                work()
            except Exception:
                log.exception("%s failed", me.name)
            me.name = f"{self.prefix}-idle"
            with self._lock:
                self._busy -= 1
                self._idle += 1
                if self._busy == 0:
                    self._lock.notify_all()
