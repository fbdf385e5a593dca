"""The local job engine: the dispatcher thread, the work queue, and recovery at start.

Progress is event-driven: every write that can make work schedulable calls `wake()`, and the dispatcher runs a
cycle at once. Every SWEEP_SECONDS the dispatcher thread also runs the repair sweep (control/sweep.py), never the
normal path. Recovery at start is the same sweep with `restart=True`.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
import uuid
from collections.abc import Callable

from chalicelib.compute.ecs_events import host_terminated_reason
from chalicelib.control.context import Services
from chalicelib.control.dispatch import Dispatcher
from chalicelib.control.react import Reactor
from chalicelib.control.sweep import SweepPolicy, SweepReport, sweep

log = logging.getLogger("batchplane.engine")

SWEEP_SECONDS = 30.0
HOST_ID = "local"
HOST_TERMINATED = host_terminated_reason(HOST_ID)
# The local launcher reports a process start at once, so a claim a sweep period old without a task was lost; a
# process it finds unobserved (this server did not start it, or lost its report) is stopped: a lost host.
PERIODIC = SweepPolicy(starting_grace_ms=int(SWEEP_SECONDS * 1000), lost_host=HOST_ID)
AT_START = SweepPolicy(restart=True, lost_host=HOST_ID)


class WorkQueue:
    """Deferred work, run in order by one worker thread."""

    def __init__(self) -> None:
        self._queue: queue.Queue[Callable[[], None] | None] = queue.Queue()
        self._thread = threading.Thread(target=self._run, name="work", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def submit(self, work: Callable[[], None]) -> None:
        self._queue.put(work)

    def stop(self) -> None:
        self._queue.put(None)
        self._thread.join(timeout=10)

    def _run(self) -> None:
        while (work := self._queue.get()) is not None:
            try:
                work()
            except Exception:  # one failed item must not stop the queue; the sweep repairs it
                log.exception("deferred work failed")


class Engine:
    def __init__(self, svc: Services) -> None:
        self.svc = svc
        self.reactor = Reactor(svc, svc.launcher, svc.defer)
        self.dispatcher = Dispatcher(svc, self.reactor, lambda: uuid.uuid4().hex)
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="dispatcher", daemon=True)

    def wake(self) -> None:
        self._wake.set()

    def start(self) -> None:
        self.recover()
        self._thread.start()
        self.wake()

    def stop(self) -> None:
        self._stopping.set()
        self._wake.set()
        self._thread.join(timeout=10)

    def _loop(self) -> None:
        last_sweep = time.monotonic()
        while not self._stopping.is_set():
            self._wake.wait(SWEEP_SECONDS)
            self._wake.clear()
            if self._stopping.is_set():
                return
            if time.monotonic() - last_sweep >= SWEEP_SECONDS:
                # In this thread: no claim is between its write and its launch while the sweep looks.
                last_sweep = time.monotonic()
                try:
                    sweep(self.svc, self.reactor, self.svc.clock.now_ms(), PERIODIC)
                except Exception:
                    log.exception("repair sweep failed")
                try:  # jobStateTimeLimitActions of queues no event has woken (the cycle below checks them too)
                    self.dispatcher.check_time_limits()
                except Exception:
                    log.exception("time-limit check failed")
            try:
                while self.dispatcher.cycle() and not self._stopping.is_set():
                    pass
            except Exception:  # keep dispatching; the failure is logged
                log.exception("dispatch cycle failed")

    # -- recovery ---------------------------------------------------------------------------------------------

    def recover(self) -> SweepReport:
        """Repair what a crash may have interrupted. Runs once, before the dispatcher starts (control/sweep.py):

        - STARTING without a process (crashed between claim and launch): launch it now (same attempt key).
        - STARTING/RUNNING with a process from the previous run: the process is stopped (its exit cannot be
          observed any more) and the attempt fails as a lost host would (HOST_TERMINATED); the retry strategy
          decides, and `onStatusReason: "Host EC2*"` rules apply as on AWS.
        - PENDING jobs: dependencies that finished while notifications were lost are applied; array parents get
          their missing children and their finished children counted (both idempotent).
        """
        return sweep(self.svc, self.reactor, self.svc.clock.now_ms(), AT_START)
